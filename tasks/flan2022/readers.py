"""Readers of the Flan 2022 file sources, in their published formats (plain Python, no TF graph).

    niv2_task(path) -> NIv2Task          a Super-NaturalInstructions task JSON (allenai repo)
    p3_rows(folder, split) -> iterator   P3 rows (bigscience/P3): parquet, or the older tfrecords
    mmlu_rows(path) -> list[MMLURow]     one MMLU subject CSV (hendrycks `data/{dev,val,test}`)
    bbh_examples(path) -> list[dict]     a BIG-Bench Hard task JSON (`{"examples": [...]}`)
    bbh_cot_prompt(path) -> BBHPrompt    a BBH `cot-prompts/TASK.txt` (description + 3 exemplars)

Every reader raises `DataFileError` (a UserError) naming the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from typing import Iterator

from flan_jax.errors import UserError


class DataFileError(UserError):
    """A source file that is missing or not in its published format."""


def _load_json(path: str | os.PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found; run `flan-jax data prepare` for it.") \
            from None
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}: not valid JSON ({e}); delete it and run `flan-jax data "
                            "prepare` again.") from None


# ------------------------------------------------------------------------------------- NIv2
@dataclasses.dataclass(frozen=True)
class NIv2Task:
    name: str  # "task001_quoref_question_generation"
    definition: str
    positive_examples: tuple[tuple[str, str], ...]  # (input, output)
    instances: tuple[tuple[str, str], ...]  # (input, first reference output)


def niv2_task_number(name: str) -> int:
    """`task685_mmlu_answer_generation_astronomy` -> 685."""
    m = re.match(r"task(\d+)_", name)
    if not m:
        raise ValueError(f"`{name}` is not an NIv2 task name (taskNNN_...).")
    return int(m.group(1))


def _first(value) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def niv2_task(path: str | os.PathLike) -> NIv2Task:
    """One task file: `Definition` (a list of one string), `Positive Examples` (input, output,
    explanation) and `Instances` (input, a list of reference outputs; the first is trained on)."""
    raw = _load_json(path)
    missing = [k for k in ("Definition", "Positive Examples", "Instances") if k not in raw]
    if missing:
        raise DataFileError(f"{path}: not an NIv2 task file (no {', '.join(missing)}).")
    name = os.path.basename(os.fspath(path)).removesuffix(".json")
    positives = tuple((str(e["input"]), _first(e["output"])) for e in raw["Positive Examples"])
    instances = tuple((str(e["input"]), _first(e["output"])) for e in raw["Instances"]
                      if _first(e.get("output")))
    return NIv2Task(name, _first(raw["Definition"]).strip(), positives, instances)


# --------------------------------------------------------------------------------------- P3
P3_COLUMNS = ("inputs_pretokenized", "targets_pretokenized", "answer_choices")


def _p3_clean(row: dict) -> dict:
    out = {"inputs": str(row["inputs_pretokenized"]).strip(),
           "targets": str(row["targets_pretokenized"]).strip()}
    choices = row.get("answer_choices")
    out["answer_choices"] = [str(c).strip() for c in choices] if choices is not None else []
    return out


def p3_files(folder: str | os.PathLike, split: str) -> tuple[str, list[str]]:
    """("parquet" | "tfrecord", files) of one P3 prompt's split; parquet is preferred."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataFileError(f"{folder}: no P3 folder; run `flan-jax data prepare t0_sf`.")
    names = sorted(os.listdir(folder))
    parquet = [n for n in names if n.startswith(split) and n.endswith(".parquet")]
    if parquet:
        return "parquet", [os.path.join(folder, n) for n in parquet]
    records = [n for n in names if n.startswith(f"{split}.tfrecord")]
    if records:
        return "tfrecord", [os.path.join(folder, n) for n in records]
    raise DataFileError(f"{folder}: no {split}*.parquet or {split}.tfrecord-* files; run "
                        "`flan-jax data prepare t0_sf`.")


