"""A task's own metric functions, applied as seqio's evaluator applies them.

seqio sorts a task's metric functions by their arguments: `(targets, predictions)` take decoded
and postprocessed predictions; `(targets, scores)` take the log-likelihood of each example's
target; `(targets, predictions, aux_values)` take predictions plus their scores. Targets always
pass through the task's postprocessor (`is_target=True`), predictions too (`is_target=False`),
scores never. Tasks built with t5's `rank_classification` preprocessor (one row per option, with
`idx` = [example, option] and `is_correct`) are scored through the shared-input rank path and
handed to their metrics row by row, as t5's `rank_classification` metric expects.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from flan_jax import scoring
from flan_jax.errors import UserError
from flan_jax.placement import LoadedModel
from flan_jax.predict import PredictSettings, predict


def text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


@dataclasses.dataclass
class TaskOutput:
    metrics: dict[str, float]
    predictions: list[str]  # one per example (per input example for rank rows)
    note: str = ""


def _values(result: dict) -> dict[str, float]:
    return {k: float(getattr(v, "value", v)) for k, v in result.items()}


def _targets(task, examples: Sequence[dict]) -> list[Any]:
    raw = [text(ex["targets_pretokenized"]) for ex in examples]
    post = task.postprocess_fn
    return raw if post is None else [post(t, example=ex, is_target=True)
                                     for t, ex in zip(raw, examples)]


def _postprocess(task, predictions: Sequence[str], examples: Sequence[dict]) -> list[Any]:
    post = task.postprocess_fn
    return list(predictions) if post is None else [
        post(p, example=ex, is_target=False) for p, ex in zip(predictions, examples)]


def predictions_metrics(task, examples: Sequence[dict], predictions: Sequence[str]
                        ) -> dict[str, float]:
    """The task's prediction metric functions on text predictions (postprocessed here)."""
    targets, preds = _targets(task, examples), _postprocess(task, predictions, examples)
    metrics: dict[str, float] = {}
    for fn in task.predict_metric_fns:
        metrics.update(_values(fn(targets, preds)))
    return metrics


def is_rank_rows(task, examples: Sequence[dict]) -> bool:
    """Whether the task's rows are t5-style rank-classification rows (one per option)."""
    if not examples or "is_correct" not in examples[0]:
        return False
    if "idx" not in examples[0]:
        raise UserError(f"task {task.name!r} has rank-classification rows (`is_correct`) without "
                        "the `idx` feature that groups them per example; build it with "
                        "t5.data.preprocessors.rank_classification (which adds `idx`).")
    return True


def _example_index(ex: dict) -> int:
    idx = np.asarray(ex["idx"])
    return int(idx.reshape(-1)[0])


def rank_rows_scores(loaded: LoadedModel, examples: Sequence[dict], settings: PredictSettings,
                     stats: dict | None = None) -> tuple[list[float], list[str]]:
    """(summed log-likelihood of each row's target, the best option of each input example).
    Rows of one example that share their input are ranked in one pass over that input."""
    groups: dict[int, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(_example_index(ex), []).append(i)
    scores = [0.0] * len(examples)
    best: list[str] = []
    shared = [rows for rows in groups.values()
              if len({text(examples[r]["inputs_pretokenized"]) for r in rows}) == 1]
    separate = [r for rows in groups.values() if rows not in shared for r in rows]
    if shared:
        inputs = [text(examples[rows[0]]["inputs_pretokenized"]) for rows in shared]
        options = [[text(examples[r]["targets_pretokenized"]) for r in rows] for rows in shared]
        ranked = scoring.rank_classify(
            loaded, inputs, options,
            dataclasses.replace(settings.rank(), score="sum"), stats=stats)
        for rows, result in zip(shared, ranked):
            for r, ll in zip(rows, result.log_likelihoods):
                scores[r] = float(ll)
    if separate:
        scored = _score(loaded, [text(examples[r]["inputs_pretokenized"]) for r in separate],
                        [text(examples[r]["targets_pretokenized"]) for r in separate],
                        settings, stats)
        for r, (ll, _) in zip(separate, scored):
            scores[r] = float(ll)
    for rows in groups.values():
        top = max(rows, key=lambda r: scores[r])
        best.append(text(examples[top]["targets_pretokenized"]))
    return scores, best


def _score(loaded: LoadedModel, inputs: Sequence[str], targets: Sequence[str],
           settings: PredictSettings, stats: dict | None) -> list[tuple[float, int]]:
    return scoring.score_texts(
        loaded, inputs, targets, batch_size=settings.batch_size,
        max_input_length=settings.max_input_length,
        max_target_length=settings.max_target_length, stats=stats,
        keep_input=settings.keep_input)


def evaluate_task(task, examples: Sequence[dict], loaded: LoadedModel,
                  settings: PredictSettings, stats: dict | None = None) -> TaskOutput:
    """Runs what the task's metric functions need (decoding, target scores or rank rows) and
    applies them, for any seqio task."""
    if is_rank_rows(task, examples):
        scores, best = rank_rows_scores(loaded, examples, settings, stats)
        targets = _targets(task, examples)
        metrics: dict[str, float] = {}
        for fn in task.score_metric_fns:
            metrics.update(_values(fn(targets, scores)))
        note = "" if task.score_metric_fns else (
            "rank rows but no score metric: reported the mean log-likelihood of the rows")
        if not task.score_metric_fns:
            metrics = {"log_likelihood": float(np.mean(scores))}
        return TaskOutput(metrics, best, note)
    inputs = [text(ex["inputs_pretokenized"]) for ex in examples]
    raw_targets = [text(ex["targets_pretokenized"]) for ex in examples]
    metrics = {}
    predictions: list[str] = []
    if task.predict_metric_fns or task.predict_with_aux_metric_fns:
        predictions = [p.text for p in predict(loaded, inputs, None, settings, stats=stats)]
        metrics.update(predictions_metrics(task, examples, predictions))
    if task.predict_with_aux_metric_fns:
        aux = {"scores": np.asarray([s for s, _ in _score(loaded, inputs, predictions,
                                                           settings, stats)])}
        targets, preds = _targets(task, examples), _postprocess(task, predictions, examples)
        for fn in task.predict_with_aux_metric_fns:
            metrics.update(_values(fn(targets, preds, aux)))
    note = ""
    if task.score_metric_fns or not task.metric_fns:
        scored = _score(loaded, inputs, raw_targets, settings, stats)
        scores = [s for s, _ in scored]
        if task.score_metric_fns:
            targets = _targets(task, examples)
            for fn in task.score_metric_fns:
                metrics.update(_values(fn(targets, scores)))
        else:
            tokens = max(sum(n for _, n in scored), 1)
            metrics = {"log_likelihood": float(np.mean(scores)),
                       "loss": float(-sum(scores) / tokens)}
            note = ("the task declares no metric functions: reported the mean target "
                    "log-likelihood and the per-token loss")
    return TaskOutput(metrics, predictions, note)
