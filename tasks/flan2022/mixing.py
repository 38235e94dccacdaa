"""Flan 2022 mixing: style tasks, the rate table, submixtures and the top mixture.

A submixture (`SUBMIXTURES`) is a weight in `flan2022_submix`, a per-task example cap, its
styles, and the modules whose `ENTRIES` (a list of `Entry`) it trains on. For each entry and
style one task `flan2022_{dataset}_{style}` is registered; per style, a mixture
`flan2022_{sub}_submix_{style}` holds the submixture's tasks of that style at rate
`min(cap, release count)` (x `INVERTED_RATE` for input-inverted entries); the submixture
`flan2022_{sub}_submix` mixes its styles equally, and `flan2022_submix` mixes the five
submixtures at their weights. Every rate is a constant from the release's example counts, so
rates are known before any data is downloaded.

A submixture with no entries (T0-SF and NIv2 until their modules exist) registers nothing, and
`flan2022_submix` is then not registered: asking for it names the empty submixtures and the
modules that would fill them (`catalogue.UNBUILDABLE`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
from typing import Mapping, Sequence

import seqio

from tasks import catalogue, preprocessors, registry, sources, validation
from tasks.catalogue import CollectionInfo, TaskInfo
from tasks.flan2022 import styles as st
from tasks.spec import DatasetSpec, FileRecordsSource, GeneratorSource, TextFileSource

COLLECTION = "flan2022"
INVERTED_RATE = 0.3  # an input-inverted task's rate, relative to its original's


@dataclasses.dataclass(frozen=True)
class Submixture:
    weight: float  # its share of flan2022_submix
    cap: int  # per-task example cap: a task's rate is min(cap, count)
    styles: tuple[str, ...]  # split evenly
    modules: tuple[str, ...]  # tasks.flan2022 modules exposing ENTRIES


@dataclasses.dataclass(frozen=True)
class Entry:
    """One dataset of a submixture, with the release's example counts (zero-shot, few-shot)."""

    spec: DatasetSpec
    counts: tuple[int, int]
    inverted: bool = False  # input inversion: mixed at INVERTED_RATE of the original's rate

    def rate(self, style: str, cap: int) -> float:
        count = self.counts[1] if st.STYLES[style].few_shot else self.counts[0]
        return min(cap, count) * (INVERTED_RATE if self.inverted else 1.0)


FOUR_STYLES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
SUBMIXTURES: Mapping[str, Submixture] = {
    "flan2021": Submixture(0.40, 30_000, FOUR_STYLES, ("flan2021_submix",)),
    "t0": Submixture(0.32, 20_000, FOUR_STYLES, ("t0",)),
    "niv2": Submixture(0.20, 5_000, ("zs_opt", "fs_opt"), ("niv2",)),
    "cot": Submixture(0.05, 100_000, ("cot", "fs_cot"), ("cot",)),
    "dialog": Submixture(0.03, 200_000, ("zs_noopt", "fs_noopt"), ("dialog",)),
}


def task_name(dataset: str, style: str, collection: str = COLLECTION) -> str:
    return f"{collection}_{dataset}_{style}"


def submixture_name(sub: str, style: str | None = None, collection: str = COLLECTION) -> str:
    return f"{collection}_{sub}_submix" + (f"_{style}" if style else "")


def top_mixture_name(collection: str = COLLECTION) -> str:
    return f"{collection}_submix"


TOP_MIXTURE = top_mixture_name()


def load_entries(sub: Submixture, package: str = "tasks.flan2022") -> list[Entry]:
    """The ENTRIES of a submixture's modules that exist (none: an empty placeholder)."""
    entries: list[Entry] = []
    for module in sub.modules:
        full = f"{package}.{module}"
        if importlib.util.find_spec(full) is not None:
            entries.extend(importlib.import_module(full).ENTRIES)
    return entries


def _rendered(spec: DatasetSpec, split: str, seed: int, shuffle_files: bool):
    ds = sources.raw_dataset(spec, split, seed, shuffle_files)
    ds = preprocessors.prepare_fields(ds, spec, split, validation.required_fields(spec))
    return ds.map(functools.partial(st.prerender, spec), num_parallel_calls=-1)


