"""Turns a collection of `DatasetSpec`s into seqio tasks and mixtures, written once for all.

register_collection(specs, *, exclusions=(), vocabulary=None, cluster_order=None,
                    dataset_groups=None, seed=0, validate_tfds=False, replace=False)
    Registers every task and mixture of one collection (the synthetic suite, FLAN 2021, a
    user's), after checking each spec (`tasks.validation`). Names follow `tasks.names`; what was
    registered is read through `tasks.catalogue`.

Kinds of tasks per dataset: a train task mixing all templates (one per example, picked by a
seeded keyed hash), train tasks with the first n templates (template-count ablation), one
generation eval task per template on `spec.eval_split`, a rank-classification task per
non-turned-around template of a classification dataset, few-shot variants of both (k exemplars
from the train split, dropped from the front until the input fits
`preprocessors.fewshot_length_budget`), k-shot train tasks (a train example after k other train
examples, templates mixed as in the train task, the same budget), and the no-template /
dataset-name ablations.
Train mixtures are examples-proportional (`sources.examples_rate`); few-shot training mixtures
hold each dataset's zero-shot and k-shot train tasks, sharing that dataset's rate
(`sources.fewshot_mixture_rate`). Training mixtures leave out evaluation-only datasets always and
release extras (`DatasetSpec.release_extra`) except in the release-style mixtures. Eval tasks of
turned-around templates have no metrics and are left out of eval mixtures.

Examples carry "inputs", "targets" (tokenized, EOS appended) and "inputs_pretokenized",
"targets_pretokenized". Every example of a classification dataset also carries "options" (1-D
tf.string); rank tasks' "targets" is the correct option (`spec.answer_field`). Evaluation
examples of a multi-reference dataset carry every gold answer as "answers" (1-D tf.string).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from typing import Any, Callable, Iterable, Mapping, Sequence

import seqio
import tensorflow as tf
from t5.evaluation import metrics as t5_metrics

from tasks import catalogue, names, preprocessors, sources, validation
from tasks.catalogue import CollectionInfo, TaskInfo
from tasks.spec import ClusterExclusion, DatasetSpec, GeneratorSource

logger = logging.getLogger(__name__)

FEWSHOT_SHOTS = (1, 2, 3, 5, 10)  # the release's k
NUM_TEMPLATES_ABLATION = (1, 2, 4, 7, 10)
FEWSHOT_SHUFFLE_BUFFER = 10_000


def _rendered(spec, split, seed, shuffle_files, mode, index, num_templates, cap_train=False):
    ds = sources.raw_dataset(spec, split, seed, shuffle_files, cap_train=cap_train)
    ds = preprocessors.prepare_fields(ds, spec, split, validation.required_fields(spec))
    return preprocessors.render(ds, spec, mode, index, num_templates, seed)


def _fewshot_dataset_fn(spec: DatasetSpec, collection_seed: int, mode: str, index: int | None,
                        num_templates: int, num_shots: int, training: bool) -> Callable:
    """Rendered examples of a split, each carrying k exemplars rendered from the train split.

    Exemplars come in a seeded shuffled order (the same for every run): consecutive records
    would share a source document or topic. Evaluation renders them with the example's template;
    training (the capped train split on both sides) renders each with its own keyed template
    choice, as the train task does, and draws k + 1 to drop any exemplar rendered identically to
    the example itself, so no example is shown its own answer.
    """
    exemplar_mode = "mixed" if training else "template"
    drawn = num_shots + 1 if training else num_shots

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del seed  # records and template choice are fixed by the collection's seed
        query = _rendered(spec, split, collection_seed, shuffle_files, mode, index,
                          num_templates, cap_train=training)
        exemplars = _rendered(spec, "train", collection_seed, False, exemplar_mode, index,
                              num_templates, cap_train=training)
        exemplars = exemplars.map(lambda e: {"inputs": e["inputs"], "targets": e["targets"]})
        exemplars = exemplars.shuffle(FEWSHOT_SHUFFLE_BUFFER, seed=collection_seed,
                                      reshuffle_each_iteration=False)
        exemplars = exemplars.repeat().batch(drawn, drop_remainder=True)

        def merge(q, e):
            inputs, targets = e["inputs"], e["targets"]
            if training:
                itself = tf.logical_and(tf.equal(inputs, q["inputs"]),
                                        tf.equal(targets, q["targets"]))
                others = tf.where(tf.logical_not(itself))[:num_shots, 0]
                inputs, targets = tf.gather(inputs, others), tf.gather(targets, others)
            out = dict(q)
            out["exemplar_inputs"] = inputs
            out["exemplar_targets"] = targets
            return out

        return tf.data.Dataset.zip((query, exemplars)).map(merge)

    return dataset_fn


def _source(
    spec: DatasetSpec, collection_seed: int, mode: str, index: int | None, num_templates: int,
    cap_train: bool = False, num_shots: int = 0,
) -> seqio.DataSource:
    """A seqio source of rendered examples; few-shot sources add k train exemplars each
    (training ones, `cap_train`, never the example itself)."""
    splits = tuple(spec.source.splits)
    if num_shots:
        dataset_fn = _fewshot_dataset_fn(spec, collection_seed, mode, index, num_templates,
                                         num_shots, training=cap_train)
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


class Registrar:  # tasks.flan2022 registers through it too
    """Registers the tasks of one collection, recording TaskInfo and mixture memberships."""

    def __init__(self, vocabulary: seqio.Vocabulary, seed: int, replace: bool):
        self.features = {
            "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=True),
            "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
        }
        self.vocabulary = vocabulary
        self.seed = seed
        self.replace = replace

    def task(self, info: TaskInfo, source: seqio.DataSource, spec: DatasetSpec,
             metric_fns: Sequence[Callable], postprocess: bool, extra: Sequence = ()) -> str:
        if self.replace:
            seqio.TaskRegistry.remove(info.name)
        preprocessors_ = list(extra) + [
            seqio.preprocessors.tokenize,
            seqio.preprocessors.append_eos,
        ]
        seqio.TaskRegistry.add(
            info.name,
            source=source,
            preprocessors=preprocessors_,
            output_features=self.features,
            postprocess_fn=spec.postprocess_fn if postprocess else None,
            metric_fns=list(metric_fns),
        )
        catalogue.TASKS[info.name] = info
        return info.name

    def mixture(self, name: str, tasks: Sequence[tuple[str, Any]], clusters: Iterable[str]) -> str:
        if not tasks:
            return ""
        if self.replace:
            seqio.MixtureRegistry.remove(name)
        seqio.MixtureRegistry.add(name, list(tasks))
        catalogue.MIXTURES[name] = tuple(dict.fromkeys(clusters))
        return name




def _register_dataset(r: Registrar, spec: DatasetSpec) -> dict[str, list[str]]:
    """Registers one dataset's tasks; returns them grouped by kind (and shots/templates)."""
    c, ds, seed = spec.collection, spec.name, r.seed
    n_templates = len(spec.templates)
    metrics = tuple(_metric_name(f) for f in spec.metric_fns)
    rank_metrics = (t5_metrics.accuracy,)
    split = spec.eval_split
    out: dict[str, list[str]] = collections.defaultdict(list)

    def info(name, kind, index=None, n=0, shots=0, metric_names=metrics, split_=split,
             turned=False, options_in_prompt=True):
        return TaskInfo(
            name=name, collection=c, cluster=spec.cluster, dataset=ds, kind=kind,
            template_index=index, num_templates=n, num_shots=shots, metrics=metric_names,
            is_classification=spec.is_classification, split=split_, turned_around=turned,
            options_in_prompt=options_in_prompt,
        )

    # Evaluation-only datasets get no train task (and no train split for few-shot exemplars).
    trainable = not spec.eval_only and "train" in spec.source.splits
    if trainable:
        name = names.train_task(c, ds)
        r.task(info(name, "train", n=n_templates, split_="train"),
               _source(spec, seed, "mixed", None, n_templates, cap_train=True), spec,
               spec.metric_fns, True)
        out["train"].append(name)
        for n in NUM_TEMPLATES_ABLATION:
            k = min(n, n_templates)
            name = names.train_ntemplates_task(c, ds, n)
            r.task(info(name, "train_ntemplates", n=k, split_="train"),
                   _source(spec, seed, "mixed", None, k, cap_train=True), spec,
                   spec.metric_fns, True)
            out[f"train_{n}templates"].append(name)
        for k in FEWSHOT_SHOTS:
            fmt = functools.partial(preprocessors.fewshot_format, vocabulary=r.vocabulary,
                                    num_shots=k)
            name = names.fewshot_train_task(c, ds, k)
            r.task(info(name, "fewshot_train", n=n_templates, shots=k, split_="train"),
                   _source(spec, seed, "mixed", None, n_templates, cap_train=True, num_shots=k),
                   spec, spec.metric_fns, True, extra=[fmt])
            out["fewshot_train"].append(name)
    for ablation in names.ABLATIONS:
        if trainable:
            name = names.ablation_train_task(c, ds, ablation)
            r.task(info(name, f"{ablation}_train", split_="train"),
                   _source(spec, seed, ablation, None, 0, cap_train=True), spec,
                   spec.metric_fns, True)
            out[f"{ablation}_train"].append(name)
        name = names.ablation_eval_task(c, ds, ablation)
        r.task(info(name, f"{ablation}_eval"), _source(spec, seed, ablation, None, 0), spec,
               spec.metric_fns, True)
        out[f"{ablation}_eval"].append(name)

    for i, t in enumerate(spec.templates):
        turned = t.turned_around
        gen_metrics = () if turned else spec.metric_fns
        gen_metric_names = () if turned else metrics
        name = names.eval_task(c, ds, i)
        r.task(info(name, "eval", i, 1, metric_names=gen_metric_names, turned=turned),
               _source(spec, seed, "template", i, 1), spec, gen_metrics, True)
        if not turned:
            out["eval"].append(name)
        rankable = spec.is_classification and not turned
        if rankable:
            name = names.rank_task(c, ds, i)
            r.task(info(name, "rank", i, 1, metric_names=("accuracy",)),
                   _source(spec, seed, "rank", i, 1), spec, rank_metrics, False)
            out["rank"].append(name)
            name = names.rank_no_options_task(c, ds, i)
            r.task(info(name, "rank", i, 1, metric_names=("accuracy",), options_in_prompt=False),
                   _source(spec, seed, "rank_nooptions", i, 1), spec, rank_metrics, False)
            out["rank_nooptions"].append(name)
        for k in FEWSHOT_SHOTS if trainable else ():
            fmt = functools.partial(preprocessors.fewshot_format, vocabulary=r.vocabulary,
                                    num_shots=k)
            name = names.fewshot_eval_task(c, ds, i, k)
            r.task(info(name, "fewshot_eval", i, 1, k, gen_metric_names, turned=turned),
                   _source(spec, seed, "template", i, 1, num_shots=k), spec, gen_metrics, True,
                   extra=[fmt])
            if not turned:
                out[f"{k}shot"].append(name)
            if rankable:
                name = names.fewshot_rank_task(c, ds, i, k)
                r.task(info(name, "fewshot_rank", i, 1, k, ("accuracy",)),
                       _source(spec, seed, "rank", i, 1, num_shots=k), spec, rank_metrics,
                       False, extra=[fmt])
                out[f"{k}shot"].append(name)
    return out


