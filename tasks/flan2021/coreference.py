"""FLAN 2021 coreference cluster: DPR, Winogrande, WSC, and WSC273 for evaluation.

WSC: the paper evaluates on WSC273, which TFDS ships (`wsc273`) as a single, test-only split
with another record layout (two candidates, no training data). `wsc` trains on SuperGLUE WSC
(evaluated on its validation split, as the release does), and `wsc273` is an evaluation-only
dataset: it has eval and rank tasks in the cluster's eval mixtures and never a train task.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021 import common
from tasks.flan2021.common import COLLECTION, t
from tasks.spec import DatasetSpec, TfdsSource

CLUSTER = "coreference"
YES_NO = ["no", "yes"]


# ---- DPR (Definite Pronoun Resolution) --------------------------------------------------


def dpr_fields(ex):
    options = tf.reshape(ex["candidates"], [-1])
    return {
        "sentence": ex["sentence"],
        "pronoun": ex["pronoun"],
        "options": options,
        "answer": common.nth(options, ex["label"]),
    }


DPR_TEMPLATES = [
    t("{sentence}\n\nWho or what does \"{pronoun}\" refer to in the sentence above?",
      "{answer}"),
    t("Resolve the pronoun.\nSentence: {sentence}\nPronoun: {pronoun}", "{answer}"),
    t("In \"{sentence}\", what is \"{pronoun}\" talking about?", "{answer}"),
    t("{sentence}\nWhich candidate is the antecedent of \"{pronoun}\"?", "{answer}"),
    t("Read this sentence: {sentence}\n\nThe word \"{pronoun}\" stands for", "{answer}"),
    t("Here the pronoun \"{pronoun}\" points back to someone or something. Which?\n\n"
      "{sentence}", "{answer}"),
    t("Sentence: \"{sentence}\"\nQuestion: in this sentence, \"{pronoun}\" means whom or what?",
      "{answer}"),
    t("{sentence}\n\nReplace \"{pronoun}\" with the noun phrase it refers to. Which one?",
      "{answer}"),
    t("Figure out the referent of \"{pronoun}\" in the following: {sentence}", "{answer}"),
    t("Who is \"{pronoun}\" in this sentence?\n{sentence}", "{answer}"),
]


# ---- Winogrande -------------------------------------------------------------------------


def winogrande_fields(ex):
    options = tf.stack([ex["option1"], ex["option2"]])
    return {
        "sentence": ex["sentence"],
        "options": options,
        # ClassLabel names are "1" and "2": id 0 is option1.
        "answer": common.nth(options, ex["label"]),
    }


WINOGRANDE_TEMPLATES = [
    t("{sentence}\n\nWhat goes in the blank (_)?", "{answer}"),
    t("Fill in the blank with the option that makes sense.\n\n{sentence}", "{answer}"),
    t("Complete the sentence: {sentence}", "{answer}"),
    t("Which choice correctly replaces the underscore in this sentence?\n{sentence}",
      "{answer}"),
    t("Sentence with a gap: {sentence}\nUsing common sense, the gap should be", "{answer}"),
    t("Here is a sentence where one name or thing is missing (marked _). Which fits?\n"
      "{sentence}", "{answer}"),
    t("{sentence}\nWho or what is \"_\" in the sentence?", "{answer}"),
    t("Read this and decide what the _ refers to.\n\n{sentence}", "{answer}"),
    t("Think about the situation described and fill the blank.\n{sentence}", "{answer}"),
    t("What is the most logical way to fill in the _ here? {sentence}", "{answer}"),
]


# ---- WSC (SuperGLUE) --------------------------------------------------------------------


def wsc_fields(ex):
    return {
        "text": ex["text"],
        "noun": ex["span1_text"],
        "pronoun": ex["span2_text"],
        "answer": common.yes_no(ex["label"]),
    }


WSC_TEMPLATES = [
    t("{text}\n\nIn the passage above, does \"{pronoun}\" refer to \"{noun}\"?", "{answer}"),
    t("Passage: {text}\nQuestion: is the pronoun \"{pronoun}\" about {noun}?", "{answer}"),
    t("{text}\n\nHere, \"{pronoun}\" means \"{noun}\". True?", "{answer}"),
    t("Read the sentence and decide whether \"{pronoun}\" and \"{noun}\" are the same "
      "entity.\n\n{text}", "{answer}"),
    t("Someone says that in \"{text}\" the word \"{pronoun}\" stands for {noun}. Are they "
      "right?", "{answer}"),
    t("Coreference check.\nText: {text}\nPronoun: {pronoun}\nCandidate: {noun}\n"
      "Does the candidate match?", "{answer}"),
    t("{text}\n\nIf we replace \"{pronoun}\" with \"{noun}\", does the meaning stay the same?",
      "{answer}"),
    t("Consider this: {text}\nIs \"{noun}\" what \"{pronoun}\" is referring to?", "{answer}"),
    t("{text}\nDo \"{noun}\" and \"{pronoun}\" refer to the same thing here?", "{answer}"),
    t("Does the pronoun \"{pronoun}\" in the following text point to {noun}?\n\n{text}",
      "{answer}"),
]


# ---- WSC273 (eval only) -----------------------------------------------------------------


def wsc273_fields(ex):
    options = tf.stack([ex["option1"], ex["option2"]])
    return {
        "text": ex["text"],
        "pronoun": ex["pronoun_text"],
        "options": options,
        # A plain int32 feature holding 0 (option1) or 1; the floormod only tames the
        # arbitrary ints mock data puts there.
        "answer": common.nth(options, tf.math.floormod(ex["label"], 2)),
    }


WSC273_TEMPLATES = [
    t("{text}\n\nIn the passage above, who or what does \"{pronoun}\" refer to?", "{answer}"),
    t("Passage: {text}\nWhich candidate is meant by \"{pronoun}\"?", "{answer}"),
    t("{text}\n\nThe word \"{pronoun}\" here stands for", "{answer}"),
    t("Resolve the pronoun \"{pronoun}\" in this sentence: {text}", "{answer}"),
    t("Read the sentence and tell me what \"{pronoun}\" is about.\n\n{text}", "{answer}"),
    t("Coreference question.\nText: {text}\nPronoun: {pronoun}\nAntecedent:", "{answer}"),
    t("{text}\n\nUse common sense: \"{pronoun}\" refers to which one?", "{answer}"),
    t("Consider this: {text}\nWho is \"{pronoun}\"?", "{answer}"),
    t("{text}\nWhat does \"{pronoun}\" point back to?", "{answer}"),
    t("Identify the referent of \"{pronoun}\" in the text below.\n\n{text}", "{answer}"),
]


def _spec(name, display_name, source, templates, fields_fn, **kwargs) -> DatasetSpec:
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=source, templates=templates,
        fields_fn=common.graph_fields(fields_fn), display_name=display_name,
        metric_fns=[metrics.accuracy], **kwargs,
    )


DATASETS: list[DatasetSpec] = [
    # DPR has train and (labeled) test only.
    _spec("definite_pronoun_resolution", "Definite Pronoun Resolution",
          common.source("definite_pronoun_resolution:1.1.0", validation=None, test="test"),
          DPR_TEMPLATES, dpr_fields, options_field="options", eval_split="test"),
    # Winogrande's test labels are hidden; train on the largest training size.
    _spec("winogrande", "Winogrande", common.source("winogrande:1.2.0", train="train_xl"),
          WINOGRANDE_TEMPLATES, winogrande_fields, options_field="options"),
    _spec("wsc", "WSC", common.source("super_glue/wsc:1.0.2"), WSC_TEMPLATES, wsc_fields,
          options=YES_NO),
    _spec("wsc273", "WSC273", TfdsSource(name="wsc273:1.0.0", splits={"test": "test"}),
          WSC273_TEMPLATES, wsc273_fields, options_field="options", eval_split="test",
          eval_only=True),
]

