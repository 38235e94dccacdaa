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

import argparse
import json
import logging
import pathlib
import sys
import time
from collections import defaultdict
from typing import Any, Sequence

import gin
import numpy as np

logger = logging.getLogger("flan_jax.evaluate")


def expand_tasks(names: Sequence[str] | str) -> list[str]:
    """Task names behind a collection name, mixture names or task names."""
    import seqio

    from tasks import catalogue

    names = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for name in names:
        if name in catalogue.collection_names():
            info = catalogue.collection_info(name)
            mixtures = [info.eval_mixtures[c] for c in info.clusters if c in info.eval_mixtures]
            out += expand_tasks(mixtures)
            continue
        provider = catalogue.get_task_or_mixture(name)
        if isinstance(provider, seqio.Mixture):
            out += [t.name for t in provider.tasks]
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def _examples(task, split: str, limit: int | None) -> list[dict]:
    ds = task.get_dataset(None, split=split, shuffle=False, seed=0)
    if limit:
        ds = ds.take(limit)
    return list(ds.as_numpy_iterator())


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def task_metrics(task, examples: Sequence[dict], predictions: Sequence[str]) -> dict[str, float]:
    """The task's own postprocessor and metric functions on text predictions."""
    post = task.postprocess_fn
    targets = [_text(ex["targets_pretokenized"]) for ex in examples]
    if post is not None:
        targets = [post(t, example=ex, is_target=True) for t, ex in zip(targets, examples)]
        predictions = [post(p, example=ex, is_target=False)
                       for p, ex in zip(predictions, examples)]
    metrics: dict[str, float] = {}
    for fn in task.metric_fns:
        metrics.update({k: float(getattr(v, "value", v)) for k, v in
                        fn(targets, list(predictions)).items()})
    return metrics


def predict_task(task_name: str, model, params, vocab, *, max_examples: int | None,
                 batch_size: int, max_input_length: int, max_new_tokens: int, rank_score: str,
                 decoding: dict, stats: dict) -> tuple[list[dict], list[str]]:
    import seqio

    from flan_jax import decoding as decoding_lib
    from flan_jax import scoring
    from tasks import catalogue

    info = catalogue.task_info(task_name)
    task = seqio.get_mixture_or_task(task_name)
    examples = _examples(task, info.split, max_examples)
    inputs = [_text(ex["inputs_pretokenized"]) for ex in examples]
    if info.kind in ("rank", "fewshot_rank"):
        options = []
        for i, ex in enumerate(examples):
            opts = [_text(o) for o in ex.get("options", [])]
            if not opts:
                raise ValueError(f"task {task_name}: example {i} has no options to rank.")
            options.append(opts)
        results = scoring.rank_classify(model, params, vocab, inputs, options, score=rank_score,
                                        batch_size=batch_size, max_input_length=max_input_length,
                                        stats=stats)
        return examples, [opts[r.prediction_index] for opts, r in zip(options, results)]
    predictions = decoding_lib.generate(model, params, vocab, inputs,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size,
                                        max_input_length=max_input_length, stats=stats,
                                        **decoding)
    return examples, predictions


def primary(metrics: dict[str, float]) -> float:
    return next(iter(metrics.values())) if metrics else float("nan")


def aggregate(task_results: dict[str, dict], held_out: set[str]) -> tuple[dict, dict]:
    """Per-dataset and per-cluster scores from per-task results."""
    by_dataset: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    cluster_of: dict[str, str] = {}
    for res in task_results.values():
        method = "rank" if res["kind"] in ("rank", "fewshot_rank") else "generation"
        by_dataset[res["dataset"]][method].append(res["score"])
        cluster_of[res["dataset"]] = res["cluster"]
    datasets = {}
    for ds, methods in sorted(by_dataset.items()):
        method = "rank" if methods.get("rank") else "generation"
        scores = methods[method]
        datasets[ds] = {"cluster": cluster_of[ds], "method": method,
                        "score": float(np.mean(scores)), "best_template": float(np.max(scores)),
                        "num_templates": len(scores)}
        if method == "rank" and methods.get("generation"):
            datasets[ds]["generation_score"] = float(np.mean(methods["generation"]))
    clusters: dict[str, dict] = {}
    for ds, r in datasets.items():
        clusters.setdefault(r["cluster"], {"datasets": []})["datasets"].append(ds)
    for cl, r in clusters.items():
        r["score"] = float(np.mean([datasets[d]["score"] for d in r["datasets"]]))
        r["held_out"] = cl in held_out
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