def _check_collection(specs: Sequence[DatasetSpec], exclusions: Sequence[ClusterExclusion],
                      cluster_order: Sequence[str] | None, validate_tfds: bool,
                      replace: bool, groups: Mapping[str, Sequence[str]],
                      ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Validates a collection; returns its name, clusters and cluster order."""
    if not specs:
        raise ValueError("register_collection: no dataset specs given.")
    collections_ = {s.collection for s in specs}
    if len(collections_) != 1:
        raise ValueError(
            f"register_collection: specs from several collections: {sorted(collections_)}")
    c = specs[0].collection
    if c in catalogue.COLLECTIONS and not replace:
        raise ValueError(f"collection `{c}` is already registered (pass replace=True).")
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ValueError(f"collection `{c}`: dataset `{s.name}` is declared twice.")
        seen.add(s.name)
        validation.check_spec(s, validate_tfds)
    clusters = tuple(dict.fromkeys(s.cluster for s in specs))
    overlap = set(clusters) & seen
    if overlap or "all" in seen:
        raise ValueError(
            f"collection `{c}`: dataset names {sorted(overlap | ({'all'} & seen))} clash with "
            "cluster or mixture names; rename them."
        )
    order = tuple(cluster_order) if cluster_order is not None else clusters
    for group, members in groups.items():
        if group in clusters or set(members) - seen:
            raise ValueError(f"collection `{c}`: dataset group `{group}` clashes with a cluster "
                             f"or names unknown datasets {sorted(set(members) - seen)}.")
    for cl in [o for o in order if o not in groups] + [e.held_out for e in exclusions] + [
        d for e in exclusions for d in e.also_drop
    ]:
        if cl not in clusters:
            raise ValueError(
                f"collection `{c}`: unknown cluster `{cl}` in cluster_order or exclusions "
                f"(clusters: {', '.join(clusters)})."
            )
    return c, clusters, order


def register_collection(
    specs: Sequence[DatasetSpec],
    *,
    exclusions: Sequence[ClusterExclusion] = (),
    vocabulary: seqio.Vocabulary | None = None,
    cluster_order: Sequence[str] | None = None,
    dataset_groups: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    validate_tfds: bool = False,
    replace: bool = False,
) -> CollectionInfo:
    """Registers every task and mixture of one collection; see the module docstring.

    `cluster_order` orders training clusters for the `names.clusters_mixture` ablation (default:
    clusters in order of first appearance); an entry may also name one of `dataset_groups`
    (group -> dataset names), a part of a cluster that the ablation adds on its own (FLAN's
    conversational QA within misc). `seed` seeds generators and template choice.
    `replace=True` re-registers a collection already registered (tests, notebooks).
    """
    specs = list(specs)
    groups = {g: tuple(m) for g, m in (dataset_groups or {}).items()}
    c, clusters, order = _check_collection(specs, exclusions, cluster_order, validate_tfds,
                                           replace, groups)
    if replace:
        forget_collection(c)

    vocabulary = vocabulary if vocabulary is not None else seqio.ByteVocabulary()
    r = Registrar(vocabulary, seed, replace)
    pick = _TaskPicker({s.name: (s, _register_dataset(r, s)) for s in specs}, groups)
    info = CollectionInfo(
        name=c, clusters=clusters,
        datasets={cl: tuple(s.name for s in specs if s.cluster == cl) for cl in clusters},
        cluster_order=order, exclusions=tuple(exclusions),
        train_mixture=names.all_train_mixture(c), heldout_mixtures={}, eval_mixtures={},
        rank_mixtures={}, specs=tuple(specs), vocabulary=vocabulary,
        fewshot_train_mixture=names.all_fewshot_train_mixture(c),
    )
    _register_training_mixtures(r, info, pick)
    for n in range(1, len(order) + 1):  # the number-of-clusters ablation
        tasks_n, clusters_n = pick.ordered_train_tasks(order[:n], clusters)
        r.mixture(names.clusters_mixture(c, n), tasks_n, clusters_n)
    _register_eval_mixtures(r, info, pick)
    catalogue.COLLECTIONS[c] = info
    return info


@dataclasses.dataclass(frozen=True)
class _TaskPicker:
    """Picks the registered tasks of a collection by cluster and kind, with their rates."""
    by_dataset: Mapping[str, tuple[DatasetSpec, dict]]  # name -> (spec, task names by kind)
    groups: Mapping[str, tuple[str, ...]]  # dataset group -> dataset names

    def datasets_in(self, cls: Iterable[str], release: bool = True):
        """(spec, tasks by kind) of the datasets of clusters `cls`; release extras only when
        `release` (training mixtures without it hold the paper's datasets)."""
        cls = set(cls)
        return [(spec, kinds) for spec, kinds in self.by_dataset.values()
                if spec.cluster in cls and (release or not spec.release_extra)]

    def eval_tasks(self, kind: str, cl: str):
        return [(name, 1.0) for _, kinds in self.datasets_in([cl]) for name in kinds.get(kind, [])]

    def train_tasks(self, kind: str, cls: Iterable[str], release: bool = False):
        return [(name, functools.partial(sources.examples_rate, spec))
                for spec, kinds in self.datasets_in(cls, release)
                for name in kinds.get(kind, [])]

    def fewshot_train_tasks(self, cls: Iterable[str], release: bool = False):
        """Zero-shot and k-shot train tasks sharing each dataset's examples-proportional rate."""
        picked = []
        for spec, kinds in self.datasets_in(cls, release):
            shots = [(n, 0) for n in kinds.get("train", [])] + list(
                zip(kinds.get("fewshot_train", []), FEWSHOT_SHOTS))
            picked += [(n, functools.partial(sources.fewshot_mixture_rate, spec,
                                             len(FEWSHOT_SHOTS), k)) for n, k in shots]
        return picked

    def ordered_train_tasks(self, entries: Sequence[str], clusters: Sequence[str]):
        """(tasks, clusters) of the first clusters or dataset groups `entries` of the order; a
        group's datasets are recorded under their cluster."""
        groups = self.groups
        picked = self.train_tasks("train", [e for e in entries if e not in groups])
        members = {d for e in entries if e in groups for d in groups[e]}
        for spec, kinds in self.datasets_in(clusters, release=False):
            if spec.name in members and spec.cluster not in entries:
                picked += [(n, functools.partial(sources.examples_rate, spec))
                           for n in kinds.get("train", [])]
        return picked, [self.by_dataset[d][0].cluster if e in groups else e
                        for e in entries for d in (groups.get(e) or (None,))]


def _register_training_mixtures(r: Registrar, info: CollectionInfo, pick: _TaskPicker) -> None:
    """Every training mixture but the number-of-clusters ablation: all clusters, each held-out
    split (zero- and few-shot, release extras, template-count and instruction ablations)."""
    c, clusters, has_extras = info.name, info.clusters, bool(info.release_extras)
    for release in (False, True) if has_extras else (False,):
        r.mixture(names.release_train_mixture(c) if release else names.all_train_mixture(c),
                  pick.train_tasks("train", clusters, release), clusters)
        r.mixture(names.release_train_mixture(c, fewshot=True) if release else
                  names.all_fewshot_train_mixture(c),
                  pick.fewshot_train_tasks(clusters, release), clusters)
    for cl in clusters:
        train_cls = info.training_clusters(cl)
        if not train_cls:
            logger.warning("collection `%s`: holding out `%s` leaves nothing to train on.", c, cl)
            continue
        info.heldout_mixtures[cl] = r.mixture(
            names.heldout_mixture(c, cl), pick.train_tasks("train", train_cls), train_cls)
        info.fewshot_heldout_mixtures[cl] = r.mixture(
            names.heldout_fewshot_mixture(c, cl), pick.fewshot_train_tasks(train_cls), train_cls)
        if has_extras:
            r.mixture(names.release_heldout_mixture(c, cl),
                      pick.train_tasks("train", train_cls, True), train_cls)
            r.mixture(names.release_heldout_mixture(c, cl, fewshot=True),
                      pick.fewshot_train_tasks(train_cls, True), train_cls)
        for n in NUM_TEMPLATES_ABLATION:
            r.mixture(names.heldout_ntemplates_mixture(c, cl, n),
                      pick.train_tasks(f"train_{n}templates", train_cls), train_cls)
        for ablation in names.ABLATIONS:
            r.mixture(names.heldout_ablation_mixture(c, cl, ablation),
                      pick.train_tasks(f"{ablation}_train", train_cls), train_cls)


def _register_eval_mixtures(r: Registrar, info: CollectionInfo, pick: _TaskPicker) -> None:
    """Each cluster's zero-shot, rank, rank-without-options, few-shot and ablation evaluations."""
    c = info.name
    for cl in info.clusters:
        zero_shot = pick.eval_tasks("eval", cl) + pick.eval_tasks("rank", cl)
        info.eval_mixtures[cl] = r.mixture(names.cluster_eval_mixture(c, cl), zero_shot, [cl])
        rank = r.mixture(names.cluster_rank_mixture(c, cl), pick.eval_tasks("rank", cl), [cl])
        if rank:
            info.rank_mixtures[cl] = rank
        r.mixture(names.cluster_rank_no_options_mixture(c, cl),
                  pick.eval_tasks("rank_nooptions", cl), [cl])
        for k in FEWSHOT_SHOTS:
            r.mixture(names.fewshot_eval_mixture(c, cl, k), pick.eval_tasks(f"{k}shot", cl), [cl])
        for ablation in names.ABLATIONS:
            r.mixture(names.ablation_eval_mixture(c, cl, ablation),
                      pick.eval_tasks(f"{ablation}_eval", cl), [cl])


def forget_collection(c: str) -> None:
    """Unregisters a collection's tasks and mixtures and drops its cached records."""
    catalogue.forget_collection(c)
    sources.forget_collection(c)
