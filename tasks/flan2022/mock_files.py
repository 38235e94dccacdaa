"""Small files in the published formats of the Flan 2022 file sources, written here: the test
fixtures, and what `flan-jax tasks show --mock` reads.

    write(root)   writes them under `root` in the data-dir layout (`tasks.flan2022.downloads`)
    active()      a context in which every file-backed task reads them: a task with a fixture
                  of its own name reads that, any other reads one of the fixtures of its kind
                  (chosen by a hash of its name), as TFDS's mock_data serves every dataset
    root()        the folder in use while active, else None
    resolve(kind, name, data_dir)   where a task reads: (data_dir, name), or the fixture

Contents: NIv2 tasks task1001_fixture_sentiment (instances > positive examples),
task1002_fixture_reverse, task1003_fixture_capital and task690_mmlu_fixture (MMLU-derived, to be
left out); P3 prompts fixture_mc_choices (parquet, options not in the prompt),
fixture_qa_title (parquet) and fixture_mc_inline (a tfrecord); MMLU subject astronomy (5 dev,
2 val, 3 test questions; extra dev questions would be a bug); BBH task boolean_expressions.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import zlib
from typing import Iterator

NIV2 = {
    "task1001_fixture_sentiment": (
        "Decide whether the review is positive or negative.",
        [("I loved every minute.", "positive"), ("Dull and far too long.", "negative")],
        [(f"Review number {i}: {'great' if i % 2 else 'awful'} film.",
          "positive" if i % 2 else "negative") for i in range(12)]),
    "task1002_fixture_reverse": (
        "Write the given word backwards.",
        [("stone", "enots")],
        [(w, w[::-1]) for w in ("apple", "river", "cloud", "maple")]),
    "task1003_fixture_capital": (
        "Name the capital city of the given country.",
        [("France", "Paris"), ("Japan", "Tokyo")],
        [("Italy", "Rome"), ("Kenya", "Nairobi"), ("Peru", "Lima")]),
    "task690_mmlu_fixture": (
        "Answer the astronomy question.",
        [("Which planet is largest?", "Jupiter")],
        [("Which planet is closest to the Sun?", "Mercury")]),
}

P3 = {  # prompt -> (format, rows of (inputs, targets, answer choices))
    "fixture_mc_choices": ("parquet", [
        (f"Is the sky green in example {i}?", " no" if i % 3 else " yes", ["yes", "no"])
        for i in range(9)]),
    "fixture_qa_title": ("parquet", [
        (f"Suggest a title for story {i}.\n", f"\nStory {i}", []) for i in range(6)]),
    "fixture_mc_inline": ("tfrecord", [
        (f"Pick one: red or blue? (item {i})", "red" if i % 2 else "blue", ["red", "blue"])
        for i in range(5)]),
}

MMLU_SUBJECT = "astronomy"
MMLU = {
    "dev": [(f"Dev question {i}?", f"d{i}a", f"d{i}b", f"d{i}c", f"d{i}d", "ABCDA"[i])
            for i in range(5)],
    "val": [("Val question 0?", "v0a", "v0b", "v0c", "v0d", "C"),
            ("Val question 1?", "v1a", "v1b", "v1c", "v1d", "D")],
    "test": [("What is the closest star to Earth?", "Sirius", "The Sun", "Vega",
              "Polaris", "B"),
             ("How many planets orbit the Sun?", "7", "8", "9", "10", "B"),
             ("Which planet has the most prominent rings?", "Mars", "Venus", "Saturn",
              "Mercury", "C")],
}

BBH_TASK = "boolean_expressions"
BBH_EXAMPLES = [{"input": "not ( True ) and ( True ) is", "target": "False"},
                {"input": "True and not not ( not False ) is", "target": "True"},
                {"input": "not True or ( False and True ) is", "target": "False"}]
BBH_COT = """-----
Evaluate a Boolean expression made of True, False, not, and, or.

Q: not ( ( not not True ) ) is
A: Let's think step by step.
not not True is True, and not ( True ) is False. So the answer is False.

Q: True and False and not True and True is
A: Let's think step by step.
not True is False; True and False is False, and anything and False stays False.
So the answer is False.

