"""T0-SF: the P3 prompts of the release's T0 submixture, as the Flan 2022 T0 submixture.

`t0_sf_prompts.tsv` lists the 193 prompts (over 26 P3 subsets of 22 datasets) that the release
keeps: the T0 training prompts whose dataset is not already in FLAN 2021, without the
score-eval variants. Each row: the P3 prompt (the bigscience/P3 folder name), its dataset, its
kind and the release's train-example count (the mixing rate before any download). Kinds:

    qa                   a generation prompt (the answer, a question, a title ...)
    mc                   a multiple-choice prompt whose options are written into the prompt
    mc_separate_options  a multiple-choice prompt that does not show its options: the `*_opt`
                         styles list them after the prompt, the `*_noopt` styles do not

A P3 input already is an instruction, so the template only passes it through; styles differ by
the options and the exemplars (other rows of the same prompt), as `tasks.flan2022.styles` renders
them for every submixture (registered from `ENTRIES`). Per-prompt cap: the first `CAP` rows.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from typing import Iterable, Iterator, Sequence

from tasks import sources
from tasks.flan2022 import mock_files, niv2, readers
from tasks.flan2022.mixing import COLLECTION, Entry
from tasks.spec import DatasetSpec, FileRecordsSource, Template

CAP = 20000
STYLES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
KINDS = ("qa", "mc", "mc_separate_options")
TEMPLATES = (Template("{inputs}", "{answer}"),)


@dataclasses.dataclass(frozen=True)
class Prompt:
    name: str  # the P3 folder, e.g. "quartz_answer_question_below"
    dataset: str  # e.g. "quartz"
    kind: str
    train_examples: int


def read_prompt_list(path: str) -> list[Prompt]:
    """A prompt table (tab-separated: prompt, dataset, kind, train examples; # comments)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.rstrip("\n").split("\t")
            if len(cells) != 4 or cells[2] not in KINDS or not cells[3].isdigit():
                raise ValueError(f"{path}:{n}: expected prompt, dataset, kind ({', '.join(KINDS)})"
                                 " and a train-example count, tab-separated.")
            out.append(Prompt(cells[0], cells[1], cells[2], int(cells[3])))
    return out


@functools.lru_cache(maxsize=1)
def prompts() -> tuple[Prompt, ...]:
    return tuple(read_prompt_list(os.path.join(os.path.dirname(__file__), "t0_sf_prompts.tsv")))


def select(available: Iterable[str], wanted: Sequence[Prompt]) -> list[Prompt]:
    """The prompts of `wanted` found among `available` P3 prompt names, in `wanted`'s order
    (P3 holds about 660 prompts; T0-SF reads 193 of them)."""
    have = set(available)
    return [p for p in wanted if p.name in have]


def rate(prompt: Prompt) -> int:
    return min(CAP, prompt.train_examples)


def prompt_folder(root: str, name: str) -> str:
    return os.path.join(root, "p3", name)


def to_fields(row: dict, prompt: Prompt) -> dict | None:
    """A P3 row as template fields; `mc_separate_options` rows also carry their options (None:
    a row whose answer is not among its options, which the styles could not letter)."""
    fields = {"inputs": row["inputs"], "answer": row["targets"]}
    if prompt.kind == "mc_separate_options":
        if row["targets"] not in row["answer_choices"]:
            return None
        fields["answer_choices"] = list(row["answer_choices"])
    return fields


def read(prompt: Prompt, split: str) -> Iterator[dict]:
    """The first CAP usable rows of the prompt's train file (the fixtures' stand-in while
    mocked)."""
    root, name = mock_files.resolve("p3", prompt.name, sources.text_file_dir())
    rows = (to_fields(r, prompt) for r in readers.p3_rows(prompt_folder(root, name), split))
    return itertools.islice((r for r in rows if r is not None), CAP)


def spec(prompt: Prompt) -> DatasetSpec:
    options = prompt.kind == "mc_separate_options"
    fields = {"inputs": str, "answer": str, **({"answer_choices": list} if options else {})}
    return DatasetSpec(
        name=niv2.canonical(f"t0_{prompt.name}"), collection=COLLECTION, cluster="t0",
        source=FileRecordsSource(name=f"p3/{prompt.name}", read=functools.partial(read, prompt),
                                 output_fields=fields, num_examples={"train": rate(prompt)},
                                 path=lambda: prompt_folder(sources.text_file_dir(), prompt.name)),
        templates=TEMPLATES, options_field="answer_choices" if options else None,
        answer_field="answer", eval_split="train", display_name=prompt.name)


ENTRIES: list[Entry] = [Entry(spec(p), (p.train_examples,) * 2) for p in prompts()]
