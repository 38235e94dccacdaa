"""Multi-reference datasets keep every gold answer and are scored against the best one."""

import pytest
from t5.evaluation import metrics

from tasks import names
from tasks.flan2021 import common
from tests.tasks import flan_checks as fc

SPECS = {s.name: s for c in ("reading_comprehension", "closed_book_qa", "rc_commonsense",
                             "struct_to_text") for s in fc.cluster_specs(c)}

# dataset: (hand-made raw record, training target, every gold answer)
HAND_MADE = {
    "squad_v1": ({"title": "T", "context": "c", "question": "q",
                  "answers": {"text": ["Denver Broncos", "the Broncos"],
                              "answer_start": [0, 4]}},
                 "Denver Broncos", ["Denver Broncos", "the Broncos"]),
    "squad_v2": ({"title": "T", "context": "c", "question": "q", "is_impossible": True,
                  "answers": {"text": ["ignored"], "answer_start": [0]}},
                 "unanswerable", ["unanswerable"]),
    "natural_questions": ({"question": "who wrote hamlet", "answer": ["Shakespeare",
                                                                      "William Shakespeare"]},
                          "Shakespeare", ["Shakespeare", "William Shakespeare"]),
    "trivia_qa": ({"question": "q", "answer": {
        "value": "The Beatles", "normalized_value": "beatles",
        "aliases": ["The Beatles", "Beatles"], "normalized_aliases": ["beatles", "the beatles"]}},
        "beatles", ["beatles", "the beatles"]),
    "record": ({"passage": "p @highlight h", "query": "@placeholder won.",
                "entities": ["Obama", "Barack Obama", "Biden"],
                "answers": ["Obama", "Barack Obama"]},
               "Obama", ["Obama", "Barack Obama"]),
    "dart": ({"tripleset": ["a | b | c"], "target": "A b c.",
              "references": ["A's b is c.", "C is the b of A."]},
             "A b c.", ["A's b is c.", "C is the b of A.", "A b c."]),
}
TARGET_FIELD = {"dart": "target"}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_every_gold_answer_is_kept(name):
    spec = SPECS[name]
    record, target, answers = HAND_MADE[name]
    fields = fc.fields_of(spec, record)
    assert fc.decoded(fields[TARGET_FIELD.get(name, "answer")]) == target
    assert fc.decoded(fields[spec.answers_field]) == answers


def test_qa_answers_hands_every_answer_to_the_metric():
    example = {"answers": [b"Denver Broncos", b"the Broncos"]}
    targets = [common.qa_answers(b"Denver Broncos", example, is_target=True)]
    assert targets == [["Denver Broncos", "the Broncos"]]
    # The second reference matches: max over references gives full marks.
    assert metrics.squad(targets, ["the Broncos"]) == {"em": 100.0, "f1": 100.0}
    assert metrics.squad([["Denver Broncos"]], ["the Broncos"])["em"] == 0.0
    assert common.qa_answers("x", {}, is_target=True) == ["x"]  # no answers: the target


def test_multi_reference_rouge_takes_the_best_reference():
    refs = [["a completely different sentence", "the cat sat on the mat"]]
    best = common.multi_reference_rouge(refs, ["the cat sat on the mat"])
    assert best == {"rouge1": 100.0, "rouge2": 100.0, "rougeLsum": 100.0}
    single = common.multi_reference_rouge([["a completely different sentence"]],
                                          ["the cat sat on the mat"])
    assert single["rouge1"] < 20


@pytest.mark.parametrize("name", ["squad_v1", "trivia_qa", "dart"])
def test_eval_examples_carry_all_answers(flan, name):
    import seqio

    spec = SPECS[name]
    task = seqio.get_mixture_or_task(names.eval_task("flan2021", name, 0))
    with fc.mock_for(spec):
        ex = next(iter(task.get_dataset(None, split=spec.eval_split, shuffle=False,
                                        use_cached=False).as_numpy_iterator()))
    assert ex["answers"].ndim == 1 and len(ex["answers"]) >= 1
    target = task.postprocess_fn(ex["targets_pretokenized"], example=ex, is_target=True)
    assert target == [a.decode() for a in ex["answers"]]


def test_tasks_show_mock_prints_every_gold_answer(flan, capsys):
    from flan_jax import tasks_cli

    assert tasks_cli.main(["show", names.eval_task("flan2021", "squad_v1", 0), "--mock",
                           "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "--- answers\n- " in out
