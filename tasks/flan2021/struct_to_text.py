"""FLAN 2021 struct-to-text: CommonGen, DART, E2E NLG, WebNLG (English), all from GEM.

Structured inputs are flattened to one string field ("concepts", "triples", "data"), the
target is GEM's reference text, and generation is scored with ROUGE. Turned-around templates
ask for the structure given the text.
"""

from __future__ import annotations

import tensorflow as tf

from tasks.flan2021.common import (
    COLLECTION, graph_fields, joined, multi_reference_rouge, qa_answers, source, t, turned,
)
from tasks.spec import DatasetSpec

CLUSTER = "struct_to_text"

COMMON_GEN_TEMPLATES = [
    t("Write a sentence that uses all of these words: {concepts}", "{target}"),
    t("Concepts: {concepts}\n\nMake a sentence about everyday life with them.", "{target}"),
    t("{concepts}\n\nCombine the words above into one natural sentence.", "{target}"),
    t("Can you create a sentence mentioning {concepts}?", "{target}"),
    t("Keywords: {concepts}\nSentence:", "{target}"),
    t("Generate a short description of a scene that involves the following: {concepts}",
      "{target}"),
    t("Use the words \"{concepts}\" in a single sentence.", "{target}"),
    turned("What are the key concepts in this sentence?\n\n{target}", "{concepts}"),
    t("Here are some words: {concepts}. Write something that contains every one of them.",
      "{target}"),
    turned("List the main nouns and verbs of the following sentence: {target}", "{concepts}"),
]

TRIPLE_TEMPLATES = [
    t("Triples: {triples}\n\nWrite a sentence that expresses all of this information.",
      "{target}"),
    t("Turn these facts into plain English: {triples}", "{target}"),
    t("{triples}\n\nDescribe the data above in one or two sentences.", "{target}"),
    t("Here is some data as subject, relation, object triples.\n{triples}\nVerbalize it.",
      "{target}"),
    t("Write a fluent description of the following knowledge-graph triples.\n\n{triples}",
      "{target}"),
    t("Data: {triples}\nText:", "{target}"),
    t("Can you produce a sentence conveying these facts? {triples}", "{target}"),
    turned("Extract the facts stated in this sentence as subject, relation, object triples, "
           "separated by semicolons.\n\n{target}", "{triples}"),
    t("Generate text from this table of facts:\n{triples}", "{target}"),
    turned("{target}\n\nWhat structured data (triples) does this sentence contain?",
           "{triples}"),
]

E2E_TEMPLATES = [
    t("Write a restaurant description using this information: {data}", "{target}"),
    t("{data}\n\nDescribe this restaurant in a sentence or two.", "{target}"),
    t("Attributes: {data}\nDescription:", "{target}"),
    t("Turn the following restaurant attributes into a short review-style text.\n\n{data}",
      "{target}"),
    t("Here is a structured record about a place to eat: {data}. Write it out in English.",
      "{target}"),
    t("Generate a sentence about a restaurant with these properties:\n{data}", "{target}"),
    t("Can you express this data as natural text? {data}", "{target}"),
    turned("Write the attribute list (like name = ..., food = ...) that this restaurant "
           "description is based on.\n\n{target}", "{data}"),
    t("Meaning representation: {data}\n\nRealize it as a sentence.", "{target}"),
    turned("{target}\n\nWhich structured attributes does this sentence describe?", "{data}"),
]


# The release's clean-ups of the structured inputs:
def _dart_triples(ex):
    # Table cells like "[TABLECONTEXT]" and "[TITLE]" go.
    triples = joined(ex["tripleset"], "; ")
    return {"triples": tf.strings.regex_replace(triples, r"\[(.*?)\]", "")}


def _e2e_data(ex):
    # "name[The Eagle], food[French]" reads "name = The Eagle, food = French".
    data = tf.strings.regex_replace(ex["meaning_representation"], r"\[", " = ")
    return {"data": tf.strings.regex_replace(data, r"\]", "")}


def _web_nlg_triples(ex):
    # "Alan_Bean | birthPlace | Wheeler,_Texas" reads "Alan Bean, birthPlace, Wheeler, Texas".
    triples = tf.strings.regex_replace(joined(ex["input"], "; "), "_", " ")
    return {"triples": tf.strings.regex_replace(triples, r" \| ", ", ")}


def _gem(target_of):
    def fields_fn(ex):
        out = dict(target_of(ex))
        out["target"] = ex["target"]
        # Scored against every reference (GEM's `references` and the target), as the release.
        out["references"] = tf.concat(
            [tf.reshape(ex["references"], [-1]), tf.reshape(ex["target"], [1])], axis=0)
        return out

    return fields_fn


def _spec(name, display, tfds_name, fields_fn, templates):
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER,
        source=source(tfds_name, train="train", validation="validation", test="test"),
        templates=templates, fields_fn=graph_fields(fields_fn),
        metric_fns=[multi_reference_rouge], postprocess_fn=qa_answers,
        answers_field="references", eval_split="validation", display_name=display,
    )


DATASETS: list[DatasetSpec] = [
    _spec("common_gen", "CommonGen", "gem/common_gen:1.1.0",
          _gem(lambda ex: {"concepts": joined(ex["concepts"], ", ")}), COMMON_GEN_TEMPLATES),
    _spec("dart", "DART", "gem/dart:1.1.0", _gem(_dart_triples), TRIPLE_TEMPLATES),
    _spec("e2e_nlg", "E2E NLG", "gem/e2e_nlg:1.1.0", _gem(_e2e_data), E2E_TEMPLATES),
    _spec("web_nlg_en", "WebNLG", "gem/web_nlg_en:1.1.0", _gem(_web_nlg_triples),
          TRIPLE_TEMPLATES),
]
