"""Raw records of one dataset split, from a generator or TFDS, and training-set sizes.

Generators run once per (dataset, split, seed) and are cached as tensors; records missing a
declared field, or with an empty one, are dropped and counted (`catalogue.record_problems`).
`mixing_caps` (gin: `tasks.mixing_caps`) and `examples_rate` give examples-proportional mixing
rates, read when a mixture is built so gin bindings made after import apply; few-shot training
mixtures split each dataset's rate between its zero- and few-shot tasks (`fewshot_mixture_rate`,
gin: `tasks.zero_shot_share`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
from typing import Any, Mapping

import gin
import tensorflow as tf

from tasks import catalogue
from tasks.spec import DatasetSpec, FileRecordsSource, GeneratorSource, TextFileSource
from tasks.validation import PY_TO_SPEC

logger = logging.getLogger(__name__)

_GENERATED: dict[tuple, dict[str, Any]] = {}
_TRAIN_SIZES: dict[tuple[str, str], int | None] = {}


@gin.configurable(module="tasks")
def mixing_caps(rate_cap: int = 3000, max_train_examples: int = 30000) -> tuple[int, int]:
    """Examples-proportional mixing: per-task rate cap and per-dataset train-example cap."""
    return int(rate_cap), int(max_train_examples)


def record_problem(record: Mapping[str, Any], fields: Mapping[str, type]) -> str | None:
    """Why a generated record is unusable (a missing or empty field), or None."""
    for name, py_type in fields.items():
        if name not in record or record[name] is None:
            return f"missing field `{name}`"
        value = record[name]
        if py_type in (str, bytes, list, tuple) and len(value) == 0:
            return f"empty field `{name}`"
    return None


def generated_columns(spec: DatasetSpec, split: str, seed: int) -> dict[str, Any]:
    """Runs a generator once per (dataset, split, seed); bad records are counted and logged."""
    key = (spec.collection, spec.name, split, seed)
    if key in _GENERATED:
        return _GENERATED[key]
    source: GeneratorSource = spec.source  # type: ignore[assignment]
    n = source.num_examples[split]
    columns: dict[str, list] = {name: [] for name in source.output_fields}
    problems: collections.Counter = collections.Counter()
    for record in itertools.islice(source.generate(split, seed), n):
        problem = record_problem(record, source.output_fields)
        if problem:
            problems[problem] += 1
            continue
        for name in columns:
            columns[name].append(record[name])
    for problem, count in problems.items():
        catalogue.note_problem(spec, split, problem, count)
    if problems:
        logger.warning(
            "%s/%s (%s): dropped %d of %d generated records: %s",
            spec.collection, spec.name, split, sum(problems.values()), n,
            ", ".join(f"{p} ({c})" for p, c in sorted(problems.items())),
        )
    tensors: dict[str, Any] = {}
    for name, py_type in source.output_fields.items():
        values = columns[name]
        if py_type in (list, tuple):
            tensors[name] = tf.ragged.constant([list(v) for v in values], dtype=tf.string)
        else:
            dtype = PY_TO_SPEC[py_type].dtype
            tensors[name] = tf.constant(values, dtype=dtype) if values else tf.zeros([0], dtype)
    _GENERATED[key] = tensors
    return tensors


def raw_dataset(spec: DatasetSpec, split: str, seed: int, shuffle_files: bool,
                cap_train: bool = False) -> tf.data.Dataset:
    """The raw records of `split`; with `cap_train`, the train split's first
    `mixing_caps()[1]` records: a fixed subset (the release's `train[:30000]`), read in file
    order so every epoch and every run trains on the same examples (seqio shuffles them)."""
    capped = cap_train and split == "train"
    if split not in spec.source.splits:
        raise ValueError(
            f"{spec.collection}/{spec.name}: no split `{split}` (has {list(spec.source.splits)})."
        )
    if isinstance(spec.source, GeneratorSource):
        ds = tf.data.Dataset.from_tensor_slices(generated_columns(spec, split, seed))
    elif isinstance(spec.source, FileRecordsSource):
        ds = file_records(spec.source, split)
    elif isinstance(spec.source, TextFileSource):
        ds = text_file_records(spec.source, split)
    else:
        import tensorflow_datasets as tfds

        ds = tfds.load(
            spec.source.name, split=spec.source.splits[split],
            shuffle_files=shuffle_files and not capped,
        )
    if capped:
        ds = ds.take(mixing_caps()[1])
    return ds


def num_train_examples(spec: DatasetSpec) -> int | None:
    """The train split's size (None when TFDS has not prepared the dataset yet)."""
    key = (spec.collection, spec.name)
    if key not in _TRAIN_SIZES:
        if isinstance(spec.source, (GeneratorSource, TextFileSource, FileRecordsSource)):
            _TRAIN_SIZES[key] = spec.source.num_examples.get("train")
        else:
            try:
                import tensorflow_datasets as tfds

                info = tfds.builder(spec.source.name).info
                _TRAIN_SIZES[key] = info.splits[spec.source.splits["train"]].num_examples
            except Exception:  # noqa: BLE001 - not prepared yet: fall back to the cap
                logger.warning("%s/%s: train size unknown; using the rate cap.", *key)
                _TRAIN_SIZES[key] = None
    return _TRAIN_SIZES[key]


def examples_rate(spec: DatasetSpec, task: Any = None) -> float:
    """Examples-proportional rate with caps; called by seqio when a mixture is built."""
    rate_cap, max_train = mixing_caps()
    n = num_train_examples(spec)
    return float(min(rate_cap, max_train) if n is None else min(n, max_train, rate_cap))


@gin.configurable(module="tasks")
def zero_shot_share(share: float = 0.5) -> float:
    """In few-shot training mixtures, the part of each dataset's rate its zero-shot train task
    gets; its k-shot train tasks share the rest equally."""
    share = float(share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"tasks.zero_shot_share: share must be within [0, 1], got {share}.")
    return share


def fewshot_mixture_rate(spec: DatasetSpec, num_fewshot_tasks: int, shots: int,
                         task: Any = None) -> float:
    """Rate of one of a dataset's tasks in a few-shot training mixture (`shots` 0: its zero-shot
    task): the dataset's `examples_rate` split so its tasks together get exactly that rate, so
    datasets keep the proportions (and caps) of the zero-shot mixtures."""
    share, rate = zero_shot_share(), examples_rate(spec, task)
    return rate * share if shots == 0 else rate * (1.0 - share) / num_fewshot_tasks


def forget_collection(collection: str) -> None:
    """Drops cached generated records and train sizes of a collection (re-registration)."""
    for key in [k for k in _GENERATED if k[0] == collection]:
        del _GENERATED[key]
    for key in [k for k in _TRAIN_SIZES if k[0] == collection]:
        del _TRAIN_SIZES[key]


# ---- tab-separated text files (fetched by `flan-jax data prepare`) ---------------------------


@gin.configurable(module="tasks")
def text_file_dir(path: str | None = None) -> str:
    """Where `TextFileSource` files live: `path`, else `$TFDS_DATA_DIR/flan_jax_files` (TFDS's
    data dir, ~/tensorflow_datasets by default)."""
    import os

    if path:
        return os.path.expanduser(path)
    root = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return os.path.join(os.path.expanduser(root), "flan_jax_files")


def text_file_path(source: TextFileSource, split: str, root: str | None = None) -> str:
    import os

    return os.path.join(root or text_file_dir(), source.name, f"{split}.tsv")


_MOCK_TEXT_FILES: list[int] = []  # examples per mocked split, while `mock_text_files` is on


@contextlib.contextmanager
def mock_text_files(num_examples: int = 8):
    """Serves `TextFileSource` splits from made-up rows (no files), as
    `tfds.testing.mock_data` does for TFDS: `flan-jax tasks show --mock`, tests."""
    _MOCK_TEXT_FILES.append(num_examples)
    try:
        yield
    finally:
        _MOCK_TEXT_FILES.pop()


def _mock_lines(source: TextFileSource, split: str, n: int) -> list[str]:
    return ["\t".join(f"{column} {i} of {source.name} {split}" for column in source.columns)
            for i in range(n)]


def text_file_records(source: TextFileSource, split: str) -> tf.data.Dataset:
    """The records of one split: a dict of scalar strings per line, one per column."""
    import os

    path = text_file_path(source, split)
    if _MOCK_TEXT_FILES:
        lines = tf.data.Dataset.from_tensor_slices(
            _mock_lines(source, split, _MOCK_TEXT_FILES[-1]))
        return lines.map(_parse_line(source))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: run `flan-jax data prepare` on a mixture that reads "
            f"`{source.name}` (or bind tasks.text_file_dir.path to where the files are).")
    return tf.data.TextLineDataset(path).map(_parse_line(source),
                                             num_parallel_calls=tf.data.AUTOTUNE)


