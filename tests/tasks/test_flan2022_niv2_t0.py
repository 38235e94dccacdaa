"""NIv2 and T0-SF: the task lists, caps, styles and mixture rates (fixture files, no downloads)."""

import os

import gin
import pytest
import seqio

import tasks  # noqa: F401 - registers the collections
from tasks.flan2022 import file_tasks, mock_files, niv2, readers, styles_files, t0_sf
from tasks.templates import FEWSHOT_EXEMPLAR_SEPARATOR, FEWSHOT_TARGET_SEPARATOR


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return mock_files.write(str(tmp_path_factory.mktemp("flan2022_files")))


def _niv2(root, name):
    return readers.niv2_task(os.path.join(root, "niv2", "tasks", f"{name}.json"))


def test_mmlu_derived_tasks_left_out():
    listed = niv2.release_counts()
    derived = [n for n in listed if readers.niv2_task_number(n) in niv2.MMLU_DERIVED]
    assert len(derived) == 57  # task664-667 and task685-737, one spelling each
    assert not set(map(niv2.canonical, derived)) & set(niv2.task_names())
    assert len(niv2.task_names()) == len(niv2.spellings()) - 57 == 1556
    assert "task001_quoref_question_generation" in niv2.task_names()
    assert niv2.is_mmlu_derived("task690_mmlu_fixture")
    with pytest.raises(ValueError, match="derived from MMLU"):
        niv2.records(readers.NIv2Task("task690_mmlu_fixture", "d", (), ()))


def test_two_spellings_are_one_task(tmp_path):
    assert set(niv2.spellings()["task141_odd_man_out_classification_category"]) == {
        "task141_odd-man-out_classification_category",
        "task141_odd_man_out_classification_category"}
    folder = tmp_path / "niv2" / "tasks"
    folder.mkdir(parents=True)
    (folder / "task141_odd-man-out_classification_category.json").write_text("{}")
    assert niv2.task_file(str(tmp_path), "task141_odd_man_out_classification_category").endswith(
        "task141_odd-man-out_classification_category.json")


def test_niv2_cap_takes_the_first_instances(root):
    task = _niv2(root, "task1001_fixture_sentiment")
    records, positives = niv2.records(task, cap=5)
    assert [r.fields["input"] for r in records] == [i for i, _ in task.instances[:5]]
    assert len(task.instances) == 12 and len(positives) == 2
    assert niv2.rate("task001_quoref_question_generation") == 4225  # below the cap
    assert niv2.rate("task002_quoref_answer_generation") == 5000  # 6,500 listed, capped


def _count(text):
    return len(text.encode())


def test_niv2_zero_shot_renders_definition_and_input(root):
    task = _niv2(root, "task1003_fixture_capital")
    records, positives = niv2.records(task)
    out = list(styles_files.render_task(task.name, records, "zs_opt", niv2.TEMPLATES, 0, _count,
                                        lambda i: positives))
    for record, ex in zip(records, out):
        t = niv2.TEMPLATES[styles_files.pick(0, task.name, records.index(record),
                                             len(niv2.TEMPLATES))]
        assert ex["inputs"] == t[0].format(definition=task.definition,
                                           input=record.fields["input"])
        assert ex["targets"] == record.target
        assert ex["inputs"].index(task.definition) < ex["inputs"].index(record.fields["input"])


def test_niv2_fewshot_uses_the_tasks_positive_examples_only(root):
    task = _niv2(root, "task1003_fixture_capital")
    records, positives = niv2.records(task)
    out = list(styles_files.render_task(task.name, records, "fs_opt", niv2.TEMPLATES, 0, _count,
                                        lambda i: positives))
    for i, ex in enumerate(out):
        t = niv2.TEMPLATES[styles_files.pick(0, task.name, i, len(niv2.TEMPLATES))]
        shots = "".join(t[0].format(definition=task.definition, input=p) +
                        FEWSHOT_TARGET_SEPARATOR + o + FEWSHOT_EXEMPLAR_SEPARATOR
                        for p, o in task.positive_examples)
        assert ex["inputs"] == shots + t[0].format(definition=task.definition,
                                                   input=records[i].fields["input"])
        for other, _ in task.instances:  # no instance is ever an exemplar
            assert ex["inputs"].count(other) == (other == records[i].fields["input"])


def test_fewshot_budget_drops_exemplars_that_do_not_fit():
    query = ("Q?", "A")
    shots = [("x" * 10, "y"), ("z" * 10, "w")]
    one = len("x" * 10 + FEWSHOT_TARGET_SEPARATOR + "y" + FEWSHOT_EXEMPLAR_SEPARATOR)
    assert styles_files.with_exemplars(query, shots, len, budget=2 + one) == (
        "x" * 10 + FEWSHOT_TARGET_SEPARATOR + "y" + FEWSHOT_EXEMPLAR_SEPARATOR + "Q?")
    assert styles_files.with_exemplars(query, shots, len, budget=2 + one - 1) == "Q?"


