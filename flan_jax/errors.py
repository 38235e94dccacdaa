"""Errors a user can act on, and the exit codes every command uses.

Exit codes (a scheduler can act on them):
  0    finished: the command did all it was asked
  1    failure: the run stopped on a problem in the run or its files (a NaN loss, a damaged
       checkpoint); rerunning as is will not help until it is fixed
  2    user error: a flag, gin binding, path or input is wrong; nothing was written
  143  preempted (SIGTERM, 128 + 15): the run saved what it had (a training step, infer's lines)
       or had not started writing; rerun the same command to resume
Commands print errors in one line (no traceback).
"""

import contextlib
import os
import sys

EXIT_FINISHED = 0
EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 143


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a gin binding, a path): exit code 2."""


class TrainingError(Exception):
    """Stops a run with a message for the user (NaN loss, incompatible checkpoint, ...)."""


class Preempted(BaseException):
    """SIGTERM arrived: the command stops (after saving, where it was running) and exits 143.
    A BaseException, so that no `except Exception` on the way swallows it."""


def message(error: BaseException) -> str:
    """The user-facing line of an error: its first argument, without the "In call to
    configurable ..." note gin appends to exceptions raised inside configurables."""
    text = str(error.args[0]) if error.args else str(error)
    return text.split("\n  In call to configurable")[0].strip()


PREEMPTED_MESSAGE = ("stopped by SIGTERM; what was saved is kept (nothing, if it had not started "
                     "writing): rerun the same command to resume.")


_ON_STOP: list = []  # what a SIGTERM outside the training loop releases (the MODEL_DIR lock)
_STDERR_FD: int | None = None  # the process's real stderr, duplicated before TensorFlow imports


def stop_on_sigterm(command: str) -> None:
    """From here on a SIGTERM stops the command at once: it releases what it holds (the
    callbacks of `release_on_sigterm`, e.g. the MODEL_DIR lock), prints one line and exits 143.
    The trainer replaces this handler with its own (finish the step, save, raise `Preempted`)
    while its loop runs.

    It exits with `os._exit` rather than raising: a Python signal handler runs in whatever frame
    the main thread is in, and an exception raised there is swallowed in a garbage-collector
    callback or a `__del__` (the command then ran on and exited 0) or unwinds through
    TensorFlow's and XLA's half-initialised C++ state while they import (a segmentation fault at
    exit). Nothing is half-written by exiting here: files are written atomically (a temporary
    name, then a rename), orbax checkpoints too, and `infer` resumes after its last whole line."""
    import signal
    import threading

    def stop(signum, frame):
        for release in reversed(_ON_STOP):
            try:
                release()
            except Exception:  # noqa: BLE001 - exiting anyway; the next run explains a stale lock
                pass
        for stream in (sys.stdout, sys.stderr):
            try:  # fails when the signal came while this stream was being written
                stream.flush()
            except Exception:  # noqa: BLE001, S110
                pass
        # straight to the real stderr's descriptor: the buffered stream may be mid-write
        # (reentrant), and fd 2 is a temporary file while TensorFlow imports (cli.py)
        os.write(stderr_fd, f"flan-jax {command}: {PREEMPTED_MESSAGE}\n".encode())
        os._exit(EXIT_PREEMPTED)

    global _STDERR_FD
    if threading.current_thread() is threading.main_thread():
        if _STDERR_FD is None:  # once a process (commands run in-process by tests call again)
            _STDERR_FD = os.dup(2)
        stderr_fd = _STDERR_FD
        signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def release_on_sigterm(release):
    """Within the block, a SIGTERM outside the training loop calls `release()` before exiting."""
    _ON_STOP.append(release)
    try:
        yield
    finally:
        _ON_STOP.remove(release)
