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
the options and the exemplars (other rows of the same prompt). Per-prompt cap: `CAP` rows.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterable, Sequence

from tasks.flan2022.styles_files import Record

CAP = 20000
STYLES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
KINDS = ("qa", "mc", "mc_separate_options")
TEMPLATES = (("{inputs}", "{target}"),)


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


def to_record(row: dict, prompt: Prompt) -> Record:
    """A P3 row as a record; only `mc_separate_options` prompts get options to list."""
    options = tuple(row["answer_choices"]) if prompt.kind == "mc_separate_options" else ()
    return Record({"inputs": row["inputs"]}, row["targets"], options)
