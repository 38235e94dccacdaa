"""MMLU and BBH as evaluation tasks: prompts, answer extraction, metrics, per-category report."""

import os

import numpy as np
import pytest
import seqio

import tasks  # noqa: F401 - registers the collections
from flan_jax import checkpoints, config
from flan_jax.models import TransformerConfig, build_model
from tasks.flan2022 import bbh, mmlu, mock_files, readers
from tests.fixtures import random_model_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return mock_files.write(str(tmp_path_factory.mktemp("flan2022_files")))


def test_mmlu_five_shots_come_from_dev_only(root):
    examples = mmlu.examples(os.path.join(root, "mmlu"), "astronomy", "test")
    assert [e["targets"] for e in examples] == ["B", "B", "C"]
    first = examples[0]["inputs"]
    assert first.startswith(mmlu.header("astronomy") + "\n\nDev question 0?\nA. d0a\n")
    for i, letter in enumerate("ABCDA"):
        assert f"Dev question {i}?\nA. d{i}a\nB. d{i}b\nC. d{i}c\nD. d{i}d\nAnswer: {letter}" \
            in first
    assert first.endswith("What is the closest star to Earth?\nA. Sirius\nB. The Sun\nC. Vega\n"
                          "D. Polaris\nAnswer:")
    for ex in examples:  # no test or validation question is ever an exemplar
        assert "Val question" not in ex["inputs"]
        assert sum(q in ex["inputs"] for q in ("closest star", "How many planets",
                                                "prominent rings")) == 1
        assert ex["options"] == ["A", "B", "C", "D"]
    val = mmlu.examples(os.path.join(root, "mmlu"), "astronomy", "validation")
    assert [e["targets"] for e in val] == ["C", "D"]


def test_mmlu_subjects_and_categories():
    assert len(mmlu.SUBJECTS) == 57
    sizes = {g: sum(c == g for c in mmlu.CATEGORY.values()) for g in set(mmlu.CATEGORY.values())}
    assert sizes == {"stem": 18, "humanities": 13, "social_sciences": 12, "other": 14}
    with pytest.raises(ValueError, match="5 are needed"):
        mmlu.prompt("astronomy", [], readers.MMLURow("q", ("a", "b", "c", "d"), "A"))


def test_bbh_prompts(root):
    direct = bbh.examples(os.path.join(root, "bbh"), "boolean_expressions", "direct")
    cot = bbh.examples(os.path.join(root, "bbh"), "boolean_expressions", "cot")
    assert [e["targets"] for e in direct] == ["False", "True", "False"]
    assert direct[0]["inputs"] == (
        "Evaluate a Boolean expression made of True, False, not, and, or.\n\n"
        "Q: not ( ( not not True ) ) is\nA: False\n\n"
        "Q: True and False and not True and True is\nA: False\n\n"
        "Q: not not ( not ( False ) ) is\nA: True\n\n"
        "Q: not ( True ) and ( True ) is\nA:")
    assert cot[0]["inputs"].count("Let's think step by step.") == 3
    assert "So the answer is True.\n\nQ: not ( True ) and ( True ) is\nA:" in cot[0]["inputs"]
    assert len(bbh.TASKS) == 27 and len(bbh.NLP) == 12


@pytest.mark.parametrize("output,expected", [
    ("Let's think step by step.\nnot True is False. So the answer is False.", "False"),
    ("First (A) looks right, but so the answer is (B).\n", "(B)"),
    ("Step one. The answer is 24. Wait, recheck: So the answer is 42.", "42"),
    ("So the answer is dog cat mouse.", "dog cat mouse"),
    ("no sentence here\nvalid", "valid"),  # no answer sentence: the last line
    ("", ""),
])
def test_bbh_cot_answer_extraction(output, expected):
    assert bbh.extract_answer(output, "cot") == expected


