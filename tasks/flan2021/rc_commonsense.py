"""FLAN 2021 reading comprehension with commonsense: CosmosQA and ReCoRD.

Both are multiple choice with per-example options: CosmosQA's four candidate answers, ReCoRD's
entity list (the registry appends them; the templates never list them).
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021 import common
from tasks.flan2021.common import COLLECTION, t, turned
from tasks.spec import DatasetSpec

CLUSTER = "rc_commonsense"


def cosmos_qa_fields(ex):
    options = tf.stack([ex["answer0"], ex["answer1"], ex["answer2"], ex["answer3"]])
    return {
        "context": ex["context"],
        "question": ex["question"],
        "options": options,
        "answer": common.nth(options, ex["label"]),
    }


COSMOS_QA_TEMPLATES = [
    t("{context}\n\n{question}", "{answer}"),
    t("Read the story and use common sense to answer.\n\n{context}\n\nQ: {question}",
      "{answer}"),
    t("Context: {context}\nQuestion: {question}\nWhich answer is most plausible?",
      "{answer}"),
    t("{question}\n\nThink about this situation before answering:\n{context}", "{answer}"),
    t("Here is a short personal story.\n{context}\n\nBased on it, {question}", "{answer}"),
    t("{context}\n\nReading between the lines, what is the best answer to this: {question}",
      "{answer}"),
    t("Story:\n{context}\n\nAnswer the question about the story. {question}", "{answer}"),
    t("Someone wrote: \"{context}\"\n\n{question}", "{answer}"),
    turned("{context}\n\nWrite a question about this passage that \"{answer}\" would answer.",
       "{question}"),
    turned("Given the text below, make up a question whose correct answer is \"{answer}\" and "
       "which needs some common sense.\n\n{context}", "{question}"),
]


def _escape_rewrite(text: tf.Tensor) -> tf.Tensor:
    """Escapes backslashes so `text` is taken literally as a regex_replace rewrite."""
    return tf.strings.regex_replace(text, r"\\", r"\\\\")


def record_fields(ex):
    # The passage is an article followed by "@highlight"-marked bullet points.
    passage = tf.strings.regex_replace(ex["passage"], r"\s*@highlight\s*", "\n- ")
    answer = common.nth(ex["answers"], 0)
    return {
        "passage": tf.strings.strip(passage),
        "query": ex["query"],
        # The query with its "@placeholder" filled in, for the turned-around templates.
        "filled_query": tf.strings.regex_replace(
            ex["query"], "@placeholder", _escape_rewrite(answer)
        ),
        # Real answers are always among the entities; the helper only guards mock records.
        "options": common.with_answer(ex["entities"], answer),
        "answer": answer,
        "answers": tf.reshape(ex["answers"], [-1]),  # every accepted entity scores (EM/F1)
    }


RECORD_TEMPLATES = [
    t("{passage}\n\n{query}\n\nWhat does \"@placeholder\" stand for in the last sentence?",
      "{answer}"),
    t("Complete the passage by filling in @placeholder.\n\n{passage}\n\n{query}", "{answer}"),
    t("News article:\n{passage}\n\nNext sentence: {query}\nWhich entity is @placeholder?",
      "{answer}"),
    t("{passage}\n\nHow should the blank (@placeholder) be filled in the following "
      "sentence?\n{query}", "{answer}"),
    t("Read the story and finish the sentence that follows it.\n\n{passage}\n\n{query}",
      "{answer}"),
    t("{query}\n\nUsing this article, figure out who or what @placeholder is:\n{passage}",
      "{answer}"),
    t("Article: {passage}\n\nQuery: {query}\nAnswer with the entity that replaces "
      "@placeholder.", "{answer}"),
    t("{passage}\n\nContinue the story correctly: {query}", "{answer}"),
    turned("{passage}\n\nWrite one more sentence for this article that mentions {answer}.",
       "{filled_query}"),
    turned("Here is a news story.\n{passage}\n\nAdd a sentence about {answer} that follows "
       "from the story.", "{filled_query}"),
]


DATASETS: list[DatasetSpec] = [
    DatasetSpec(
        name="cosmos_qa",
        collection=COLLECTION,
        cluster=CLUSTER,
        # CosmosQA's test split has no labels.
        source=common.source("cosmos_qa:1.0.0"),
        templates=COSMOS_QA_TEMPLATES,
        fields_fn=common.graph_fields(cosmos_qa_fields),
        options_field="options",
        metric_fns=[metrics.accuracy],
        display_name="CosmosQA",
    ),
    DatasetSpec(
        name="record",
        collection=COLLECTION,
        cluster=CLUSTER,
        # SuperGLUE test labels are hidden: evaluate on validation.
        source=common.source("super_glue/record:1.0.2"),
        templates=RECORD_TEMPLATES,
        fields_fn=common.graph_fields(record_fields),
        options_field="options",
        # ReCoRD is scored by EM/F1 against every accepted answer (generation; rank tasks
        # still report accuracy).
        metric_fns=[metrics.squad],
        postprocess_fn=common.qa_answers,
        answers_field="answers",
        display_name="ReCoRD",
    ),
]
