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
import itertools
import logging
from typing import Any, Mapping

import gin
import tensorflow as tf

from tasks import catalogue
from tasks.spec import DatasetSpec, GeneratorSource
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
        if isinstance(spec.source, GeneratorSource):
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
