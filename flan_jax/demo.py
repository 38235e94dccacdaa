"""`flan-jax demo`: a tiny T5 trained and evaluated zero-shot on the CPU, in one of two forms.

`make demo` (runs/demo.gin): one stage, instruction tuning from scratch on the synthetic suite
with NLI held out, then every cluster evaluated zero-shot (held-out cluster marked).

`flan-jax demo --gin_file=runs/miniworld_demo.gin`: the FLAN recipe on the miniworld. Stage 0
pretrains by span corruption on scene documents (no instruction or answer words): the "untuned"
model. Stage 1 instruction-tunes it on every cluster but the held-out one; the no-template
ablation runs stage 1 on the raw fields instead. All three are evaluated on the held-out cluster
by rank classification over its OPTIONS (the mean of the last `checkpoints_averaged`
checkpoints), printed with chance and the shortcut baselines, and written to
`OUTPUT_DIR/summary.json`; the tuned model is also evaluated on every cluster (table and chart in
`OUTPUT_DIR/tuned/eval/`). Re-running skips finished trainings and evaluations.

Any `--gin.X=V` binding is passed to training (both stages), e.g. `--gin.TRAIN_STEPS=100`;
`--gin.demo_settings.output_dir="'/tmp/demo'"` moves the miniworld demo's outputs.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Callable, Sequence

import gin

from flan_jax import paths

EVAL_GIN = ["runs/eval.gin", "hardware/cpu.gin"]
# `make demo`: the one-stage synthetic demo (runs/demo.gin). The two-stage miniworld demo
# (runs/miniworld_demo.gin) runs with `flan-jax demo --gin_file=runs/miniworld_demo.gin`.
DEFAULT_GIN = "runs/demo.gin"


@gin.configurable
def demo_settings(output_dir: str = "demo_runs/miniworld",
                  pretrain_gin: str = "runs/miniworld_pretrain.gin",
                  tune_gin: str = "runs/miniworld.gin", collection: str = "miniworld",
                  held_out: str = "nli", eval_examples: int = 150,
                  checkpoints_averaged: int = 2, max_input_length: int = 64,
                  shortcut_baselines: Callable[[int], dict] | None = None) -> dict:
    return dict(locals())


def _train(gin_file: str, bindings: Sequence[str], model_dir: str) -> int:
    """Trains (or resumes, or skips) one stage; returns its data seed."""
    from flan_jax import checkpoints, config
    from flan_jax.data import import_tasks_if_read
    from flan_jax.train import train

    config.parse_gin([gin_file], [*bindings, f"MODEL_DIR = '{model_dir}'"],
                     imports=import_tasks_if_read)
    seed = int(gin.query_parameter("DataConfig.seed"))
    last = checkpoints.latest_step_dir(model_dir)
    done = int(last.name) if last is not None else None
    if done is not None and done >= int(gin.query_parameter("%TRAIN_STEPS")):
        print(f"   trained already: {model_dir} (step {done})", flush=True)
    else:
        train()
    if not (paths.as_path(model_dir) / "params").exists():  # the base of the next stage
        _, params, _ = checkpoints.load_model_dir(model_dir)
        checkpoints.save_params(model_dir, params)
    return seed


def _eval_bindings(s: dict, model_dir: str, mixtures: Sequence[str], train_mixture: str):
    return [f"CHECKPOINT_PATH = '{model_dir}'", f"EVAL_MIXTURES = {list(mixtures)!r}",
            f"TRAIN_MIXTURE = '{train_mixture}'",
            f"evaluate.max_examples_per_task = {s['eval_examples']}",
            f"evaluate.max_input_length = {s['max_input_length']}",
            "evaluate.max_new_tokens = 8"]


def held_out_scores(s: dict, model_dir: str, train_mixture: str) -> dict[int, float]:
    """The held-out cluster's rank-classification score at each of the last checkpoints."""
    from flan_jax import checkpoints, config
    from flan_jax.evaluate import evaluate
    from flan_jax.experiments import held_out_score
    from flan_jax.placement import Placement
    from tasks import names

    root = paths.as_path(model_dir) / checkpoints.STEPS_DIR
    steps = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())
    rank = names.cluster_rank_mixture(s["collection"], s["held_out"])
    scores = {}
    for step in steps[-s["checkpoints_averaged"]:]:
        parent = paths.as_path(model_dir) / "eval_held_out"
        out = parent / f"step_{step}"  # where evaluate writes in-memory parameters' reports
        if not (out / "report.json").exists():
            config.parse_gin(EVAL_GIN, _eval_bindings(s, model_dir, [rank], train_mixture))
            placement = Placement.from_gin()
            cfg = checkpoints.read_model_config(paths.as_path(model_dir) / checkpoints.MODEL_GIN)
            params = checkpoints.restore_params_from_step(
                root / str(step), cfg, checkpoints.sharded_model_params(cfg, placement))
            evaluate(params=params, step=step, output_dir=str(parent),
                     held_out_clusters=[s["held_out"]])
        report = json.loads((out / "report.json").read_text())
        scores[step] = held_out_score(report)
    return scores


def _every_cluster(s: dict, model_dir: str, train_mixture: str) -> dict:
    from flan_jax import config
    from flan_jax.evaluate import evaluate
    from tasks import catalogue

    done = paths.as_path(model_dir) / "eval" / "report.json"
    if done.exists():
        return json.loads(done.read_text())
    info = catalogue.collection_info(s["collection"])
    mixtures = [info.rank_mixtures[c] for c in info.clusters if c in info.rank_mixtures]
    config.parse_gin(EVAL_GIN, _eval_bindings(s, model_dir, mixtures, train_mixture))
    return evaluate()


