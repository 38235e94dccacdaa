"""Flan 2022 template styles on fixture rows: options listed or not, letter targets, few-shot
exemplars from the same dataset and template only within the token budget, CoT reasoning
before the answer, input inversion, and the CoT files' fetching."""

import dataclasses
import hashlib
import itertools

import pytest
import seqio
import tensorflow as tf

import tasks  # noqa: F401 - registers the collections
from tasks import sources, templates
from tasks.flan2022 import cot, mixing
from tasks.flan2022 import styles as st
from tasks.spec import DatasetSpec, GeneratorSource, Template

VOCAB = seqio.ByteVocabulary()
OPTIONS = ("red", "green", "blue")
_NAMES = itertools.count()  # generated records are cached per dataset name: one per spec


def _color_spec(size=40, templates_=None):
    def generate(split, seed):
        for i in range(size):
            yield {"x": f"thing number {i}", "answer": OPTIONS[i % 3]}

    return DatasetSpec(
        name=f"colors{next(_NAMES)}", collection="fl22styles", cluster="c",
        source=GeneratorSource(generate, {"x": str, "answer": str}, {"train": size}, ("train",)),
        templates=templates_ or (Template("What color is {x}?", "{answer}"),
                                 Template("Name the color of {x}.", "It is {answer}."),
                                 Template("Describe something {answer}.", "{x}",
                                          turned_around=True)),
        options=OPTIONS)


def _records(spec, style_name):
    source = mixing.style_source(spec, st.STYLES[style_name], 0, VOCAB)
    ds = source.get_dataset("train", shuffle=False)
    return [{k: v.decode() for k, v in ex.items()} for ex in ds.as_numpy_iterator()]


def _family(fmt_start, first_label):
    return next(i for i, f in enumerate(st.MARKER_FAMILIES)
                if f[0] == fmt_start.format(first_label))


def _variety(header, family, ending):
    return st.Variety(tf.constant(header), tf.constant(family), tf.constant(ending))


def _prerendered(spec, x, answer):
    fields = {"x": tf.constant(x), "answer": tf.constant(answer),
              "__options__": tf.constant(list(OPTIONS))}
    return st.prerender(spec, fields)


def test_zs_opt_lists_options_and_rewrites_the_target_to_its_letter():
    spec = _color_spec()
    rec = _prerendered(spec, "grass", "green")
    header = st.OPTION_HEADERS.index("Choices:")
    letters = _family("\n({}) ", "A")
    inputs, targets = st.compose(spec, rec, tf.constant(1), _variety(header, letters, 1),
                                 st.STYLES["zs_opt"])
    assert inputs.numpy().decode() == (
        "Name the color of grass.\n\nChoices:\n(A) red;\n(B) green;\n(C) blue;")
    assert targets.numpy().decode() == "It is (B)."


def test_bullets_keep_the_answer_text_and_noopt_lists_nothing():
    spec = _color_spec()
    rec = _prerendered(spec, "the sky", "blue")
    dashes = st.MARKER_FAMILIES.index(("\n- ",) * 26)
    inputs, targets = st.compose(spec, rec, tf.constant(0), _variety(0, dashes, 0),
                                 st.STYLES["fs_opt"])
    # An empty header leaves no leading line break before the first item.
    assert inputs.numpy().decode() == "What color is the sky?\n\n- red\n- green\n- blue"
    assert targets.numpy().decode() == "blue"
    inputs, targets = st.compose(spec, rec, tf.constant(0), _variety(3, dashes, 0),
                                 st.STYLES["zs_noopt"])
    assert (inputs.numpy().decode(), targets.numpy().decode()) == (
        "What color is the sky?", "blue")


def test_turned_around_templates_list_no_options_and_keep_the_answer_in_the_input():
    spec = _color_spec()
    rec = _prerendered(spec, "a ruby", "red")
    inputs, targets = st.compose(spec, rec, tf.constant(2), _variety(1, 30, 0),
                                 st.STYLES["zs_opt"])
    assert (inputs.numpy().decode(), targets.numpy().decode()) == (
        "Describe something red.", "a ruby")


