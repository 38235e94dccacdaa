"""Checks of what a user hands a command, made before anything is opened for writing.

Each raises `UserError` with one line saying what is wrong and what to do: an output file that
is the input file, feature lengths or sizes that cannot work, a finished data cache asked to be
something else.
"""

from __future__ import annotations

import os
from typing import Mapping

from flan_jax import paths
from flan_jax.errors import UserError

FEATURES = ("inputs", "targets")


def check_output_is_not_input(input_file: str, output_file: str, flag: str = "--output_file",
                              ) -> None:
    """Refuses an output that is the input: the same name, a symbolic or hard link to it (same
    device and inode), or the same object on a bucket. Opening it for writing would empty the
    input before a line of it is read."""
    same = False
    if paths.is_url(input_file) or paths.is_url(output_file):
        same = os.fspath(paths.as_path(input_file)) == os.fspath(paths.as_path(output_file))
    else:
        try:
            same = os.path.samefile(input_file, output_file)
        except OSError:  # the output does not exist yet (or cannot be looked at): not the input
            same = os.path.realpath(input_file) == os.path.realpath(output_file)
    if same:
        raise UserError(f"{flag} {output_file} is the input file {input_file}: writing it would "
                        f"destroy the input. Choose another {flag}.")


def check_feature_lengths(lengths, name: str = "TASK_FEATURE_LENGTHS",
                          required: tuple[str, ...] = FEATURES) -> dict[str, int]:
    """`lengths` must map each of `required` (and nothing else) to a positive whole number;
    returns it as a plain dict."""
    example = ", ".join(f"'{k}': {n}" for k, n in zip(FEATURES, (512, 128)))
    if not isinstance(lengths, Mapping):
        raise UserError(f"{name}={lengths!r} is not a mapping: write it as {{{example}}}.")
    missing = [k for k in required if k not in lengths]
    unknown = [k for k in lengths if k not in FEATURES]
    bad = {k: v for k, v in lengths.items() if k in FEATURES and not (
        isinstance(v, int) and not isinstance(v, bool) and v > 0)}
    if missing or unknown or bad:
        what = "; ".join(part for part in (
            f"missing {', '.join(repr(k) for k in missing)}" if missing else "",
            f"unknown {', '.join(repr(k) for k in unknown)}" if unknown else "",
            ", ".join(f"{k!r} is {v!r}" for k, v in bad.items()) if bad else "") if part)
        raise UserError(f"{name}={dict(lengths)!r}: {what}. Give each of "
                        f"{', '.join(repr(k) for k in required)} a length of at least 1, e.g. "
                        f"{{{example}}}.")
    return dict(lengths)


def check_positive(value, name: str) -> None:
    """A count (a batch size, a length) must be a whole number of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{name}={value!r}: it must be a whole number of at least 1.")


def check_finished_cache_matches(out: str, built: Mapping, wanted: Mapping) -> None:
    """A finished cache is never rewritten: re-running `data cache` on it with other settings
    (feature lengths, split, caps) is refused naming both, instead of silently keeping the old.
    `built`: the settings the cache was built with; `wanted`: this command's."""
    diffs = [f"{key} {built.get(key)!r} there, {value!r} asked now"
             for key, value in wanted.items() if key in built and built.get(key) != value]
    if diffs:
        raise UserError(f"{out} holds a finished cache built with other settings "
                        f"({'; '.join(diffs)}): build this one with another --out, or train from "
                        "that cache with its settings.")


def text_lines(path: str):
    """(line number, line, None) for each line of a UTF-8 text file, or (line number, None,
    what is wrong) for a line that is not UTF-8: one bad byte names its line instead of ending
    the read in a `UnicodeDecodeError`."""
    with paths.as_path(path).open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8"), None
            except UnicodeDecodeError as e:
                yield lineno, None, (f"not UTF-8 text (byte {raw[e.start]:#04x} at column "
                                     f"{e.start + 1})")


def check_evaluate_settings(checkpoint_path, in_training: bool, **sizes) -> None:
    """`evaluate`'s sizes (batch size, lengths, beams) are each at least 1, and a checkpoint
    read from disk exists: checked before any task is resolved or anything written."""
    for name, value in sizes.items():
        check_positive(value, f"evaluate.{name}")
    if not in_training:
        from flan_jax.checkpoints import require_model_dir

        try:
            require_model_dir(checkpoint_path)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
