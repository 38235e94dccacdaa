"""FLAN 2021 closed-book QA cluster (tasks/flan2021/closed_book_qa.py), on TFDS mock data."""

import pytest

from tests.tasks import flan_checks as fc

fc.cluster_tests("closed_book_qa", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("closed_book_qa")] == [
        "arc_easy", "arc_challenge", "natural_questions", "trivia_qa",
    ]


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "arc_easy": ({"id": "", "question": "q", "answerKey": 3,
                  "choices": {"text": ["a", "b", "c", "d"], "label": [0, 1, 2, 3]}}, "d"),
    "natural_questions": ({"question": "q", "answer": ["a1", "a2"]}, "a1"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = {s.name: s for s in fc.cluster_specs("closed_book_qa")}[name]
    record, expected = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields["answer"]) == expected
    if spec.is_classification:
        assert expected in fc.options_of(spec, fields)
