"""FLAN 2021 struct-to-text cluster (tasks/flan2021/struct_to_text.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("struct_to_text", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("struct_to_text")] == [
        "common_gen", "dart", "e2e_nlg", "web_nlg_en",
    ]