def style_source(spec: DatasetSpec, style: st.Style, seed: int,
                 vocabulary: seqio.Vocabulary) -> seqio.DataSource:
    """A seqio source of one dataset rendered in one style (train split only)."""

    def dataset_fn(split: str, shuffle_files: bool, seed_: int | None = None):
        del seed_  # template and list-style choices are fixed by the collection's seed
        query = _rendered(spec, split, seed, shuffle_files)
        if not style.few_shot:
            return query.map(st.zero_shot(spec, style, seed), num_parallel_calls=-1)
        exemplars = _rendered(spec, spec.exemplar_split, seed, False)
        return st.with_exemplars(query, exemplars, spec, style, seed, vocabulary)

    num = None
    if isinstance(spec.source, (GeneratorSource, TextFileSource, FileRecordsSource)):
        num = {"train": spec.source.num_examples["train"]}
    return seqio.FunctionDataSource(dataset_fn, splits=("train",), num_input_examples=num)


def _register_entries(r: registry.Registrar, collection: str, sub: Submixture,
                      entries: Sequence[Entry]) -> dict[str, list[tuple[str, float]]]:
    """Registers each entry's style tasks; returns style -> [(task, rate)]."""
    by_style: dict[str, list[tuple[str, float]]] = {s: [] for s in sub.styles}
    for e in entries:
        spec = e.spec
        if spec.eval_only or "train" not in spec.source.splits:
            continue  # evaluation-only datasets never train
        for style in sub.styles:
            name = task_name(spec.name, style, collection)
            info = TaskInfo(
                name=name, collection=collection, cluster=spec.cluster, dataset=spec.name,
                kind="style_train", template_index=None, num_templates=len(spec.templates),
                num_shots=st.MAX_EXEMPLARS if st.STYLES[style].few_shot else 0, metrics=(),
                is_classification=spec.is_classification, split="train",
                turned_around=e.inverted, style=style)
            r.task(info, style_source(spec, st.STYLES[style], r.seed, r.vocabulary), spec, (),
                   False)
            by_style[style].append((name, e.rate(style, sub.cap)))
    return by_style


def register(groups: Mapping[str, Sequence[Entry]], vocabulary: seqio.Vocabulary,
             seed: int = 0, replace: bool = False,
             submixtures: Mapping[str, Submixture] = SUBMIXTURES,
             collection: str = COLLECTION) -> CollectionInfo:
    """Registers the collection from submixture name -> entries (see the module docstring);
    `collection` renames it (tests register small stand-ins next to the real one)."""
    if replace:
        catalogue.forget_collection(collection)
        sources.forget_collection(collection)
    r = registry.Registrar(vocabulary, seed, replace)
    built, empty, specs = [], [], []
    for sub_name, sub in submixtures.items():
        entries = list(groups.get(sub_name, ()))
        specs += [e.spec for e in entries]
        by_style = _register_entries(r, collection, sub, entries)
        if not any(by_style.values()):
            empty.append(sub_name)
            continue
        clusters = [catalogue.TASKS[t].cluster for tasks in by_style.values() for t, _ in tasks]
        style_mixtures = [(r.mixture(submixture_name(sub_name, s, collection), tasks, clusters),
                           1.0) for s, tasks in by_style.items()]
        r.mixture(submixture_name(sub_name, None, collection), style_mixtures, clusters)
        built.append((submixture_name(sub_name, None, collection), sub.weight))
    top = top_mixture_name(collection)
    if empty:
        catalogue.UNBUILDABLE[top] = (
            f"`{top}` cannot be built yet: submixture(s) "
            + ", ".join(f"{submixture_name(s, None, collection)} (add tasks/flan2022/"
                        f"{' or '.join(m + '.py' for m in submixtures[s].modules)} with ENTRIES)"
                        for s in empty)
            + " have no tasks. The built ones can be used alone: "
            + (", ".join(n for n, _ in built) or "none") + ".")
    else:
        r.mixture(top, built, [c for n, _ in built for c in catalogue.MIXTURES[n]])
    clusters = tuple(dict.fromkeys(s.cluster for s in specs))
    info = CollectionInfo(
        name=collection, clusters=clusters,
        datasets={c: tuple(s.name for s in specs if s.cluster == c) for c in clusters},
        cluster_order=clusters, exclusions=(), train_mixture=top, heldout_mixtures={},
        eval_mixtures={}, rank_mixtures={}, specs=tuple(specs), vocabulary=vocabulary)
    catalogue.COLLECTIONS[collection] = info
    return info
