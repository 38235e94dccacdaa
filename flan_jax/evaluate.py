"""Evaluation of a checkpoint on registered tasks, with per-template, dataset and cluster scores.

`flan-jax eval --gin_file=runs/eval.gin --gin.CHECKPOINT_PATH="'DIR'" [--gin.EVAL_MIXTURES=...]`

Each task of the requested mixtures is read from the registry (its eval split, rendered and
tokenized by seqio). Rank tasks go through `scoring.rank_classify` (each input once, all its
options scored against it) and the chosen option becomes the prediction; generation tasks go
through `decoding.generate`. Predictions and targets then pass through the task's own seqio
postprocessor and metric functions, exactly as seqio's evaluator applies them. Scores are
aggregated per dataset (mean over templates, and the best template; classification datasets
use their rank tasks, as the FLAN paper did) and per cluster (mean of datasets), with held-out
clusters marked. Writes `eval/report.json`, `eval/report.md`, `eval/clusters.png` and
TensorBoard scalars (`eval_report`), and prints the Markdown table.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections import defaultdict
from typing import Any, Mapping, Sequence

import gin
import numpy as np

from flan_jax import checkpoints, eval_report, paths
from flan_jax import data as _data  # noqa: F401 - DataConfig is registered before gin locks
# gin: the mesh is configurable here too
from flan_jax.placement import LoadedModel, Placement, param_bytes
from flan_jax.predict import PredictSettings, predict
from flan_jax.task_metrics import evaluate_task, predictions_metrics, text

logger = logging.getLogger("flan_jax.evaluate")


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """A task resolved once: the seqio task and how it is evaluated and reported."""
    name: str
    task: Any  # seqio.Task
    split: str
    method: str  # "rank" (classification by the options' scores) or "generation"
    cluster: str
    dataset: str
    kind: str  # the registry's kind of task, or "seqio" for a plain seqio registration
    template: int | None = None
    num_shots: int = 0
    mixture: str | None = None  # the mixture it was requested through, if any

    @property
    def builtin(self) -> bool:
        return self.kind != "seqio"


def _expand(names: Sequence[str] | str) -> list[tuple[str, str | None]]:
    """(task name, the mixture it came through) behind collection, mixture or task names."""
    import seqio

    from tasks import catalogue

    names = [names] if isinstance(names, str) else list(names)
    out: list[tuple[str, str | None]] = []
    for name in names:
        if name in catalogue.collection_names():
            info = catalogue.collection_info(name)
            out += _expand([info.eval_mixtures[c] for c in info.clusters
                            if c in info.eval_mixtures])
            continue
        provider = catalogue.get_task_or_mixture(name)
        if isinstance(provider, seqio.Mixture):
            out += [(t.name, name) for t in provider.tasks]
        else:
            out.append((name, None))
    return list({task: (task, via) for task, via in out}.values())


def expand_tasks(names: Sequence[str] | str) -> list[str]:
    """Task names behind a collection name, mixture names or task names."""
    return [task for task, _ in _expand(names)]


def _eval_split(task) -> str:
    splits = list(getattr(task, "splits", ()) or ())
    for split in ("validation", "test"):
        if split in splits:
            return split
    return splits[0] if splits else "validation"


def resolve_tasks(names: Sequence[str] | str,
                  clusters: Mapping[str, str] | None = None) -> list[EvalTask]:
    """Every task behind `names`, looked up once. Tasks of the project's registry carry their
    cluster, dataset and template; any other seqio task is its own dataset, in the cluster that
    `clusters` maps its name (or its mixture's) to, else in a cluster of its own name."""
    import seqio

    from tasks import catalogue

    clusters = dict(clusters or {})
    resolved = []
    for name, via in _expand(names):
        task = seqio.get_mixture_or_task(name)
        if name in catalogue.TASKS:
            info = catalogue.task_info(name)
            resolved.append(EvalTask(
                name=name, task=task, split=info.split,
                method="rank" if info.kind in ("rank", "fewshot_rank") else "generation",
                cluster=info.cluster, dataset=info.dataset, kind=info.kind,
                template=info.template_index, num_shots=info.num_shots, mixture=via))
        else:
            cluster = clusters.get(name) or clusters.get(via or "") or name
            resolved.append(EvalTask(name=name, task=task, split=_eval_split(task),
                                     method="seqio", cluster=cluster, dataset=name,
                                     kind="seqio", mixture=via))
    return resolved


def task_examples(task: EvalTask, limit: int | None) -> list[dict]:
    """The first `limit` (all where None) examples of a task's evaluation split, in order."""
    ds = task.task.get_dataset(None, split=task.split, shuffle=False, seed=0)
    if limit:
        ds = ds.take(limit)
    return list(ds.as_numpy_iterator())


def predict_task(task: EvalTask, loaded: LoadedModel, settings: PredictSettings, *,
                 max_examples: int | None, stats: dict) -> tuple[list[dict], list[str]]:
    """The task's eval examples and the model's text prediction for each."""
    examples = task_examples(task, max_examples)
    inputs = [text(ex["inputs_pretokenized"]) for ex in examples]
    options = None
    if task.method == "rank":
        options = []
        for i, ex in enumerate(examples):
            opts = [text(o) for o in ex.get("options", [])]
            if not opts:
                raise ValueError(f"task {task.name}: example {i} has no options to rank.")
            options.append(opts)
    predictions = predict(loaded, inputs, options, settings, stats=stats)
    return examples, [p.text for p in predictions]


@gin.configurable
def evaluate(checkpoint_path: str = gin.REQUIRED, mixtures: Sequence[str] | str = gin.REQUIRED,
             output_dir: str | None = None, train_mixture: str | None = None,
             held_out_clusters: Sequence[str] | None = None,
             max_examples_per_task: int | None = None, batch_size: int = 32,
             max_input_length: int = 256, max_new_tokens: int = 32,
             max_option_length: int = 64, rank_score: str = "sum",
             decoding_method: str = "greedy", num_beams: int = 4, length_penalty: float = 0.6,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             clusters: Mapping[str, str] | None = None, keep_input: str = "end",
             option_tokens_per_call: int = 16384,
             step: int | None = None, params=None) -> dict:
    """Evaluates a model directory on tasks; returns the report (also written to disk).

    Held-out clusters are `held_out_clusters`, or those absent from `train_mixture`.
    `params` (with `step`) evaluates in-memory parameters: during training, bind
    `train.eval_fn = @evaluate`, `train.eval_every = N` and `evaluate.checkpoint_path =
    %MODEL_DIR` (its model.gin and vocab.json are written when training starts); reports go to
    MODEL_DIR/eval/step_N/.

    Runs on the mesh that gin binds (`mesh_axes`, `logical_axis_rules`, `hardware/*.gin`), as
    `train` does: parameters are restored straight into their shardings, batches split over the
    data axes. Multi-host: every process runs the same command; process 0 writes the reports.
    `keep_input`: the side of a too-long input that stays ("end": the question and OPTIONS that
    close an instruction survive).
    """
    from flan_jax import input_checks

    input_checks.check_evaluate_settings(
        checkpoint_path, params is not None, batch_size=batch_size,
        max_input_length=max_input_length, max_new_tokens=max_new_tokens,
        max_option_length=max_option_length, num_beams=num_beams)
    import jax

    from flan_jax.models import build_model

    eval_tasks = resolve_tasks(mixtures, clusters)
    placement = Placement.from_gin()
    out_dir = paths.as_path(output_dir or paths.as_path(checkpoint_path) / "eval")
    if params is not None and step is not None:  # evaluation during training
        out_dir = out_dir / f"step_{step}"
    writes = jax.process_index() == 0
    if writes:  # every check before the parameters are read
        eval_report.check_writable(out_dir)
    cfg, params, vocab, step = _load(checkpoint_path, eval_tasks, placement, params, step)
    loaded = LoadedModel(build_model(cfg), params, vocab, placement)
    if writes:
        paths.ensure_dir(out_dir)
    held_out = (set(held_out_clusters) if held_out_clusters is not None
                else _held_out(eval_tasks, train_mixture, clusters))
    settings = PredictSettings(
        batch_size=batch_size, max_input_length=max_input_length,
        max_target_length=max_option_length, max_new_tokens=max_new_tokens,
        rank_score=rank_score, method=decoding_method, num_beams=num_beams,
        length_penalty=length_penalty, temperature=temperature, top_k=top_k, top_p=top_p,
        keep_input=keep_input, option_tokens_per_call=option_tokens_per_call)
    total_bytes, device_bytes = param_bytes(params)
    mesh_info = {"mesh": placement.axis_sizes(), "param_bytes_total": total_bytes,
                 "param_bytes_per_device": device_bytes}
    stats: dict = {}
    start = time.time()
    results = _score_tasks(eval_tasks, loaded, settings, max_examples_per_task, stats)
    datasets, cluster_scores = eval_report.aggregate(results, held_out)
    title = (f"{paths.as_path(checkpoint_path).name}"
             + (f" step {step}" if step is not None else ""))
    by_mixture = _scores_by_mixture(eval_tasks, results)
    table = eval_report.markdown_report(datasets, cluster_scores, title) + "".join(
        f"\nMixture {m}: {np.mean(v):.1f} (mean of its {len(v)} tasks)." for m, v in
        by_mixture.items() if len(by_mixture) > 1 or len(v) > 1) + "\n"
    report = {"checkpoint": str(checkpoint_path), "step": step, "mixtures": mixtures,
              "held_out_clusters": sorted(held_out), "clusters": cluster_scores,
              "mixture_scores": {m: float(np.mean(v)) for m, v in by_mixture.items()},
              "datasets": datasets, "tasks": results, "truncation_counts": stats,
              "input_truncation": f"too-long inputs keep their {keep_input} (cut from the "
                                  f"{'start' if keep_input == 'end' else 'end'})",
              **mesh_info, "seconds": time.time() - start}
    if writes:
        eval_report.write(out_dir, report, table, title)
    print(table)
    print(f"Mesh {mesh_info['mesh']}; parameters {total_bytes / 2**20:,.1f} MiB in all, at most "
          f"{device_bytes / 2**20:,.1f} MiB on one device.", file=sys.stderr)
    truncated = sum(v for k, v in stats.items() if "trunc" in k)
    if truncated:
        print(f"Note: {truncated} inputs or targets were truncated to the configured lengths "
              f"({stats}).", file=sys.stderr)
    return report


def _score_tasks(eval_tasks: list[EvalTask], loaded: LoadedModel, settings: PredictSettings,
                 max_examples: int | None, stats: dict) -> dict[str, dict]:
    """Each task's result, one progress line (score, examples, elapsed, ETA) per task."""
    results: dict[str, dict] = {}
    start = time.time()
    for i, task in enumerate(eval_tasks, 1):
        results[task.name] = _task_result(task, loaded, settings, max_examples, stats)
        elapsed = time.time() - start
        print(f"[{i}/{len(eval_tasks)}] {task.name}: {results[task.name]['score']:.1f} "
              f"({results[task.name]['num_examples']} examples, {elapsed:.0f}s, ETA "
              f"{elapsed / i * (len(eval_tasks) - i):.0f}s)", file=sys.stderr, flush=True)
    return results


def _scores_by_mixture(eval_tasks: list[EvalTask], results: dict) -> dict[str, list[float]]:
    """The scores of the tasks of each evaluated mixture (tasks named alone have none)."""
    by_mixture: dict[str, list[float]] = defaultdict(list)
    for task in eval_tasks:
        if task.mixture:
            by_mixture[task.mixture].append(results[task.name]["score"])
    return by_mixture


def _load(checkpoint_path: str, eval_tasks: list[EvalTask], placement: Placement, params,
          step: int | None):
    """(model config, parameters, vocabulary, step): the checkpoint's, or with in-memory
    `params` (training) only the config and vocabulary from disk. Every task's vocabulary must
    be the checkpoint's, checked before the parameters are read."""
    from flan_jax.data import seqio_source
    from flan_jax.vocab import load_vocab

    vocab = load_vocab(checkpoint_path)
    for task in eval_tasks:
        seqio_source.check_vocabulary(task.task, vocab, checkpoint_path)
    if params is None:
        cfg, params, vocab = checkpoints.load_model_dir(checkpoint_path, placement)
        if step is None:
            step = checkpoints.saved_step(checkpoint_path)
    else:
        cfg = checkpoints.read_model_config(paths.as_path(checkpoint_path) / checkpoints.MODEL_GIN)
    return cfg, params, vocab, step


def _held_out(eval_tasks: list[EvalTask], train_mixture: str | None,
              clusters: Mapping[str, str] | None) -> set[str]:
    """The evaluated clusters `train_mixture` does not train on (none without it)."""
    from tasks import catalogue

    if not train_mixture:
        return set()
    trained = ({t.cluster for t in resolve_tasks(train_mixture, clusters)}
               if train_mixture not in catalogue.MIXTURES and
               train_mixture not in catalogue.TASKS
               else set(catalogue.mixture_clusters(train_mixture)))
    return {t.cluster for t in eval_tasks} - trained


def _task_result(task: EvalTask, loaded: LoadedModel, settings: PredictSettings,
                 max_examples: int | None, stats: dict) -> dict:
    """One task's entry of the report: its metrics, score, chance level and a sample."""
    note = ""
    if task.builtin:
        examples, predictions = predict_task(task, loaded, settings,
                                             max_examples=max_examples, stats=stats)
        metrics = predictions_metrics(task.task, examples, predictions)
    else:  # a plain seqio task: whatever its metric functions ask for
        examples = task_examples(task, max_examples)
        output = evaluate_task(task.task, examples, loaded, settings, stats)
        metrics, predictions, note = output.metrics, output.predictions, output.note
    chance = (100.0 * float(np.mean([1.0 / len(ex["options"]) for ex in examples]))
              if task.method == "rank" and examples and "options" in examples[0] else None)
    result = {
        "chance": chance, "cluster": task.cluster, "dataset": task.dataset, "kind": task.kind,
        "method": task.method, "template": task.template, "num_shots": task.num_shots,
        "mixture": task.mixture, "metrics": metrics, "score": eval_report.primary(metrics),
        "num_examples": len(examples),
        "sample": {"input": text(examples[0]["inputs_pretokenized"]),
                   "prediction": predictions[0] if predictions else None,
                   "target": text(examples[0]["targets_pretokenized"])}
        if examples else None}
    if note:
        result["note"] = note
    return result


def _run(args) -> None:
    logging.basicConfig(level=logging.WARNING)
    evaluate()


def main(argv: list[str]) -> int:
    from flan_jax import config

    return config.run_command("flan-jax eval", argv, _run, default_files=["runs/eval.gin"],
                              description=__doc__,
                              user_errors=(FileNotFoundError, ValueError))
