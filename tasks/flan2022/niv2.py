"""Super-NaturalInstructions v2 as the Flan 2022 NIv2 submixture.

Every task of the release's list (`niv2_counts.tsv`: name and instance count, the source of the
mixing rate before any download; 1,613 tasks, 41 of them listed in two spellings) minus the 57
tasks made from MMLU questions (task664-667, task685-737: MMLU is a held-out benchmark). Each task is its own seqio task per style (`zs_opt`,
`fs_opt`: NIv2 has no answer options, so the release keeps only these two; registered through
`tasks.flan2022.mixing` from `ENTRIES`), capped at `CAP` instances (its first ones, in file
order; see DEVIATIONS.md), rendered with one of ten definition + input templates written here;
few-shot exemplars come from the split "exemplars", the task's own positive examples, never
from its instances or another task.
"""

from __future__ import annotations

import functools
import os
import re

from tasks import sources
from tasks.flan2022 import mock_files, readers
from tasks.flan2022.mixing import COLLECTION, Entry
from tasks.spec import DatasetSpec, FileRecordsSource, Template

CAP = 5000
STYLES = ("zs_opt", "fs_opt")
MMLU_DERIVED = frozenset([664, 665, 666, 667, *range(685, 738)])

# Ten ways to give a model the task definition and one input; the definition always comes first.
_TEMPLATES = (
    ("{definition}\n\n{input}", "{output}"),
    ("Task: {definition}\n\nInput: {input}\nOutput:", "{output}"),
    ("Read the task description, then handle the input.\n\nDescription: {definition}\n\n"
     "{input}", "{output}"),
    ("{definition}\n\nHere is the input:\n{input}\n\nYour output:", "{output}"),
    ("Follow these directions: {definition}\n\n{input}\nResponse:", "{output}"),
    ("What the task asks: {definition}\nThe case to solve: {input}\nSolution:", "{output}"),
    ("Instructions follow.\n{definition}\n\nNow apply them to this:\n{input}", "{output}"),
    ("{definition}\nInput -> {input}\nOutput ->", "{output}"),
    ("You are given a task and an example of its input.\nTask: {definition}\nExample input: "
     "{input}\nExpected output:", "{output}"),
    ("Guidelines: {definition}\n\nProblem: {input}\n\nAnswer:", "{output}"),
)
TEMPLATES = tuple(Template(inputs, targets) for inputs, targets in _TEMPLATES)


def canonical(name: str) -> str:
    """The list spells 41 tasks twice ("task141_odd-man-out_..." and "task141_odd_man_out_...",
    a rename in the NIv2 repository): one task, named with underscores (valid in seqio names)."""
    return re.sub(r"[^\w.:#]", "_", name)


@functools.lru_cache(maxsize=1)
def spellings() -> dict[str, tuple[str, ...]]:
    """Canonical task name -> the file names the release's list gives it."""
    out: dict[str, list[str]] = {}
    for name in release_counts():
        out.setdefault(canonical(name), []).append(name)
    return {k: tuple(v) for k, v in out.items()}


@functools.lru_cache(maxsize=1)
def release_counts() -> dict[str, int]:
    """Listed name -> instances, for every name of the release's list (MMLU-derived and both
    spellings of renamed tasks included)."""
    path = os.path.join(os.path.dirname(__file__), "niv2_counts.tsv")
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, count = line.rstrip("\n").split("\t")
                out[name] = int(count)
    return out


def is_mmlu_derived(name: str) -> bool:
    return readers.niv2_task_number(name) in MMLU_DERIVED


def task_names() -> list[str]:
    """The tasks of the submixture: the release's list without the MMLU-derived ones."""
    return [n for n in spellings() if not is_mmlu_derived(n)]


def rate(name: str) -> int:
    """min(cap, instances): the task's examples-proportional rate."""
    return min(CAP, release_counts()[spellings()[name][0]])


def task_file(root: str, name: str) -> str:
    """The task's JSON under `root` in whichever spelling is there (else the first)."""
    paths = [os.path.join(root, "niv2", "tasks", f"{n}.json")
             for n in spellings().get(name, (name,))]
    return next((p for p in paths if os.path.exists(p)), paths[0])


def records(task: readers.NIv2Task, cap: int = CAP) -> tuple[list[dict], list[dict]]:
    """(the first `cap` instances, the positive examples) as template fields."""
    if is_mmlu_derived(task.name):
        raise ValueError(f"{task.name} is derived from MMLU and is left out of NIv2.")

    def fields(pairs):
        return [{"definition": task.definition, "input": i, "output": o} for i, o in pairs]

    return fields(task.instances[:cap]), fields(task.positive_examples)


def read(name: str, split: str) -> list[dict]:
    """The records of one task: "train" (its first CAP instances) or "exemplars" (its
    positive examples), from the data dir (the fixtures' stand-in while mocked)."""
    root, stand_in = mock_files.resolve("niv2", name, sources.text_file_dir())
    task = readers.niv2_task(task_file(root, stand_in))
    task = readers.NIv2Task(name, task.definition, task.positive_examples, task.instances)
    instances, positives = records(task)
    return instances if split == "train" else positives


def spec(name: str, count: int | None = None) -> DatasetSpec:
    """The task's dataset; `count` (default: the release's, capped) for tasks off the list."""
    return DatasetSpec(
        name=f"niv2_{name}", collection=COLLECTION, cluster="niv2",
        source=FileRecordsSource(
            name=f"niv2/{name}", read=functools.partial(read, name),
            output_fields={"definition": str, "input": str, "output": str},
            num_examples={"train": rate(name) if count is None else min(CAP, count)},
            splits=("train", "exemplars"),
            path=lambda: task_file(sources.text_file_dir(), name)),
        templates=TEMPLATES, eval_split="train", exemplar_split="exemplars", display_name=name)


ENTRIES: list[Entry] = [Entry(spec(n), (release_counts()[spellings()[n][0]],) * 2)
                        for n in task_names()]
