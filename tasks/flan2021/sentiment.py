"""FLAN 2021 sentiment: IMDB, Sentiment140, SST-2, Yelp (polarity).

Every dataset answers "negative" / "positive". Turned-around templates ask for a text with the
given sentiment.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021.common import COLLECTION, graph_fields, label_text, source, t, turned
from tasks.spec import DatasetSpec

CLUSTER = "sentiment"
OPTIONS = ("negative", "positive")


def _templates(kind: str, field: str = "text") -> list:
    """Ten templates for texts of one `kind` ("movie review", "tweet", ...)."""
    x = "{" + field + "}"
    return [
        t(f"{x}\n\nIs this {kind} positive or negative?", "{answer}"),
        t(f"What is the sentiment of the following {kind}?\n{x}", "{answer}"),
        t(f"{kind.capitalize()}: {x}\nSentiment:", "{answer}"),
        t(f"Decide whether the writer of this {kind} felt good or bad about the subject.\n\n{x}",
          "{answer}"),
        t(f"How would you describe the tone of this {kind}? {x}", "{answer}"),
        t(f"Read the {kind} below and classify its sentiment.\n\"{x}\"", "{answer}"),
        t(f"{x}\nDid the author like it?", "{answer}"),
        turned(f"Write a {{answer}} {kind}.", x),
        turned(f"Compose a {kind} whose sentiment is {{answer}}.", x),
        t(f"Here is a {kind}: {x}\n\nWhich sentiment does it express?", "{answer}"),
    ]


def _fields(text_key: str, names: tuple[str, ...]):
    def fields_fn(ex):
        return {"text": ex[text_key], "answer": label_text(ex["label"], names)}

    return fields_fn


def _sentiment140_fields(ex):
    # As the release: polarity 3 or 4 is positive, anything else negative, so the test split's
    # neutral tweets (2) count as negative and the task stays binary.
    polarity = ex["polarity"]
    positive = tf.logical_or(tf.equal(polarity, 3), tf.equal(polarity, 4))
    return {"text": ex["text"],
            "answer": tf.where(positive, tf.constant("positive"), tf.constant("negative"))}


def _imdb_fields(ex):
    # The release turns IMDB's HTML line breaks into newlines.
    return {"text": tf.strings.regex_replace(ex["text"], "<br />", "\n"),
            "answer": label_text(ex["label"], OPTIONS)}


def _yelp_fields(ex):
    # Yelp's texts carry escaped quotes and literal "\n"; the release unescapes them.
    text = tf.strings.regex_replace(ex["text"], r'\\""', '"')
    text = tf.strings.regex_replace(text, r"\\n", " ")
    return {"text": text, "answer": label_text(ex["label"], OPTIONS)}


def _spec(name, display, src, fields_fn, templates, eval_split="validation"):
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=src, templates=templates,
        fields_fn=graph_fields(fields_fn), options=OPTIONS, metric_fns=[metrics.accuracy],
        eval_split=eval_split, display_name=display,
    )


DATASETS: list[DatasetSpec] = [
    # IMDB and Yelp have train and (labelled) test splits only: evaluate on test.
    _spec("imdb_reviews", "IMDB",
          source("imdb_reviews/plain_text:1.0.0", train="train", validation="test"),
          _imdb_fields, _templates("movie review")),
    _spec("sentiment140", "Sentiment140",
          source("sentiment140:1.0.0", train="train", validation="test"),
          _sentiment140_fields, _templates("tweet")),
    _spec("sst2", "SST-2", source("glue/sst2:2.0.0", train="train", validation="validation"),
          _fields("sentence", OPTIONS), _templates("movie review excerpt")),
    _spec("yelp_polarity_reviews", "Yelp",
          source("yelp_polarity_reviews:0.2.0", train="train", validation="test"),
          _yelp_fields, _templates("Yelp review")),
]
