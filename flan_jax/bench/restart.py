"""`bench restart`: seconds from launching `flan-jax train` to the end of its first step when it
resumes at an early and at a late step, for the seqio path and the cache path.

For each source the run trains (t5_tiny, the synthetic suite, 8 x 64+16, Adafactor at a
constant rate) to the early step, is copied, then trains on to the late step. Each is then
resumed for one step (three times, each from a fresh copy; the median is kept) in a fresh
process, timed from launch to the step's line in
`metrics.jsonl` (imports, gin, restore, compile, the data pipeline reaching its position) and to
the process's end. The seqio path re-reads and skips every batch before the checkpoint; the cache
path restores the Grain iterator state, so its time should not grow with the step.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from flan_jax.bench.common import Settings, say

STEPS = (10, 2000)
QUICK_STEPS = (2, 4)
MIXTURE = "synthetic_heldout_nli_train"
LENGTHS = {"inputs": 64, "targets": 16}


def train_args(model_dir: pathlib.Path, steps: int, extra: list[str]) -> list[str]:
    bindings = [f"MODEL_DIR='{model_dir}'", f"TRAIN_STEPS={steps}", "BATCH_SIZE=8",
                f"MIXTURE_OR_TASK_NAME='{MIXTURE}'", f"TASK_FEATURE_LENGTHS={LENGTHS}",
                "VOCAB_SIZE=259", "train.checkpoint_every=1000000", "train.log_every=1",
                "train.truncation_sample=0", *extra]
    return [sys.executable, "-m", "flan_jax.cli", "train", "--gin_file=models/t5_tiny.gin",
            "--gin_file=runs/train.gin", "--gin_file=hardware/cpu.gin",
            *[f"--gin.{b}" for b in bindings]]


def _env() -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(args: list[str]) -> None:
    done = subprocess.run(args, env=_env(), capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).resolve().parents[2])
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:6])} ... failed:\n{done.stderr[-2000:]}")


def timed_resume(model_dir: pathlib.Path, step: int, extra: list[str]) -> dict:
    """Launch -> the resumed first step's metrics line, and -> exit."""
    metrics = model_dir / "metrics.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen(train_args(model_dir, step + 1, extra), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=pathlib.Path(__file__).resolve().parents[2])
    first = None
    while proc.poll() is None:
        if first is None and metrics.exists() and any(
                json.loads(line).get("step") == step + 1
                for line in metrics.read_text().splitlines() if line.strip()):
            first = time.perf_counter() - t0
        time.sleep(0.05)
    total = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"resuming at {step} failed:\n{proc.stderr.read()[-2000:]}")
    return {"first_step_s": first if first is not None else total, "exit_s": total}


def bench_restart(models, s: Settings) -> list[dict]:
    from flan_jax.data import cache_writer

    steps = QUICK_STEPS if s.quick else STEPS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cache = tmp / "data_cache"
        cache_writer.build_cache(cache_writer.Plan(
            MIXTURE, "train", dict(LENGTHS), 20 if s.quick else 3000, 10_000, "bench restart"),
            str(cache), show_progress=False)
        sources = {"seqio": [],
                   "cache": ["DataConfig.source='cache'", f"DataConfig.cache_dir='{cache}'"]}
        for source, extra in sources.items():
            run = tmp / f"run_{source}"
            _run(train_args(run, steps[0], extra))
            shutil.copytree(run, tmp / f"{source}_at_{steps[0]}")
            _run(train_args(run, steps[1], extra))
            shutil.move(run, tmp / f"{source}_at_{steps[1]}")
            row = {"source": source, "family": "encoder_decoder", "model": "t5_tiny",
                   "batch": 8, "lengths": dict(LENGTHS)}
            for step in steps:  # the median of `repeat` resumes, each of a fresh copy
                timings = []
                for _ in range(3 if not s.quick else 1):
                    copy = tmp / "resumed"
                    shutil.copytree(tmp / f"{source}_at_{step}", copy)
                    timings.append(timed_resume(copy, step, extra))
                    shutil.rmtree(copy)
                for key in ("first_step_s", "exit_s"):
                    row[f"{key}_at_{step}"] = float(np.median([t[key] for t in timings]))
                row[f"first_step_s_all_at_{step}"] = [t["first_step_s"] for t in timings]
            say(f"restart {source}: launch -> first step " + ", ".join(
                f"{row[f'first_step_s_at_{x}']:.1f} s at step {x}" for x in steps))
            rows.append(row)
    return rows
