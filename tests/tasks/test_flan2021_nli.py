"""FLAN 2021 natural language inference cluster (tasks/flan2021/nli.py), on TFDS mock data."""

import pytest

from tests.tasks import flan_checks as fc

fc.cluster_tests("nli", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("nli")] == [
        "anli_r1", "anli_r2", "anli_r3", "cb", "mnli_matched", "mnli_mismatched", "qnli", "rte",
        "snli", "wnli",
    ]


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "cb": ({"premise": "p", "hypothesis": "h", "idx": 0, "label": 2}, "it is not possible to tell"),
    "wnli": ({"sentence1": "a", "sentence2": "b", "idx": 0, "label": 1}, "yes"),
    "qnli": ({"question": "q", "sentence": "s", "idx": 0, "label": 1}, "no"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = {s.name: s for s in fc.cluster_specs("nli")}[name]
    record, expected = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields["answer"]) == expected
    if spec.is_classification:
        assert expected in fc.options_of(spec, fields)