def _parse_line(source: TextFileSource):
    columns = tuple(source.columns)

    def parse(line):
        cells = tf.strings.split(line, sep="\t")
        padded = tf.concat([cells, tf.fill([len(columns)], "")], axis=0)
        return {c: tf.strings.regex_replace(padded[i], r"\\n", "\n")
                for i, c in enumerate(columns)}

    return parse


def missing_text_files(specs) -> list[tuple[str, str]]:
    """(source name, folder) of each `TextFileSource` of `specs` with a split not fetched, and
    of each `FileRecordsSource` whose `path` is missing."""
    import os

    text = {(s.source.name, os.path.join(text_file_dir(), s.source.name)) for s in specs
            if isinstance(s.source, TextFileSource) and not all(
                os.path.exists(text_file_path(s.source, split)) for split in s.source.splits)}
    records = {(s.source.name, s.source.path()) for s in specs
               if isinstance(s.source, FileRecordsSource) and s.source.path is not None
               and not os.path.exists(s.source.path())}
    return sorted(text | records)


def prepare_text_files(source: TextFileSource, root: str | None = None,
                       fetch=None) -> str:
    """Fetches each split of `source` unless already there and checked; returns where.

    A file is written under a temporary name and renamed once its line count (and sha256,
    where declared) match, so a failed or interrupted fetch leaves nothing half-written.
    `fetch(url) -> bytes` defaults to an HTTP GET (tests pass their own)."""
    import hashlib
    import os
    import urllib.request

    def http_get(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - fixed URLs
            return response.read()

    fetch = fetch or http_get
    for split, url in source.urls.items():
        path = text_file_path(source, split, root)
        if os.path.exists(path):
            continue
        data = fetch(url)
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        expected = source.num_examples.get(split)
        if expected is not None and lines != expected:
            raise ValueError(f"{url}: {lines} lines where {expected} were expected; "
                             "not saved (a changed or truncated file).")
        digest = source.sha256.get(split)
        if digest and hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"{url}: sha256 differs from the pinned file; not saved.")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return os.path.dirname(text_file_path(source, next(iter(source.urls)), root))


def file_records(source: FileRecordsSource, split: str) -> tf.data.Dataset:
    """A `FileRecordsSource` split, read lazily (files are opened when iterated)."""
    signature = {name: tf.TensorSpec([None] if py in (list, tuple) else [], tf.string)
                 for name, py in source.output_fields.items()}
    return tf.data.Dataset.from_generator(lambda: iter(source.read(split)),
                                          output_signature=signature)
