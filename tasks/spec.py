"""Declarations of instruction datasets: plain data that `tasks.registry` turns into seqio tasks.

A collection (the offline synthetic suite, FLAN 2021, a user's own) is a list of `DatasetSpec`s.
Nothing here touches seqio; registration, template rendering, options and few-shot formatting
live in `tasks.registry` and `tasks.templates`, written once for every collection.

Templates use `str.format`-style fields, e.g. "{premise}\\nDoes this imply \\"{hypothesis}\\"?".
Every field must be produced by the dataset's `fields_fn`; registration fails, naming the
dataset and the template index, when a template names a field that does not exist.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

# A record-to-fields function maps one raw example (a dict of tf.Tensors from TFDS or a
# generator) to a flat dict of scalar tf.string fields used by templates, plus, for
# classification datasets, the field named by `DatasetSpec.answer_field` and, when options vary
# per example, the 1-D tf.string field named by `DatasetSpec.options_field`.
FieldsFn = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Template:
    """One instruction template: how inputs and targets are written from the fields."""

    inputs: str
    targets: str
    # "Turned around": asks for the input given the output (e.g. write a review that is
    # {answer}). Turned-around templates of a classification dataset get no OPTIONS suffix and
    # no rank-classification task.
    turned_around: bool = False


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A TFDS dataset: `name` as tfds.load takes it ("super_glue/rte:1.0.2")."""

    name: str
    # Our split name ("train", "validation", "test") -> TFDS split expression ("train[:-1000]").
    splits: Mapping[str, str]
    # Manual-download datasets say where files go, shown by `flan-jax data prepare`.
    manual_download: str | None = None


@dataclasses.dataclass(frozen=True)
class GeneratorSource:
    """A procedurally generated dataset: `generate(split, seed)` yields raw python dicts."""

    generate: Callable[[str, int], Any]
    # The raw record's fields and their python types, used to build the tf.data signature.
    output_fields: Mapping[str, type]
    num_examples: Mapping[str, int]
    splits: Sequence[str] = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class TextFileSource:
    """Tab-separated text files, one record per line (the Flan 2022 Chain-of-Thought files).

    `flan-jax data prepare` fetches each split's URL into `tasks.sources.text_file_dir()/name/`
    and checks it (line count, and sha256 where given); reading never downloads. Columns are
    named by `columns`; a literal backslash-n in a cell is read as a newline.
    """

    name: str  # the folder the files go to
    urls: Mapping[str, str]  # our split name -> URL
    columns: Sequence[str]
    num_examples: Mapping[str, int]  # split -> lines, checked after fetching
    sha256: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.urls)


@dataclasses.dataclass(frozen=True)
class FileRecordsSource:
    """Records read in Python from files `flan-jax data prepare` fetched (Flan 2022's NIv2 task
    JSONs, P3 parquet), streamed through `tf.data.Dataset.from_generator`: `read(split)` yields
    dicts with the `output_fields` (str, or list for a 1-D string field such as options)."""

    name: str
    read: Callable[[str], Any]
    output_fields: Mapping[str, type]
    num_examples: Mapping[str, int]  # split -> records read (after any cap), where known
    splits: Sequence[str] = ("train",)
    # The file or folder it reads, for "not prepared yet" checks before anything is read.
    path: Callable[[], str] | None = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One instruction dataset of a collection, declared as data."""

    name: str  # unique within the collection, e.g. "rte"; becomes part of task names
    collection: str  # "synthetic", "flan2021", ...
    cluster: str  # "nli", "sentiment", ...
    source: TfdsSource | GeneratorSource | TextFileSource | FileRecordsSource
    templates: Sequence[Template]
    fields_fn: FieldsFn | None = None  # identity when None (raw fields are the template fields)
    # Classification: the fixed answer strings (OPTIONS suffix, rank classification) ...
    options: Sequence[str] | None = None
    # ... or the name of a per-example 1-D string field holding them (COPA, ARC, HellaSwag).
    options_field: str | None = None
    # Classification: the field holding the correct answer string (one of the options). Rank
    # classification tasks use it as "targets".
    answer_field: str = "answer"
    # Metric functions from t5.evaluation.metrics (called as fn(targets, predictions)) and the
    # postprocessor applied to model outputs (and targets) before them.
    metric_fns: Sequence[Callable[..., Mapping[str, float]]] = ()
    postprocess_fn: Callable[..., Any] | None = None
    # Evaluate on this split (the one with labels).
    eval_split: str = "validation"
    # Multi-reference datasets: the 1-D tf.string field holding every gold answer (SQuAD's
    # answers, TriviaQA's aliases, GEM's references). Evaluation examples carry it as "answers",
    # and the dataset's postprocessor hands all of them to the metric (max over references).
    answers_field: str | None = None
    # Per-group metrics (MultiRC's exact match per question): the scalar field naming the group;
    # evaluation examples carry it as "group".
    group_field: str | None = None
    # Evaluation-only (WSC273): registered for evaluation (eval, rank, ablation eval tasks, in
    # the cluster's eval mixtures) but given no train or few-shot task, so no training mixture
    # can ever hold it.
    eval_only: bool = False
    # A dataset the release trains on that is not one of the paper's datasets (FLAN 2021's True
    # Case and Word Segment): registered as usual, left out of every training mixture but the
    # release-style ones (`names.release_train_mixture`, `names.release_heldout_mixture`).
    release_extra: bool = False
    # Keeps a record when true (a scalar tf.bool from the fields): the release's dataset filters
    # (ARC's 4-option questions, AESLC's empty emails). Applied after `fields_fn`.
    filter_fn: Callable[[Mapping[str, Any]], Any] | None = None
    # The split few-shot exemplars come from (NIv2: "exemplars", the task's positive examples).
    exemplar_split: str = "train"
    # Human-readable name used by the "dataset name only" ablation ("RTE", "SST-2").
    display_name: str | None = None

    @property
    def is_classification(self) -> bool:
        return self.options is not None or self.options_field is not None


@dataclasses.dataclass(frozen=True)
class ClusterExclusion:
    """When `held_out` is the held-out cluster, `also_drop` leaves training too (FLAN 2021)."""

    held_out: str
    also_drop: Sequence[str]
