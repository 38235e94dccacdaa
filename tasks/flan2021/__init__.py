"""FLAN 2021 (Wei et al. 2021, "Finetuned Language Models Are Zero-Shot Learners"), as data.

Twelve task clusters, one module each, every module exposing `DATASETS: list[DatasetSpec]`:
    nli, commonsense, sentiment, paraphrase, closed_book_qa, struct_to_text,
    translation, reading_comprehension, rc_commonsense, coreference, misc, summarization.
Importing this package registers the collection "flan2021" with `tasks.registry` (task and
mixture names are described in `tasks.names`), using the vocabulary `flan_vocabulary()`
returns: bind `flan2021.flan_vocabulary.spm_path` in gin to T5's SentencePiece model before
`import tasks`, or call `register(replace=True)` after parsing gin. Nothing is downloaded or read
at import; see `flan-jax data prepare` (flan_jax/data/cli.py) to prepare a mixture's TFDS
datasets. Where this collection departs from the FLAN release: DEVIATIONS.md.

Held-out clusters follow the paper: holding out NLI also drops paraphrase (and vice versa),
holding out reading comprehension or commonsense drops the reading-comprehension-with-
commonsense cluster, and holding that one out drops both. The number-of-clusters ablation adds
clusters in `CLUSTER_ORDER` (the seventh is conversational QA, a dataset group of `misc`), with
NLI, closed-book QA and commonsense held out for evaluation.

Training mixtures come in two forms: zero-shot (`flan2021_heldout_{cluster}_train`, ...) and
zero- plus few-shot (`flan2021_heldout_{cluster}_fewshot_train`, `flan2021_all_fewshot_train`),
both over the paper's datasets. True Case and Word Segment, which the release trains on but the
paper does not list, train only in the release-style mixtures
(`flan2021_heldout_{cluster}_release[_fewshot]_train`, `flan2021_all_release[_fewshot]_train`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Sequence

from tasks.flan2021.common import COLLECTION, flan_vocabulary
from tasks.spec import ClusterExclusion, DatasetSpec, TfdsSource

CLUSTER_MODULES = (
    "nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
    "translation", "reading_comprehension", "rc_commonsense", "coreference", "misc",
    "summarization",
)

# The paper's cluster-count ablation order; its seventh cluster is conversational QA, which
# this collection (like the paper's twelve clusters) keeps within `misc`: a dataset group.
FULL_CLUSTER_ORDER = (
    "summarization", "translation", "reading_comprehension", "sentiment", "struct_to_text",
    "coreference", "conversational_qa",
)
DATASET_GROUPS = {"conversational_qa": ("coqa", "quac")}
# Evaluation clusters of that ablation: never in its training mixtures.
ABLATION_HELD_OUT = ("nli", "closed_book_qa", "commonsense")

FULL_EXCLUSIONS = (
    ClusterExclusion(held_out="nli", also_drop=("paraphrase",)),
    ClusterExclusion(held_out="paraphrase", also_drop=("nli",)),
    ClusterExclusion(held_out="reading_comprehension", also_drop=("rc_commonsense",)),
    ClusterExclusion(held_out="commonsense", also_drop=("rc_commonsense",)),
    # And the reverse: a model evaluated on reading comprehension with commonsense has seen
    # neither of the clusters it combines.
    ClusterExclusion(held_out="rc_commonsense",
                     also_drop=("reading_comprehension", "commonsense")),
)


def _load_specs() -> list[DatasetSpec]:
    specs: list[DatasetSpec] = []
    for module_name in CLUSTER_MODULES:
        full = f"{__name__}.{module_name}"
        if importlib.util.find_spec(full) is None:  # a cluster not written yet
            continue
        specs.extend(importlib.import_module(full).DATASETS)
    return specs


SPECS: tuple[DatasetSpec, ...] = tuple(_load_specs())
CLUSTERS: tuple[str, ...] = tuple(dict.fromkeys(s.cluster for s in SPECS))
# Exclusions and order restricted to the clusters present (the registry rejects unknown ones).
EXCLUSIONS: tuple[ClusterExclusion, ...] = tuple(
    ClusterExclusion(e.held_out, tuple(c for c in e.also_drop if c in CLUSTERS))
    for e in FULL_EXCLUSIONS
    if e.held_out in CLUSTERS and any(c in CLUSTERS for c in e.also_drop)
)
CLUSTER_ORDER: tuple[str, ...] = tuple(
    c for c in FULL_CLUSTER_ORDER if c in CLUSTERS or c in DATASET_GROUPS)


def register(vocabulary=None, replace: bool = False):
    """Registers the collection; returns its CollectionInfo (None without tasks.registry)."""
    if importlib.util.find_spec("tasks.registry") is None:
        return None
    from tasks import registry

    if not SPECS:
        return None
    return registry.register_collection(
        SPECS,
        exclusions=EXCLUSIONS,
        vocabulary=vocabulary if vocabulary is not None else flan_vocabulary(),
        cluster_order=CLUSTER_ORDER,
        dataset_groups=DATASET_GROUPS,
        replace=replace,
    )


def spec(name: str) -> DatasetSpec:
    for s in SPECS:
        if s.name == name:
            return s
    raise KeyError(f"flan2021 has no dataset `{name}`.")


def datasets_for_mixture(name: str) -> list[DatasetSpec]:
    """The datasets a task or mixture reads, in collection order.

    `name` is a registered task or mixture ("flan2021_heldout_nli_train"), or, without the
    registry, "flan2021"/"all", a cluster ("nli") or a dataset ("rte").
    """
    if name in (COLLECTION, "all"):
        return list(SPECS)
    if name in CLUSTERS:
        return [s for s in SPECS if s.cluster == name]
    if any(s.name == name for s in SPECS):
        return [spec(name)]
    from tasks import catalogue  # unknown names raise UnknownTaskError with close matches

    return [s for s in catalogue.dataset_specs(name) if s.collection == COLLECTION]


def tfds_sources(specs: Sequence[DatasetSpec]) -> list[TfdsSource]:
    """The TFDS sources of `specs`, de-duplicated by TFDS name (MNLI serves two datasets)."""
    seen: dict[str, TfdsSource] = {}
    for s in specs:
        if isinstance(s.source, TfdsSource) and s.source.name not in seen:
            seen[s.source.name] = s.source
    return list(seen.values())


INFO = register()
