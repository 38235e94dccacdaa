"""tasks.catalogue: lookups of what was registered and readable unknown names."""

import pytest
import seqio

import tasks  # noqa: F401 - registers the synthetic suite
from tasks import catalogue, names


def test_unknown_names_suggest_close_matches():
    with pytest.raises(catalogue.UnknownTaskError, match="synthetic_fact_nli_t1_eval"):
        catalogue.get_task_or_mixture("synthetic_fact_nli_t1_evl")
    with pytest.raises(KeyError):
        catalogue.task_info("synthetic_nope")
    with pytest.raises(catalogue.UnknownTaskError, match="Did you mean: synthetic"):
        catalogue.collection_info("synthetc")
    assert isinstance(catalogue.get_task_or_mixture("synthetic_all_train"), seqio.Mixture)


def test_a_misspelled_collection_suggests_the_collection_and_its_mixture():
    for name in ("synthetc", "synthetic"):
        with pytest.raises(catalogue.UnknownTaskError) as error:
            catalogue.get_task_or_mixture(name)
        assert str(error.value) == (
            f"unknown task or mixture `{name}`. Did you mean the collection `synthetic`? Its "
            "training mixture is synthetic_all_train; `flan-jax tasks list --mixtures "
            "--collection synthetic` lists the others.")


def test_unknown_task_error_message_is_not_quoted():
    error = catalogue.UnknownTaskError("unknown task `x`.")
    assert str(error) == "unknown task `x`." and isinstance(error, KeyError)


def test_task_info_and_mixture_clusters(fake):
    info = catalogue.task_info(names.rank_task("faketest", "a2", 0))
    assert (info.collection, info.cluster, info.dataset, info.kind) == (
        "faketest", "alpha", "a2", "rank")
    assert (info.split, info.is_classification, info.metrics) == (
        "validation", True, ("accuracy",))
    assert catalogue.mixture_clusters(names.cluster_eval_mixture("faketest", "beta")) == ("beta",)
    assert catalogue.mixture_clusters(names.train_task("faketest", "c1")) == ("gamma",)


def test_dataset_specs_of_nested_mixtures(fake):
    specs = catalogue.dataset_specs(names.heldout_mixture("faketest", "alpha"))
    assert [s.name for s in specs] == ["c1", "d1"]
    assert [s.name for s in catalogue.dataset_specs(names.train_task("faketest", "a2"))] == ["a2"]


def test_names_per_collection(fake):
    assert "faketest" in catalogue.collection_names()
    assert set(catalogue.task_names("faketest")) < set(catalogue.task_names())
    assert all(m.startswith("faketest_") for m in catalogue.mixture_names("faketest"))
    assert catalogue.collection_info("faketest").datasets["alpha"] == ("a1", "a2")