def _parquet_rows(path: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    missing = [c for c in P3_COLUMNS[:2] if c not in names]
    if missing:
        raise DataFileError(f"{path}: not a P3 file (no column {', '.join(missing)}).")
    columns = [c for c in P3_COLUMNS if c in names]
    for batch in f.iter_batches(batch_size=1024, columns=columns):
        yield from batch.to_pylist()


def _tfrecord_rows(path: str) -> Iterator[dict]:
    import tensorflow as tf

    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        if "inputs_pretokenized" not in feature:
            raise DataFileError(f"{path}: not a P3 tfrecord (no inputs_pretokenized).")
        row = {k: feature[k].bytes_list.value[0].decode("utf-8")
               for k in P3_COLUMNS[:2]}
        if "answer_choices" in feature:
            row["answer_choices"] = [v.decode("utf-8")
                                     for v in feature["answer_choices"].bytes_list.value]
        yield row


def p3_rows(folder: str | os.PathLike, split: str = "train") -> Iterator[dict]:
    """{"inputs", "targets", "answer_choices"} of one P3 prompt's split, in file order, with the
    text stripped (P3 targets often start with a space or newline)."""
    kind, files = p3_files(folder, split)
    read = _parquet_rows if kind == "parquet" else _tfrecord_rows
    for path in files:
        for row in read(path):
            yield _p3_clean(row)


# ------------------------------------------------------------------------------------- MMLU
LETTERS = ("A", "B", "C", "D")


@dataclasses.dataclass(frozen=True)
class MMLURow:
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # "A".."D"


def mmlu_rows(path: str | os.PathLike) -> list[MMLURow]:
    """One subject's CSV (no header): question, the four choices, the answer letter."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found; run `flan-jax data prepare mmlu`.") \
            from None
    rows = []
    for i, line in enumerate(lines, 1):
        if len(line) != 6 or line[5].strip() not in LETTERS:
            raise DataFileError(f"{path}:{i}: expected 6 columns (question, A, B, C, D, answer "
                                f"letter), got {len(line)}.")
        rows.append(MMLURow(line[0], tuple(line[1:5]), line[5].strip()))  # type: ignore[arg-type]
    return rows


def mmlu_path(root: str | os.PathLike, subject: str, split: str) -> str:
    """`ROOT/data/dev/abstract_algebra_dev.csv` (the archive's layout)."""
    return os.path.join(os.fspath(root), "data", split, f"{subject}_{split}.csv")


# -------------------------------------------------------------------------------------- BBH
def bbh_examples(path: str | os.PathLike) -> list[dict]:
    """[{"input", "target"}] of one BBH task file."""
    raw = _load_json(path)
    examples = raw.get("examples") if isinstance(raw, dict) else None
    if not isinstance(examples, list) or any(
            not isinstance(e, dict) or "input" not in e or "target" not in e for e in examples):
        raise DataFileError(f"{path}: not a BBH task file ({{\"examples\": [{{\"input\", "
                            "\"target\"}]}).")
    return [{"input": str(e["input"]), "target": str(e["target"])} for e in examples]


@dataclasses.dataclass(frozen=True)
class BBHExemplar:
    question: str
    reasoning: str  # the chain of thought, ending with its answer sentence
    answer: str


@dataclasses.dataclass(frozen=True)
class BBHPrompt:
    description: str
    exemplars: tuple[BBHExemplar, ...]


ANSWER_SENTENCE = re.compile(r"So the answer is\s+(.*?)\.?\s*$", re.DOTALL)


def bbh_cot_prompt(path: str | os.PathLike) -> BBHPrompt:
    """A `cot-prompts/TASK.txt`: the task description, then "Q: ...\\nA: <reasoning> So the
    answer is X." exemplars separated by blank lines. Lines of dashes (and the canary line some
    copies carry) before the description are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found; run `flan-jax data prepare bbh`.") \
            from None
    head, *blocks = re.split(r"(?:^|\n)Q: ", text)
    description = "\n".join(line for line in head.strip().splitlines()
                            if line.strip() and not set(line.strip()) <= {"-"}
                            and "canary" not in line.lower()).strip()
    exemplars = []
    for block in blocks:
        question, sep, answer_part = block.partition("\nA: ")
        m = ANSWER_SENTENCE.search(answer_part.strip())
        if not sep or not m:
            raise DataFileError(f"{path}: an exemplar without \"A: ... So the answer is X.\".")
        exemplars.append(BBHExemplar(question.strip(), answer_part.strip(), m.group(1).strip()))
    if not exemplars:
        raise DataFileError(f"{path}: no \"Q: ...\" exemplars.")
    return BBHPrompt(description, tuple(exemplars))

