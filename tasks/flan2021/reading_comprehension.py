"""FLAN 2021 reading comprehension cluster: BoolQ, DROP, MultiRC, OpenBookQA, SQuAD v1.1/v2.0.

Classification sets (BoolQ, MultiRC, OpenBookQA) get their options appended by the registry;
the templates here never spell the options out.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021 import common
from tasks.flan2021.common import COLLECTION, t, turned
from tasks.spec import DatasetSpec

CLUSTER = "reading_comprehension"
YES_NO = ["no", "yes"]


# ---- BoolQ ------------------------------------------------------------------------------


def bool_q_fields(ex):
    return {
        "title": ex["title"],
        "passage": ex["passage"],
        # TFDS lowercases the question and drops its question mark.
        "question": tf.strings.join([ex["question"], "?"]),
        "answer": common.yes_no(ex["answer"]),
    }


BOOL_Q_TEMPLATES = [
    t("{passage}\n\nBased on the passage, {question}", "{answer}"),
    t("Read this and answer with yes or no.\n\n{title}: {passage}\n\nQuestion: {question}",
      "{answer}"),
    t("{title}\n\n{passage}\n\nIs the answer to \"{question}\" yes or no?", "{answer}"),
    t("Passage: {passage}\nAfter reading the passage, {question}", "{answer}"),
    t("Here is an excerpt about {title}:\n{passage}\n\nAccording to it, {question}",
      "{answer}"),
    t("Answer the question using the text.\nText: {passage}\nQ: {question}", "{answer}"),
    t("{passage}\n\nDoes the text above say that the answer to \"{question}\" is yes?",
      "{answer}"),
    t("I read the following article on {title}.\n\n{passage}\n\nSo, {question}", "{answer}"),
    turned("{passage}\n\nWrite a yes/no question about this passage whose answer is {answer}.",
       "{question}"),
    turned("Article title: {title}\nArticle: {passage}\n\nAsk a question that can be answered "
       "with \"{answer}\" from this article.", "{question}"),
]


# ---- DROP -------------------------------------------------------------------------------


def drop_fields(ex):
    return {"passage": ex["passage"], "question": ex["question"], "answer": ex["answer"]}


DROP_TEMPLATES = [
    t("{passage}\n\n{question}", "{answer}"),
    t("Read the passage and answer the question, which may need counting, sorting or "
      "arithmetic.\n\n{passage}\n\nQuestion: {question}\nAnswer:", "{answer}"),
    t("Passage: {passage}\n\nUsing the numbers and facts in the passage, {question}",
      "{answer}"),
    t("{question}\n\nWork it out from this text:\n{passage}", "{answer}"),
    t("Here is some text:\n{passage}\n\nNow answer this: {question}", "{answer}"),
    t("Context:\n{passage}\n\nQ: {question}\nA:", "{answer}"),
    t("Answer briefly, with a number, date or short span.\n\n{passage}\n\n{question}",
      "{answer}"),
    t("{passage}\n\nBased on the above article, answer a question. {question}", "{answer}"),
    turned("{passage}\n\nCompose a question about this passage that requires reasoning and "
       "whose answer is \"{answer}\".", "{question}"),
    turned("Read the text and write a question for which \"{answer}\" is the correct "
       "answer.\n\n{passage}", "{question}"),
]


# ---- MultiRC ----------------------------------------------------------------------------


def multirc_fields(ex):
    # TFDS marks sentence boundaries with HTML tags (<b>Sent 1: </b> ... <br>); drop them.
    paragraph = tf.strings.regex_replace(ex["paragraph"], r"<b>Sent \d+: </b>", "")
    paragraph = common.squash_spaces(tf.strings.regex_replace(paragraph, r"<br>", " "))
    return {
        "paragraph": paragraph,
        "question": ex["question"],
        "response": ex["answer"],
        "answer": common.yes_no(ex["label"]),
        # Groups the answer candidates of one question (exact match per question).
        "question_id": tf.strings.join([tf.strings.as_string(ex["idx"]["paragraph"]),
                                        tf.strings.as_string(ex["idx"]["question"])], "-"),
    }


MULTIRC_TEMPLATES = [
    t("{paragraph}\n\nQuestion: \"{question}\"\n\nResponse: \"{response}\"\n\n"
      "Does the response correctly answer the question?", "{answer}"),
    t("{paragraph}\n\nAfter reading this, someone asked \"{question}\" and was told "
      "\"{response}\". Is that right?", "{answer}"),
    t("Paragraph: {paragraph}\n\nQ: {question}\nProposed answer: {response}\n"
      "Is the proposed answer correct?", "{answer}"),
    t("Read the text below.\n{paragraph}\n\nIs \"{response}\" a valid answer to "
      "\"{question}\"?", "{answer}"),
    t("{paragraph}\n\nI think the answer to \"{question}\" is \"{response}\". Am I correct?",
      "{answer}"),
    t("Given the following story, check the answer.\nStory: {paragraph}\n"
      "Question: {question}\nCandidate answer: {response}", "{answer}"),
    t("{paragraph}\n\nChoose whether this is true: the answer to \"{question}\" is "
      "\"{response}\".", "{answer}"),
    t("Context: {paragraph}\n\nDoes \"{response}\" answer the question \"{question}\" "
      "according to the context?", "{answer}"),
    t("{paragraph}\n\nBased on the paragraph, does the response \"{response}\" correctly "
      "answer the question \"{question}\"?", "{answer}"),
    t("Question: {question}\nAnswer: {response}\n\nVerify this answer against the "
      "paragraph below.\n\n{paragraph}", "{answer}"),
]


# ---- OpenBookQA -------------------------------------------------------------------------


def openbookqa_fields(ex):
    q = ex["question"]
    options = tf.stack([q["choice_A"], q["choice_B"], q["choice_C"], q["choice_D"]])
    return {
        "question": q["stem"],
        "fact": ex["fact1"],
        "options": options,
        "answer": common.nth(options, ex["answerKey"]),
    }


OPENBOOKQA_TEMPLATES = [
    t("{fact}\n\n{question}", "{answer}"),
    t("Fact: {fact}\nUse the fact to answer this: {question}", "{answer}"),
    t("{question}", "{answer}"),
    t("Here is a science question. {question}\nWhich choice is right?", "{answer}"),
    t("Knowing that {fact}, how would you complete this?\n\n{question}", "{answer}"),
    t("Complete the statement using common knowledge of science: {question}", "{answer}"),
    t("Given the fact \"{fact}\", pick the best answer.\nQuestion: {question}", "{answer}"),
    t("Q: {question}\nHint: {fact}\nA:", "{answer}"),
    t("An open-book exam asks: {question}\nWhat would a student answer?", "{answer}"),
    turned("Fact: {fact}\n\nWrite a science question about this fact whose answer is "
       "\"{answer}\".", "{question}"),
]


# ---- SQuAD ------------------------------------------------------------------------------


def squad_v1_fields(ex):
    return {
        "title": ex["title"],
        "context": ex["context"],
        "question": ex["question"],
        "answer": common.nth(ex["answers"]["text"], 0),  # trains on the first answer
        "answers": tf.reshape(ex["answers"]["text"], [-1]),  # scores against all of them
    }


def squad_v2_fields(ex):
    fields = squad_v1_fields(ex)
    impossible = tf.cast(ex["is_impossible"], tf.bool)
    fields["answer"] = tf.where(impossible, tf.constant("unanswerable"), fields["answer"])
    fields["answers"] = tf.cond(impossible, lambda: tf.constant(["unanswerable"]),
                                lambda: fields["answers"])
    return fields


SQUAD_V1_TEMPLATES = [
    t("{context}\n\n{question}", "{answer}"),
    t("Read this passage and answer the question with a short span from it.\n\n"
      "{context}\n\nQuestion: {question}", "{answer}"),
    t("Title: {title}\n\n{context}\n\nQ: {question}\nA:", "{answer}"),
    t("{question}\n\nFind the answer in this text:\n{context}", "{answer}"),
    t("Here is a paragraph about {title}.\n{context}\n\nNow answer: {question}", "{answer}"),
    t("Context: {context}\nQuestion: {question}\nAnswer (copy it from the context):",
      "{answer}"),
    t("{context}\n\nUsing the paragraph above, {question}", "{answer}"),
    t("Extract the answer to \"{question}\" from the following.\n\n{context}", "{answer}"),
    turned("{context}\n\nWrite a question about {title} that this paragraph answers with "
       "\"{answer}\".", "{question}"),
    turned("Answer: {answer}\n\nGiven the passage below, what question would have this "
       "answer?\n\n{context}", "{question}"),
]

SQUAD_V2_TEMPLATES = [
    t("{context}\n\n{question} (If the text does not say, answer \"unanswerable\".)",
      "{answer}"),
    t("Read the article and answer the question. Some questions cannot be answered from "
      "it; reply \"unanswerable\" to those.\n\n{context}\n\nQuestion: {question}",
      "{answer}"),
    t("Title: {title}\n{context}\n\nQ: {question}\nA:", "{answer}"),
    t("{question}\n\nIs that answered by this text? If so, give the answer; if not, say "
      "unanswerable.\n\n{context}", "{answer}"),
    t("Here is a passage on {title}:\n{context}\n\n{question}", "{answer}"),
    t("Context: {context}\n\nAnswer this question from the context, or say it is "
      "unanswerable: {question}", "{answer}"),
    t("{context}\n\nAccording to the passage, {question}", "{answer}"),
    t("Passage:\n{context}\n\nQuestion:\n{question}\n\nAnswer:", "{answer}"),
    turned("{context}\n\nPose a question about this passage whose answer is \"{answer}\".",
       "{question}"),
    turned("Topic: {title}\nText: {context}\n\nThe answer is \"{answer}\". What was the "
       "question?", "{question}"),
]


def _spec(name, display_name, source, templates, fields_fn, **kwargs) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        collection=COLLECTION,
        cluster=CLUSTER,
        source=source,
        templates=templates,
        fields_fn=common.graph_fields(fields_fn),
        display_name=display_name,
        **kwargs,
    )


DATASETS: list[DatasetSpec] = [
    _spec("bool_q", "BoolQ", common.source("bool_q:1.0.0"), BOOL_Q_TEMPLATES, bool_q_fields,
          options=YES_NO, metric_fns=[metrics.accuracy]),
    _spec("drop", "DROP", common.source("drop:2.0.0", validation="dev"), DROP_TEMPLATES,
          drop_fields, metric_fns=[metrics.squad], postprocess_fn=common.qa_answers),
    # SuperGLUE's MultiRC test split has no labels: evaluate on validation.
    _spec("multirc", "MultiRC", common.source("super_glue/multirc:1.0.2"),
          MULTIRC_TEMPLATES, multirc_fields, options=YES_NO,
          metric_fns=[metrics.multirc_f1_over_all_answers, common.multirc_exact_match],
          group_field="question_id",
          postprocess_fn=common.yes_no_class),
    _spec("openbookqa", "OpenBookQA", common.source("openbookqa:0.1.0", test="test"),
          OPENBOOKQA_TEMPLATES, openbookqa_fields, options_field="options",
          metric_fns=[metrics.accuracy], eval_split="test"),
    _spec("squad_v1", "SQuAD v1.1", common.source("squad/v1.1:3.0.0"), SQUAD_V1_TEMPLATES,
          squad_v1_fields, metric_fns=[metrics.squad], postprocess_fn=common.qa_answers,
          answers_field="answers"),
    _spec("squad_v2", "SQuAD v2.0", common.source("squad/v2.0:3.0.0"), SQUAD_V2_TEMPLATES,
          squad_v2_fields, metric_fns=[metrics.squad], postprocess_fn=common.qa_answers,
          answers_field="answers"),
]
