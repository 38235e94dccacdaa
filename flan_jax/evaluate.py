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
TensorBoard scalars, and prints the Markdown table.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import sys
import time
from collections import defaultdict
from typing import Any, Mapping, Sequence

import gin
import numpy as np

from etils import epath

from flan_jax import checkpoints, data, paths
from flan_jax.placement import Placement, param_bytes  # gin: the mesh is configurable here too
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


def _examples(task: EvalTask, limit: int | None) -> list[dict]:
    ds = task.task.get_dataset(None, split=task.split, shuffle=False, seed=0)
    if limit:
        ds = ds.take(limit)
    return list(ds.as_numpy_iterator())


def predict_task(task: EvalTask, model, params, vocab, settings: PredictSettings, *,
                 max_examples: int | None, stats: dict,
                 placement=None) -> tuple[list[dict], list[str]]:
    """The task's eval examples and the model's text prediction for each."""
    examples = _examples(task, max_examples)
    inputs = [text(ex["inputs_pretokenized"]) for ex in examples]
    options = None
    if task.method == "rank":
        options = []
        for i, ex in enumerate(examples):
            opts = [text(o) for o in ex.get("options", [])]
            if not opts:
                raise ValueError(f"task {task.name}: example {i} has no options to rank.")
            options.append(opts)
    predictions = predict(model, params, vocab, inputs, options, settings, stats=stats,
                          placement=placement)
    return examples, [p.text for p in predictions]


def primary(metrics: dict[str, float]) -> float:
    return next(iter(metrics.values())) if metrics else float("nan")


def aggregate(task_results: dict[str, dict], held_out: set[str]) -> tuple[dict, dict]:
    """Per-dataset and per-cluster scores from per-task results."""
    by_dataset: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    chance_of: dict[str, list[float]] = defaultdict(list)
    cluster_of: dict[str, str] = {}
    for res in task_results.values():
        by_dataset[res["dataset"]][res["method"]].append(res["score"])
        cluster_of[res["dataset"]] = res["cluster"]
        if res.get("chance") is not None:
            chance_of[res["dataset"]].append(res["chance"])
    datasets = {}
    for ds, methods in sorted(by_dataset.items()):
        method = next(m for m in ("rank", "generation", "seqio") if methods.get(m))
        scores = methods[method]
        datasets[ds] = {"cluster": cluster_of[ds], "method": method,
                        "score": float(np.mean(scores)), "best_template": float(np.max(scores)),
                        "num_templates": len(scores)}
        if method == "rank" and methods.get("generation"):
            datasets[ds]["generation_score"] = float(np.mean(methods["generation"]))
        if method == "rank" and chance_of.get(ds):
            datasets[ds]["chance"] = float(np.mean(chance_of[ds]))
    clusters: dict[str, dict] = {}
    for ds, r in datasets.items():
        clusters.setdefault(r["cluster"], {"datasets": []})["datasets"].append(ds)
    for cl, r in clusters.items():
        r["score"] = float(np.mean([datasets[d]["score"] for d in r["datasets"]]))
        r["held_out"] = cl in held_out
        chances = [datasets[d]["chance"] for d in r["datasets"] if "chance" in datasets[d]]
        if chances and len(chances) == len(r["datasets"]):  # every dataset ranks options
            r["chance"] = float(np.mean(chances))
    return datasets, dict(sorted(clusters.items()))


def markdown_report(datasets: dict, clusters: dict, title: str) -> str:
    lines = [f"### {title}", "", "| cluster | held out | score | datasets (mean / best template) |",
             "|---|---|---|---|"]
    for cl, r in clusters.items():
        detail = ", ".join(f"{d} {datasets[d]['score']:.1f}/{datasets[d]['best_template']:.1f}"
                           for d in r["datasets"])
        lines.append(f"| {cl} | {'yes' if r['held_out'] else ''} | {r['score']:.1f} | {detail} |")
    held = [r["score"] for r in clusters.values() if r["held_out"]]
    seen = [r["score"] for r in clusters.values() if not r["held_out"]]
    if held:
        trained = f"; training clusters: {np.mean(seen):.1f}" if seen else ""
        lines += ["", f"Held-out clusters: {np.mean(held):.1f}{trained}."]
    return "\n".join(lines) + "\n"


