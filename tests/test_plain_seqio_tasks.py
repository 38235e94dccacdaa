"""Tasks registered the plain seqio way (their own source, preprocessors, postprocessor and
metric functions) train, evaluate and rank like the project's own tasks (issue 18)."""

import functools
import json

import numpy as np
import pytest
import seqio
import tensorflow as tf
from t5.data import postprocessors as t5_post
from t5.data import preprocessors as t5_pre
from t5.evaluation import metrics as t5_metrics

import tasks  # noqa: F401  (the built-in collections, for the mixed-mixture test)
from flan_jax import checkpoints, config, scoring
from flan_jax.errors import UserError
from flan_jax.models import TransformerConfig, build_model
from flan_jax.placement import LoadedModel
from tests.fixtures import random_model_dir

VOCAB = seqio.ByteVocabulary()
FEATURES = {"inputs": seqio.Feature(VOCAB, add_eos=True),
            "targets": seqio.Feature(VOCAB, add_eos=True)}
WORDS = ["apple", "river", "stone", "cloud", "green", "tiger", "paper", "light"]


def _copy_source(split, shuffle_files=False, seed=None):
    del shuffle_files, seed
    words = WORDS if split == "train" else WORDS[::-1]
    return tf.data.Dataset.from_tensor_slices({"inputs": [f"copy: {w}" for w in words],
                                               "targets": words})


