"""Fixtures of the tasks/ tests."""

import pytest


@pytest.fixture(scope="session")
def flan():
    """The registered FLAN 2021 collection (the package registers on import)."""
    import seqio

    import tasks  # noqa: F401 - registers every collection
    from tasks import catalogue, flan2021

    info = catalogue.collection_info("flan2021")
    assert isinstance(info.vocabulary, seqio.ByteVocabulary)  # no spm_path bound
    assert flan2021.INFO is info
    return info


@pytest.fixture(scope="module")
def fake():
    """Five generated datasets in four clusters; holding out alpha also drops beta."""
    from tasks import registry
    from tasks.spec import ClusterExclusion
    from tests.tasks.fake_specs import spec

    specs = [spec("a1", "alpha", 50), spec("a2", "alpha", 8000), spec("b1", "beta", 40),
             spec("c1", "gamma", 30), spec("d1", "delta", 20)]
    return registry.register_collection(
        specs, exclusions=[ClusterExclusion("alpha", ("beta",))],
        cluster_order=["gamma", "beta", "alpha"], replace=True,
    )
