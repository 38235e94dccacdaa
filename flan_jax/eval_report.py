"""The evaluation report: per-dataset and per-cluster scores from per-task results, and its
writers (report.json, the Markdown table, the cluster chart, TensorBoard scalars; the report a
re-run replaces is kept under previous/). No model, no TensorFlow."""

from __future__ import annotations

import io
import json
import os
import time
from collections import defaultdict

import numpy as np
from etils import epath

from flan_jax import paths


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


REPORT_FILES = ("report.json", "report.md", "clusters.png")


def check_writable(out_dir: epath.Path) -> None:
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


def keep_previous(out_dir: epath.Path) -> None:
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


def tensorboard(out_dir: epath.Path, clusters: dict, datasets: dict, step: int) -> None:
    from flan_jax.progress import summary_writer

    with summary_writer(out_dir / "tensorboard") as writer:
        for cl, r in clusters.items():
            writer.add_scalar(f"cluster/{cl}", r["score"], step)
        for ds, r in datasets.items():
            writer.add_scalar(f"dataset/{ds}", r["score"], step)


def write(out_dir: epath.Path, report: dict, table: str, title: str) -> None:
    """Writes every report file in `out_dir`, keeping the one it replaces."""
    keep_previous(out_dir)
    paths.write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2))
    paths.write_text_atomic(out_dir / "report.md", table)
    bar_chart(report["clusters"], out_dir / "clusters.png",
              f"{title}\nscore per cluster (mean of its datasets' primary metric)")
    tensorboard(out_dir, report["clusters"], report["datasets"], report["step"] or 0)
