"""Errors a user can act on. Commands print them in one line (no traceback) and exit non-zero."""


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a gin binding, a path): exit code 2."""


class TrainingError(Exception):
    """Stops a run with a message for the user (NaN loss, incompatible checkpoint, ...)."""


def message(error: BaseException) -> str:
    """The user-facing line of an error: its first argument, without the "In call to
    configurable ..." note gin appends to exceptions raised inside configurables."""
    text = str(error.args[0]) if error.args else str(error)
    return text.split("\n  In call to configurable")[0].strip()
