"""The FLAN 2021 collection as registered: clusters, held-out exclusions, mixtures."""

import pytest
import seqio

from tasks import names
from tests.tasks import flan_checks as fc

CLUSTERS = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
            "translation", "reading_comprehension", "rc_commonsense", "coreference", "misc",
            "summarization")


def test_dataset_names_are_unique_across_clusters():
    all_names = [s.name for c in CLUSTERS for s in fc.cluster_specs(c)]
    assert len(all_names) == len(set(all_names))


def test_collection_clusters_and_exclusions(flan):
    from tasks import flan2021

    assert set(CLUSTERS) == set(flan.clusters)
    assert flan.cluster_order == flan2021.CLUSTER_ORDER
    assert not set(flan.cluster_order) & {"nli", "closed_book_qa", "commonsense"}
    held_out_nli = flan.training_clusters("nli")
    assert "paraphrase" not in held_out_nli and "sentiment" in held_out_nli
    assert "nli" not in flan.training_clusters("paraphrase")
    datasets = {s.name for s in flan2021.datasets_for_mixture(names.heldout_mixture("flan2021",
                                                                                    "nli"))}
    assert not datasets & {"rte", "mrpc", "stsb"} and {"sst2", "copa"} <= datasets


def test_heldout_mixtures_hold_only_training_clusters(flan):
    for cluster in flan.clusters:
        mixture = seqio.get_mixture_or_task(names.heldout_mixture("flan2021", cluster))
        trained = {t.name.split("_train")[0] for t in mixture.tasks}
        allowed = set(flan.training_clusters(cluster))
        for dataset_task in trained:
            dataset = dataset_task[len("flan2021_"):]
            spec = next(s for s in flan.specs if s.name == dataset)
            assert spec.cluster in allowed, (cluster, dataset)


def _datasets_of(mixture_name):
    from tasks import catalogue

    return {s.name for s in catalogue.dataset_specs(mixture_name)}


def test_evaluation_only_datasets_never_train(flan):
    from tasks import catalogue

    eval_only = {s.name for s in flan.specs if s.eval_only}
    assert eval_only == {"wsc273"}
    train_mixtures = [m for m in catalogue.mixture_names("flan2021") if m.endswith("_train")]
    assert len(train_mixtures) > 50
    for mixture in train_mixtures:
        assert not _datasets_of(mixture) & eval_only, mixture
    coreference = _datasets_of(names.cluster_eval_mixture("flan2021", "coreference"))
    assert "wsc273" in coreference
    assert names.rank_task("flan2021", "wsc273", 0) in catalogue.task_names("flan2021")
    assert names.train_task("flan2021", "wsc273") not in catalogue.task_names("flan2021")


def test_registered_datasets_per_cluster(flan):
    """The paper's datasets plus the release's extra tasks (True Case, Word Segment), each in
    its cluster."""
    counts = {cluster: len(datasets) for cluster, datasets in flan.datasets.items()}
    assert counts == {"nli": 10, "commonsense": 4, "sentiment": 4, "paraphrase": 4,
                      "closed_book_qa": 4, "struct_to_text": 4, "translation": 8,
                      "reading_comprehension": 6, "rc_commonsense": 2, "coreference": 4,
                      "misc": 9, "summarization": 11}
    assert {"true_case", "word_segment", "fix_punct"} <= set(flan.datasets["misc"])


# Held-out cluster -> the clusters that leave training with it (the paper's rules).
ALSO_DROPPED = {
    "nli": {"paraphrase"},
    "paraphrase": {"nli"},
    "reading_comprehension": {"rc_commonsense"},
    "commonsense": {"rc_commonsense"},
    "rc_commonsense": {"reading_comprehension", "commonsense"},
}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_heldout_exclusions_of_every_cluster(flan, cluster):
    dropped = {cluster} | ALSO_DROPPED.get(cluster, set())
    assert set(flan.training_clusters(cluster)) == set(CLUSTERS) - dropped
    trained = {s.cluster for s in (
        next(x for x in flan.specs if x.name == d)
        for d in _datasets_of(names.heldout_mixture("flan2021", cluster)))}
    assert trained == set(CLUSTERS) - dropped


def test_num_clusters_ablation_adds_conversational_qa_seventh(flan):
    six = _datasets_of(names.clusters_mixture("flan2021", 6))
    seven = _datasets_of(names.clusters_mixture("flan2021", 7))
    assert seven - six == {"coqa", "quac"}
    assert not seven & {s.name for s in flan.specs
                        if s.cluster in ("nli", "closed_book_qa", "commonsense")}
    from tasks import catalogue

    assert "misc" in catalogue.mixture_clusters(names.clusters_mixture("flan2021", 7))


# Datasets the release collapses into one task each (`anli`, `mnli`, `arc`, `squad`,
# `opinion_abstracts`): the paper's count of 62 counts each group once.
COLLAPSED_GROUPS = {
    "anli": {"anli_r1", "anli_r2", "anli_r3"},
    "mnli": {"mnli_matched", "mnli_mismatched"},
    "arc": {"arc_easy", "arc_challenge"},
    "squad": {"squad_v1", "squad_v2"},
    "opinion_abstracts": {"opinion_abstracts_rotten_tomatoes", "opinion_abstracts_idebate"},
}


def test_paper_training_mixtures_hold_the_papers_datasets_only(flan):
    """True Case and Word Segment are release extras (the release trains on them in its
    text-formatting cluster with Fix Punctuation; the paper lists Fix Punctuation alone): every
    training mixture without `release` in its name leaves them out, the release-style ones keep
    them (DEVIATIONS.md)."""
    from tasks import catalogue

    extras = {"true_case", "word_segment"}
    assert set(flan.release_extras) == extras
    trained = _datasets_of(names.all_train_mixture("flan2021"))
    assert "fix_punct" in trained and not trained & extras
    eval_only = {s.name for s in flan.specs if s.eval_only}
    paper = trained | eval_only
    assert len(paper) == 68
    counted = {next((g for g, members in COLLAPSED_GROUPS.items() if d in members), d)
               for d in paper}
    assert len(counted) == 62
    assert _datasets_of(names.release_train_mixture("flan2021")) == trained | extras
    train_mixtures = [m for m in catalogue.mixture_names("flan2021") if m.endswith("_train")]
    release = [m for m in train_mixtures if "_release_" in m]
    assert len(release) == 2 + 2 * len(flan.clusters)
    for mixture in train_mixtures:
        if mixture not in release:
            assert not _datasets_of(mixture) & extras, mixture
    for mixture in release:
        if "misc" in catalogue.mixture_clusters(mixture):
            assert extras <= _datasets_of(mixture), mixture
    # Still evaluated as any misc dataset.
    assert {names.eval_task("flan2021", d, 0) for d in extras} <= {
        t.name for t in seqio.get_mixture_or_task(names.cluster_eval_mixture(
            "flan2021", "misc")).tasks}
