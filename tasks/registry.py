"""Turns a collection of `DatasetSpec`s into seqio tasks and mixtures, written once for all.

Public API
----------
register_collection(specs, *, exclusions=(), vocabulary=None, cluster_order=None, seed=0,
                    validate_tfds=False, replace=False) -> CollectionInfo
    Registers every task and mixture of one collection (the synthetic suite, FLAN 2021, a
    user's). Template fields are checked here: a template naming a field the dataset's
    `fields_fn` does not produce raises ValueError naming collection, dataset, template index and
    the field (generator sources always; TFDS sources when `validate_tfds=True`, since that needs
    the TFDS builder's feature spec; otherwise the same error is raised when the dataset is
    first built).
task_info(name) -> TaskInfo               what a task is: collection, cluster, dataset, kind ...
collection_info(collection) -> CollectionInfo   clusters, datasets per cluster, mixture names
mixture_clusters(mixture_name) -> tuple[str, ...]   clusters whose tasks a mixture holds
dataset_specs(name) -> list[DatasetSpec]  the datasets a task or mixture reads
get_task_or_mixture(name) -> seqio.Task | seqio.Mixture   UnknownTaskError with close matches
task_names(collection=None), mixture_names(collection=None), collection_names() -> list[str]
record_problems() -> dict[(collection, dataset, split, problem), count]   dropped bad records
mixing_caps(rate_cap=3000, max_train_examples=30000)   gin-configurable, read at build time
fewshot_length_budget(max_input_tokens=512)            gin-configurable, read at build time

Task names, for collection `c` and dataset `ds` (i: template index, k in 1, 2, 3, 5):
    {c}_{ds}_train                 all templates, one per example picked by a seeded keyed hash
    {c}_{ds}_train_{n}templates    the same with the first min(n, #templates) templates,
                                   n in 1, 2, 4, 7, 10 (template-count ablation)
    {c}_{ds}_t{i}_eval             generation eval with template i on `spec.eval_split`
    {c}_{ds}_t{i}_rank             rank classification (classification, not turned around)
    {c}_{ds}_t{i}_{k}shot_eval / _{k}shot_rank   few-shot: k exemplars from the train split
                                   (deterministic), dropped from the front until the rendered
                                   input fits `fewshot_length_budget` tokens
    {c}_{ds}_notemplate_train / _eval   raw input fields only (plus OPTIONS if classification)
    {c}_{ds}_dsname_train / _eval       dataset display name, then the raw fields
Mixture names:
    {c}_all_train                  every train task
    {c}_heldout_{cl}_train         all clusters but `cl` and those its ClusterExclusion drops
    {c}_heldout_{cl}_{n}templates_train / _notemplate_train / _dsname_train   ablations
    {c}_clusters{n}_train          train tasks of the first n clusters of `cluster_order`
    {c}_{cl}_eval                  generation (non-turned-around templates) + rank tasks
    {c}_{cl}_rank                  rank tasks only
    {c}_{cl}_{k}shot_eval          few-shot generation + rank tasks
    {c}_{cl}_notemplate_eval / _dsname_eval   ablation eval tasks of the cluster
Train mixtures are examples-proportional: rate = min(#train examples, max_train_examples,
rate_cap), computed when the mixture's dataset is built, so gin bindings made after import apply.

Examples carry "inputs", "targets" (tokenized, EOS appended) and "inputs_pretokenized",
"targets_pretokenized". Every example of a classification dataset also carries "options" (1-D
tf.string); rank tasks' "targets" is the correct option (`spec.answer_field`). Eval tasks of
turned-around templates have no metrics and are left out of eval mixtures.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import functools
import itertools
import logging
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

import gin
import seqio
import tensorflow as tf
from t5.evaluation import metrics as t5_metrics

from tasks import templates as tpl
from tasks.spec import ClusterExclusion, DatasetSpec, GeneratorSource, Template, TfdsSource

logger = logging.getLogger(__name__)

FEWSHOT_SHOTS = (1, 2, 3, 5)
NUM_TEMPLATES_ABLATION = (1, 2, 4, 7, 10)

TRAIN_KINDS = ("train", "train_ntemplates", "notemplate_train", "dsname_train")
EVAL_KINDS = ("eval", "rank", "fewshot_eval", "fewshot_rank", "notemplate_eval", "dsname_eval")


# --------------------------------------------------------------------------------------------
# Gin knobs, read when a dataset is built (never at import).


@gin.configurable(module="tasks")
def mixing_caps(rate_cap: int = 3000, max_train_examples: int = 30000) -> tuple[int, int]:
    """Examples-proportional mixing: per-task rate cap and per-dataset train-example cap."""
    return int(rate_cap), int(max_train_examples)


@gin.configurable(module="tasks")
def fewshot_length_budget(max_input_tokens: int = 512) -> int:
    """Few-shot prompts drop exemplars until the inputs (with EOS) fit this many tokens."""
    return int(max_input_tokens)


# --------------------------------------------------------------------------------------------
# What the registry knows about the things it registered.


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    name: str
    collection: str
    cluster: str
    dataset: str
    kind: str  # one of TRAIN_KINDS + EVAL_KINDS
    template_index: int | None  # None for tasks mixing templates or using none
    num_templates: int  # templates the task draws from (0 for the no-template ablations)
    num_shots: int
    metrics: tuple[str, ...]
    is_classification: bool
    split: str  # the split evaluation reads ("train" for train kinds)
    turned_around: bool = False


@dataclasses.dataclass(frozen=True)
class CollectionInfo:
    name: str
    clusters: tuple[str, ...]
    datasets: Mapping[str, tuple[str, ...]]  # cluster -> dataset names
    cluster_order: tuple[str, ...]
    exclusions: tuple[ClusterExclusion, ...]
    train_mixture: str
    heldout_mixtures: Mapping[str, str]  # held-out cluster -> training mixture
    eval_mixtures: Mapping[str, str]  # cluster -> generation + rank eval mixture
    rank_mixtures: Mapping[str, str]  # cluster -> rank-only mixture (classification clusters)
    specs: tuple[DatasetSpec, ...]
    vocabulary: seqio.Vocabulary

    def training_clusters(self, held_out: str) -> tuple[str, ...]:
        drop = {held_out}
        for ex in self.exclusions:
            if ex.held_out == held_out:
                drop.update(ex.also_drop)
        return tuple(c for c in self.clusters if c not in drop)


class UnknownTaskError(KeyError, ValueError):
    """An unknown task or mixture name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