def bar_chart(clusters: dict, path: str | os.PathLike, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(clusters)
    scores = [clusters[n]["score"] for n in names]
    colors = ["tab:orange" if clusters[n]["held_out"] else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(names, scores, color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("score (orange: held-out cluster)")
    ax.set_title(title)
    for y, s in enumerate(scores):
        ax.text(s, y, f" {s:.1f}", va="center")
    chance = [(y, clusters[n]["chance"]) for y, n in enumerate(names) if "chance" in clusters[n]]
    if chance:  # rank clusters: where picking an option at random lands
        ax.vlines([c for _, c in chance], [y - 0.4 for y, _ in chance],
                  [y + 0.4 for y, _ in chance], colors="black", linestyles="dashed",
                  label="chance (random option)")
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    paths.write_bytes_atomic(path, image.getvalue())
    plt.close(fig)


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
    from flan_jax import input_checks  # reliability (issue 29)

    input_checks.check_evaluate_settings(
        checkpoint_path, params is not None, batch_size=batch_size,
        max_input_length=max_input_length, max_new_tokens=max_new_tokens,
        max_option_length=max_option_length, num_beams=num_beams)
    import jax

    from flan_jax.models import build_model
    from tasks import catalogue

    from flan_jax.vocab import load_vocab

    eval_tasks = resolve_tasks(mixtures, clusters)
    placement = Placement.from_gin()
    in_training = params is not None
    out_dir = paths.as_path(output_dir or paths.as_path(checkpoint_path) / "eval")
    if in_training and step is not None:  # evaluation during training
        out_dir = out_dir / f"step_{step}"
    writes = jax.process_index() == 0
    if writes:  # every check before the parameters are read
        _check_writable(out_dir)
    vocab = load_vocab(checkpoint_path)
    for task in eval_tasks:
        data.check_vocabulary(task.task, vocab, checkpoint_path)
    if not in_training:
        cfg, params, vocab = checkpoints.load_model_dir(checkpoint_path, placement)
        if step is None:
            step = checkpoints.saved_step(checkpoint_path)
    else:  # in-memory parameters (training): only the config and vocabulary come from disk
        cfg = checkpoints.read_model_config(paths.as_path(checkpoint_path) / checkpoints.MODEL_GIN)
    model = build_model(cfg)
    if writes:
        paths.ensure_dir(out_dir)
    if held_out_clusters is None:
        held_out = set()
        if train_mixture:
            trained = ({t.cluster for t in resolve_tasks(train_mixture, clusters)}
                       if train_mixture not in catalogue.MIXTURES and
                       train_mixture not in catalogue.TASKS
                       else set(catalogue.mixture_clusters(train_mixture)))
            held_out = {t.cluster for t in eval_tasks} - trained
    else:
        held_out = set(held_out_clusters)
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
    results: dict[str, dict] = {}
    start = time.time()
    for i, task in enumerate(eval_tasks, 1):
        note = ""
        if task.builtin:
            examples, predictions = predict_task(task, model, params, vocab, settings,
                                                 max_examples=max_examples_per_task,
                                                 stats=stats, placement=placement)
            metrics = predictions_metrics(task.task, examples, predictions)
        else:  # a plain seqio task: whatever its metric functions ask for
            examples = _examples(task, max_examples_per_task)
            output = evaluate_task(task.task, examples, model, params, vocab, settings, stats,
                                   placement)
            metrics, predictions, note = output.metrics, output.predictions, output.note
        chance = (100.0 * float(np.mean([1.0 / len(ex["options"]) for ex in examples]))
                   if task.method == "rank" and examples and "options" in examples[0] else None)
        results[task.name] = {
            "chance": chance, "cluster": task.cluster, "dataset": task.dataset, "kind": task.kind,
            "method": task.method, "template": task.template, "num_shots": task.num_shots,
            "mixture": task.mixture, "metrics": metrics, "score": primary(metrics),
            "num_examples": len(examples),
            "sample": {"input": text(examples[0]["inputs_pretokenized"]),
                       "prediction": predictions[0] if predictions else None,
                       "target": text(examples[0]["targets_pretokenized"])}
            if examples else None}
        if note:
            results[task.name]["note"] = note
        elapsed = time.time() - start
        print(f"[{i}/{len(eval_tasks)}] {task.name}: {primary(metrics):.1f} "
              f"({len(examples)} examples, {elapsed:.0f}s, ETA "
              f"{elapsed / i * (len(eval_tasks) - i):.0f}s)", file=sys.stderr, flush=True)
    datasets, cluster_scores = aggregate(results, held_out)
    title = (f"{paths.as_path(checkpoint_path).name}"
             + (f" step {step}" if step is not None else ""))
    table = markdown_report(datasets, cluster_scores, title)
    truncated = sum(v for k, v in stats.items() if "trunc" in k)
    by_mixture: dict[str, list[float]] = defaultdict(list)
    for task in eval_tasks:
        if task.mixture and not task.builtin:
            by_mixture[task.mixture].append(results[task.name]["score"])
    report = {"checkpoint": str(checkpoint_path), "step": step, "mixtures": mixtures,
              "held_out_clusters": sorted(held_out), "clusters": cluster_scores,
              "mixture_scores": {m: float(np.mean(v)) for m, v in by_mixture.items()},
              "datasets": datasets, "tasks": results, "truncation_counts": stats,
              "input_truncation": f"too-long inputs keep their {keep_input} (cut from the "
                                  f"{'start' if keep_input == 'end' else 'end'})",
              **mesh_info, "seconds": time.time() - start}
    if writes:
        _keep_previous(out_dir)
        paths.write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2))
        paths.write_text_atomic(out_dir / "report.md", table)
        bar_chart(cluster_scores, out_dir / "clusters.png",
                  f"{title}\nscore per cluster (mean of its datasets' primary metric)")
        _tensorboard(out_dir, cluster_scores, datasets, step or 0)
    print(table)
    print(f"Mesh {mesh_info['mesh']}; parameters {total_bytes / 2**20:,.1f} MiB in all, at most "
          f"{device_bytes / 2**20:,.1f} MiB on one device.", file=sys.stderr)
    if truncated:
        print(f"Note: {truncated} inputs or targets were truncated to the configured lengths "
              f"({stats}).", file=sys.stderr)
    return report


REPORT_FILES = ("report.json", "report.md", "clusters.png")


def _check_writable(out_dir: epath.Path) -> None:
    """Refuses, before the model is loaded, a report folder that cannot be written (a
    read-only run directory, a file in the way)."""
    import os

    from flan_jax.errors import UserError

    if paths.is_url(out_dir):
        paths.check_bucket_writable(out_dir, "the report folder")
        return
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"cannot write the reports to {out_dir}: {existing} is "
                        f"{'not a directory' if not existing.is_dir() else 'read-only'}. "
                        "Choose another folder with --gin.evaluate.output_dir=\"'/path'\".")