def bar_chart(clusters: dict, path: pathlib.Path, title: str) -> None:
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@gin.configurable
def evaluate(checkpoint_path: str = gin.REQUIRED, mixtures: Sequence[str] | str = gin.REQUIRED,
             output_dir: str | None = None, train_mixture: str | None = None,
             held_out_clusters: Sequence[str] | None = None,
             max_examples_per_task: int | None = None, batch_size: int = 32,
             max_input_length: int = 256, max_new_tokens: int = 32, rank_score: str = "sum",
             decoding_method: str = "greedy", num_beams: int = 4, length_penalty: float = 0.6,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             step: int | None = None, params=None) -> dict:
    """Evaluates a model directory on tasks; returns the report (also written to disk).

    Held-out clusters are `held_out_clusters`, or those absent from `train_mixture`.
    `params` (with `step`) evaluates in-memory parameters: during training, bind
    `train.eval_fn = @evaluate`, `train.eval_every = N` and `evaluate.checkpoint_path =
    %MODEL_DIR` (its model.gin and vocab.json are written when training starts); reports go to
    MODEL_DIR/eval/step_N/.
    """
    import tasks  # noqa: F401
    from flan_jax import checkpoints
    from flan_jax.models import build_model
    from tasks import catalogue

    task_names = expand_tasks(mixtures)
    if params is None:
        cfg, params, vocab = checkpoints.load_model_dir(checkpoint_path)
    else:  # in-memory parameters (training): only the config and vocabulary come from disk
        from flan_jax.vocab import load_vocab

        cfg = checkpoints.read_model_config(pathlib.Path(checkpoint_path) / checkpoints.MODEL_GIN)
        vocab = load_vocab(checkpoint_path)
    model = build_model(cfg)
    out_dir = pathlib.Path(output_dir or pathlib.Path(checkpoint_path) / "eval")
    if params is not None and step is not None:  # evaluation during training
        out_dir = out_dir / f"step_{step}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if held_out_clusters is None:
        held_out = set()
        if train_mixture:
            trained = set(catalogue.mixture_clusters(train_mixture))
            held_out = {catalogue.task_info(t).cluster for t in task_names} - trained
    else:
        held_out = set(held_out_clusters)
    decoding = {"method": decoding_method, "num_beams": num_beams,
                "length_penalty": length_penalty, "temperature": temperature, "top_k": top_k,
                "top_p": top_p}
    stats: dict = {}
    results: dict[str, dict] = {}
    start = time.time()
    for i, name in enumerate(task_names, 1):
        info = catalogue.task_info(name)
        examples, predictions = predict_task(
            name, model, params, vocab, max_examples=max_examples_per_task,
            batch_size=batch_size, max_input_length=max_input_length,
            max_new_tokens=max_new_tokens, rank_score=rank_score, decoding=decoding,
            stats=stats)
        import seqio

        metrics = task_metrics(seqio.get_mixture_or_task(name), examples, predictions)
        results[name] = {"cluster": info.cluster, "dataset": info.dataset, "kind": info.kind,
                         "template": info.template_index, "num_shots": info.num_shots,
                         "metrics": metrics, "score": primary(metrics),
                         "num_examples": len(examples),
                         "sample": {"input": _text(examples[0]["inputs_pretokenized"]),
                                    "prediction": predictions[0],
                                    "target": _text(examples[0]["targets_pretokenized"])}
                         if examples else None}
        elapsed = time.time() - start
        print(f"[{i}/{len(task_names)}] {name}: {primary(metrics):.1f} "
              f"({len(examples)} examples, {elapsed:.0f}s, ETA "
              f"{elapsed / i * (len(task_names) - i):.0f}s)", file=sys.stderr, flush=True)
    datasets, clusters = aggregate(results, held_out)
    title = f"{pathlib.Path(checkpoint_path).name}" + (f" step {step}" if step else "")
    table = markdown_report(datasets, clusters, title)
    truncated = sum(v for k, v in stats.items() if "trunc" in k)
    report = {"checkpoint": str(checkpoint_path), "step": step, "mixtures": mixtures,
              "held_out_clusters": sorted(held_out), "clusters": clusters,
              "datasets": datasets, "tasks": results, "truncation_counts": stats,
              "seconds": time.time() - start}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text(table)
    bar_chart(clusters, out_dir / "clusters.png", title)
    _tensorboard(out_dir, clusters, datasets, step or 0)
    print(table)
    if truncated:
        print(f"Note: {truncated} inputs or targets were truncated to the configured lengths "
              f"({stats}).", file=sys.stderr)
    return report


def _tensorboard(out_dir: pathlib.Path, clusters: dict, datasets: dict, step: int) -> None:
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(out_dir / "tensorboard")) as writer:
        for cl, r in clusters.items():
            writer.add_scalar(f"cluster/{cl}", r["score"], step)
        for ds, r in datasets.items():
            writer.add_scalar(f"dataset/{ds}", r["score"], step)


def main(argv: list[str]) -> int:
    from flan_jax import config

    parser = argparse.ArgumentParser(prog="flan-jax eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_gin_flags(parser)
    try:
        bindings, rest = config.split_gin_bindings(argv)
        args = parser.parse_args(rest)
        config.parse_gin(args.gin_file or ["runs/eval.gin"], bindings, args.gin_search_paths)
    except config.GinConfigError as e:
        print(f"flan-jax eval: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    try:
        evaluate()
    except (KeyError, FileNotFoundError, ValueError) as e:
        print(f"flan-jax eval: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0
