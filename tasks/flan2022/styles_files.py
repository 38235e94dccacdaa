"""Rendering of the file-backed training submixtures (NIv2, T0-SF) in the Flan 2022 styles.

Examples are plain Python dicts rendered here and handed to seqio through
`tf.data.Dataset.from_generator`, so a source file is read only when its task is. Styles:

    zs_opt / zs_noopt   one example; with / without its answer options (T0 prompts whose
                        options are not already written into the prompt)
    fs_opt / fs_noopt   the same, after exemplars rendered with the same template, from the same
                        task only and never the example itself, kept while the whole input fits
                        `FEWSHOT_BUDGET` tokens of the task's vocabulary

The template of an example is a keyed hash of (seed, task, position), so every run and every
style sees the same choice.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, Iterable, Iterator, Sequence

from tasks.templates import (FEWSHOT_EXEMPLAR_SEPARATOR, FEWSHOT_TARGET_SEPARATOR,
                             OPTIONS_HEADER, OPTIONS_SEPARATOR)

STYLES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
FEWSHOT_BUDGET = 1920  # tokens, the release's few-shot input budget
MAX_EXEMPLARS = 5


@dataclasses.dataclass(frozen=True)
class Record:
    """One raw example of a file-backed task, before templates."""

    fields: dict  # template fields, e.g. {"definition": ..., "input": ...}
    target: str
    options: tuple[str, ...] = ()  # answer options to list in *_opt styles (empty: none)


def pick(seed: int, task: str, index: int, n: int) -> int:
    """A keyed, stable choice in range(n)."""
    return zlib.crc32(f"{seed}:{task}:{index}".encode()) % n


def options_text(options: Sequence[str]) -> str:
    return OPTIONS_HEADER + OPTIONS_SEPARATOR.join(options) if options else ""


def render_one(template: tuple[str, str], record: Record, with_options: bool) -> tuple[str, str]:
    inputs = template[0].format(**record.fields)
    if with_options:
        inputs += options_text(record.options)
    return inputs, template[1].format(**record.fields, target=record.target)


def with_exemplars(query: tuple[str, str], exemplars: Iterable[tuple[str, str]],
                   count_tokens: Callable[[str], int], budget: int = FEWSHOT_BUDGET,
                   max_exemplars: int = MAX_EXEMPLARS) -> str:
    """The query's input after as many exemplars (in order) as keep it within `budget`."""
    used = count_tokens(query[0])
    kept: list[str] = []
    for inputs, targets in exemplars:
        if len(kept) == max_exemplars:
            break
        shown = inputs + FEWSHOT_TARGET_SEPARATOR + targets + FEWSHOT_EXEMPLAR_SEPARATOR
        cost = count_tokens(shown)
        if used + cost > budget:
            break
        kept.append(shown)
        used += cost
    return "".join(kept) + query[0]


def render_task(name: str, records: Sequence[Record], style: str,
                templates: Sequence[tuple[str, str]], seed: int,
                count_tokens: Callable[[str], int],
                exemplars_of: Callable[[int], Sequence[Record]]) -> Iterator[dict]:
    """{"inputs", "targets"} of every record of one task in one style. `exemplars_of(i)` gives
    the candidate exemplars of record i (its task's own, never record i itself)."""
    if style not in STYLES:
        raise ValueError(f"unknown style `{style}` (styles: {', '.join(STYLES)}).")
    with_options = style.endswith("_opt")
    for i, record in enumerate(records):
        template = templates[pick(seed, name, i, len(templates))]
        inputs, targets = render_one(template, record, with_options)
        if style.startswith("fs"):
            shown = [render_one(template, e, with_options) for e in exemplars_of(i)]
            inputs = with_exemplars((inputs, targets), shown, count_tokens)
        yield {"inputs": inputs, "targets": targets}
