"""Evaluation of a tiny trained model on the synthetic suite: report, clusters, metrics."""

import json

import pytest
from t5.evaluation import metrics as t5_metrics

from flan_jax import config
from flan_jax import evaluate as _evaluate_module  # noqa: F401  (registers `evaluate` with gin)

from tests.fixtures import TINY


@pytest.fixture(scope="module")
def trained_dir(tiny_run, tmp_path_factory):
    """The session's 10-step run (checkpoints at steps 5 and 10), copied: evaluation writes
    its report into the run directory."""
    return tiny_run(10, copy_to=tmp_path_factory.mktemp("evalrun"))


def test_report_covers_every_cluster_and_matches_t5_metrics(trained_dir):
    import seqio

    from flan_jax import checkpoints
    from flan_jax.evaluate import evaluate, predict_task, resolve_tasks
    from flan_jax.models import build_model
    from flan_jax.placement import LoadedModel
    from flan_jax.predict import PredictSettings
    from tasks import catalogue

    # runs/eval.gin evaluates the collection: every cluster's eval mixture, 5 templates of each
    # dataset. Two templates of each are evaluated here (the report's arithmetic is the same).
    clusters = catalogue.collection_info("synthetic").clusters
    every = resolve_tasks("synthetic")
    assert len(every) == 120 and {t.cluster for t in every} == set(clusters)
    picked = [t.name for t in every if t.template in (0, 1)]
    config.parse_gin(["runs/eval.gin"], [f"CHECKPOINT_PATH = '{trained_dir}'",
                                         f"EVAL_MIXTURES = {picked!r}",
                                         "TRAIN_MIXTURE = 'synthetic_heldout_nli_train'",
                                         "evaluate.max_examples_per_task = 3",
                                         "evaluate.max_input_length = 256",
                                         "evaluate.max_new_tokens = 32"])
    report = evaluate()
    assert report["step"] == 10  # the training step evaluated (the run's latest)
    assert report["mesh"] == {"data": 8, "fsdp": 1, "tensor": 1}
    assert sorted(report["tasks"]) == sorted(picked)
    assert set(report["clusters"]) == set(clusters)
    assert report["held_out_clusters"] == ["nli"]
    assert [c for c, r in report["clusters"].items() if r["held_out"]] == ["nli"]
    written = json.loads((trained_dir / "eval" / "report.json").read_text())
    assert written["clusters"] == report["clusters"]
    assert (trained_dir / "eval" / "clusters.png").stat().st_size > 1000
    assert "| nli | yes |" in (trained_dir / "eval" / "report.md").read_text()

    # The task's numbers are t5.evaluation.metrics on the same predictions.
    cfg, params, vocab = checkpoints.load_model_dir(trained_dir)
    model = build_model(cfg)
    settings = PredictSettings(batch_size=64, max_input_length=256, max_target_length=64,
                               max_new_tokens=32)
    for task in resolve_tasks(["synthetic_fact_nli_t0_rank", "synthetic_reverse_word_t1_eval"]):
        name = task.name
        examples, predictions = predict_task(task, LoadedModel(model, params, vocab),
                                             settings, max_examples=3, stats={})
        targets = [ex["targets_pretokenized"].decode() for ex in examples]
        expected = t5_metrics.accuracy(targets, predictions)["accuracy"]
        assert report["tasks"][name]["metrics"]["accuracy"] == pytest.approx(expected)
        if name.endswith("_rank"):
            assert all(p in [o.decode() for o in ex["options"]]
                       for p, ex in zip(predictions, examples))
    # A dataset's score is the mean of its rank templates (classification).
    ds = report["datasets"]["fact_nli"]
    rank_scores = [t["score"] for n, t in report["tasks"].items()
                   if t["dataset"] == "fact_nli" and t["kind"] == "rank"]
    assert ds["method"] == "rank" and ds["score"] == pytest.approx(sum(rank_scores) /
                                                                    len(rank_scores))
    assert ds["best_template"] == pytest.approx(max(rank_scores))


def test_rank_example_without_options_is_named(trained_dir, monkeypatch):
    from flan_jax import checkpoints, evaluate as ev
    from flan_jax.models import build_model
    from flan_jax.placement import LoadedModel
    from flan_jax.predict import PredictSettings

    real = ev.task_examples

    def no_options(task, limit):
        rows = real(task, limit)
        rows[1] = {**rows[1], "options": []}
        return rows

    monkeypatch.setattr(ev, "task_examples", no_options)
    cfg, params, vocab = checkpoints.load_model_dir(trained_dir)
    with pytest.raises(ValueError, match="synthetic_fact_nli_t0_rank: example 1 has no options"):
        ev.predict_task(ev.resolve_tasks("synthetic_fact_nli_t0_rank")[0],
                        LoadedModel(build_model(cfg), params, vocab),
                        PredictSettings(batch_size=8, max_input_length=64),
                        max_examples=3, stats={})


def test_evaluation_every_n_steps_during_training(tmp_path):
    from flan_jax.train import train

    config.parse_gin(["runs/demo.gin", "runs/eval.gin"], TINY + [
        f"MODEL_DIR = '{tmp_path}'", "TRAIN_STEPS = 4", "train.eval_every = 2",
        "train.eval_fn = @evaluate", "CHECKPOINT_PATH = %MODEL_DIR",
        "EVAL_MIXTURES = ['synthetic_fact_nli_t0_rank', 'synthetic_reverse_word_t0_eval']",
        "evaluate.max_examples_per_task = 2", "evaluate.max_new_tokens = 32"])
    train()
    for step in (2, 4):
        report = json.loads((tmp_path / "eval" / f"step_{step}" / "report.json").read_text())
        assert report["step"] == step
        assert set(report["clusters"]) == {"nli", "string"}