def summary_text(summary: dict) -> str:
    lines = [f"Held-out cluster `{summary['heldout_cluster']}`: rank classification over its "
             f"OPTIONS, mean of the last {summary['checkpoints_averaged']} checkpoints, "
             f"{summary['eval_examples']} examples a template",
             f"  chance                   {summary['chance']:5.1f}"]
    for key in ("untuned", "tuned", "no_template"):
        lines.append(f"  {key:<24} {summary[key]:5.1f}   (per checkpoint: "
                     + ", ".join(f"{v:.1f}" for v in summary["per_checkpoint"][key].values())
                     + ")")
    for name, v in summary.get("shortcut_baselines", {}).items():
        lines.append(f"  shortcut {name:<15} {v:5.1f}")
    return "\n".join(lines)


def run_demo(bindings: Sequence[str]) -> dict:
    """Both stages, the ablation and the evaluations; returns (and writes) the summary."""
    from tasks import names

    s = demo_settings()
    out, c, held = s["output_dir"], s["collection"], s["held_out"]
    dirs = {"untuned": f"{out}/base", "tuned": f"{out}/tuned", "no_template": f"{out}/no_template"}
    tuned_mixture = names.heldout_mixture(c, held)
    ablation_mixture = names.heldout_ablation_mixture(c, held, "notemplate")
    print(f"== 1/4 Stage 0: span-corruption pretraining of the base in {dirs['untuned']} ==",
          flush=True)
    _train(s["pretrain_gin"], bindings, dirs["untuned"])
    base = [f"INIT_CHECKPOINT = '{dirs['untuned']}'"]
    print(f"== 2/4 Stage 1: instruction tuning on {tuned_mixture} ==", flush=True)
    seed = _train(s["tune_gin"], [*bindings, *base,
                                  f"MIXTURE_OR_TASK_NAME = '{tuned_mixture}'"], dirs["tuned"])
    print(f"== 3/4 No-template ablation: stage 1 on {ablation_mixture} ==", flush=True)
    _train(s["tune_gin"], [*bindings, *base, f"MIXTURE_OR_TASK_NAME = '{ablation_mixture}'"],
           dirs["no_template"])
    print(f"== 4/4 Evaluation: held-out `{held}` (rank classification), every cluster ==",
          flush=True)
    per_checkpoint = {k: held_out_scores(s, d, tuned_mixture) for k, d in dirs.items()}
    report = _every_cluster(s, dirs["tuned"], tuned_mixture)
    summary = {"heldout_cluster": held, "chance": report["clusters"][held].get("chance"),
               **{k: sum(v.values()) / len(v) for k, v in per_checkpoint.items()},
               "per_checkpoint": per_checkpoint,
               "checkpoints_averaged": s["checkpoints_averaged"],
               "eval_examples": s["eval_examples"], "seeds": [seed],
               "model_dirs": dirs, "clusters": {k: v["score"] for k, v in
                                                report["clusters"].items()}}
    if s["shortcut_baselines"] is not None:
        summary["shortcut_baselines"] = s["shortcut_baselines"](s["eval_examples"])
    paths.write_text_atomic(paths.as_path(out) / "summary.json",
                            json.dumps(summary, indent=2) + "\n")
    return summary


def synthetic_demo() -> int:
    """The one-stage demo of runs/demo.gin: a tiny T5 instruction-tuned from scratch on the
    synthetic suite, then every cluster evaluated zero-shot (held-out cluster marked)."""
    from flan_jax import config
    from flan_jax.evaluate import evaluate
    from flan_jax.train import train

    model_dir = gin.query_parameter("%MODEL_DIR")
    mixture = gin.query_parameter("%MIXTURE_OR_TASK_NAME")
    print(f"== 1/2 Training a tiny T5 on {mixture} in {model_dir} ==", flush=True)
    train()
    print("== 2/2 Zero-shot evaluation on every cluster (held-out cluster marked) ==",
          flush=True)
    config.parse_gin(["runs/eval.gin"], [f"CHECKPOINT_PATH = '{model_dir}'",
                                         f"TRAIN_MIXTURE = '{mixture}'",
                                         "evaluate.max_examples_per_task = 50",
                                         # the lengths the demo trains at (runs/demo.gin)
                                         "evaluate.max_input_length = 128",
                                         "evaluate.max_new_tokens = 32"])
    evaluate()
    out = paths.as_path(model_dir) / "eval"
    print(f"Report: {out / 'report.json'}, table: {out / 'report.md'}, chart: "
          f"{out / 'clusters.png'}")
    return 0


def main(argv: list[str]) -> int:
    # Every module whose configurables a later stage parses is imported before gin is locked.
    from flan_jax import config, evaluate, experiments, placement  # noqa: F401
    from flan_jax.data import import_tasks_if_read

    try:
        args = config.parse_command("flan-jax demo", argv, default_files=[DEFAULT_GIN],
                                    description=__doc__, imports=import_tasks_if_read)
        logging.basicConfig(level=logging.WARNING)
        if not config.is_bound("demo_settings"):
            return synthetic_demo()
        summary = run_demo(args.gin_bindings)
    except config.GinConfigError as e:
        print(f"flan-jax demo: {e}", file=sys.stderr)
        return 2
    out = paths.as_path(summary["model_dirs"]["tuned"]) / "eval"
    print(summary_text(summary))
    print(f"Summary: {out.parent.parent / 'summary.json'}; every cluster: "
          f"{out / 'report.md'}, chart: {out / 'clusters.png'}")
    return 0
