"""The metrics FLAN 2021 datasets report, on hand-computed cases (GLUE/SuperGLUE conventions)."""

import pytest

from tasks.flan2021 import common
from tests.tasks import flan_checks as fc

SPECS = {s.name: s for c in ("nli", "paraphrase", "reading_comprehension", "misc")
         for s in fc.cluster_specs(c)}


def _score(name, targets, predictions, examples=None):
    """Postprocess as evaluation does, then every metric of the dataset."""
    spec = SPECS[name]
    examples = examples or [{}] * len(targets)
    post = spec.postprocess_fn
    t = [post(x, example=e, is_target=True) for x, e in zip(targets, examples)]
    p = [post(x, example=e, is_target=False) for x, e in zip(predictions, examples)]
    out = {}
    for fn in spec.metric_fns:
        out.update(fn(t, p))
    return out


def test_mrpc_and_qqp_report_accuracy_and_f1():
    for name in ("mrpc", "qqp"):
        scores = _score(name, ["yes", "yes", "no", "no"], ["yes", "no", "no", "maybe"])
        assert scores["accuracy"] == pytest.approx(50.0)
        # F1 of "yes": the invalid "maybe" becomes the wrong class ("yes" here), so one true
        # positive, one false positive, one false negative.
        assert scores["f1"] == pytest.approx(50.0)


def test_cb_reports_accuracy_and_mean_three_class_f1():
    yes, maybe, no = SPECS["cb"].options
    scores = _score("cb", [yes, no, maybe, yes], [yes, no, yes, yes])
    assert scores["accuracy"] == pytest.approx(75.0)
    # Per-class F1: yes 0.8, no 1.0, neither 0.0 -> mean 0.6.
    assert scores["mean_3class_f1"] == pytest.approx(60.0)


def test_multirc_exact_match_is_per_question():
    examples = [{"group": b"0-0"}, {"group": b"0-0"}, {"group": b"0-1"}, {"group": b"0-1"}]
    scores = _score("multirc", ["yes", "no", "yes", "no"], ["yes", "no", "yes", "yes"],
                    examples)
    assert scores["exact_match"] == pytest.approx(50.0)  # question 0-0 right, 0-1 not
    assert scores["f1"] == pytest.approx(80.0)  # F1 over all answer candidates (class yes)


def test_multirc_groups_by_question():
    fields = fc.fields_of(SPECS["multirc"], {
        "paragraph": "p", "question": "q", "answer": "a", "label": 1,
        "idx": {"paragraph": 3, "question": 7, "answer": 0}})
    assert fields["question_id"] == b"3-7" and fields["answer"] == b"yes"
    assert SPECS["multirc"].group_field == "question_id"


def test_quac_uses_the_trivia_qa_metric():
    scores = _score("quac", ["The Beatles"], ["the beatles"])
    assert scores == {"em": 100.0, "f1": 100.0}


def test_fix_punct_keeps_case_and_scores_cased_edit_distance():
    fields = fc.fields_of(SPECS["fix_punct"], {"en": "Hello, World! It's me."})
    assert fields["no_punct"] == b"Hello World Its me"
    scores = common.cased_edit_distance(["Hello, World."], ["hello, World."])
    assert scores["mean_edit"] == 1  # the lost capital counts
