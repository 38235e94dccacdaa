"""flan_jax/errors.py: the SIGTERM handler commands run under outside the training loop."""

import os
import subprocess
import sys

from flan_jax import errors
from tests.fixtures import REPO

# SIGTERM delivered while a garbage-collector callback runs: a handler that raised there had its
# exception swallowed ("Exception ignored in ...") and the command ran on and exited 0.
_IN_A_GC_CALLBACK = """
import gc, os, signal
from flan_jax import errors
errors.stop_on_sigterm("train")
def kill(phase, info):
    if phase == "start":
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecodes for the handler to run between
with errors.release_on_sigterm(lambda: print("left its block", flush=True)):
    pass  # a block's callback is dropped when the block ends
gc.callbacks.append(kill)
with errors.release_on_sigterm(lambda: print("released", flush=True)):
    gc.collect()
    print("ran on")
"""


def test_sigterm_anywhere_releases_what_is_held_and_exits_143_in_one_line():
    proc = subprocess.run([sys.executable, "-c", _IN_A_GC_CALLBACK], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        errors.EXIT_PREEMPTED, "released\n", f"flan-jax train: {errors.PREEMPTED_MESSAGE}\n")

