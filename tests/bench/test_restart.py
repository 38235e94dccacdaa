"""`bench restart` (flan_jax/bench/restart.py): the trainer command it launches is one the
trainer accepts, and its timer reads the resumed step's line and the exit, and names a failed
resume. The whole benchmark runs in tests/bench/test_cli.py (`make test-slow`)."""

import json
import sys

import gin
import pytest

from flan_jax import config
from flan_jax.bench import restart
from flan_jax.data import import_tasks_if_read


@pytest.mark.parametrize("source", ["seqio", "cache"])
def test_the_launched_command_parses_as_a_train_command(tmp_path, source):
    extra = [] if source == "seqio" else [
        "DataConfig.source='cache'", f"DataConfig.cache_dir='{tmp_path / 'cache'}'"]
    args = restart.train_args(tmp_path / "run", 11, extra)
    assert args[:4] == [sys.executable, "-m", "flan_jax.cli", "train"]
    config.parse_command("flan-jax train", args[4:], imports=import_tasks_if_read)
    assert gin.query_parameter("%TRAIN_STEPS") == 11
    assert gin.query_parameter("%MODEL_DIR") == str(tmp_path / "run")
    assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == restart.MIXTURE
    assert gin.query_parameter("train.checkpoint_every") == 1_000_000  # never saves in the run
    if source == "cache":
        assert gin.query_parameter("DataConfig.source") == "cache"


# Stands in for the trainer: writes the resumed step's metrics line, works on, then exits.
FAKE_TRAINER = """
import json, pathlib, sys, time
model_dir = pathlib.Path(sys.argv[1])
time.sleep(0.3)
with open(model_dir / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": int(sys.argv[2]), "loss": 1.0}) + "\\n")
time.sleep(1.0)
if sys.argv[3] == "fail":
    sys.exit("the restore went wrong")
"""


def _fake(monkeypatch, outcome):
    monkeypatch.setattr(restart, "train_args", lambda model_dir, steps, extra: [
        sys.executable, "-c", FAKE_TRAINER, str(model_dir), str(steps), outcome])


def test_the_timer_reads_the_resumed_steps_line_then_the_exit(tmp_path, monkeypatch):
    _fake(monkeypatch, "ok")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": 2.0}) + "\n")
    timing = restart.timed_resume(tmp_path, 4, [])
    # the line of step 5 (4 + 1) is written 0.3 s after launch at the earliest, the exit comes
    # 1 s after that at the earliest (lower bounds only: a loaded machine only delays)
    assert 0.3 <= timing["first_step_s"] < timing["exit_s"]
    assert timing["exit_s"] >= 1.3


def test_a_failed_resume_is_named_with_its_stderr(tmp_path, monkeypatch):
    _fake(monkeypatch, "fail")
    with pytest.raises(RuntimeError, match="resuming at 4 failed:\n.*the restore went wrong"):
        restart.timed_resume(tmp_path, 4, [])
