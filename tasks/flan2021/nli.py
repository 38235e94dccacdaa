"""FLAN 2021 natural language inference: ANLI R1-R3, CB, MNLI (matched, mismatched), QNLI, RTE,
SNLI, WNLI.

Three-way datasets answer "yes" / "it is not possible to tell" / "no" to whether the premise
supports the hypothesis; two-way ones "yes" / "no". Turned-around templates ask for a hypothesis
that the premise makes true, false or undecided (the "relation" field).
"""

from __future__ import annotations

from t5.evaluation import metrics

from tasks.flan2021.common import (
    COLLECTION, accuracy_and_mean_3class_f1, class_id, graph_fields, label_text, source, t,
    turned,
)
from tasks.spec import DatasetSpec

CLUSTER = "nli"

YES, MAYBE, NO = "yes", "it is not possible to tell", "no"
THREE_WAY = (YES, MAYBE, NO)
TWO_WAY = (YES, NO)
# Answer -> how the turned-around templates describe the hypothesis.
RELATION = {YES: "true", MAYBE: "neither clearly true nor clearly false", NO: "false"}

THREE_WAY_TEMPLATES = [
    t("{premise}\n\nBased on the passage above, is it true that \"{hypothesis}\"?", "{answer}"),
    t("Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis?",
      "{answer}"),
    t("Read the following and decide whether the last sentence follows.\n\n{premise}\n"
      "So: {hypothesis}", "{answer}"),
    t("If \"{premise}\", can we conclude that \"{hypothesis}\"?", "{answer}"),
    t("{premise}\nQuestion: does this mean that {hypothesis}", "{answer}"),
    t("Assume the text below is accurate.\n{premise}\n\nMust the following then also be "
      "accurate? {hypothesis}", "{answer}"),
    t("Text: {premise}\n\nClaim: {hypothesis}\n\nIs the claim supported by the text?",
      "{answer}"),
    turned("Here is a passage: {premise}\n\nWrite a sentence that is {relation} given this "
           "passage.", "{hypothesis}"),
    turned("Think of a statement that is {relation} if the following is the case.\n\n"
           "{premise}", "{hypothesis}"),
    t("Decide whether \"{hypothesis}\" can be inferred from this: {premise}", "{answer}"),
]

TWO_WAY_TEMPLATES = [
    t("{premise}\n\nDoes this imply that \"{hypothesis}\"?", "{answer}"),
    t("Premise: {premise}\nHypothesis: {hypothesis}\nIs the hypothesis entailed by the premise?",
      "{answer}"),
    t("Given that {premise}, is it necessarily the case that {hypothesis}?", "{answer}"),
    t("Read this: {premise}\n\nNow tell me whether this follows from it: {hypothesis}",
      "{answer}"),
    t("{premise}\nIf the above is true, is the sentence \"{hypothesis}\" also true?", "{answer}"),
    t("Sentence A: {premise}\nSentence B: {hypothesis}\n\nDoes A guarantee B?", "{answer}"),
    t("Can the statement \"{hypothesis}\" be deduced from the passage below?\n\n{premise}",
      "{answer}"),
    turned("{premise}\n\nWrite a claim that is {relation} according to the text above.",
           "{hypothesis}"),
    turned("Compose a sentence that a reader of this would judge {relation}: {premise}",
           "{hypothesis}"),
    t("Consider the statement: {premise}\nWould you say it follows that {hypothesis}?",
      "{answer}"),
]

QNLI_TEMPLATES = [
    t("Does the sentence \"{sentence}\" answer the question \"{question}\"?", "{answer}"),
    t("Question: {question}\nSentence: {sentence}\n\nDoes the sentence contain the answer to "
      "the question?", "{answer}"),
    t("{question}\n\nIs the answer to that found in this text?\n{sentence}", "{answer}"),
    t("Someone asked: \"{question}\"\nCould this be a response that answers it? {sentence}",
      "{answer}"),
    t("Here is a sentence: {sentence}\nCan it be used to answer \"{question}\"?", "{answer}"),
    t("Check whether the passage answers the query.\nQuery: {question}\nPassage: {sentence}",
      "{answer}"),
    t("{sentence}\n\nDoes the text above tell us the answer to: {question}", "{answer}"),
    turned("Write a question that the following sentence {relation}.\n\n{sentence}",
           "{question}"),
    t("I want to know: {question}\nWill this sentence help? \"{sentence}\"", "{answer}"),
    t("Q: {question}\nCandidate: {sentence}\nIs the candidate a correct answer sentence?",
      "{answer}"),
]


