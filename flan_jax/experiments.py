"""The paper's experiments as gin runs: `flan-jax experiment run NAME [--gin.X=V ...]`.

An experiment (gin/experiments/NAME.gin) is a list of runs, each a training (gin bindings on top
of the experiment file) and one or more evaluations of it. Runs execute one after another in
`experiments/NAME/` (or `experiment.output_dir`): a training whose bindings were already trained
is reused (a finished run is never retrained, an interrupted one resumes from its checkpoint),
and an evaluation whose report exists is not redone. The results (held-out score per run) go to
`results.json`, `results.md` and `results.png`, a plot comparable to the paper's figure.

The same files run at full scale on FLAN 2021 by gin override, e.g.
`--gin.COLLECTION="'flan2021'" --gin.HELD_OUT="'nli'" --gin_file=models/t5_base.gin ...`
(add a pretrained base with `--gin.INIT_CHECKPOINT`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import sys
from typing import Any, Sequence

import gin
import numpy as np
from etils import epath

from flan_jax import paths
from flan_jax.data import import_tasks_if_read  # TF-free: tasks only when a run reads seqio


@dataclasses.dataclass(frozen=True)
class Run:
    """One point of an experiment: train with `train`, evaluate with each of `evals`.

    `train` and `evals` hold gin binding strings. A binding value may name another run's model
    directory as `{run:LABEL}` (prompt tuning from an instruction-tuned model).
    """

    label: str
    series: str | None  # None: one series per evaluation label
    x: Any  # None: the evaluation label is the x value
    train: tuple[str, ...]
    evals: tuple[tuple[str, ...], ...] = ((),)
    eval_labels: tuple[str, ...] = ("",)


def _names():
    # Imported when runs are built, not with this module: `import tasks` registers every
    # collection (TensorFlow), and gin files name these builders long before any run.
    from tasks import names

    return names


def _cluster_eval(mixture: str) -> str:
    return f"EVAL_MIXTURES = ['{mixture}']"


# --- run builders, one per figure of the paper (gin-configurable) ---------------------------------

@gin.configurable
def num_clusters_runs(collection: str = gin.REQUIRED, counts: Sequence[int] = (1, 2, 3, 4, 5, 6, 7),
                      eval_clusters: Sequence[str] = gin.REQUIRED) -> list[Run]:
    """Held-out score vs the number of instruction-tuning clusters (in the collection's order)."""
    names = _names()
    evals = tuple(f"'{names.cluster_eval_mixture(collection, c)}'" for c in eval_clusters)
    return [Run(f"{n} clusters", "instruction tuning", n,
                (f"MIXTURE_OR_TASK_NAME = '{names.clusters_mixture(collection, n)}'",),
                ((f"EVAL_MIXTURES = [{', '.join(evals)}]",
                  f"TRAIN_MIXTURE = '{names.clusters_mixture(collection, n)}'"),)) for n in counts]


@gin.configurable
def num_templates_runs(collection: str = gin.REQUIRED, held_out: str = gin.REQUIRED,
                       counts: Sequence[int] = (1, 2, 4, 7, 10)) -> list[Run]:
    """Held-out score vs the number of templates per dataset used for instruction tuning."""
    names = _names()
    own = _cluster_eval(names.cluster_eval_mixture(collection, held_out))
    runs = []
    for n in counts:
        mixture = names.heldout_ntemplates_mixture(collection, held_out, n)
        runs.append(Run(f"{n} templates", "instruction tuning", n,
                        (f"MIXTURE_OR_TASK_NAME = '{mixture}'",),
                        ((own, f"TRAIN_MIXTURE = '{mixture}'"),)))
    return runs


@gin.configurable
def instructions_runs(collection: str = gin.REQUIRED, held_out: str = gin.REQUIRED) -> list[Run]:
    """Finetuning with instructions vs no template vs dataset name only; each evaluated with its
    own format and with instructions (the paper's figure)."""
    names = _names()
    instructions = _cluster_eval(names.cluster_eval_mixture(collection, held_out))
    runs = []
    for name, ablation in (("instructions", None), ("no template", "notemplate"),
                           ("dataset name", "dsname")):
        if ablation is None:
            mixture, own = names.heldout_mixture(collection, held_out), instructions
        else:
            mixture = names.heldout_ablation_mixture(collection, held_out, ablation)
            own = _cluster_eval(names.ablation_eval_mixture(collection, held_out, ablation))
        evals = [(own, f"TRAIN_MIXTURE = '{mixture}'")]
        labels = ["own format"]
        if ablation is not None:
            evals.append((instructions, f"TRAIN_MIXTURE = '{mixture}'"))
            labels.append("instructions")
        runs.append(Run(name, None, name, (f"MIXTURE_OR_TASK_NAME = '{mixture}'",),
                        tuple(evals), tuple(labels)))
    return runs


@gin.configurable
def fewshot_runs(collection: str = gin.REQUIRED, held_out: str = gin.REQUIRED,
                 shots: Sequence[int] = (0, 1, 3, 5)) -> list[Run]:
    """Zero-shot vs few-shot evaluation of one instruction-tuned checkpoint."""
    names = _names()
    mixture = names.heldout_mixture(collection, held_out)
    evals = tuple((_cluster_eval(names.fewshot_eval_mixture(collection, held_out, k)),
                   f"TRAIN_MIXTURE = '{mixture}'") for k in shots)
    return [Run("instruction tuned", "instruction tuned", None, (f"MIXTURE_OR_TASK_NAME = '{mixture}'",),
                evals, tuple(f"{k}-shot" for k in shots))]


@gin.configurable
def scale_runs(collection: str = gin.REQUIRED, held_out: str = gin.REQUIRED,
               sizes: Sequence[tuple[str, Sequence[str]]] = gin.REQUIRED) -> list[Run]:
    """Held-out score vs model size, with and without instruction tuning. `sizes` pairs a name
    with gin bindings for that size; "without" evaluates the base (INIT_CHECKPOINT when given,
    else the untrained initialisation: there is no pretrained model offline)."""
    names = _names()
    mixture = names.heldout_mixture(collection, held_out)
    evals = ((_cluster_eval(names.cluster_eval_mixture(collection, held_out)),
              f"TRAIN_MIXTURE = '{mixture}'"),)
    runs = []
    for i, (name, bindings) in enumerate(sizes):
        size = tuple(bindings) + (f"MIXTURE_OR_TASK_NAME = '{mixture}'",)
        runs.append(Run(f"{name} tuned", "instruction tuned", name, size, evals))
        runs.append(Run(f"{name} base", "no instruction tuning", name,
                        size + ("TRAIN_STEPS = 0",), evals))
    return runs


@gin.configurable
def prompt_tuning_runs(collection: str = gin.REQUIRED, held_out: str = gin.REQUIRED,
                       prompt_task: str = gin.REQUIRED,
                       prompt_bindings: Sequence[str] = ()) -> list[Run]:
    """Prompt tuning (on `prompt_task`, a held-out cluster's training task) of a frozen model
    without instruction tuning vs of the instruction-tuned model."""
    names = _names()
    mixture = names.heldout_mixture(collection, held_out)
    evals = ((_cluster_eval(names.cluster_eval_mixture(collection, held_out)),
              f"TRAIN_MIXTURE = '{prompt_task}'"),)
    tuned = Run("instruction tuned", "base", "instruction tuned",
                (f"MIXTURE_OR_TASK_NAME = '{mixture}'",), evals)
    untuned = Run("untuned", "base", "untuned", ("TRAIN_STEPS = 0",), evals)
    prompt = lambda base: tuple(prompt_bindings) + (  # noqa: E731
        "include 'runs/prompt_tune.gin'", f"BASE_CHECKPOINT = '{{run:{base}}}'",
        f"MIXTURE_OR_TASK_NAME = '{prompt_task}'")
    return [tuned, untuned,
            Run("prompt on untuned", "prompt tuning", "untuned", prompt("untuned"), evals),
            Run("prompt on instruction tuned", "prompt tuning", "instruction tuned",
                prompt("instruction tuned"), evals)]


@gin.configurable
def experiment(name: str = gin.REQUIRED, runs: Sequence[Run] = gin.REQUIRED,
               x_label: str = "", output_dir: str | None = None) -> dict:
    return {"name": name, "runs": list(runs), "x_label": x_label, "output_dir": output_dir}


# --- the driver -------------------------------------------------------------------------------

def config_key(files: Sequence[str], bindings: Sequence[str],
               search_paths: Sequence[str]) -> str:
    """A short hash of the fully parsed gin config of `files` + `bindings`."""
    from flan_jax import config

    config.parse_gin(files, bindings, search_paths, finalize=False,
                     imports=import_tasks_if_read)
    return hashlib.sha1(gin.config_str().encode()).hexdigest()[:10]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _resolve(bindings: Sequence[str], run_dirs: dict[str, epath.Path]) -> list[str]:
    out = []
    for b in bindings:
        for label, d in run_dirs.items():
            b = b.replace(f"{{run:{label}}}", str(d))
        out.append(b)
    return out


def _split_includes(bindings: Sequence[str]) -> tuple[list[str], list[str]]:
    """`include 'x.gin'` entries of a run become extra gin files."""
    files = [b.split("'")[1] for b in bindings if b.startswith("include ")]
    return files, [b for b in bindings if not b.startswith("include ")]


def held_out_score(report: dict) -> float:
    clusters = report["clusters"]
    held = [r["score"] for r in clusters.values() if r["held_out"]]
    return float(np.mean(held if held else [r["score"] for r in clusters.values()]))


def run_experiment(experiment_file: str, user_bindings: Sequence[str] = (),
                   search_paths: Sequence[str] = ()) -> dict:
    from flan_jax import config

    config.parse_gin([experiment_file], user_bindings, search_paths,
                     imports=import_tasks_if_read)
    spec = experiment()
    # relative stays relative (as before); a bucket URL stays a URL
    out = epath.Path(spec["output_dir"] or f"experiments/{spec['name']}")
    paths.ensure_dir(out)
    run_dirs: dict[str, epath.Path] = {}
    rows = []
    for i, run in enumerate(spec["runs"], 1):
        extra_files, train_bindings = _split_includes(_resolve(run.train, run_dirs))
        train_files = [experiment_file, *extra_files]
        train_bindings = [*user_bindings, *train_bindings]
        # The run's directory is named by its whole resolved config: changing any binding (a
        # command-line --gin.X, or the experiment file) trains anew instead of reusing.
        key = config_key(train_files, train_bindings + ["MODEL_DIR = ''"], search_paths)
        run_dir = out / f"{_slug(run.label)}_{key}"
        run_dirs[run.label] = run_dir
        print(f"== [{i}/{len(spec['runs'])}] {spec['name']}: {run.label} ({run_dir}) ==",
              flush=True)
        if not (run_dir / "DONE").exists():
            config.parse_gin(train_files, train_bindings + [f"MODEL_DIR = '{run_dir}'"],
                             search_paths, imports=import_tasks_if_read)
            from flan_jax.train import train

            train()
            paths.write_text_atomic(run_dir / "DONE", gin.config_str())
        else:
            print("   trained already: reusing it", flush=True)
        for eval_bindings, eval_label in zip(run.evals, run.eval_labels):
            eval_files = [experiment_file, "runs/eval.gin"]
            eval_bindings = [*user_bindings, *_resolve(eval_bindings, run_dirs),
                             f"CHECKPOINT_PATH = '{run_dir}'"]
            key = config_key(eval_files, eval_bindings + ["evaluate.output_dir = ''"],
                             search_paths)
            eval_dir = run_dir / f"eval_{key}"
            report_path = eval_dir / "report.json"
            if not report_path.exists():
                config.parse_gin(eval_files, eval_bindings + [
                    f"evaluate.output_dir = '{eval_dir}'"], search_paths)
                from flan_jax.evaluate import evaluate

                evaluate()
            report = json.loads(report_path.read_text())
            rows.append({"run": run.label + (f" / {eval_label}" if eval_label else ""),
                         "series": run.series or f"eval: {eval_label}",
                         "x": run.x if run.x is not None else eval_label,
                "eval": eval_label, "score": held_out_score(report),
                "held_out_clusters": report["held_out_clusters"],
                "model_dir": str(run_dir), "report": str(report_path)})
    results = {"experiment": spec["name"], "x_label": spec["x_label"], "rows": rows}
    paths.write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    table = results_markdown(results)
    paths.write_text_atomic(out / "results.md", table)
    plot(results, out / "results.png")
    print(table)
    print(f"Results: {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return results


def results_markdown(results: dict) -> str:
    lines = [f"### {results['experiment']}", "",
             f"| run | series | {results['x_label'] or 'x'} | held-out score |", "|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['run']} | {r['series']} | {r['x']} | {r['score']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    series: dict[str, list] = {}
    for r in results["rows"]:
        series.setdefault(r["series"], []).append((r["x"], r["score"]))
    xs = list(dict.fromkeys(str(r["x"]) for r in results["rows"]))
    numeric = all(isinstance(r["x"], (int, float)) for r in results["rows"])
    for name, points in series.items():
        px = [p[0] if numeric else xs.index(str(p[0])) for p in points]
        ax.plot(px, [p[1] for p in points], marker="o", label=name)
    if not numeric:
        ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel(results["x_label"] or "run")
    ax.set_ylabel("held-out score")
    ax.set_title(results["experiment"])
    ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    paths.write_bytes_atomic(path, image.getvalue())
    plt.close(fig)


def main(argv: list[str]) -> int:
    from flan_jax import GIN_DIR, config

    def positional(parser) -> None:
        parser.add_argument("action", choices=["run", "list"])
        parser.add_argument("name", nargs="?",
                            help="experiment: gin/experiments/NAME.gin or a file")

    try:  # each run parses its own gin config: here only the flags
        args = config.parse_command("flan-jax experiment", argv, description=__doc__,
                                    add_arguments=positional, parse=False)
    except config.GinConfigError as e:
        print(f"flan-jax experiment: {e}", file=sys.stderr)
        return 2
    available = sorted(p.stem for p in (GIN_DIR / "experiments").glob("*.gin")
                       if not p.stem.startswith("base"))
    if args.action == "list" or not args.name:
        print("\n".join(available))
        return 0 if args.action == "list" else 2
    name = args.name if args.name.endswith(".gin") else f"experiments/{args.name}.gin"
    logging.basicConfig(level=logging.WARNING)
    try:
        run_experiment(name, args.gin_bindings, args.gin_search_paths)
    except config.GinConfigError as e:
        print(f"flan-jax experiment: {e} (available: {', '.join(available)})", file=sys.stderr)
        return 2
    return 0
