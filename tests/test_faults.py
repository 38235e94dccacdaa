"""Faults on disk and resumes end in one line (issue 29): a damaged checkpoint in infer, eval and
convert to-hf (as train already did), a step without state/_METADATA, a resume whose
TRAIN_STEPS it has already passed, and training from a data cache on another mixture after gin
is locked."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import flan_jax.convert.cli  # noqa: F401 - commands register configurables before gin locks
import flan_jax.evaluate  # noqa: F401
from flan_jax import cli
from tests.fixtures import REPO, TINY
from tests.fixtures import snapshot as _snapshot
from tests.fixtures import train_main as _main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training run's directory with one saved step: TRAIN_STEPS = 0 saves the
    initialisation as step 0 without compiling a train step (seconds instead of a minute)."""
    from flan_jax import config
    from flan_jax.train import train

    run = tmp_path_factory.mktemp("faults") / "run"
    config.parse_gin(["runs/demo.gin"], TINY + [f"MODEL_DIR = '{run}'", "TRAIN_STEPS = 0"])
    train()
    return run


def _copy(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run, run / "checkpoints" / "0"


def _damage(step_dir):
    """Cuts every array data file of the step (parameters and optimizer state) short."""
    for path in (step_dir / "state").rglob("d/*"):
        if path.stat().st_size > 1000:
            path.write_bytes(path.read_bytes()[:1000])


def _cli(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_damaged_checkpoint_is_one_line_in_infer_eval_and_convert(trained, tmp_path, capsys):
    run, step_dir = _copy(trained, tmp_path)
    _damage(step_dir)
    before = _snapshot(run)
    src, out, hf = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "hf"
    src.write_text(json.dumps({"inputs": "hello"}) + "\n")

    def expected(command, error):
        return (f"flan-jax {command}: the checkpoint {step_dir} is damaged or incomplete "
                f"({error} while reading it). Delete that step directory (rm -r {step_dir}) to "
                "resume from the previous saved step, or use another MODEL_DIR.\n")

    code, stdout, err = _cli(capsys, "infer", "--mode", "predict", "--checkpoint", str(run),
                             "--input_file", str(src), "--output_file", str(out))
    assert (code, stdout) == (1, "") and err.endswith(expected("infer", "ValueError"))
    assert err.count("\n") == 1
    code, stdout, err = _cli(capsys, "eval", f"--gin.CHECKPOINT_PATH='{run}'",
                             "--gin.EVAL_MIXTURES=['synthetic_fact_nli_t0_rank']")
    assert (code, stdout, err) == (1, "", expected("eval", "ValueError"))
    code, stdout, err = _cli(capsys, "convert", "to-hf", "--src", str(run), "--dst", str(hf))
    assert (code, stdout, err) == (1, "", expected("convert", "ValueError"))
    assert _snapshot(run) == before and not out.exists() and not hf.exists()


def test_a_step_without_its_state_metadata_stops_train_in_one_line(trained, tmp_path, capsys):
    run, step_dir = _copy(trained, tmp_path)
    (step_dir / "state" / "_METADATA").unlink()
    before = _snapshot(run)
    code, out, err = _main(capsys, run, "TRAIN_STEPS = 4")
    assert (code, out) == (1, "") and err.splitlines()[-1] == (
        f"flan-jax train: the checkpoint {step_dir} is damaged or incomplete (FileNotFoundError "
        f"while reading it). Delete that step directory (rm -r {step_dir}) to resume from the "
        "previous saved step, or use another MODEL_DIR.")
    assert _snapshot(run) == before


def test_a_resume_already_past_train_steps_says_so_and_writes_nothing(trained, tmp_path,
                                                                      capsys):
    run, step_dir = _copy(trained, tmp_path)
    step_dir.rename(step_dir.parent / "2")  # as if saved at step 2: the check reads the names
    before = _snapshot(run)
    for steps in (1, 2):
        code, out, err = _main(capsys, run, f"TRAIN_STEPS = {steps}")
        assert (code, out) == (0, "") and err.splitlines()[-1] == (
            f"flan-jax train: {run} already holds step 2, at or past TRAIN_STEPS={steps}: "
            "nothing to train. Raise TRAIN_STEPS to continue it, or use another MODEL_DIR for a "
            "new run.")
        assert _snapshot(run) == before


CACHE_CHECK = """
import sys
from flan_jax import config, data
from flan_jax.errors import UserError
config.parse_gin(["runs/demo.gin"], ["DataConfig.source = 'cache'",
                 f"DataConfig.cache_dir = '{sys.argv[1]}'",
                 "TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 16}",
                 "MIXTURE_OR_TASK_NAME = 'synthetic_clusters1_train'"])
assert "tasks" not in sys.modules  # a cache run: the registry is imported only when needed
cfg = data.DataConfig()
print(sorted(data.open_source(cfg).backend.rates))  # every task of this mixture is cached
try:
    data.open_source(data.DataConfig(**{**cfg.__dict__,
                                        "mixture_or_task_name": "synthetic_clusters3_train"}))
except UserError as e:
    print(e)
"""


def test_a_cache_run_on_another_mixture_resolves_it_after_gin_is_locked(tmp_path):
    """Resolving a mixture the cache does not name imports the task registry after gin is
    locked; that used to end in gin's RuntimeError. A fresh process, since this one has
    imported the registry long ago."""
    from flan_jax.data import cache_writer

    plan = cache_writer.Plan("synthetic_clusters2_train", "train", {"inputs": 64, "targets": 16},
                             4, 16, "flan-jax data cache synthetic_clusters2_train --out DIR")
    info = cache_writer.build_cache(plan, str(tmp_path), show_progress=False)
    import seqio

    wanted = sorted(t.name for t in seqio.get_mixture_or_task("synthetic_clusters1_train").tasks)
    extra = sorted(t.name for t in seqio.get_mixture_or_task("synthetic_clusters3_train").tasks
                   if t.name not in info.tasks)
    proc = subprocess.run([sys.executable, "-c", CACHE_CHECK, str(tmp_path)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        str(wanted),
        f"the cache {tmp_path} holds 'synthetic_clusters2_train' (4 tasks); "
        f"'synthetic_clusters3_train' also needs {len(extra)} task(s) it does not hold: "
        f"{', '.join(extra)}. Build a cache of 'synthetic_clusters3_train' (`flan-jax data cache "
        "synthetic_clusters3_train --out DIR`)."]