def test_more_than_26_options_fall_back_to_dashes():
    many = tf.constant([f"o{i}" for i in range(30)])
    block, shown = st.format_options(many, tf.size(many), tf.constant("o27"),
                                     _variety(0, _family("\n{}. ", "A"), 0))
    assert block.numpy().decode().startswith("- o0\n- o1")
    assert shown.numpy().decode() == "o27"


def test_zero_shot_styles_render_every_record_deterministically_with_varied_lists():
    spec = _color_spec(size=60)
    first, again = _records(spec, "zs_opt"), _records(spec, "zs_opt")
    assert first == again and len(first) == 60
    headers = {h for ex in first for h in st.OPTION_HEADERS[1:] if h in ex["inputs"]}
    assert len(headers) >= 5  # a seeded choice per example, not one style for all
    lettered = [ex for ex in first if ex["targets"] not in OPTIONS and "It is" not in
                ex["targets"] and "thing number" not in ex["targets"]]
    assert lettered  # some examples got enumerating markers, hence letter targets
    for ex in lettered:
        assert ex["targets"] in ex["inputs"]  # the letter is one the list shows
    for ex in _records(spec, "zs_noopt"):
        assert not any(f"{m}{o}" in ex["inputs"] for m in ("\n- ", " - ") for o in OPTIONS)
        assert ex["targets"] in OPTIONS or ex["targets"].startswith(("It is", "thing"))


def _split_prompt(prompt):
    blocks = prompt.split(templates.FEWSHOT_EXEMPLAR_SEPARATOR)
    # Fixture targets have no blank line: an exemplar's target follows its last one.
    return [tuple(b.rsplit(templates.FEWSHOT_TARGET_SEPARATOR, 1)) for b in blocks[:-1]], blocks[-1]


@pytest.mark.parametrize("style", ["fs_noopt", "fs_opt"])
def test_few_shot_exemplars_share_dataset_and_template_never_the_example(style):
    spec = _color_spec(templates_=(Template("Q1 {x}", "A1 {answer}"),
                                   Template("Q2 {x}", "A2 {answer}")))
    things = {f"thing number {i}" for i in range(40)}
    records = _records(spec, style)
    assert len(records) == 40
    for ex in records:
        exemplars, query = _split_prompt(ex["inputs"])
        assert 1 <= len(exemplars) <= st.MAX_EXEMPLARS
        mark = query[:2]  # "Q1" or "Q2": the example's template
        assert ex["targets"].startswith("A" + mark[1])
        for inputs, targets in exemplars:
            assert inputs.startswith(mark) and targets.startswith("A" + mark[1])
            thing = inputs.split("\n\n")[0][3:]
            assert thing in things  # a record of the same dataset
            assert thing != query.split("\n\n")[0][3:]  # never the example itself
        if style == "fs_opt":  # exemplars share the example's list style
            tail = query.split("\n\n", 1)[1]
            for inputs, _ in exemplars:
                assert inputs.split("\n\n", 1)[1] == tail


def test_few_shot_prompts_keep_the_first_exemplars_that_fit_the_budget(monkeypatch):
    spec = _color_spec(templates_=(Template("Q {x}", "A {answer}"),))
    records = _records(spec, "fs_noopt")
    assert {len(_split_prompt(ex["inputs"])[0]) for ex in records} == {st.MAX_EXEMPLARS}
    monkeypatch.setattr(st, "fewshot_token_budget", lambda: 60)
    for ex in _records(spec, "fs_noopt"):
        assert len(ex["inputs"].encode()) + 1 <= 60  # byte tokens, plus EOS
        exemplars, _ = _split_prompt(ex["inputs"])
        assert len(exemplars) == 1
        # A second exemplar (at least 24 bytes with its separators) would not have fitted.
        assert len(ex["inputs"].encode()) + 1 + 24 > 60


def _write_cot_fixture(tmp_path, name, rows):
    folder = tmp_path / cot.source(name).name
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))


COT_ROWS = [(f"How many legs do {n} ducks have?\\nOptions:\\n- {2 * n}\\n- {n}", str(2 * n),
             f"A duck has 2 legs.\\nSo {n} ducks have {2 * n} legs.") for n in range(3, 12)]


