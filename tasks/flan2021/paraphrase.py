"""FLAN 2021 paraphrase detection: MRPC, QQP, PAWS (Wiki), STS-B.

MRPC, QQP and PAWS answer "no" / "yes". STS-B's 0-5 similarity score is rounded to the nearest
integer, so its options are "0".."5" (as the paper bins it); generation is scored with Pearson and
Spearman correlation of the predicted number, rank classification with accuracy.
"""

from __future__ import annotations

import tensorflow as tf
from t5.data import postprocessors
from t5.evaluation import metrics

from tasks.flan2021.common import (
    COLLECTION, accuracy_and_f1, class_id, graph_fields, label_text, source, t, turned,
)
from tasks.spec import DatasetSpec

CLUSTER = "paraphrase"
YES_NO = ("no", "yes")
STSB_OPTIONS = ("0", "1", "2", "3", "4", "5")

SENTENCE_TEMPLATES = [
    t("\"{sentence1}\"\n\"{sentence2}\"\n\nDo these two sentences mean the same thing?",
      "{answer}"),
    t("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nAre they paraphrases of each other?",
      "{answer}"),
    t("Is the second sentence a rewording of the first?\n\n{sentence1}\n{sentence2}",
      "{answer}"),
    t("{sentence1}\n\nDoes the following say the same as the sentence above? {sentence2}",
      "{answer}"),
    t("Compare these statements: \"{sentence1}\" and \"{sentence2}\". Is their meaning "
      "identical?", "{answer}"),
    t("First: {sentence1}\nSecond: {sentence2}\n\nWould you call these equivalent?",
      "{answer}"),
    t("Do \"{sentence1}\" and \"{sentence2}\" convey the same information?", "{answer}"),
    turned("{sentence1}\n\nWrite a sentence that {relation} the same thing as the one above.",
           "{sentence2}"),
    turned("Produce a sentence whose meaning {relation} the same as: {sentence1}",
           "{sentence2}"),
    t("A: {sentence1}\nB: {sentence2}\nCan B be used in place of A without changing the "
      "meaning?", "{answer}"),
]

QQP_TEMPLATES = [
    t("\"{question1}\"\n\"{question2}\"\n\nAre these two questions asking the same thing?",
      "{answer}"),
    t("Question 1: {question1}\nQuestion 2: {question2}\nWould the same answer satisfy both?",
      "{answer}"),
    t("Is \"{question2}\" a duplicate of \"{question1}\"?", "{answer}"),
    t("{question1}\n{question2}\n\nShould these be merged as one question on a Q&A site?",
      "{answer}"),
    t("Do these questions have the same meaning?\n{question1}\n{question2}", "{answer}"),
    t("Someone asked \"{question1}\", and someone else asked \"{question2}\". Did they mean "
      "the same?", "{answer}"),
    t("First question: {question1}\n\nSecond question: {question2}\n\nSame intent?",
      "{answer}"),
    turned("{question1}\n\nWrite a question that {relation} asking the same as this one.",
           "{question2}"),
    t("Tell me whether these two queries are equivalent: {question1} || {question2}",
      "{answer}"),
    t("Q1: {question1}\nQ2: {question2}\nAre Q1 and Q2 paraphrases?", "{answer}"),
]

STSB_TEMPLATES = [
    t("{sentence1}\n{sentence2}\n\nOn a scale of 0 to 5, how similar are these two sentences "
      "in meaning?", "{answer}"),
    t("Rate the semantic similarity of the following pair from 0 (unrelated) to 5 "
      "(equivalent).\nA: {sentence1}\nB: {sentence2}", "{answer}"),
    t("Sentence one: {sentence1}\nSentence two: {sentence2}\nSimilarity score (0-5):",
      "{answer}"),
    t("How close in meaning are \"{sentence1}\" and \"{sentence2}\"? Answer with a number "
      "between 0 and 5.", "{answer}"),
    t("Give a similarity rating between 0 and 5.\n\n{sentence1}\n\n{sentence2}", "{answer}"),
    t("{sentence1}\n\nOn a 0-5 scale, how much does the next sentence overlap in meaning with "
      "the one above? {sentence2}", "{answer}"),
    t("Score how alike these sentences are (0 = nothing in common, 5 = same meaning): "
      "\"{sentence1}\" / \"{sentence2}\"", "{answer}"),
    turned("Write a sentence whose similarity to the following, on a 0-5 scale, is "
           "{answer}.\n\n{sentence1}", "{sentence2}"),
    turned("Here is a sentence: {sentence1}\nCompose another that would be rated {answer} out "
           "of 5 for similarity.", "{sentence2}"),
    t("Pair:\n1) {sentence1}\n2) {sentence2}\nWhat similarity (0 to 5) would you assign?",
      "{answer}"),
]


def _pair_fields(key1: str, key2: str, out1: str = "sentence1", out2: str = "sentence2",
                 relation=("does not mean", "means")):
    """Binary pairs, label 1 = same meaning."""

    def fields_fn(ex):
        return {out1: ex[key1], out2: ex[key2], "answer": label_text(ex["label"], YES_NO),
                "relation": label_text(ex["label"], relation)}

    return fields_fn


def _stsb_fields(ex):
    score = tf.cast(tf.round(tf.clip_by_value(ex["label"], 0.0, 5.0)), tf.int64)
    return {"sentence1": ex["sentence1"], "sentence2": ex["sentence2"],
            "answer": label_text(score, STSB_OPTIONS)}


def _spec(name, display, src, fields_fn, templates, options=YES_NO,
          metric_fns=(metrics.accuracy,), postprocess_fn=None, eval_split="validation"):
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=src, templates=templates,
        fields_fn=graph_fields(fields_fn), options=options, metric_fns=list(metric_fns),
        postprocess_fn=postprocess_fn, eval_split=eval_split, display_name=display,
    )


DATASETS: list[DatasetSpec] = [
    # GLUE reports accuracy and F1 of "yes" for MRPC and QQP.
    _spec("mrpc", "MRPC", source("glue/mrpc:2.0.0", train="train", validation="validation"),
          _pair_fields("sentence1", "sentence2"), SENTENCE_TEMPLATES,
          metric_fns=(accuracy_and_f1,), postprocess_fn=class_id(YES_NO)),
    _spec("qqp", "QQP", source("glue/qqp:2.0.0", train="train", validation="validation"),
          _pair_fields("question1", "question2", "question1", "question2",
                       relation=("is not", "is")),
          QQP_TEMPLATES, metric_fns=(accuracy_and_f1,), postprocess_fn=class_id(YES_NO)),
    _spec("paws_wiki", "PAWS",
          source("paws_wiki:1.1.0", train="train", validation="validation", test="test"),
          _pair_fields("sentence1", "sentence2"), SENTENCE_TEMPLATES, eval_split="test"),
    _spec("stsb", "STS-B", source("glue/stsb:2.0.0", train="train", validation="validation"),
          _stsb_fields, STSB_TEMPLATES, options=STSB_OPTIONS,
          metric_fns=(metrics.pearson_corrcoef, metrics.spearman_corrcoef),
          postprocess_fn=postprocessors.string_to_float),
]
