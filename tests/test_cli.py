"""The `flan-jax` entry point."""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_tensorflow_start_up_lines_do_not_reach_the_console():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "flan_jax.cli", "tasks", "list", "--mixtures",
                           "--collection", "synthetic"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "synthetic_heldout_nli_train" in proc.stdout
    assert proc.stderr == ""