def test_t0_sf_list_matches_the_release():
    prompts = t0_sf.prompts()
    assert len(prompts) == 193
    assert len({p.dataset for p in prompts}) == 26  # P3 subsets of 22 datasets
    assert {p.kind for p in prompts} == set(t0_sf.KINDS)
    assert not [p for p in prompts if "score_eval" in p.name]
    by_name = {p.name: p for p in prompts}
    assert t0_sf.rate(by_name["amazon_polarity_Is_this_review"]) == 20000  # 3.6M capped
    assert t0_sf.rate(by_name["quarel_logic_test"]) == 1941


def test_t0_sf_selection_from_a_fixture_list(tmp_path):
    listing = tmp_path / "prompts.tsv"
    listing.write_text("# prompt\tdataset\tkind\ttrain\n"
                       "fixture_mc_choices\tfixture\tmc_separate_options\t9\n"
                       "fixture_qa_title\tfixture\tqa\t6\n"
                       "not_downloaded\tfixture\tqa\t3\n")
    wanted = t0_sf.read_prompt_list(str(listing))
    picked = t0_sf.select(["fixture_qa_title", "other_p3_prompt", "fixture_mc_choices"], wanted)
    assert [p.name for p in picked] == ["fixture_mc_choices", "fixture_qa_title"]
    listing.write_text("fixture_qa_title\tfixture\tscore\t6\n")
    with pytest.raises(ValueError, match="prompts.tsv:1"):
        t0_sf.read_prompt_list(str(listing))


def test_t0_styles(root):
    prompt = t0_sf.Prompt("fixture_mc_choices", "fixture", "mc_separate_options", 9)
    rows = list(readers.p3_rows(os.path.join(root, "p3", prompt.name)))
    records = [t0_sf.to_record(r, prompt) for r in rows]
    others = lambda i: [records[(i + 1) % len(records)]]  # noqa: E731
    render = {s: list(styles_files.render_task(prompt.name, records, s, t0_sf.TEMPLATES, 0,
                                               _count, others)) for s in t0_sf.STYLES}
    options = "\n\nOPTIONS:\n- yes\n- no"
    assert render["zs_noopt"][0] == {"inputs": "Is the sky green in example 0?",
                                     "targets": "yes"}
    assert render["zs_opt"][0]["inputs"] == "Is the sky green in example 0?" + options
    assert render["fs_noopt"][0]["inputs"] == (
        "Is the sky green in example 1?" + FEWSHOT_TARGET_SEPARATOR + "no" +
        FEWSHOT_EXEMPLAR_SEPARATOR + "Is the sky green in example 0?")
    assert render["fs_opt"][0]["inputs"] == (
        "Is the sky green in example 1?" + options + FEWSHOT_TARGET_SEPARATOR + "no" +
        FEWSHOT_EXEMPLAR_SEPARATOR + "Is the sky green in example 0?" + options)
    inline = t0_sf.Prompt("fixture_mc_inline", "fixture", "mc", 5)
    row = next(readers.p3_rows(os.path.join(root, "p3", inline.name)))
    assert t0_sf.to_record(row, inline).options == ()  # options already in the prompt


def test_submixture_rates():
    niv2_mix = seqio.get_mixture_or_task(file_tasks.NIV2_MIXTURE)
    assert len(niv2_mix.tasks) == 1556 * 2
    expected = sum(min(5000, niv2.release_counts()[niv2.spellings()[n][0]])
                   for n in niv2.task_names())
    assert niv2_mix.total_rate == pytest.approx(expected)
    rate = niv2_mix.get_rate(seqio.get_mixture_or_task(
        "flan2022_niv2_task002_quoref_answer_generation_fs_opt"))
    assert rate == 2500  # min(5000, 6500) split over 2 styles
    t0_mix = seqio.get_mixture_or_task(file_tasks.T0_MIXTURE)
    assert len(t0_mix.tasks) == 193 * 4
    assert t0_mix.total_rate == pytest.approx(sum(min(20000, p.train_examples)
                                                  for p in t0_sf.prompts()))
    assert not {t.name for t in t0_mix.tasks + niv2_mix.tasks} & {
        t.name for m in ("mmlu_5shot", "bbh_3shot", "bbh_cot_3shot")
        for t in seqio.get_mixture_or_task(m).tasks}


def test_mixture_renders_offline_from_fixtures():
    with mock_files.active():
        task = seqio.get_mixture_or_task("flan2022_t0_quarel_logic_test_zs_opt")
        ex = next(task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator())
        assert ex["inputs_pretokenized"].decode() in {
            "Is the sky green in example 0?\n\nOPTIONS:\n- yes\n- no",
            "Suggest a title for story 0.", "Pick one: red or blue? (item 0)"}
    task = seqio.get_mixture_or_task("flan2022_niv2_task001_quoref_question_generation_zs_opt")
    gin.bind_parameter("tasks.flan2022.data_dir.path", "/nonexistent/flan2022")
    with pytest.raises(Exception, match="file not found; run `flan-jax data prepare"):
        next(task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator())
