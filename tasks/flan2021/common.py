"""Building blocks shared by every FLAN 2021 cluster module: templates, sources, TF-op field
helpers, postprocessors and metrics.

Fields functions run inside tf.data graphs over TFDS records, so the field helpers are
TensorFlow ops only. They tolerate the shapes `tfds.testing.mock_data` produces (sequences of any
length, class ids out of range): an answer that cannot be found becomes "", and the registry
drops records whose template fields are empty. Real records never take that path. Every cluster
module wraps its fields functions in `graph_fields` (see there why).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gin
import seqio
import tensorflow as tf

from tasks.spec import Template, TfdsSource

COLLECTION = "flan2021"

# Where TFDS looks for manually downloaded files unless --manual_dir says otherwise.
TFDS_MANUAL_DIR = "~/tensorflow_datasets/downloads/manual/"


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


def source(
    name: str,
    train: str = "train",
    validation: str | None = "validation",
    test: str | None = None,
    manual_download: str | None = None,
) -> TfdsSource:
    """Our split names -> TFDS split expressions; splits given as None are left out."""
    splits = {"train": train}
    if validation is not None:
        splits["validation"] = validation
    if test is not None:
        splits["test"] = test
    return TfdsSource(name=name, splits=splits, manual_download=manual_download)


def held_out_source(
    name: str, held_out: int | str = 1000, manual_download: str | None = None
) -> TfdsSource:
    """For train-only datasets: evaluate on the tail of train, train on the rest.

    `held_out` is an example count (1000) or a percentage ("10%").
    """
    held_out = str(held_out)
    if held_out.endswith("%"):
        keep = f"{100 - int(held_out[:-1])}%"
        splits = {"train": f"train[:{keep}]", "validation": f"train[{keep}:]"}
    else:
        splits = {"train": f"train[:-{held_out}]", "validation": f"train[-{held_out}:]"}
    return TfdsSource(name=name, splits=splits, manual_download=manual_download)


# ---- TF-op field helpers --------------------------------------------------------------------


def graph_fields(fn):
    """Marks a fields function as plain TF ops, so tf.data skips AutoGraph conversion.

    Fields functions have no python control flow on tensors; converting them (and every helper
    they call) each time a dataset is built costs more than the rest of building it.
    """
    return tf.autograph.experimental.do_not_convert(fn)


def nth(values: Any, index: Any, default: str = "") -> tf.Tensor:
    """values[index] for a 1-D string tensor, or `default` when `index` is out of range."""
    values = tf.reshape(tf.convert_to_tensor(values), [-1])
    padded = tf.concat([values, tf.constant([default])], axis=0)
    index = tf.cast(index, tf.int32)
    ok = tf.logical_and(index >= 0, index < tf.size(values))
    return tf.gather(padded, tf.where(ok, index, tf.size(values)))


def label_text(label: Any, names: Sequence[str]) -> tf.Tensor:
    """A class id -> its name in `names` ("" for an id outside them: mock data only)."""
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


def yes_no(flag: Any) -> tf.Tensor:
    """A bool (or 0/1 label) -> "yes" / "no"."""
    return tf.where(tf.cast(flag, tf.bool), tf.constant("yes"), tf.constant("no"))


def with_answer(options: tf.Tensor, answer: tf.Tensor) -> tf.Tensor:
    """Deduplicated options, with `answer` appended if it is missing (keeps answer in options)."""
    options = tf.reshape(options, [-1])
    missing = tf.logical_not(tf.reduce_any(tf.equal(options, answer)))
    options = tf.cond(
        missing,
        lambda: tf.concat([options, tf.reshape(answer, [1])], axis=0),
        lambda: options,
    )
    return tf.unique(options).y


def numbered(lines: tf.Tensor, separator: str = "\n") -> tf.Tensor:
    """["a", "b"] -> "1. a\\n2. b" (an empty list gives "")."""
    lines = tf.reshape(lines, [-1])
    numbers = tf.strings.as_string(tf.range(1, tf.size(lines) + 1))
    return tf.strings.reduce_join(
        tf.strings.join([numbers, tf.fill(tf.shape(lines), ". "), lines]), separator=separator
    )


def squash_spaces(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


# ---- postprocessors (python, run on decoded strings before metrics) ---------------------


def qa_answers(answer: str, example: Mapping[str, Any] | None = None, is_target: bool = False):
    """Targets become the list of acceptable answers (all of "answers" when the example has
    that feature, otherwise the single rendered target), as t5.evaluation.metrics.squad and
    trivia_qa expect; predictions stay strings.
    """
    if not is_target:
        return answer
    if example is not None and "answers" in example:
        answers = example["answers"]
        if hasattr(answers, "numpy"):
            answers = answers.numpy()
        if isinstance(answers, (bytes, str)):
            answers = [answers]
        answers = [tf.compat.as_text(a) for a in answers]
        if answers:
            return answers
    return [tf.compat.as_text(answer)]


def multi_reference_rouge(targets: Sequence[Sequence[str]],
                          predictions: Sequence[str]) -> Mapping[str, float]:
    """ROUGE-1/2/Lsum F-measure (x100) against every reference, the best one per example.

    Targets are lists of references (as `qa_answers` makes them); t5's `rouge` takes one.
    """
    import numpy as np
    from rouge_score import rouge_scorer

    types = ("rouge1", "rouge2", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(types)
    # rougeLsum splits summaries into sentences at newlines, as t5's rouge prepares them.
    def prepare(text: str) -> str:
        return text.replace(" . ", " .\n")

    scores = {t: [] for t in types}
    for refs, prediction in zip(targets, predictions):
        refs = [refs] if isinstance(refs, str) else list(refs)
        best = scorer.score_multi([prepare(r) for r in refs], prepare(prediction))
        for t in types:
            scores[t].append(best[t].fmeasure)
    return {t: 100 * float(np.mean(v)) if v else 0.0 for t, v in scores.items()}


def yes_no_class(answer: str, example: Mapping[str, Any] | None = None, is_target: bool = False):
    """"yes" -> {"value": 1}, "no" -> {"value": 0}, anything else -> -1 (counted as wrong).

    The dict form is what t5.evaluation.metrics.multirc_f1_over_all_answers reads; targets also
    carry the example's "group" (MultiRC's question) for per-question exact match.
    """
    text = tf.compat.as_text(answer).strip().lower()
    out: dict[str, Any] = {"value": {"no": 0, "yes": 1}.get(text, -1)}
    if is_target and example is not None and "group" in example:
        out["group"] = tf.compat.as_text(example["group"])
    return out


def multirc_exact_match(targets, predictions) -> Mapping[str, float]:
    """MultiRC's EM: the share of questions whose every answer candidate is judged right."""
    from t5.evaluation import metrics

    return metrics.mean_group_metric(metrics.all_match)(targets, predictions)