def test_bbh_direct_answer_and_exact_match():
    post = bbh.postprocessor("direct")
    assert post(b" (C).\nQ: next question", is_target=False) == "(C)"
    assert post("(C)", is_target=True) == "(C)"
    cot = bbh.postprocessor("cot")
    targets = [cot(t, is_target=True) for t in ["True", "(A)", "12", "valid"]]
    predictions = [cot(p) for p in ["So the answer is True.", "so the answer is (B).",
                                    "The answer is 12.", "It is invalid. So the answer is valid."]]
    assert predictions == ["True", "(B)", "12", "valid"]
    assert bbh.exact_match(targets, predictions) == {"exact_match": 75.0}
    with pytest.raises(ValueError):
        bbh.exact_match(["a"], [])


def test_registered_eval_tasks_and_mixtures():
    from tasks import catalogue

    assert len(seqio.get_mixture_or_task("mmlu_5shot").tasks) == 57
    assert len(seqio.get_mixture_or_task("bbh_cot_3shot").tasks) == 27
    info = catalogue.task_info("mmlu_5shot_college_physics")
    assert (info.cluster, info.kind, info.num_shots, info.split) == (
        "mmlu_stem", "fewshot_rank", 5, "test")
    assert catalogue.task_info("bbh_cot_3shot_snarks").cluster == "bbh_cot_nlp"
    assert catalogue.task_info("bbh_3shot_word_sorting").cluster == "bbh_algorithmic"
    assert set(catalogue.mixture_clusters("mmlu_5shot")) == {
        "mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"}


CFG = TransformerConfig(family="encoder_decoder", emb_dim=32, num_heads=2, head_dim=16,
                        mlp_dim=64, num_encoder_layers=1, num_decoder_layers=1, vocab_size=259)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return random_model_dir(tmp_path_factory.mktemp("tiny_model"), CFG, seed=5)


def test_eval_reports_categories_and_matches_hand_computed_metrics(model_dir, capsys):
    from flan_jax.decoding import DecodeSettings, generate
    from flan_jax.evaluate import evaluate
    from flan_jax.placement import LoadedModel
    from flan_jax.scoring import RankSettings, rank_classify

    config.parse_gin(["runs/eval.gin"], [
        f"CHECKPOINT_PATH = '{model_dir}'",
        "EVAL_MIXTURES = ['mmlu_5shot_astronomy', 'mmlu_5shot_philosophy', "
        "'bbh_3shot_snarks', 'bbh_cot_3shot_word_sorting']",
        "evaluate.max_new_tokens = 8", "evaluate.max_input_length = 128"])
    with mock_files.active() as root:
        report = evaluate()
        mmlu_examples = mmlu.examples(os.path.join(root, "mmlu"), "astronomy", "test")
        bbh_examples = bbh.examples(os.path.join(root, "bbh"), "boolean_expressions", "cot")
    assert set(report["clusters"]) == {"mmlu_stem", "mmlu_humanities", "bbh_nlp",
                                       "bbh_cot_algorithmic"}
    # By hand: the letter ranked first against the answer; CoT output reduced to its answer.
    cfg, params, vocab = checkpoints.load_model_dir(model_dir)
    loaded = LoadedModel(build_model(cfg), params, vocab)
    ranked = rank_classify(loaded, [e["inputs"] for e in mmlu_examples],
                           [e["options"] for e in mmlu_examples],
                           RankSettings(max_input_length=128, keep_input="end"))
    hits = [mmlu.OPTIONS[r.prediction_index] == e["targets"]
            for r, e in zip(ranked, mmlu_examples)]
    assert report["tasks"]["mmlu_5shot_astronomy"]["metrics"]["accuracy"] == pytest.approx(
        100.0 * np.mean(hits))
    outputs = generate(loaded, [e["inputs"] for e in bbh_examples],
                       DecodeSettings(max_new_tokens=8, max_input_length=128, keep_input="end"))
    expected = np.mean([bbh.extract_answer(o, "cot") == e["targets"]
                        for o, e in zip(outputs, bbh_examples)])
    assert report["tasks"]["bbh_cot_3shot_word_sorting"]["metrics"]["exact_match"] == \
        pytest.approx(100.0 * expected)
    assert report["clusters"]["mmlu_stem"]["score"] == report["tasks"][
        "mmlu_5shot_astronomy"]["score"]
    printed = capsys.readouterr().out
    assert "| mmlu_stem |" in printed and "| bbh_cot_algorithmic |" in printed
