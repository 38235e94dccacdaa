"""FLAN 2021 paraphrase cluster (tasks/flan2021/paraphrase.py), on TFDS mock data."""

import pytest

from tests.tasks import flan_checks as fc

fc.cluster_tests("paraphrase", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("paraphrase")] == ["mrpc", "qqp", "paws_wiki", "stsb"]


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "stsb": ({"sentence1": "a", "sentence2": "b", "idx": 0, "label": 3.6}, "4"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = {s.name: s for s in fc.cluster_specs("paraphrase")}[name]
    record, expected = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields["answer"]) == expected
    if spec.is_classification:
        assert expected in fc.options_of(spec, fields)
