"""tasks.preprocessors: fields, template rendering, OPTIONS, few-shot formatting."""

import seqio
import tensorflow as tf

from tasks import preprocessors
from tasks.spec import Template
from tests.tasks.fake_specs import spec


def _fields(x="a cat", answer="yes"):
    s = spec("p", "alpha")
    ds = tf.data.Dataset.from_tensors({"x": tf.constant(x), "answer": tf.constant(answer)})
    return s, next(iter(preprocessors.prepare_fields(ds, s, "train", ["x", "answer"])))


def test_render_template_appends_options_except_turned_around():
    s, fields = _fields()
    inputs, targets = preprocessors.render_template(s, s.templates[0], fields)
    assert inputs.numpy().decode() == "a cat?\n\nOPTIONS:\n- yes\n- no"
    assert targets.numpy().decode() == "yes"
    inputs, targets = preprocessors.render_template(s, s.templates[2], fields)
    assert (inputs.numpy().decode(), targets.numpy().decode()) == ("Make a yes item.", "a cat")


def _rendered(mode, index=None, num_templates=1):
    s = spec("p", "alpha")
    ds = tf.data.Dataset.from_tensors({"x": tf.constant("dog"), "answer": tf.constant("no")})
    ds = preprocessors.prepare_fields(ds, s, "train", ["x", "answer"])
    ex = next(iter(preprocessors.render(ds, s, mode, index, num_templates, seed=0)))
    return ex["inputs"].numpy().decode(), ex["targets"].numpy().decode()


def test_render_modes():
    assert _rendered("template", 1) == ("Say dog.\n\nOPTIONS:\n- yes\n- no", "no")
    assert _rendered("rank", 1)[1] == "no"
    assert _rendered("notemplate") == ("dog\n\nOPTIONS:\n- yes\n- no", "no")
    assert _rendered("dsname")[0] == "p\ndog\n\nOPTIONS:\n- yes\n- no"
    mixed = _rendered("mixed", num_templates=2)
    assert mixed in (_rendered("template", 0), _rendered("template", 1))


def test_reference_template_skips_turned_around():
    s = spec("p", "alpha", templates=(Template("{answer}!", "{x}", turned_around=True),
                                      Template("{x}?", "{answer}")))
    assert preprocessors.reference_template(s).inputs == "{x}?"


def test_fewshot_format_drops_exemplars_to_fit_the_budget():
    vocab = seqio.ByteVocabulary()
    ex = {"inputs": tf.constant("Q?"), "targets": tf.constant("A"),
          "exemplar_inputs": tf.constant(["q1" * 10, "q2"]),
          "exemplar_targets": tf.constant(["a1", "a2"])}
    ds = tf.data.Dataset.from_tensors(ex)
    out = next(iter(preprocessors.fewshot_format(ds, vocab, num_shots=2)))
    assert out["inputs"].numpy().decode().startswith("q1q1")
    assert "exemplar_inputs" not in out
    import gin

    gin.parse_config(["tasks.fewshot_length_budget.max_input_tokens = 14"])
    out = next(iter(preprocessors.fewshot_format(ds, vocab, num_shots=2)))
    assert out["inputs"].numpy().decode() == "q2\n\na2\n\n\nQ?"  # the last exemplar only
