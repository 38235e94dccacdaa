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


def stop_on_sigterm() -> None:
    """From here on SIGTERM raises `Preempted` (in the main thread), so a command stopped while
    it starts up also releases what it holds (the MODEL_DIR lock) and exits 143; the trainer
    replaces this handler with its own (save, then raise) while its loop runs."""
    import signal
    import threading

    def stop(signum, frame):
        raise Preempted(PREEMPTED_MESSAGE)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
