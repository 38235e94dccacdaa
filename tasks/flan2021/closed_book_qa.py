"""FLAN 2021 closed-book QA: ARC (Easy, Challenge), Natural Questions (open), TriviaQA.

ARC is multiple choice: its options are the per-example answer choices. Natural Questions and
TriviaQA are answered from memory and scored with SQuAD-style exact match / F1 against the
rendered target (the first listed answer for NQ, the canonical value for TriviaQA).
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021.common import (COLLECTION, graph_fields, nth, qa_answers, source, t,
                                   text_of_matching_label, turned)
from tasks.spec import DatasetSpec

CLUSTER = "closed_book_qa"

ARC_TEMPLATES = [
    t("{question}", "{answer}"),
    t("Answer this science question.\n\n{question}", "{answer}"),
    t("Question: {question}\nAnswer:", "{answer}"),
    t("Pick the correct answer to the following grade-school science question: {question}",
      "{answer}"),
    t("{question}\n\nWhich choice is right?", "{answer}"),
    t("Here is a question from a science exam. {question}", "{answer}"),
    t("Use what you know about science to answer: {question}", "{answer}"),
    turned("Write a science exam question whose correct answer is \"{answer}\".",
           "{question}"),
    t("Q: {question}\nWhat is the answer?", "{answer}"),
    turned("{answer}\n\nWhat multiple-choice science question might this be the answer to?",
           "{question}"),
]

OPEN_QA_TEMPLATES = [
    t("{question}", "{answer}"),
    t("Answer the following question from memory: {question}", "{answer}"),
    t("Question: {question}\nAnswer:", "{answer}"),
    t("{question}?\n\nGive a short answer.", "{answer}"),
    t("Q: {question}\nA:", "{answer}"),
    t("Please tell me: {question}", "{answer}"),
    t("Here is a trivia question. {question}", "{answer}"),
    t("What is the answer to this question?\n\n{question}", "{answer}"),
    turned("Write a question whose answer is \"{answer}\".", "{question}"),
    turned("The answer is: {answer}\nWhat could the question have been?", "{question}"),
]

# NQ-open questions are lower-case and have no question mark; template 3 appends one. TriviaQA
# questions already end in "?", so its fourth template drops the extra one.
TRIVIA_QA_TEMPLATES = list(OPEN_QA_TEMPLATES)
TRIVIA_QA_TEMPLATES[3] = t("{question}\n\nGive a short answer.", "{answer}")


def _arc_fields(ex):
    choices = ex["choices"]
    return {
        "question": ex["question"],
        "answer": text_of_matching_label(choices["text"], choices["label"], ex["answerKey"]),
        "options": choices["text"],
    }


def _has_four_options(fields):
    return tf.equal(tf.size(fields["options"]), 4)


def _nq_fields(ex):
    # Trains on the first answer; scored against all of them.
    answers = tf.reshape(ex["answer"], [-1])
    return {"question": ex["question"], "answer": nth(answers, 0), "answers": answers}


def _trivia_qa_fields(ex):
    # As the release: the target is the normalised answer, and any normalised alias scores.
    return {"question": ex["question"], "answer": ex["answer"]["normalized_value"],
            "answers": tf.reshape(ex["answer"]["normalized_aliases"], [-1])}


DATASETS: list[DatasetSpec] = [
    *[
        DatasetSpec(
            name=f"arc_{level.lower()}", collection=COLLECTION, cluster=CLUSTER,
            source=source(f"ai2_arc/ARC-{level}:1.0.0", train="train", validation="validation",
                          test="test"),
            templates=ARC_TEMPLATES, fields_fn=graph_fields(_arc_fields), options_field="options",
            # The release evaluates on test and keeps only 4-option questions (a few have 3 or 5).
            metric_fns=[metrics.accuracy], eval_split="test", filter_fn=_has_four_options,
            display_name=f"ARC ({level})",
        )
        for level in ("Easy", "Challenge")
    ],
    DatasetSpec(
        name="natural_questions", collection=COLLECTION, cluster=CLUSTER,
        source=source("natural_questions_open:1.0.0", train="train", validation="validation"),
        templates=OPEN_QA_TEMPLATES, fields_fn=graph_fields(_nq_fields),
        metric_fns=[metrics.trivia_qa], postprocess_fn=qa_answers, answers_field="answers",
        eval_split="validation",
        display_name="Natural Questions",
    ),
    # TriviaQA's test answers are hidden: evaluate on validation.
    DatasetSpec(
        name="trivia_qa", collection=COLLECTION, cluster=CLUSTER,
        source=source("trivia_qa/rc:1.1.0", train="train", validation="validation"),
        templates=TRIVIA_QA_TEMPLATES, fields_fn=graph_fields(_trivia_qa_fields),
        metric_fns=[metrics.trivia_qa], postprocess_fn=qa_answers, answers_field="answers",
        eval_split="validation",
        display_name="TriviaQA",
    ),
]
