"""NIv2 and T0-SF: the task lists, caps, styles and mixture rates (fixture files, no downloads)."""

import os

import gin
import pytest
import seqio

import tasks  # noqa: F401 - registers the collections
from tasks.flan2022 import mixing, mock_files, niv2, readers, t0
from tasks.flan2022 import styles as st

VOCAB = seqio.ByteVocabulary()


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
    assert len(niv2.ENTRIES) == 1556
    assert not [e for e in niv2.ENTRIES if niv2.is_mmlu_derived(e.spec.display_name)]


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
    assert [r["input"] for r in records] == [i for i, _ in task.instances[:5]]
    assert len(task.instances) == 12 and len(positives) == 2
    assert niv2.rate("task001_quoref_question_generation") == 4225  # below the cap
    assert niv2.rate("task002_quoref_answer_generation") == 5000  # 6,500 listed, capped
    assert niv2.spec("task002_quoref_answer_generation").source.num_examples == {"train": 5000}
    with mock_files.active():
        assert len(niv2.read("task1001_fixture_sentiment", "train")) == 12
        assert len(niv2.read("task1001_fixture_sentiment", "exemplars")) == 2


def _render(spec, style):
    source = mixing.style_source(spec, st.STYLES[style], 0, VOCAB)
    with mock_files.active():
        ds = source.get_dataset("train", shuffle=False)
        return [{k: ex[k].decode() for k in ("inputs", "targets")}
                for ex in ds.as_numpy_iterator()]


def test_niv2_zero_shot_renders_definition_and_input(root):
    task = _niv2(root, "task1003_fixture_capital")
    out = _render(niv2.spec(task.name, count=3), "zs_opt")
    assert len(out) == len(task.instances)
    for (inputs, output), ex in zip(task.instances, out):
        assert ex["targets"] == output
        assert ex["inputs"] in {t.inputs.format(definition=task.definition, input=inputs)
                                for t in niv2.TEMPLATES}


def test_niv2_fewshot_uses_the_tasks_positive_examples_only(root):
    task = _niv2(root, "task1003_fixture_capital")
    out = _render(niv2.spec(task.name, count=3), "fs_opt")
    assert len(out) == len(task.instances)
    for (inputs, output), ex in zip(task.instances, out):
        assert ex["targets"] == output
        zero_shot = {t.inputs.format(definition=task.definition, input=inputs)
                     for t in niv2.TEMPLATES}
        assert any(ex["inputs"].endswith(z) for z in zero_shot)
        for shot, answer in task.positive_examples:  # each positive example once
            assert ex["inputs"].count(f"{shot}\n") == 1 and ex["inputs"].count(answer) == 1
        for other, answer in task.instances:  # never another instance or its answer
            if other != inputs:
                assert other not in ex["inputs"] and answer not in ex["inputs"]


def test_t0_sf_list_matches_the_release():
    prompts = t0.prompts()
    assert len(prompts) == 193
    assert len({p.dataset for p in prompts}) == 26  # P3 subsets of 22 datasets
    assert {p.kind for p in prompts} == set(t0.KINDS)
    assert not [p for p in prompts if "score_eval" in p.name]
    by_name = {p.name: p for p in prompts}
    assert t0.rate(by_name["amazon_polarity_Is_this_review"]) == 20000  # 3.6M capped
    assert t0.rate(by_name["quarel_logic_test"]) == 1941


def test_t0_sf_selection_from_a_fixture_list(tmp_path):
    listing = tmp_path / "prompts.tsv"
    listing.write_text("# prompt\tdataset\tkind\ttrain\n"
                       "fixture_mc_choices\tfixture\tmc_separate_options\t9\n"
                       "fixture_qa_title\tfixture\tqa\t6\n"
                       "not_downloaded\tfixture\tqa\t3\n")
    wanted = t0.read_prompt_list(str(listing))
    picked = t0.select(["fixture_qa_title", "other_p3_prompt", "fixture_mc_choices"], wanted)
    assert [p.name for p in picked] == ["fixture_mc_choices", "fixture_qa_title"]
    listing.write_text("fixture_qa_title\tfixture\tscore\t6\n")
    with pytest.raises(ValueError, match="prompts.tsv:1"):
        t0.read_prompt_list(str(listing))


