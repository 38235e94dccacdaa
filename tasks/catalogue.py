"""What the library reads about registered tasks: their info, lookups, readable unknown names.

`tasks.registry` fills these tables when it registers a collection; everything else (evaluation,
the CLIs, the data pipeline) only reads them:

task_info(name) -> TaskInfo               what a task is: collection, cluster, dataset, kind ...
collection_info(collection) -> CollectionInfo   clusters, datasets per cluster, mixture names
mixture_clusters(mixture_name) -> tuple[str, ...]   clusters whose tasks a mixture holds
dataset_specs(name) -> list[DatasetSpec]  the datasets a task or mixture reads
get_task_or_mixture(name) -> seqio.Task | seqio.Mixture   UnknownTaskError with close matches
task_names(collection=None), mixture_names(collection=None), collection_names() -> list[str]
record_problems() -> dict[(collection, dataset, split, problem), count]   dropped bad records
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import threading
from typing import Mapping

import seqio

from tasks import names
from tasks.spec import ClusterExclusion, DatasetSpec

TRAIN_KINDS = ("train", "train_ntemplates", "fewshot_train", "notemplate_train", "dsname_train",
               "style_train")
EVAL_KINDS = ("eval", "rank", "fewshot_eval", "fewshot_rank", "notemplate_eval", "dsname_eval")


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
    # False for the rank variants whose prompt lists no OPTIONS (the release's ablation).
    options_in_prompt: bool = True
    # Flan 2022 style tasks: zs_opt, zs_noopt, fs_opt, fs_noopt, cot, fs_cot (tasks.flan2022).
    style: str = ""


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
    # Zero- plus few-shot training: every trainable dataset, and per held-out cluster.
    fewshot_train_mixture: str = ""
    fewshot_heldout_mixtures: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def release_extras(self) -> tuple[str, ...]:
        """Datasets only the release-style training mixtures hold (`DatasetSpec.release_extra`)."""
        return tuple(s.name for s in self.specs if s.release_extra)

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


# Filled by tasks.registry only.
TASKS: dict[str, TaskInfo] = {}
MIXTURES: dict[str, tuple[str, ...]] = {}  # mixture -> clusters
COLLECTIONS: dict[str, CollectionInfo] = {}
# Mixtures declared but not buildable yet -> why (flan2022_submix while a submixture is empty).
UNBUILDABLE: dict[str, str] = {}
_PROBLEMS: collections.Counter = collections.Counter()
_PROBLEMS_LOCK = threading.Lock()


def task_info(name: str) -> TaskInfo:
    if name not in TASKS:
        raise unknown_name_error(name)
    return TASKS[name]


def collection_info(collection: str) -> CollectionInfo:
    if collection not in COLLECTIONS:
        close = difflib.get_close_matches(collection, list(COLLECTIONS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(
            f"unknown collection `{collection}` (registered: {', '.join(COLLECTIONS) or 'none'})."
            + hint
        )
    return COLLECTIONS[collection]


def collection_names() -> list[str]:
    return list(COLLECTIONS)


def task_names(collection: str | None = None) -> list[str]:
    return [n for n, i in TASKS.items() if collection is None or i.collection == collection]


def mixture_names(collection: str | None = None) -> list[str]:
    if collection is None:
        return list(MIXTURES)
    return [m for m in MIXTURES if m.startswith(names.collection_prefix(collection))]


def mixture_clusters(mixture_name: str) -> tuple[str, ...]:
    if mixture_name in MIXTURES:
        return MIXTURES[mixture_name]
    if mixture_name in TASKS:
        return (TASKS[mixture_name].cluster,)
    raise unknown_name_error(mixture_name)


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
    if name in seqio.MixtureRegistry.names() or name in seqio.TaskRegistry.names():
        return seqio.get_mixture_or_task(name)
    raise unknown_name_error(name)


def unknown_name_error(name: str) -> UnknownTaskError:
    if name in UNBUILDABLE:
        return UnknownTaskError(UNBUILDABLE[name])
    known = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
    close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    collection = difflib.get_close_matches(name, list(COLLECTIONS), n=1, cutoff=0.75)
    if collection:  # a collection's name (or a typo of one) where a mixture belongs
        c = collection[0]
        hint = (f" Did you mean the collection `{c}`? Its training mixture is "
                f"{COLLECTIONS[c].train_mixture}; `flan-jax tasks list --mixtures --collection "
                f"{c}` lists the others.")
    if not known:
        hint = " No tasks are registered: `import tasks` registers the built-in collections."
    return UnknownTaskError(f"unknown task or mixture `{name}`.{hint}")


def record_problems() -> dict[tuple[str, str, str, str], int]:
    """Bad records dropped so far: (collection, dataset, split, problem) -> count."""
    with _PROBLEMS_LOCK:
        return dict(_PROBLEMS)


def note_problem(spec: DatasetSpec, split: str, problem: str, count: int = 1) -> int:
    """Counts `count` dropped records of one kind; returns the running total."""
    key = (spec.collection, spec.name, split, problem)
    with _PROBLEMS_LOCK:
        _PROBLEMS[key] += count
        return _PROBLEMS[key]


def forget_collection(collection: str) -> None:
    """Removes a collection's tasks and mixtures (from seqio's registries too)."""
    for name in [n for n, i in TASKS.items() if i.collection == collection]:
        del TASKS[name]
        seqio.TaskRegistry.remove(name)
    prefix = names.collection_prefix(collection)
    for name in [m for m in MIXTURES if m.startswith(prefix)]:
        del MIXTURES[name]
        seqio.MixtureRegistry.remove(name)
    for name in [m for m in UNBUILDABLE if m.startswith(prefix)]:
        del UNBUILDABLE[name]
    COLLECTIONS.pop(collection, None)
