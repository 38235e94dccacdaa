"""The offline synthetic suite: shape, determinism, rendering, options, few-shot budgets."""

import itertools

import gin
import pytest
import seqio

import tasks  # noqa: F401 - registers the synthetic suite
from tasks import catalogue, synthetic


def _examples(name, n=5, split=None):
    task = seqio.get_mixture_or_task(name)
    split = split or catalogue.task_info(name).split
    ds = task.get_dataset(None, split=split, shuffle=False)
    return list(ds.take(n).as_numpy_iterator())


def _text(ex, key):
    return ex[f"{key}_pretokenized"].decode()


def test_suite_shape():
    info = catalogue.collection_info("synthetic")
    assert len(info.clusters) >= 6
    assert all(len(datasets) >= 2 for datasets in info.datasets.values())
    assert all(len(s.templates) >= 5 for s in synthetic.SPECS)
    assert any(s.is_classification for s in synthetic.SPECS)
    assert any(not s.is_classification for s in synthetic.SPECS)
    assert any(t.turned_around for s in synthetic.SPECS for t in s.templates)
    assert set(info.heldout_mixtures) == set(info.clusters)
    assert info.training_clusters("paraphrase") == tuple(
        c for c in info.clusters if c not in ("paraphrase", "nli"))


def test_generators_are_deterministic():
    for spec in synthetic.SPECS:
        first = list(itertools.islice(spec.source.generate("train", 3), 20))
        again = list(itertools.islice(spec.source.generate("train", 3), 20))
        other = list(itertools.islice(spec.source.generate("train", 4), 20))
        assert first == again, spec.name
        assert first != other, spec.name
    a = _examples("synthetic_fact_nli_train", 20, "train")
    b = _examples("synthetic_fact_nli_train", 20, "train")
    assert [_text(x, "inputs") for x in a] == [_text(x, "inputs") for x in b]


def test_every_template_renders_with_options_exactly_where_due():
    for spec in synthetic.SPECS:
        for i, template in enumerate(spec.templates):
            for ex in _examples(f"synthetic_{spec.name}_t{i}_eval", 20):
                inputs, targets = _text(ex, "inputs"), _text(ex, "targets")
                where = f"{spec.name} template {i}: {inputs!r} -> {targets!r}"
                assert "{" not in inputs + targets and "}" not in inputs + targets, where
                assert inputs and targets, where
                has_options = "\n\nOPTIONS:\n- " in inputs
                due = spec.is_classification and not template.turned_around
                assert has_options == due, where
                # Small enough for a tiny byte-level model.
                assert len(ex["inputs_pretokenized"]) < 128, where
                assert len(ex["targets_pretokenized"]) < 32, where
                assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS appended
                if spec.is_classification:
                    assert "options" in ex, where


def test_rank_examples_carry_options_containing_the_target():
    rank_tasks = catalogue.task_names("synthetic")
    rank_tasks = [n for n in rank_tasks if catalogue.task_info(n).kind == "rank"
                  and catalogue.task_info(n).options_in_prompt]
    assert rank_tasks
    for name in rank_tasks:
        for ex in _examples(name, 5):
            options = [o.decode() for o in ex["options"]]
            assert _text(ex, "targets") in options, name
            for option in options:
                assert f"\n- {option}" in _text(ex, "inputs"), name


def test_train_task_keeps_every_example_and_mixes_templates():
    examples = _examples("synthetic_reverse_word_train", synthetic.NUM_TRAIN + 10, "train")
    assert len(examples) == synthetic.NUM_TRAIN
    prefixes = {_text(ex, "inputs")[:8] for ex in examples}
    assert len(prefixes) >= len(synthetic.SPECS[6].templates) - 1
    one = _examples("synthetic_reverse_word_train_1templates", 50, "train")
    assert all(_text(ex, "inputs").startswith("Reverse the word") for ex in one)


def test_fewshot_exemplars_fit_the_budget():
    name = "synthetic_color_nli_t0_5shot_rank"
    try:
        gin.parse_config(["tasks.fewshot_length_budget.max_input_tokens = 2048"])
        full = _examples(name, 3)
        again = _examples(name, 3)
    finally:
        gin.clear_config()
    zero = _examples("synthetic_color_nli_t0_rank", 3)
    for f, z in zip(full, zero):
        assert _text(f, "inputs").endswith(_text(z, "inputs"))
        assert _text(f, "inputs").count("OPTIONS:") == 6
        assert _text(f, "targets") == _text(z, "targets")
    assert [_text(x, "inputs") for x in full] == [_text(x, "inputs") for x in again]
    try:
        gin.parse_config(["tasks.fewshot_length_budget.max_input_tokens = 220"])
        pruned = _examples(name, 3)
    finally:
        gin.clear_config()
    for p, z in zip(pruned, zero):
        assert len(p["inputs"]) <= 220
        assert 1 <= _text(p, "inputs").count("OPTIONS:") < 6
        assert _text(p, "inputs").endswith(_text(z, "inputs"))


def test_ablation_variants():
    (raw,) = _examples("synthetic_color_nli_notemplate_eval", 1)
    (named,) = _examples("synthetic_color_nli_dsname_eval", 1)
    assert _text(named, "inputs") == "Color NLI\n" + _text(raw, "inputs")
    assert "Premise" not in _text(raw, "inputs")
    assert _text(raw, "inputs").endswith("OPTIONS:\n- yes\n- no\n- maybe")


@pytest.mark.parametrize("name", ["synthetic_nli_eval", "synthetic_nli_rank",
                                  "synthetic_nli_2shot_eval", "synthetic_heldout_nli_train",
                                  "synthetic_clusters3_train"])
def test_mixtures_exist(name):
    assert isinstance(catalogue.get_task_or_mixture(name), seqio.Mixture)
