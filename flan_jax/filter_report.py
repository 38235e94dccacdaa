"""Why a task shows no example: how many records each filter of its datasets dropped.

`flan-jax tasks show` calls this when a task yields nothing (with --mock, TFDS's random mock
records often fail a dataset's filter: True Case keeps only sentences that lowercasing changes).
Reads TFDS and seqio: imported only by the `tasks` command, never by the core.
"""

from __future__ import annotations

import functools


def _count(ds) -> int:
    return int(ds.reduce(0, lambda n, _: n + 1))


def _name(fn) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", repr(fn))


def dataset_drops(spec, split: str) -> str:
    """One clause for one dataset: records read, then what each stage dropped."""
    from tasks import preprocessors, sources, validation

    raw = sources.raw_dataset(spec, split, 0, False)
    read = _count(raw)
    parts = [f"{spec.name}: {read} records read"]
    left = read
    if spec.filter_fn is not None:
        fields = raw.map(spec.fields_fn) if spec.fields_fn is not None else raw
        kept = _count(fields.filter(spec.filter_fn))
        parts.append(f"its filter {_name(spec.filter_fn)} dropped {left - kept}")
        left = kept
    prepared = _count(preprocessors.prepare_fields(raw, spec, split,
                                                   validation.required_fields(spec)))
    if prepared < left:
        parts.append(f"the empty-field check dropped {left - prepared}")
    return ", ".join(parts)


def no_example_message(name: str, split: str, mock: bool) -> str:
    """The line `tasks show` prints when `name` yields no example of `split`."""
    from tasks import catalogue

    specs = catalogue.dataset_specs(name)
    clauses = "; ".join(dataset_drops(spec, split) for spec in specs) or "no datasets found"
    hint = (" Mock records are random text: real data may pass (flan-jax data prepare "
            f"{name}, then drop --mock)." if mock else "")
    return f"no example of {name} [{split}] survived its filters ({clauses}).{hint}"