Q: not not ( not ( False ) ) is
A: Let's think step by step.
not ( False ) is True, and not not True is True. So the answer is True.
"""

_ACTIVE: list[str] = []


def _write_niv2(root: str) -> None:
    folder = os.path.join(root, "niv2", "tasks")
    os.makedirs(folder, exist_ok=True)
    for name, (definition, positives, instances) in NIV2.items():
        task = {
            "Contributors": ["flan-jax fixtures"], "Source": ["fixture"],
            "Definition": [definition], "Input_language": ["English"],
            "Positive Examples": [{"input": i, "output": o, "explanation": "As asked."}
                                  for i, o in positives],
            "Negative Examples": [],
            "Instances": [{"id": f"{name}-{k}", "input": i, "output": [o]}
                          for k, (i, o) in enumerate(instances)],
        }
        with open(os.path.join(folder, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(task, f, indent=1)


def _write_p3(root: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for prompt, (kind, rows) in P3.items():
        folder = os.path.join(root, "p3", prompt)
        os.makedirs(folder, exist_ok=True)
        if kind == "parquet":
            table = pa.table({
                "inputs": [[ord(c) for c in i] for i, _, _ in rows],
                "inputs_pretokenized": [i for i, _, _ in rows],
                "targets": [[ord(c) for c in t] for _, t, _ in rows],
                "targets_pretokenized": [t for _, t, _ in rows],
                "answer_choices": [c for _, _, c in rows],
            })
            pq.write_table(table, os.path.join(folder, "train.parquet"))
        else:
            _write_tfrecord(os.path.join(folder, "train.tfrecord-00000-of-00001"), rows)


def _write_tfrecord(path: str, rows) -> None:
    import tensorflow as tf

    def feature(values: list[str]):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    with tf.io.TFRecordWriter(path) as w:
        for inputs, targets, choices in rows:
            features = {"inputs_pretokenized": feature([inputs]),
                        "targets_pretokenized": feature([targets]),
                        "answer_choices": feature(choices),
                        "inputs": tf.train.Feature(int64_list=tf.train.Int64List(
                            value=[ord(c) for c in inputs]))}
            w.write(tf.train.Example(features=tf.train.Features(feature=features))
                    .SerializeToString())


def _write_mmlu(root: str) -> None:
    for split, rows in MMLU.items():
        folder = os.path.join(root, "mmlu", "data", split)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{MMLU_SUBJECT}_{split}.csv"), "w", newline="",
                  encoding="utf-8") as f:
            csv.writer(f).writerows(rows)


def _write_bbh(root: str) -> None:
    for kind in ("bbh", "cot-prompts"):
        os.makedirs(os.path.join(root, "bbh", kind), exist_ok=True)
    with open(os.path.join(root, "bbh", "bbh", f"{BBH_TASK}.json"), "w") as f:
        json.dump({"canary": "fixture", "examples": BBH_EXAMPLES}, f)
    with open(os.path.join(root, "bbh", "cot-prompts", f"{BBH_TASK}.txt"), "w") as f:
        f.write(BBH_COT)


def write(root: str) -> str:
    """Writes every fixture file under `root`; returns `root`."""
    _write_niv2(root)
    _write_p3(root)
    _write_mmlu(root)
    _write_bbh(root)
    return root


def root() -> str | None:
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def active() -> Iterator[str]:
    """File-backed tasks read the fixtures while this context is open."""
    with tempfile.TemporaryDirectory(prefix="flan2022_mock_") as tmp:
        _ACTIVE.append(write(tmp))
        try:
            yield tmp
        finally:
            _ACTIVE.pop()


def resolve(kind: str, name: str, data_dir: str) -> tuple[str, str]:
    """(root, name to read) for a file-backed task of `kind` ("niv2", "p3", "mmlu", "bbh"):
    `data_dir` and `name` itself, or while active, the fixtures and `name`'s stand-in."""
    mock = root()
    if mock is None:
        return data_dir, name
    fixtures = {"niv2": [n for n in NIV2 if "mmlu" not in n], "p3": list(P3),
                "mmlu": [MMLU_SUBJECT], "bbh": [BBH_TASK]}[kind]
    return mock, stand_in(name, fixtures)


def stand_in(name: str, available: list[str]) -> str:
    """`name` itself when it has a fixture, else one fixture of the kind, fixed by its name."""
    if name in available:
        return name
    return sorted(available)[zlib.crc32(name.encode()) % len(available)]
