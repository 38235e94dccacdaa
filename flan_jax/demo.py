"""`flan-jax demo` (what `make demo` runs): instruction-tune a tiny encoder-decoder on the
offline synthetic suite with the NLI cluster held out, then evaluate every cluster zero-shot and
print the table, held-out cluster marked. Re-running resumes (or skips) the finished training.

Any `--gin.X=V` binding is passed to training, e.g. `flan-jax demo --gin.TRAIN_STEPS=100`.
"""

from __future__ import annotations

import logging
import sys

from flan_jax import paths


def main(argv: list[str]) -> int:
    from flan_jax import config

    from flan_jax.data import import_tasks_if_read

    try:
        config.parse_command("flan-jax demo", argv, default_files=["runs/demo.gin"],
                             description=__doc__, imports=import_tasks_if_read)
    except config.GinConfigError as e:
        print(f"flan-jax demo: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    import gin

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
    from flan_jax.evaluate import evaluate

    evaluate()
    out = paths.as_path(model_dir) / "eval"
    print(f"Report: {out / 'report.json'}, table: {out / 'report.md'}, chart: "
          f"{out / 'clusters.png'}")
    return 0