@pytest.fixture
def cot_files(tmp_path, monkeypatch):
    _write_cot_fixture(tmp_path, "gsm8k", COT_ROWS)
    monkeypatch.setattr(sources, "text_file_dir", lambda: str(tmp_path))
    return tmp_path


def test_cot_targets_give_the_reasoning_before_the_answer(cot_files):
    spec = next(e.spec for e in cot.ENTRIES if e.spec.name == "gsm8k")
    records = _records(spec, "cot")
    assert len(records) == len(COT_ROWS)
    for ex, (question, answer, reasoning) in zip(records, COT_ROWS):
        assert question.replace("\\n", "\n") in ex["inputs"]
        first_step = reasoning.split("\\n")[0]
        assert ex["targets"].index(first_step) < ex["targets"].rindex(answer)
        assert "\n" in ex["targets"]  # the files' escaped line breaks are real ones
    for ex in _records(spec, "fs_cot"):
        exemplars, _ = _split_prompt(ex["inputs"])
        assert exemplars and all("A duck has 2 legs." in t for _, t in exemplars)


def test_inverted_cot_asks_for_the_question(cot_files):
    spec = next(e.spec for e in cot.ENTRIES if e.spec.name == "gsm8k_inverted")
    for ex, (question, answer, reasoning) in zip(_records(spec, "cot"), COT_ROWS):
        assert ex["targets"] == question.replace("\\n", "\n")
        assert answer in ex["inputs"] and reasoning.split("\\n")[1] in ex["inputs"]
        assert "How many legs" not in ex["inputs"]


def test_cot_files_are_fetched_checked_and_never_left_half_written(tmp_path):
    source = cot.source("qasc")
    good = b"".join(f"q{i}\ta{i}\tr{i}\n".encode() for i in range(source.num_examples["train"]))
    source = type(source)(source.name, source.urls, source.columns, source.num_examples,
                          {"train": hashlib.sha256(good).hexdigest()})
    asked = []
    with pytest.raises(ValueError, match="lines where 1084"):
        sources.prepare_text_files(source, str(tmp_path), fetch=lambda url: b"q\ta\tr\n")
    with pytest.raises(ValueError, match="sha256"):
        sources.prepare_text_files(source, str(tmp_path), fetch=lambda url: good.upper())
    assert not any(tmp_path.rglob("*.tsv*"))
    folder = sources.prepare_text_files(source, str(tmp_path),
                                        fetch=lambda url: asked.append(url) or good)
    assert asked == [cot.URL.format(name="qasc")] and "e9e4ec6" in asked[0]
    assert (tmp_path / source.name / "train.tsv").read_bytes() == good
    assert folder == str(tmp_path / source.name)
    sources.prepare_text_files(source, str(tmp_path), fetch=lambda url: 1 / 0)  # already there


def test_data_prepare_fetches_each_cot_file_once_with_a_status_row(tmp_path, monkeypatch):
    import io
    import urllib.error
    import urllib.request

    from flan_jax.data import cli as data_cli
    from tasks import catalogue

    rows = data_cli.rows_for(catalogue.dataset_specs("flan2022_cot_submix"))
    assert len(rows) == 9 and all(r.source is not None for r in rows)
    gsm8k = next(r for r in rows if r.tfds_name == "flan2022_cot_gsm8k")
    assert gsm8k.used_by == ["gsm8k", "gsm8k_inverted"]
    qasc = next(r for r in rows if r.tfds_name == "flan2022_cot_qasc")
    qasc.source = dataclasses.replace(qasc.source, sha256={})  # made-up lines, right count
    lines = b"".join(b"q\ta\tr\n" for _ in range(1084))

    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    data_cli.prepare(gsm8k, str(tmp_path), None)
    assert gsm8k.status == data_cli.FAILED and "no network" in gsm8k.detail
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(lines))
    data_cli.prepare(qasc, str(tmp_path), None)
    assert qasc.status == data_cli.READY
    assert (tmp_path / "flan_jax_files" / "flan2022_cot_qasc" / "train.tsv").read_bytes() == lines
    assert "2 ready" not in data_cli.table([gsm8k, qasc]) and "1 failed" in data_cli.table(
        [gsm8k, qasc])