def _keep_previous(out_dir: epath.Path) -> None:
    """A re-run keeps the report it replaces, in previous/<the old report's UTC time>/."""
    old = out_dir / "report.json"
    if not old.exists():
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(paths.modified_time(old)))
    dest = out_dir / "previous" / stamp
    n = 1
    while dest.exists():
        n += 1
        dest = out_dir / "previous" / f"{stamp}_{n}"
    for name in REPORT_FILES:
        if (out_dir / name).exists():
            paths.move(out_dir / name, dest / name)


def _tensorboard(out_dir: epath.Path, clusters: dict, datasets: dict, step: int) -> None:
    from flan_jax.progress import summary_writer

    with summary_writer(out_dir / "tensorboard") as writer:
        for cl, r in clusters.items():
            writer.add_scalar(f"cluster/{cl}", r["score"], step)
        for ds, r in datasets.items():
            writer.add_scalar(f"dataset/{ds}", r["score"], step)


def main(argv: list[str]) -> int:
    from flan_jax import config

    try:
        config.parse_command("flan-jax eval", argv, default_files=["runs/eval.gin"],
                             description=__doc__)
    except config.GinConfigError as e:
        print(f"flan-jax eval: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    from flan_jax import partitioning
    from flan_jax.errors import UserError, message

    partitioning.initialize_distributed()
    try:
        evaluate()
    except (UserError, KeyError, FileNotFoundError, ValueError) as e:
        print(f"flan-jax eval: {message(e)}", file=sys.stderr)
        return 2
    return 0
