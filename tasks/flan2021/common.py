"""Shared building blocks of the first half of the FLAN 2021 declarations.

Fields functions run inside tf.data graphs over TFDS records, so everything here is TensorFlow
ops. They tolerate the shapes `tfds.testing.mock_data` produces (sequences of any length, class
ids out of range): an answer that cannot be found becomes "", and the registry drops records
whose template fields are empty. Real records never take that path.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gin
import seqio
import tensorflow as tf

from tasks.spec import Template, TfdsSource

COLLECTION = "flan2021"


@gin.configurable(module="flan2021")
def flan_vocabulary(spm_path: str | None = None) -> seqio.Vocabulary:
    """The vocabulary FLAN 2021 tasks tokenize with.

    FLAN's models use T5's SentencePiece model (gs://t5-data/vocabs/cc_all.32000/
    sentencepiece.model); point `flan2021.flan_vocabulary.spm_path` at a local copy. Without it,
    tasks use seqio's byte vocabulary, which needs no file.
    """
    if spm_path:
        return seqio.SentencePieceVocabulary(spm_path)
    return seqio.ByteVocabulary()


# ---- declaring templates and sources --------------------------------------------------------


def t(inputs: str, targets: str) -> Template:
    return Template(inputs=inputs, targets=targets)


def turned(inputs: str, targets: str) -> Template:
    """A turned-around template: asks for the input given the output."""
    return Template(inputs=inputs, targets=targets, turned_around=True)


def source(name: str, manual_download: str | None = None, **splits: str) -> TfdsSource:
    """Our split names -> TFDS split expressions, e.g. source("snli", train="train", ...)."""
    return TfdsSource(name=name, splits=dict(splits), manual_download=manual_download)


def held_out_source(name: str, count: int = 1000) -> TfdsSource:
    """A dataset without a labelled validation split: evaluate on the last `count` of train."""
    return TfdsSource(
        name=name, splits={"train": f"train[:-{count}]", "validation": f"train[-{count}:]"}
    )


# ---- TF-op field helpers --------------------------------------------------------------------


def graph_fields(fn):
    """Marks a fields function as plain TF ops, so tf.data skips AutoGraph conversion.

    Fields functions have no python control flow on tensors; converting them (and every helper
    they call) each time a dataset is built costs more than the rest of building it.
    """
    return tf.autograph.experimental.do_not_convert(fn)



def nth(values: Any, index: Any) -> tf.Tensor:
    """values[index] for a 1-D string tensor, or "" when `index` is out of range."""
    values = tf.reshape(tf.convert_to_tensor(values), [-1])
    padded = tf.concat([values, tf.constant([""])], axis=0)
    index = tf.cast(index, tf.int32)
    ok = tf.logical_and(index >= 0, index < tf.size(values))
    return tf.gather(padded, tf.where(ok, index, tf.size(values)))


def label_text(label: Any, names: Sequence[str]) -> tf.Tensor:
    """A class id -> its name in `names` ("" for an id outside them)."""
    return nth(tf.constant(list(names)), label)


def joined(values: Any, separator: str) -> tf.Tensor:
    return tf.strings.reduce_join(tf.reshape(values, [-1]), separator=separator)


def text_of_matching_label(texts: Any, labels: Any, key: Any) -> tf.Tensor:
    """The text whose label equals `key` (ARC's choices), "" when there is none."""
    texts = tf.reshape(texts, [-1])
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    n = tf.minimum(tf.size(texts), tf.size(labels))
    hits = tf.cast(tf.where(tf.equal(labels[:n], tf.cast(key, tf.int64)))[:, 0], tf.int32)
    index = tf.cond(tf.size(hits) > 0, lambda: hits[0], lambda: tf.constant(-1))
    return nth(texts, index)


# ---- postprocessing (python, on decoded strings before metrics) -----------------------------


def qa_postprocess(answer: str, example: Mapping[str, Any] | None = None,
                   is_target: bool = False):
    """Targets become a one-element list of acceptable answers, as squad/trivia_qa expect.

    Rendered examples keep only the rendered target (one answer), so that is the reference.
    """
    del example
    text = tf.compat.as_text(answer)
    return [text] if is_target else text