def class_id(labels: Sequence[str]):
    """A postprocessor: answer text -> its index in `labels` (-1 when it is none of them)."""
    index = {label: i for i, label in enumerate(labels)}

    def postprocess(answer: str, example: Mapping[str, Any] | None = None,
                    is_target: bool = False) -> int:
        del example, is_target
        return index.get(tf.compat.as_text(answer).strip(), -1)

    postprocess.__name__ = "class_id"
    return postprocess


def accuracy_and_f1(targets, predictions) -> Mapping[str, float]:
    """Accuracy and F1 of class 1 over class ids (MRPC, QQP); -1 counts as wrong."""
    from t5.evaluation import metrics

    return {**metrics.accuracy(targets, predictions),
            **metrics.f1_score_with_invalid(targets, predictions)}


def accuracy_and_mean_3class_f1(targets, predictions) -> Mapping[str, float]:
    """Accuracy and the mean F1 of three classes (CB, as SuperGLUE reports it)."""
    from t5.evaluation import metrics

    return {**metrics.accuracy(targets, predictions),
            **metrics.mean_multiclass_f1(num_classes=3)(targets, predictions)}


def cased_edit_distance(targets, predictions) -> Mapping[str, float]:
    """Character edit distance without lowercasing: case is what Fix Punctuation restores."""
    from t5.evaluation import metrics

    return metrics.edit_distance(targets, predictions, lower=False)