def test_t0_styles():
    prompt = t0.Prompt("fixture_mc_choices", "fixture", "mc_separate_options", 9)
    spec = t0.spec(prompt)
    noopt = _render(spec, "zs_noopt")
    assert noopt[0] == {"inputs": "Is the sky green in example 0?", "targets": "yes"}
    assert len(noopt) == 9
    for ex, plain in zip(_render(spec, "zs_opt"), noopt):  # options listed after the prompt
        assert ex["inputs"].startswith(plain["inputs"])
        listed = ex["inputs"][len(plain["inputs"]):]
        assert "yes" in listed and "no" in listed
    for ex, plain in zip(_render(spec, "fs_noopt"), noopt):  # other rows first, then it
        assert ex["inputs"].endswith(plain["inputs"]) and ex["inputs"] != plain["inputs"]
        assert ex["inputs"].count("Is the sky green in example") >= 2
    inline = t0.Prompt("fixture_mc_inline", "fixture", "mc", 5)
    assert t0.spec(inline).options_field is None  # options already written into the prompt
    assert _render(t0.spec(inline), "zs_opt") == _render(t0.spec(inline), "zs_noopt")
    assert t0.to_fields({"inputs": "q", "targets": "maybe", "answer_choices": ["yes", "no"]},
                        prompt) is None  # an answer outside its options is dropped


def test_submixture_rates():
    niv2_mix = seqio.get_mixture_or_task("flan2022_niv2_submix_zs_opt")
    assert len(niv2_mix.tasks) == 1556
    expected = sum(min(5000, niv2.release_counts()[niv2.spellings()[n][0]])
                   for n in niv2.task_names())
    assert niv2_mix.total_rate == pytest.approx(expected)
    task = seqio.get_mixture_or_task("flan2022_niv2_task002_quoref_answer_generation_fs_opt")
    assert seqio.get_mixture_or_task("flan2022_niv2_submix_fs_opt").get_rate(task) == 5000
    t0_mix = seqio.get_mixture_or_task("flan2022_t0_submix_zs_noopt")
    assert len(t0_mix.tasks) == 193
    assert t0_mix.total_rate == pytest.approx(sum(min(20000, p.train_examples)
                                                  for p in t0.prompts()))


def _leaf_tasks(name):
    item = seqio.get_mixture_or_task(name)
    if isinstance(item, seqio.Mixture):
        return {t for sub in item.tasks for t in _leaf_tasks(sub.name)}
    return {name}


def test_top_mixture_weights_and_heldout_kept_out():
    top = seqio.get_mixture_or_task("flan2022_submix")
    subs = {s: seqio.get_mixture_or_task(f"flan2022_{s}_submix")
            for s in ("flan2021", "t0", "niv2", "cot", "dialog")}
    total = sum(top.get_rate(m) for m in subs.values())
    shares = {s: top.get_rate(m) / total for s, m in subs.items()}
    assert shares == pytest.approx({"flan2021": 0.40, "t0": 0.32, "niv2": 0.20, "cot": 0.05,
                                    "dialog": 0.03}, abs=1e-3)
    assert all(m.tasks for m in subs.values())
    heldout = {t.name for m in ("mmlu_5shot", "bbh_3shot", "bbh_cot_3shot")
               for t in seqio.get_mixture_or_task(m).tasks}
    assert len(heldout) == 57 + 27 * 2
    assert not _leaf_tasks("flan2022_submix") & heldout


def test_missing_files_name_data_prepare():
    task = seqio.get_mixture_or_task("flan2022_niv2_task001_quoref_question_generation_zs_opt")
    gin.bind_parameter("tasks.text_file_dir.path", "/nonexistent/flan2022")
    with pytest.raises(Exception, match="file not found; run `flan-jax data prepare"):
        next(task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator())


def test_tasks_show_renders_the_niv2_submixture_offline(capsys):
    from flan_jax import tasks_cli

    shares = tasks_cli.leaf_rates(seqio.get_mixture_or_task("flan2022_niv2_submix"))
    assert len(shares) == 3112 and sum(shares.values()) == pytest.approx(1.0)
    assert shares["flan2022_niv2_task002_quoref_answer_generation_zs_opt"] == pytest.approx(
        0.5 * 5000 / 4235910)
    assert tasks_cli.main(["show", "flan2022_niv2_submix", "--mock", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== flan2022_niv2_submix -> flan2022_niv2_task") == 2


def test_tasks_show_names_missing_files(capsys, tmp_path):
    from flan_jax import tasks_cli

    gin.bind_parameter("tasks.text_file_dir.path", str(tmp_path))
    assert tasks_cli.main(["show", "flan2022_t0_quarel_logic_test_fs_noopt"]) == 2
    err = capsys.readouterr().err
    assert f"p3/quarel_logic_test (in {tmp_path}/p3/quarel_logic_test)" in err
    assert "flan-jax data prepare flan2022_t0_quarel_logic_test_fs_noopt" in err