def _pair_fields(premise_key: str, hypothesis_key: str, names: tuple[str, ...]):
    """names: our answer string for each TFDS class id."""

    def fields_fn(ex):
        answer = label_text(ex["label"], names)
        relation = label_text(
            ex["label"], tuple(RELATION[n] for n in names)
        )
        return {"premise": ex[premise_key], "hypothesis": ex[hypothesis_key],
                "answer": answer, "relation": relation}

    return fields_fn


def _qnli_fields(ex):
    # glue/qnli: 0 entailment (the sentence answers), 1 not_entailment.
    return {"question": ex["question"], "sentence": ex["sentence"],
            "answer": label_text(ex["label"], (YES, NO)),
            "relation": label_text(ex["label"], ("answers", "does not answer"))}


def _nli(name, display, src, fields_fn, templates, options, eval_split="validation",
         metric_fns=(metrics.accuracy,), postprocess_fn=None):
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=src, templates=templates,
        fields_fn=graph_fields(fields_fn), options=options, metric_fns=list(metric_fns),
        postprocess_fn=postprocess_fn, eval_split=eval_split, display_name=display,
    )


# TFDS label orders (checked against each builder's ClassLabel names).
ENTAIL_NEUTRAL_CONTRA = (YES, MAYBE, NO)  # anli, mnli, snli
ENTAIL_CONTRA_NEUTRAL = (YES, NO, MAYBE)  # super_glue/cb

DATASETS: list[DatasetSpec] = [
    *[
        _nli(f"anli_r{r}", f"ANLI R{r}",
             source(f"anli/r{r}:0.1.0", train="train", validation="validation", test="test"),
             _pair_fields("context", "hypothesis", ENTAIL_NEUTRAL_CONTRA), THREE_WAY_TEMPLATES,
             THREE_WAY, eval_split="test")  # the release evaluates on the labelled test set
        for r in (1, 2, 3)
    ],
    _nli("cb", "CB", source("super_glue/cb:1.0.2", train="train", validation="validation"),
         _pair_fields("premise", "hypothesis", ENTAIL_CONTRA_NEUTRAL), THREE_WAY_TEMPLATES,
         THREE_WAY, metric_fns=[accuracy_and_mean_3class_f1],
         postprocess_fn=class_id(THREE_WAY)),  # SuperGLUE reports accuracy and mean F1
    _nli("mnli_matched", "MNLI (matched)",
         source("glue/mnli:2.0.0", train="train", validation="validation_matched"),
         _pair_fields("premise", "hypothesis", ENTAIL_NEUTRAL_CONTRA), THREE_WAY_TEMPLATES,
         THREE_WAY),
    _nli("mnli_mismatched", "MNLI (mismatched)",
         source("glue/mnli:2.0.0", train="train", validation="validation_mismatched"),
         _pair_fields("premise", "hypothesis", ENTAIL_NEUTRAL_CONTRA), THREE_WAY_TEMPLATES,
         THREE_WAY),
    _nli("qnli", "QNLI", source("glue/qnli:2.0.0", train="train", validation="validation"),
         _qnli_fields, QNLI_TEMPLATES, TWO_WAY),
    _nli("rte", "RTE", source("super_glue/rte:1.0.2", train="train", validation="validation"),
         _pair_fields("premise", "hypothesis", (YES, NO)), TWO_WAY_TEMPLATES, TWO_WAY),
    # SNLI's validation and test records without a gold label carry -1: they map to "" and the
    # registry drops them.
    _nli("snli", "SNLI",
         source("snli:1.1.0", train="train", validation="validation", test="test"),
         _pair_fields("premise", "hypothesis", ENTAIL_NEUTRAL_CONTRA), THREE_WAY_TEMPLATES,
         THREE_WAY, eval_split="test"),
    # glue/wnli: 0 not_entailment, 1 entailment.
    _nli("wnli", "WNLI", source("glue/wnli:2.0.0", train="train", validation="validation"),
         _pair_fields("sentence1", "sentence2", (NO, YES)), TWO_WAY_TEMPLATES, TWO_WAY),
]
