"""flan_jax.task_metrics: a task's own metric functions applied as seqio's evaluator does
(targets and predictions postprocessed, scores not), rank rows scored once per shared input
and equal to scoring each row alone."""

import numpy as np
import pytest

from flan_jax import scoring
from flan_jax.errors import UserError
from flan_jax.placement import LoadedModel
from flan_jax.predict import PredictSettings
from flan_jax.task_metrics import evaluate_task, is_rank_rows, predictions_metrics, text
from tests.fixtures import ENC_DEC, VOCAB, tiny_model


class FakeTask:
    name = "fake"

    def __init__(self, predict=(), score=(), postprocess=None):
        self.predict_metric_fns, self.score_metric_fns = list(predict), list(score)
        self.predict_with_aux_metric_fns = []
        self.metric_fns = self.predict_metric_fns + self.score_metric_fns
        self.postprocess_fn = postprocess


def _exact(targets, predictions):
    return {"exact": 100.0 * np.mean([t == p for t, p in zip(targets, predictions)])}


def test_predictions_and_targets_pass_through_the_postprocessor():
    seen = []

    def post(value, example, is_target):
        seen.append(is_target)
        return value.strip().lower()

    task = FakeTask(predict=[_exact], postprocess=post)
    examples = [{"targets_pretokenized": b"Yes"}, {"targets_pretokenized": b"no "}]
    assert predictions_metrics(task, examples, [" yes", "maybe"]) == {"exact": 50.0}
    assert seen == [True, True, False, False]
    assert text(b"caf\xc3\xa9") == "café" and text(3) == "3"


def test_rank_rows_need_their_example_index():
    task = FakeTask()
    assert not is_rank_rows(task, [{"inputs_pretokenized": b"x"}])
    assert is_rank_rows(task, [{"is_correct": True, "idx": np.array([0, 0])}])
    with pytest.raises(UserError, match="without the `idx` feature"):
        is_rank_rows(task, [{"is_correct": True}])


def test_rank_rows_scores_equal_scoring_each_row_and_feed_score_metrics():
    model, params = tiny_model(ENC_DEC)
    rows = [("Is it?", "yes", True, [0, 0]), ("Is it?", "no", False, [0, 1]),
            ("Pick one", "a", False, [1, 0]), ("Pick one", "bb", True, [1, 1])]
    examples = [{"inputs_pretokenized": i.encode(), "targets_pretokenized": t.encode(),
                 "is_correct": c, "idx": np.array(idx)} for i, t, c, idx in rows]
    got = {}

    def mean_score(targets, scores):
        got["scores"] = list(scores)
        return {"mean": float(np.mean(scores))}

    settings = PredictSettings(batch_size=4, max_input_length=16, max_target_length=8)
    loaded = LoadedModel(model, params, VOCAB)
    out = evaluate_task(FakeTask(score=[mean_score]), examples, loaded, settings)
    alone = [s for s, _ in scoring.score_texts(loaded, [r[0] for r in rows],
                                               [r[1] for r in rows], max_input_length=16,
                                               max_target_length=8)]
    np.testing.assert_allclose(got["scores"], alone, rtol=1e-5, atol=1e-5)
    assert out.metrics == {"mean": pytest.approx(float(np.mean(alone)), rel=1e-5)}
    best = [max(rows[:2], key=lambda r: alone[rows.index(r)])[1],
            max(rows[2:], key=lambda r: alone[rows.index(r)])[1]]
    assert out.predictions == best and out.note == ""
