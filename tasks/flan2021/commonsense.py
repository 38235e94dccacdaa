"""FLAN 2021 commonsense reasoning: COPA, HellaSwag, PiQA, StoryCloze.

All four pick one of a few per-example candidates, so their options are a per-example field
("options"); the answer is the correct candidate's text.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021.common import COLLECTION, graph_fields, nth, source, t, turned
from tasks.spec import DatasetSpec

CLUSTER = "commonsense"

STORY_CLOZE_MANUAL = (
    "StoryCloze 2016 needs a manual download: request the data at "
    "https://www.cs.rochester.edu/nlp/rocstories/, then save the Spring 2016 validation and test "
    "files as `cloze_test_val__spring2016.csv` and `cloze_test_test__spring2016.csv` in "
    "DATA_DIR/downloads/manual/ (default ~/tensorflow_datasets/downloads/manual/; "
    "`flan-jax data prepare --manual_dir DIR` points elsewhere)."
)

COPA_TEMPLATES = [
    t("{premise} What is the {question}?", "{answer}"),
    t("Premise: {premise}\nWhich of these is the more likely {question}?", "{answer}"),
    t("\"{premise}\" {connector}...", "{answer}"),
    t("Pick the more plausible {question} of the event below.\n\n{premise}", "{answer}"),
    t("{premise}\n\nWhat happened as the {question} here?", "{answer}"),
    t("Complete the sentence sensibly: {premise_stem} {connector}", "{answer}"),
    t("Event: {premise}\nQuestion: what is its most likely {question}?", "{answer}"),
    turned("Write something that could be the {reverse_question} of this: {answer}",
           "{premise}"),
    t("Think about cause and effect. {premise}\nWhich option is the {question}?", "{answer}"),
    turned("\"{answer}\"\n\nDescribe a situation that this is the {question} of.",
           "{premise}"),
]

HELLASWAG_TEMPLATES = [
    t("{context}\n\nHow does this most likely continue?", "{answer}"),
    t("Finish the passage below with the most sensible ending.\n\n{context}", "{answer}"),
    t("Topic: {activity}\n{context}...\nWhat comes next?", "{answer}"),
    t("Which continuation fits this text best?\n{context}", "{answer}"),
    t("{context} ...\n\nChoose the next sentence.", "{answer}"),
    t("Here is the start of a description of {activity}: {context}\nWhat happens next?",
      "{answer}"),
    t("Continue writing: {context}", "{answer}"),
    turned("Write the opening of a description that could end with: \"{answer}\"",
           "{context}"),
    t("Read this and predict how it goes on.\n\n{context}", "{answer}"),
    turned("What might have come just before this sentence?\n\n{answer}", "{context}"),
]

PIQA_TEMPLATES = [
    t("Goal: {goal}\n\nWhich way of doing it makes more sense?", "{answer}"),
    t("How would you {goal_lower}", "{answer}"),
    t("{goal}\nPick the better solution.", "{answer}"),
    t("I'm trying to accomplish this: {goal} What should I do?", "{answer}"),
    t("Which method achieves the following goal? {goal}", "{answer}"),
    t("Task: {goal}\nChoose the most practical approach.", "{answer}"),
    t("Use common sense about the physical world. {goal}", "{answer}"),
    turned("What goal does this procedure accomplish?\n{answer}", "{goal}"),
    t("Here is an everyday objective: \"{goal}\". How can it be done?", "{answer}"),
    turned("Write a short everyday task that could be solved this way: {answer}", "{goal}"),
]

STORY_CLOZE_TEMPLATES = [
    t("{context}\n\nHow does the story most likely end?", "{answer}"),
    t("Read the story and choose the best final sentence.\n\n{context}", "{answer}"),
    t("Story: {context}\nWhat is the most fitting ending?", "{answer}"),
    t("Finish this short story: {context}", "{answer}"),
    t("{context} What happens next?", "{answer}"),
    t("Here are four sentences of a five-sentence story.\n{context}\nWrite the fifth one.",
      "{answer}"),
    t("Which last sentence makes this a coherent story? {context}", "{answer}"),
    turned("Write the first four sentences of a story that ends with: \"{answer}\"",
           "{context}"),
    t("Continue the narrative with one sentence.\n\n{context}", "{answer}"),
    turned("A story ends like this: {answer}\nWhat could its beginning be?", "{context}"),
]


def _copa_fields(ex):
    is_cause = tf.equal(ex["question"], "cause")
    choices = tf.stack([ex["choice1"], ex["choice2"]])
    # The premise without its final period, for "X because/so" completions.
    stem = tf.strings.regex_replace(tf.strings.strip(ex["premise"]), r"[.!?]$", "")
    return {
        "premise": ex["premise"],
        "premise_stem": stem,
        "question": ex["question"],
        "reverse_question": tf.where(is_cause, tf.constant("effect"), tf.constant("cause")),
        "connector": tf.where(is_cause, tf.constant("because"), tf.constant("so")),
        "answer": nth(choices, ex["label"]),
        "options": choices,
    }


def _hellaswag_fields(ex):
    # As the release: WikiHow contexts' "[header]"/"[step]" markers become line breaks and the
    # endings lose theirs (a model would rarely write brackets).
    context = tf.strings.regex_replace(ex["context"], r"\[header\]\s", "")
    context = tf.strings.regex_replace(context, r"\[.*?\]\s", "\n")
    endings = tf.strings.regex_replace(tf.reshape(ex["endings"], [-1]), r"\[.*?\]\s", "")
    return {"context": context, "activity": ex["activity_label"],
            "answer": nth(endings, ex["label"]), "options": endings}


def _piqa_fields(ex):
    solutions = tf.stack([ex["sol1"], ex["sol2"]])
    goal = tf.strings.strip(ex["goal"])
    # "How would you {goal_lower}": first letter lower-cased, a question mark at the end.
    first = tf.strings.lower(tf.strings.substr(goal, 0, 1, unit="UTF8_CHAR"), encoding="utf-8")
    rest = tf.strings.substr(goal, 1, -1, unit="UTF8_CHAR")
    rest = tf.strings.regex_replace(rest, r"[.?!]*$", "?")
    return {"goal": ex["goal"], "goal_lower": tf.strings.join([first, rest]),
            "answer": nth(solutions, ex["label"]), "options": solutions}


def _story_cloze_fields(ex):
    endings = tf.reshape(ex["endings"], [-1])
    # TFDS's label is AnswerRightEnding, 1 or 2, not an index into the endings.
    return {"context": ex["context"], "answer": nth(endings, ex["label"] - 1), "options": endings}


def _spec(name, display, src, fields_fn, templates, eval_split="validation"):
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=src, templates=templates,
        fields_fn=graph_fields(fields_fn), options_field="options", metric_fns=[metrics.accuracy],
        eval_split=eval_split, display_name=display,
    )


DATASETS: list[DatasetSpec] = [
    _spec("copa", "COPA", source("super_glue/copa:1.0.2", train="train", validation="validation"),
          _copa_fields, COPA_TEMPLATES),
    # HellaSwag's test labels are hidden: evaluate on validation.
    _spec("hellaswag", "HellaSwag",
          source("hellaswag:0.0.1", train="train", validation="validation"),
          _hellaswag_fields, HELLASWAG_TEMPLATES),
    _spec("piqa", "PiQA", source("piqa:1.0.0", train="train", validation="validation"),
          _piqa_fields, PIQA_TEMPLATES),
    # StoryCloze 2016 has no train split: train on its validation set, evaluate on its test set
    # (both labelled), as FLAN did.
    _spec("story_cloze", "StoryCloze",
          source("story_cloze/2016:1.0.0", manual_download=STORY_CLOZE_MANUAL,
                 train="validation", validation="test"),
          _story_cloze_fields, STORY_CLOZE_TEMPLATES),
]