_TASKS: dict[str, TaskInfo] = {}
_MIXTURES: dict[str, tuple[str, ...]] = {}  # mixture -> clusters
_COLLECTIONS: dict[str, CollectionInfo] = {}
_PROBLEMS: collections.Counter = collections.Counter()
_PROBLEMS_LOCK = threading.Lock()
_GENERATED: dict[tuple, dict[str, Any]] = {}
_TRAIN_SIZES: dict[tuple[str, str], int | None] = {}


def task_info(name: str) -> TaskInfo:
    if name not in _TASKS:
        raise _unknown(name)
    return _TASKS[name]


def collection_info(collection: str) -> CollectionInfo:
    if collection not in _COLLECTIONS:
        close = difflib.get_close_matches(collection, list(_COLLECTIONS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(
            f"unknown collection `{collection}` (registered: {', '.join(_COLLECTIONS) or 'none'})."
            + hint
        )
    return _COLLECTIONS[collection]


def collection_names() -> list[str]:
    return list(_COLLECTIONS)


def task_names(collection: str | None = None) -> list[str]:
    return [n for n, i in _TASKS.items() if collection is None or i.collection == collection]


def mixture_names(collection: str | None = None) -> list[str]:
    if collection is None:
        return list(_MIXTURES)
    return [m for m in _MIXTURES if m.startswith(collection + "_")]


def mixture_clusters(mixture_name: str) -> tuple[str, ...]:
    if mixture_name in _MIXTURES:
        return _MIXTURES[mixture_name]
    if mixture_name in _TASKS:
        return (_TASKS[mixture_name].cluster,)
    raise _unknown(mixture_name)


def dataset_specs(name: str) -> list[DatasetSpec]:
    """The DatasetSpecs a registered task or mixture reads (nested mixtures included), in
    collection order."""
    wanted: set[tuple[str, str]] = set()
    pending = [get_task_or_mixture(name)]
    while pending:
        item = pending.pop()
        if isinstance(item, seqio.Mixture):
            pending.extend(item.tasks)
            continue
        info = task_info(item.name)
        wanted.add((info.collection, info.dataset))
    return [spec for collection in collection_names()
            for spec in collection_info(collection).specs
            if (collection, spec.name) in wanted]


def get_task_or_mixture(name: str) -> seqio.Task | seqio.Mixture:
    """The registered seqio Task or Mixture; UnknownTaskError with close matches otherwise."""
    if name in seqio.MixtureRegistry.names():
        return seqio.get_mixture_or_task(name)
    if name in seqio.TaskRegistry.names():
        return seqio.get_mixture_or_task(name)
    raise _unknown(name)


def _unknown(name: str) -> UnknownTaskError:
    known = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
    close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    if not known:
        hint = " No tasks are registered: `import tasks` registers the built-in collections."
    return UnknownTaskError(f"unknown task or mixture `{name}`.{hint}")


def record_problems() -> dict[tuple[str, str, str, str], int]:
    """Bad records dropped so far: (collection, dataset, split, problem) -> count."""
    with _PROBLEMS_LOCK:
        return dict(_PROBLEMS)


def _note_problem(spec: DatasetSpec, split: str, problem: str, count: int = 1) -> int:
    key = (spec.collection, spec.name, split, problem)
    with _PROBLEMS_LOCK:
        _PROBLEMS[key] += count
        return _PROBLEMS[key]


# --------------------------------------------------------------------------------------------
# Validation at registration.

_PY_TO_SPEC = {
    str: tf.TensorSpec([], tf.string),
    bytes: tf.TensorSpec([], tf.string),
    int: tf.TensorSpec([], tf.int64),
    float: tf.TensorSpec([], tf.float32),
    bool: tf.TensorSpec([], tf.bool),
    list: tf.TensorSpec([None], tf.string),
    tuple: tf.TensorSpec([None], tf.string),
}


def _generator_element_spec(source: GeneratorSource) -> dict[str, tf.TensorSpec]:
    spec = {}
    for name, py_type in source.output_fields.items():
        if py_type not in _PY_TO_SPEC:
            raise ValueError(f"field `{name}`: unsupported type {py_type!r}")
        spec[name] = _PY_TO_SPEC[py_type]
    return spec


def _tfds_element_spec(source: TfdsSource) -> Any:
    import tensorflow_datasets as tfds

    return tfds.builder(source.name).info.features.get_tensor_spec()


def _produced_fields(spec: DatasetSpec, element_spec: Any) -> set[str]:
    if spec.fields_fn is None:
        return set(element_spec)
    try:
        traced = tf.function(lambda ex: dict(spec.fields_fn(ex))).get_concrete_function(
            element_spec
        )
    except Exception as e:  # noqa: BLE001 - re-raised with the dataset named
        raise ValueError(
            f"{spec.collection}/{spec.name}: fields_fn failed on the source's fields "
            f"{sorted(element_spec)}: {type(e).__name__}: {e}"
        ) from e
    return set(traced.structured_outputs)


def _check_fields(spec: DatasetSpec, produced: set[str]) -> None:
    where = f"collection `{spec.collection}`, dataset `{spec.name}`"
    for i, t in enumerate(spec.templates):
        for part, text in (("inputs", t.inputs), ("targets", t.targets)):
            for field in tpl.template_fields(text):
                if field not in produced:
                    raise ValueError(
                        f"{where}, template {i} ({part}): field `{{{field}}}` is not produced by "
                        f"the dataset's fields_fn (it produces: {', '.join(sorted(produced))})."
                    )
    if spec.is_classification and spec.answer_field not in produced:
        raise ValueError(f"{where}: answer_field `{spec.answer_field}` is not produced.")
    if spec.options_field is not None and spec.options_field not in produced:
        raise ValueError(f"{where}: options_field `{spec.options_field}` is not produced.")


def _check_spec(spec: DatasetSpec, validate_tfds: bool) -> None:
    where = f"collection `{spec.collection}`, dataset `{spec.name}`"
    if not spec.templates:
        raise ValueError(f"{where}: no templates.")
    for i, t in enumerate(spec.templates):
        for text in (t.inputs, t.targets):
            try:
                tpl.template_fields(text)
            except ValueError as e:
                raise ValueError(f"{where}, template {i}: malformed template: {e}") from e
    if isinstance(spec.source, GeneratorSource):
        _check_fields(spec, _produced_fields(spec, _generator_element_spec(spec.source)))
    elif validate_tfds:
        _check_fields(spec, _produced_fields(spec, _tfds_element_spec(spec.source)))


# --------------------------------------------------------------------------------------------
# Sources: raw records of one split.


def _generated_columns(spec: DatasetSpec, split: str, seed: int) -> dict[str, Any]:
    """Runs a generator once per (dataset, split, seed); bad records are counted and logged."""
    key = (spec.collection, spec.name, split, seed)
    if key in _GENERATED:
        return _GENERATED[key]
    source: GeneratorSource = spec.source  # type: ignore[assignment]
    n = source.num_examples[split]
    columns: dict[str, list] = {name: [] for name in source.output_fields}
    problems: collections.Counter = collections.Counter()
    for record in itertools.islice(source.generate(split, seed), n):
        problem = _record_problem(record, source.output_fields)
        if problem:
            problems[problem] += 1
            continue
        for name in columns:
            columns[name].append(record[name])
    for problem, count in problems.items():
        _note_problem(spec, split, problem, count)
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
            dtype = _PY_TO_SPEC[py_type].dtype
            tensors[name] = tf.constant(values, dtype=dtype) if values else tf.zeros([0], dtype)
    _GENERATED[key] = tensors
    return tensors


def _record_problem(record: Mapping[str, Any], fields: Mapping[str, type]) -> str | None:
    for name, py_type in fields.items():
        if name not in record or record[name] is None:
            return f"missing field `{name}`"
        value = record[name]
        if py_type in (str, bytes, list, tuple) and len(value) == 0:
            return f"empty field `{name}`"
    return None


def _raw_dataset(spec: DatasetSpec, split: str, seed: int, shuffle_files: bool) -> tf.data.Dataset:
    if isinstance(spec.source, GeneratorSource):
        if split not in spec.source.splits:
            raise ValueError(f"{spec.collection}/{spec.name}: no split `{split}`.")
        return tf.data.Dataset.from_tensor_slices(_generated_columns(spec, split, seed))
    import tensorflow_datasets as tfds

    if split not in spec.source.splits:
        raise ValueError(
            f"{spec.collection}/{spec.name}: no split `{split}` (has {list(spec.source.splits)})."
        )
    return tfds.load(
        spec.source.name, split=spec.source.splits[split], shuffle_files=shuffle_files
    )


def _num_train_examples(spec: DatasetSpec) -> int | None:
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
    n = _num_train_examples(spec)
    return float(min(rate_cap, max_train) if n is None else min(n, max_train, rate_cap))


# --------------------------------------------------------------------------------------------
# Preprocessors: fields, rendering, few-shot formatting.


def _prepare_fields(
    ds: tf.data.Dataset, spec: DatasetSpec, split: str, required: Sequence[str]
) -> tf.data.Dataset:
    """Applies fields_fn, adds "options", and drops (counting) records with empty fields."""
    options = tf.constant(list(spec.options)) if spec.options is not None else None

    def to_fields(ex):
        fields = dict(spec.fields_fn(ex)) if spec.fields_fn is not None else dict(ex)
        missing = [f for f in required if f not in fields]
        if missing:
            raise ValueError(
                f"collection `{spec.collection}`, dataset `{spec.name}`: fields "
                f"{missing} used by its templates are not produced by fields_fn "
                f"(it produces: {', '.join(sorted(fields))})."
            )
        if options is not None:
            fields["__options__"] = options
        elif spec.options_field is not None:
            fields["__options__"] = tf.reshape(fields[spec.options_field], [-1])
        return fields

    def note_empty() -> bool:
        count = _note_problem(spec, split, "empty required field")
        if count == 1 or count % 100 == 0:
            logger.warning(
                "%s/%s (%s): dropped %d record(s) with an empty required field so far.",
                spec.collection, spec.name, split, count,
            )
        return False

    def keep(fields):
        checks = [
            tf.strings.length(fields[f]) > 0
            for f in required
            if fields[f].dtype == tf.string and fields[f].shape.rank == 0
        ]
        if not checks:
            return tf.constant(True)
        ok = tf.reduce_all(tf.stack(checks))
        return tf.cond(
            ok,
            lambda: tf.constant(True),
            lambda: tf.reshape(tf.py_function(note_empty, [], tf.bool), []),
        )

    ds = ds.map(to_fields, num_parallel_calls=tf.data.AUTOTUNE)
    if isinstance(spec.source, TfdsSource):  # generator records were checked in python
        ds = ds.filter(keep)
    return ds


def _render_template(spec: DatasetSpec, t: Template, fields) -> tuple[tf.Tensor, tf.Tensor]:
    inputs = tpl.render(t.inputs, fields)
    if spec.is_classification and not t.turned_around:
        inputs = tf.strings.join([inputs, tpl.options_suffix(fields["__options__"])])
    return inputs, tpl.render(t.targets, fields)


def _example_key(fields) -> tf.Tensor:
    """A string identifying an example's content, for order-independent template choice."""
    parts = [
        tpl._as_string(fields[name])
        for name in sorted(fields)
        if name != "__options__" and fields[name].shape.rank == 0
    ]
    return tf.strings.reduce_join(tf.stack(parts), separator="\x1f")


def _raw_text(spec: DatasetSpec, fields) -> tuple[tf.Tensor, tf.Tensor]:
    first = _reference_template(spec)
    inputs = tpl.raw_fields_text(tpl.template_fields(first.inputs), fields)
    if spec.is_classification:
        inputs = tf.strings.join([inputs, tpl.options_suffix(fields["__options__"])])
    return inputs, tpl.render(first.targets, fields)


def _reference_template(spec: DatasetSpec) -> Template:
    return next((t for t in spec.templates if not t.turned_around), spec.templates[0])


def _render(
    ds: tf.data.Dataset, spec: DatasetSpec, mode: str, index: int | None, num_templates: int,
    seed: int,
) -> tf.data.Dataset:
    """mode: "template" (index), "mixed" (first num_templates, keyed hash), "rank" (index,
    targets = answer), "notemplate", "dsname"."""
    display = (spec.display_name or spec.name) + "\n"

    def fn(fields):
        if mode in ("template", "rank"):
            inputs, targets = _render_template(spec, spec.templates[index], fields)
            if mode == "rank":
                targets = tpl._as_string(fields[spec.answer_field])
        elif mode == "mixed":
            rendered = [_render_template(spec, t, fields) for t in spec.templates[:num_templates]]
            choice = tf.strings.to_hash_bucket_strong(
                _example_key(fields), num_templates, [seed, 7]
            )
            inputs = tf.gather(tf.stack([r[0] for r in rendered]), choice)
            targets = tf.gather(tf.stack([r[1] for r in rendered]), choice)
        else:
            inputs, targets = _raw_text(spec, fields)
            if mode == "dsname":
                inputs = tf.strings.join([display, inputs])
        out = {"inputs": inputs, "targets": targets}
        if spec.is_classification:
            out["options"] = fields["__options__"]
        return out

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def _required_fields(spec: DatasetSpec) -> list[str]:
    names: list[str] = []
    for t in spec.templates:
        for f in tpl.template_fields(t.inputs) + tpl.template_fields(t.targets):
            if f not in names:
                names.append(f)
    if spec.is_classification and spec.answer_field not in names:
        names.append(spec.answer_field)
    return names


def _rendered(spec, split, seed, shuffle_files, mode, index, num_templates, cap_train=False):
    ds = _raw_dataset(spec, split, seed, shuffle_files)
    if cap_train and split == "train":
        ds = ds.take(mixing_caps()[1])
    ds = _prepare_fields(ds, spec, split, _required_fields(spec))
    return _render(ds, spec, mode, index, num_templates, seed)


def _fewshot_format(
    ds: tf.data.Dataset, vocabulary: seqio.Vocabulary, num_shots: int
) -> tf.data.Dataset:
    """Prefixes the last j of k exemplars, j the largest that keeps inputs within budget."""
    budget = fewshot_length_budget() - 1  # room for EOS

    def fn(ex):
        candidates = [
            tf.strings.join(
                [
                    tpl.fewshot_prefix(
                        ex["exemplar_inputs"][num_shots - j :],
                        ex["exemplar_targets"][num_shots - j :],
                    ),
                    ex["inputs"],
                ]
            )
            for j in range(num_shots + 1)
        ]
        lengths = tf.stack(
            [tf.size(vocabulary.encode_tf(c), out_type=tf.int32) for c in candidates]
        )
        fits = tf.cast(lengths <= budget, tf.int32) * tf.range(num_shots + 1)
        out = {k: v for k, v in ex.items() if not k.startswith("exemplar_")}
        out["inputs"] = tf.gather(tf.stack(candidates), tf.reduce_max(fits))
        return out

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


# --------------------------------------------------------------------------------------------
# Registration.


def _source(
    spec: DatasetSpec, collection_seed: int, mode: str, index: int | None, num_templates: int,
    cap_train: bool = False, num_shots: int = 0,
) -> seqio.DataSource:
    splits = tuple(spec.source.splits)
    if num_shots:
        exemplar_mode = "template"

        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
            del seed  # records and template choice are fixed by the collection's seed
            query = _rendered(
                spec, split, collection_seed, shuffle_files, mode, index, num_templates
            )
            exemplars = _rendered(
                spec, "train", collection_seed, False, exemplar_mode, index, num_templates
            )
            exemplars = exemplars.map(lambda e: {"inputs": e["inputs"], "targets": e["targets"]})
            exemplars = exemplars.repeat().batch(num_shots, drop_remainder=True)

            def merge(q, e):
                out = dict(q)
                out["exemplar_inputs"] = e["inputs"]
                out["exemplar_targets"] = e["targets"]
                return out

            return tf.data.Dataset.zip((query, exemplars)).map(merge)

    else:

        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
            del seed  # records and template choice are fixed by the collection's seed
            return _rendered(spec, split, collection_seed, shuffle_files, mode, index,
                             num_templates, cap_train=cap_train)

    num_examples = None
    if isinstance(spec.source, GeneratorSource):
        num_examples = dict(spec.source.num_examples)
    return seqio.FunctionDataSource(
        dataset_fn=dataset_fn, splits=splits, num_input_examples=num_examples
    )


def _metric_name(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", repr(fn))


class _Registrar:
    """Registers the tasks of one collection, recording TaskInfo and mixture memberships."""

    def __init__(self, vocabulary: seqio.Vocabulary, seed: int, replace: bool):
        self.features = {
            "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=True),
            "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
        }
        self.vocabulary = vocabulary
        self.seed = seed
        self.replace = replace
        self.names: list[str] = []

    def task(self, info: TaskInfo, source: seqio.DataSource, spec: DatasetSpec,
             metric_fns: Sequence[Callable], postprocess: bool, extra: Sequence = ()) -> str:
        if self.replace:
            seqio.TaskRegistry.remove(info.name)
        preprocessors = list(extra) + [
            seqio.preprocessors.tokenize,
            seqio.preprocessors.append_eos,
        ]
        seqio.TaskRegistry.add(
            info.name,
            source=source,
            preprocessors=preprocessors,
            output_features=self.features,
            postprocess_fn=spec.postprocess_fn if postprocess else None,
            metric_fns=list(metric_fns),
        )
        _TASKS[info.name] = info
        self.names.append(info.name)
        return info.name

    def mixture(self, name: str, tasks: Sequence[tuple[str, Any]], clusters: Iterable[str]) -> str:
        if not tasks:
            return ""
        if self.replace:
            seqio.MixtureRegistry.remove(name)
        seqio.MixtureRegistry.add(name, list(tasks))
        _MIXTURES[name] = tuple(dict.fromkeys(clusters))
        self.names.append(name)
        return name


def _register_dataset(r: _Registrar, spec: DatasetSpec) -> dict[str, list[str]]:
    """Registers one dataset's tasks; returns them grouped by kind (and shots/templates)."""
    c, ds, seed = spec.collection, spec.name, r.seed
    prefix = f"{c}_{ds}"
    n_templates = len(spec.templates)
    metrics = tuple(_metric_name(f) for f in spec.metric_fns)
    rank_metrics = (t5_metrics.accuracy,)
    split = spec.eval_split
    out: dict[str, list[str]] = collections.defaultdict(list)

    def info(name, kind, index=None, n=0, shots=0, metric_names=metrics, split_=split,
             turned=False):
        return TaskInfo(
            name=name, collection=c, cluster=spec.cluster, dataset=ds, kind=kind,
            template_index=index, num_templates=n, num_shots=shots, metrics=metric_names,
            is_classification=spec.is_classification, split=split_, turned_around=turned,
        )

    name = f"{prefix}_train"
    r.task(info(name, "train", n=n_templates, split_="train"),
           _source(spec, seed, "mixed", None, n_templates, cap_train=True), spec,
           spec.metric_fns, True)
    out["train"].append(name)
    for n in NUM_TEMPLATES_ABLATION:
        k = min(n, n_templates)
        name = f"{prefix}_train_{n}templates"
        r.task(info(name, "train_ntemplates", n=k, split_="train"),
               _source(spec, seed, "mixed", None, k, cap_train=True), spec, spec.metric_fns, True)
        out[f"train_{n}templates"].append(name)
    for ablation in ("notemplate", "dsname"):
        name = f"{prefix}_{ablation}_train"
        r.task(info(name, f"{ablation}_train", split_="train"),
               _source(spec, seed, ablation, None, 0, cap_train=True), spec, spec.metric_fns, True)
        out[f"{ablation}_train"].append(name)
        name = f"{prefix}_{ablation}_eval"
        r.task(info(name, f"{ablation}_eval"), _source(spec, seed, ablation, None, 0), spec,
               spec.metric_fns, True)
        out[f"{ablation}_eval"].append(name)

    for i, t in enumerate(spec.templates):
        turned = t.turned_around
        gen_metrics = () if turned else spec.metric_fns
        gen_metric_names = () if turned else metrics
        name = f"{prefix}_t{i}_eval"
        r.task(info(name, "eval", i, 1, metric_names=gen_metric_names, turned=turned),
               _source(spec, seed, "template", i, 1), spec, gen_metrics, True)
        if not turned:
            out["eval"].append(name)
        rankable = spec.is_classification and not turned
        if rankable:
            name = f"{prefix}_t{i}_rank"
            r.task(info(name, "rank", i, 1, metric_names=("accuracy",)),
                   _source(spec, seed, "rank", i, 1), spec, rank_metrics, False)
            out["rank"].append(name)
        for k in FEWSHOT_SHOTS:
            fmt = functools.partial(_fewshot_format, vocabulary=r.vocabulary, num_shots=k)
            name = f"{prefix}_t{i}_{k}shot_eval"
            r.task(info(name, "fewshot_eval", i, 1, k, gen_metric_names, turned=turned),
                   _source(spec, seed, "template", i, 1, num_shots=k), spec, gen_metrics, True,
                   extra=[fmt])
            if not turned:
                out[f"{k}shot"].append(name)
            if rankable:
                name = f"{prefix}_t{i}_{k}shot_rank"
                r.task(info(name, "fewshot_rank", i, 1, k, ("accuracy",)),
                       _source(spec, seed, "rank", i, 1, num_shots=k), spec, rank_metrics,
                       False, extra=[fmt])
                out[f"{k}shot"].append(name)
    return out


def register_collection(
    specs: Sequence[DatasetSpec],
    *,
    exclusions: Sequence[ClusterExclusion] = (),
    vocabulary: seqio.Vocabulary | None = None,
    cluster_order: Sequence[str] | None = None,
    seed: int = 0,
    validate_tfds: bool = False,
    replace: bool = False,
) -> CollectionInfo:
    """Registers every task and mixture of one collection; see the module docstring.

    `cluster_order` orders training clusters for the `{c}_clusters{n}_train` ablation (default:
    clusters in order of first appearance). `seed` seeds generators and template choice.
    `replace=True` re-registers a collection already registered (tests, notebooks).
    """
    specs = list(specs)
    if not specs:
        raise ValueError("register_collection: no dataset specs given.")
    names = {s.collection for s in specs}
    if len(names) != 1:
        raise ValueError(f"register_collection: specs from several collections: {sorted(names)}")
    c = specs[0].collection
    if c in _COLLECTIONS and not replace:
        raise ValueError(f"collection `{c}` is already registered (pass replace=True).")
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ValueError(f"collection `{c}`: dataset `{s.name}` is declared twice.")
        seen.add(s.name)
        _check_spec(s, validate_tfds)
    clusters = tuple(dict.fromkeys(s.cluster for s in specs))
    overlap = set(clusters) & seen
    if overlap or "all" in seen:
        raise ValueError(
            f"collection `{c}`: dataset names {sorted(overlap | ({'all'} & seen))} clash with "
            "cluster or mixture names; rename them."
        )
    order = tuple(cluster_order) if cluster_order is not None else clusters
    for cl in list(order) + [e.held_out for e in exclusions] + [
        d for e in exclusions for d in e.also_drop
    ]:
        if cl not in clusters:
            raise ValueError(
                f"collection `{c}`: unknown cluster `{cl}` in cluster_order or exclusions "
                f"(clusters: {', '.join(clusters)})."
            )
    if replace:
        _forget_collection(c)

    vocabulary = vocabulary if vocabulary is not None else seqio.ByteVocabulary()
    r = _Registrar(vocabulary, seed, replace)
    by_dataset = {s.name: (s, _register_dataset(r, s)) for s in specs}

    def tasks_of(kind: str, cls: Iterable[str], rate=None):
        cls = set(cls)
        picked = []
        for spec, kinds in by_dataset.values():
            if spec.cluster in cls:
                for name in kinds.get(kind, []):
                    rate_ = functools.partial(examples_rate, spec) if rate is None else rate
                    picked.append((name, rate_))
        return picked

    info = CollectionInfo(
        name=c, clusters=clusters,
        datasets={cl: tuple(s.name for s in specs if s.cluster == cl) for cl in clusters},
        cluster_order=order, exclusions=tuple(exclusions),
        train_mixture=f"{c}_all_train", heldout_mixtures={}, eval_mixtures={},
        rank_mixtures={}, specs=tuple(specs), vocabulary=vocabulary,
    )
    r.mixture(f"{c}_all_train", tasks_of("train", clusters), clusters)
    for cl in clusters:
        train_cls = info.training_clusters(cl)
        if not train_cls:
            logger.warning("collection `%s`: holding out `%s` leaves nothing to train on.", c, cl)
            continue
        info.heldout_mixtures[cl] = r.mixture(
            f"{c}_heldout_{cl}_train", tasks_of("train", train_cls), train_cls
        )
        for n in NUM_TEMPLATES_ABLATION:
            r.mixture(f"{c}_heldout_{cl}_{n}templates_train",
                      tasks_of(f"train_{n}templates", train_cls), train_cls)
        for ablation in ("notemplate", "dsname"):
            r.mixture(f"{c}_heldout_{cl}_{ablation}_train",
                      tasks_of(f"{ablation}_train", train_cls), train_cls)
    for n in range(1, len(order) + 1):
        r.mixture(f"{c}_clusters{n}_train", tasks_of("train", order[:n]), order[:n])
    for cl in clusters:
        eval_tasks = tasks_of("eval", [cl], 1.0) + tasks_of("rank", [cl], 1.0)
        info.eval_mixtures[cl] = r.mixture(f"{c}_{cl}_eval", eval_tasks, [cl])
        rank = r.mixture(f"{c}_{cl}_rank", tasks_of("rank", [cl], 1.0), [cl])
        if rank:
            info.rank_mixtures[cl] = rank
        for k in FEWSHOT_SHOTS:
            r.mixture(f"{c}_{cl}_{k}shot_eval", tasks_of(f"{k}shot", [cl], 1.0), [cl])
        for ablation in ("notemplate", "dsname"):
            r.mixture(f"{c}_{cl}_{ablation}_eval", tasks_of(f"{ablation}_eval", [cl], 1.0), [cl])
    _COLLECTIONS[c] = info
    return info


def _forget_collection(c: str) -> None:
    for name in [n for n, i in _TASKS.items() if i.collection == c]:
        del _TASKS[name]
        seqio.TaskRegistry.remove(name)
    prefix = c + "_"
    for name in [m for m in _MIXTURES if m.startswith(prefix)]:
        del _MIXTURES[name]
        seqio.MixtureRegistry.remove(name)
    for key in [k for k in _GENERATED if k[0] == c]:
        del _GENERATED[key]
    for key in [k for k in _TRAIN_SIZES if k[0] == c]:
        del _TRAIN_SIZES[key]
    _COLLECTIONS.pop(c, None)