def _choice_source(split, shuffle_files=False, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({
        "premise": [f"the {w} is here." for w in WORDS[:5]],
        "choice1": WORDS[:5], "choice2": WORDS[3:8], "label": [0, 1, 0, 1, 1]})


def strip_and_upper(text, example=None, is_target=False):
    del example, is_target
    return text.strip().upper()


def exact_upper(targets, predictions):
    return {"upper_match": 100.0 * np.mean([t == p for t, p in zip(targets, predictions)])}


def mean_score(targets, scores):
    del targets
    return {"mean_target_loglik": float(np.mean(scores))}


def _register():
    for name in ("plain_copy", "plain_copy_scored", "plain_choice", "plain_choice_noidx",
                 "plain_nometric"):
        seqio.TaskRegistry.remove(name)
    seqio.MixtureRegistry.remove("plain_mix")
    common = dict(preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
                  output_features=FEATURES)
    seqio.TaskRegistry.add("plain_copy", source=seqio.FunctionDataSource(
        _copy_source, splits=["train", "validation"]), postprocess_fn=strip_and_upper,
        metric_fns=[exact_upper], **common)
    seqio.TaskRegistry.add("plain_copy_scored", source=seqio.FunctionDataSource(
        _copy_source, splits=["train", "validation"]), metric_fns=[mean_score], **common)
    seqio.TaskRegistry.add("plain_nometric", source=seqio.FunctionDataSource(
        _copy_source, splits=["train", "validation"]), metric_fns=[], **common)
    rank = functools.partial(
        t5_pre.rank_classification,
        inputs_fn=lambda ex: tf.fill((2,), ex["premise"]),
        targets_fn=lambda ex: tf.stack([ex["choice1"], ex["choice2"]]),
        is_correct_fn=lambda ex: tf.equal(tf.range(2), ex["label"]))
    seqio.TaskRegistry.add("plain_choice", source=seqio.FunctionDataSource(
        _choice_source, splits=["validation"]), preprocessors=[
            rank, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        postprocess_fn=t5_post.rank_classification,
        metric_fns=[t5_metrics.rank_classification], output_features=FEATURES)

    def drop_idx(ds):
        return ds.map(lambda ex: {k: v for k, v in ex.items() if k != "idx"})

    seqio.TaskRegistry.add("plain_choice_noidx", source=seqio.FunctionDataSource(
        _choice_source, splits=["validation"]), preprocessors=[
            rank, drop_idx, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        metric_fns=[t5_metrics.rank_classification], output_features=FEATURES)
    seqio.MixtureRegistry.add("plain_mix", ["plain_copy", "plain_choice"], default_rate=1.0)


_register()
CFG = TransformerConfig(family="encoder_decoder", emb_dim=32, num_heads=2, head_dim=16,
                        mlp_dim=64, num_encoder_layers=1, num_decoder_layers=1, vocab_size=259)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return random_model_dir(tmp_path_factory.mktemp("plain_model"), CFG, seed=3)


def _evaluate(model_dir, mixtures, *extra):
    from flan_jax.evaluate import evaluate

    config.parse_gin(["runs/eval.gin"], [f"CHECKPOINT_PATH = '{model_dir}'",
                                         f"EVAL_MIXTURES = {mixtures!r}",
                                         "evaluate.max_new_tokens = 8", *extra])
    return evaluate()


def test_generation_task_reports_exactly_its_own_metric(model_dir):
    report = _evaluate(model_dir, ["plain_copy"])
    result = report["tasks"]["plain_copy"]
    assert result["cluster"] == "plain_copy" and result["kind"] == "seqio"
    # The same predictions through the task's own postprocessor and metric, by hand.
    cfg, params, vocab = checkpoints.load_model_dir(model_dir)
    from flan_jax.decoding import DecodeSettings, generate

    inputs = [f"copy: {w}" for w in WORDS[::-1]]
    predictions = generate(LoadedModel(build_model(cfg), params, vocab), inputs,
                           DecodeSettings(max_new_tokens=8, batch_size=64, max_input_length=256))
    expected = exact_upper([strip_and_upper(w) for w in WORDS[::-1]],
                           [strip_and_upper(p) for p in predictions])
    assert result["metrics"] == expected


def test_score_metric_gets_the_target_log_likelihoods(model_dir):
    report = _evaluate(model_dir, ["plain_copy_scored"])
    cfg, params, vocab = checkpoints.load_model_dir(model_dir)
    scored = scoring.score_texts(LoadedModel(build_model(cfg), params, vocab),
                                 [f"copy: {w}" for w in WORDS[::-1]], WORDS[::-1])
    expected = np.mean([s for s, _ in scored])
    assert report["tasks"]["plain_copy_scored"]["metrics"]["mean_target_loglik"] == \
        pytest.approx(expected, abs=1e-4)


def test_t5_rank_classification_rows_match_naive_scoring_and_t5_accuracy(model_dir):
    from flan_jax.evaluate import resolve_tasks, task_examples
    from flan_jax.predict import PredictSettings
    from flan_jax.task_metrics import rank_rows_scores

    cfg, params, vocab = checkpoints.load_model_dir(model_dir)
    model = build_model(cfg)
    task = resolve_tasks("plain_choice")[0]
    rows = task_examples(task, None)
    assert len(rows) == 10
    loaded = LoadedModel(model, params, vocab)
    scores, best = rank_rows_scores(loaded, rows, PredictSettings(batch_size=4))
    naive = scoring.score_texts(loaded,
                                [r["inputs_pretokenized"].decode() for r in rows],
                                [r["targets_pretokenized"].decode() for r in rows])
    np.testing.assert_allclose(scores, [s for s, _ in naive], atol=1e-5)
    targets = [t5_post.rank_classification(None, example=r, is_target=True) for r in rows]
    expected = t5_metrics.rank_classification(targets, scores)
    report = _evaluate(model_dir, ["plain_choice"])
    assert report["tasks"]["plain_choice"]["metrics"]["accuracy"] == \
        pytest.approx(expected["accuracy"])
    assert len(best) == 5


def test_mixture_of_plain_tasks_plus_a_builtin_task_in_one_run(model_dir):
    report = _evaluate(model_dir, ["plain_mix", "synthetic_fact_nli_t0_rank"],
                       "evaluate.max_examples_per_task = 4",
                       "evaluate.clusters = {'plain_mix': 'my_cluster'}")
    assert set(report["tasks"]) == {"plain_copy", "plain_choice", "synthetic_fact_nli_t0_rank"}
    assert set(report["clusters"]) == {"my_cluster", "nli"}
    assert report["clusters"]["my_cluster"]["datasets"] == ["plain_choice", "plain_copy"]
    mix = report["mixture_scores"]["plain_mix"]
    assert mix == pytest.approx(np.mean([report["tasks"][t]["score"]
                                         for t in ("plain_copy", "plain_choice")]))
    written = json.loads((model_dir / "eval" / "report.json").read_text())
    assert written["mixture_scores"] == report["mixture_scores"]


def test_task_without_metrics_reports_log_likelihood_with_a_note(model_dir):
    result = _evaluate(model_dir, ["plain_nometric"])["tasks"]["plain_nometric"]
    assert set(result["metrics"]) == {"log_likelihood", "loss"}
    assert "no metric functions" in result["note"]


def test_rank_rows_without_idx_name_the_task_and_feature(model_dir):
    with pytest.raises(UserError, match="'plain_choice_noidx' .* without the `idx` feature"):
        _evaluate(model_dir, ["plain_choice_noidx"])


def test_a_plain_task_trains(tmp_path):
    from flan_jax.train import train

    config.parse_gin(["runs/demo.gin"], [
        f"MODEL_DIR = '{tmp_path}'", "MIXTURE_OR_TASK_NAME = 'plain_copy'", "TRAIN_STEPS = 3",
        "BATCH_SIZE = 8", "TASK_FEATURE_LENGTHS = {'inputs': 16, 'targets': 8}",
        "TransformerConfig.num_encoder_layers = 1", "TransformerConfig.num_decoder_layers = 1",
        "TransformerConfig.emb_dim = 32", "TransformerConfig.mlp_dim = 64",
        "train.checkpoint_every = 3", "train.log_every = 1"])
    last = train()
    assert last["step"] == 3 and np.isfinite(last["loss"])


def test_tasks_list_and_show_include_plain_registrations(capsys):
    import json as json_lib

    from flan_jax import tasks_cli

    assert tasks_cli.main(["list", "--json", "--collection", "-"]) == 0
    rows = {r["name"]: r for r in map(json_lib.loads, capsys.readouterr().out.splitlines())}
    assert rows["plain_copy"]["collection"] == "-"
    assert rows["plain_copy"]["kind"] == "generation"
    assert rows["plain_choice"]["kind"] == "rank"
    assert rows["plain_copy_scored"]["kind"] == "score"
    assert rows["plain_nometric"]["kind"] == "loss"
    assert tasks_cli.main(["show", "plain_copy", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "=== plain_copy [validation] example 0" in out and "copy: light" in out
