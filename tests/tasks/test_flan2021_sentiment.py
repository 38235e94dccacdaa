"""FLAN 2021 sentiment cluster (tasks/flan2021/sentiment.py), on TFDS mock data."""

import pytest

from tests.tasks import flan_checks as fc

fc.cluster_tests("sentiment", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("sentiment")] == [
        "imdb_reviews", "sentiment140", "sst2", "yelp_polarity_reviews",
    ]


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "sentiment140": ({"text": "t", "polarity": 4, "date": "", "query": "", "user": ""},
                     "positive"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = {s.name: s for s in fc.cluster_specs("sentiment")}[name]
    record, expected = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields["answer"]) == expected
    if spec.is_classification:
        assert expected in fc.options_of(spec, fields)

