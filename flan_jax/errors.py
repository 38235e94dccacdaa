"""Errors a user can act on. Commands print them in one line (no traceback) and exit non-zero."""


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a gin binding, a path): exit code 2."""


class TrainingError(Exception):
    """Stops a run with a message for the user (NaN loss, incompatible checkpoint, ...)."""
