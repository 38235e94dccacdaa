"""FLAN 2021 commonsense cluster (tasks/flan2021/commonsense.py), on TFDS mock data."""

import pytest

from tests.tasks import flan_checks as fc

fc.cluster_tests("commonsense", globals())


def test_datasets():
    assert [s.name for s in fc.cluster_specs("commonsense")] == [
        "copa", "hellaswag", "piqa", "story_cloze",
    ]


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "copa": ({"premise": "The man fell.", "question": "cause", "choice1": "He slipped.",
              "choice2": "He sang.", "idx": 0, "label": 0}, "He slipped."),
    "hellaswag": ({"context": "c", "activity_label": "a", "endings": ["w", "x", "y", "z"],
                   "label": 2, "source_id": "", "split_type": ""}, "y"),
    "piqa": ({"goal": "Open a jar.", "id": "", "sol1": "Twist the lid.", "sol2": "Eat it.",
              "label": 0}, "Twist the lid."),
    # TFDS's story_cloze label is AnswerRightEnding: 1 or 2.
    "story_cloze_ending_1": ({"context": "c", "endings": ["e1", "e2"], "label": 1}, "e1"),
    "story_cloze_ending_2": ({"context": "c", "endings": ["e1", "e2"], "label": 2}, "e2"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = {s.name: s for s in fc.cluster_specs("commonsense")}[name.split("_ending")[0]]
    record, expected = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields["answer"]) == expected
    if spec.is_classification:
        assert expected in fc.options_of(spec, fields)
