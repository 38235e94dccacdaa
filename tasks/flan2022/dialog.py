"""The Dialog submixture: next-turn prediction on TFDS `wiki_dialog` (OQ) and `q_re_cc`, and
the input-inverted forms (given the reply, write the turn it answers), styles zs_noopt and
fs_noopt (dialog records have no answer options), capped at 200,000 examples per task.

Each record becomes one (context, next turn) pair. WikiDialog's first utterance introduces the
assistant and is dropped; the answered turn is an assistant turn picked by a keyed hash of the
passage id among the first 20 (the release draws it at random each epoch). QReCC keeps turns
past the sixth, as the release does; its context is the earlier turns plus the question. The
speakers are labelled in one of a few ways, also picked by a keyed hash. Inverted tasks (at 0.3
of the original's rate) show the earlier turns and the reply and ask for the turn in between.
See DEVIATIONS.md for what preparing these datasets needs under TFDS 4.9.10.
"""

from __future__ import annotations

import tensorflow as tf

from tasks.flan2022.mixing import COLLECTION, Entry
from tasks.spec import DatasetSpec, Template, TfdsSource

SPEAKERS = (("User", "Assistant"), ("Person A", "Person B"), ("Q", "A"), ("Speaker 1",
            "Speaker 2"), ("Customer", "Agent"))
MAX_ANSWER_PAIRS = 20
NO_EARLIER_TURNS = "(the conversation starts here)"


def _pick(key: tf.Tensor, n, salt: int) -> tf.Tensor:
    bucket = tf.strings.to_hash_bucket_strong(key, 1 << 30, [0, salt])
    return tf.cast(bucket % tf.cast(tf.maximum(n, 1), tf.int64), tf.int32)


def _labelled(turns: tf.Tensor, first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """Turns joined one per line, alternating speaker labels from the first."""
    labels = tf.where(tf.range(tf.size(turns)) % 2 == 0, first, second)
    return tf.strings.reduce_join(tf.strings.join([labels, ": ", turns]), separator="\n")


def dialog_fields(turns: tf.Tensor, index: tf.Tensor, key: tf.Tensor) -> dict[str, tf.Tensor]:
    """Fields for answering turn `index` of `turns` (index >= 1): the labelled context, the
    next speaker, the next turn, the turn before it and the turns before that."""
    turns = tf.reshape(turns, [-1])
    index = tf.clip_by_value(index, 1, tf.maximum(tf.size(turns) - 1, 1))
    speakers = tf.constant([list(p) for p in SPEAKERS])
    pair = tf.gather(speakers, _pick(key, len(SPEAKERS), 3))
    first, second = pair[0], pair[1]  # the context's first turn is `first`'s
    next_speaker = tf.where(index % 2 == 0, first, second)
    earlier = _labelled(turns[:index - 1], first, second)
    padded = tf.concat([turns, [""]], 0)
    safe = tf.minimum(index, tf.size(turns))
    return {
        "dialog": _labelled(turns[:index], first, second),
        "next_speaker": next_speaker,
        "previous_speaker": tf.where(index % 2 == 0, second, first),
        "next_turn": padded[safe],
        "previous_turn": padded[safe - 1],
        "earlier": tf.where(tf.strings.length(earlier) > 0, earlier, NO_EARLIER_TURNS),
    }


@tf.autograph.experimental.do_not_convert
def wiki_dialog_fields(ex):
    turns = tf.reshape(ex["utterances"], [-1])[1:]
    pairs = tf.minimum(tf.size(turns) // 2, MAX_ANSWER_PAIRS)
    index = 2 * _pick(ex["pid"], pairs, 5) + 1
    fields = dialog_fields(turns, index, ex["pid"])
    fields["title"] = ex["title"]
    return fields


@tf.autograph.experimental.do_not_convert
def qrecc_fields(ex):
    turns = tf.concat([tf.reshape(ex["context"], [-1]), [ex["question"], ex["answer"]]], 0)
    key = tf.strings.join([tf.strings.as_string(ex["conversation_id"]),
                           tf.strings.as_string(ex["turn_id"])], "/")
    fields = dialog_fields(turns, tf.size(turns) - 1, key)
    fields["turn_id"] = ex["turn_id"]
    return fields


def _after_sixth_turn(fields):
    return fields["turn_id"] > 6


NEXT_TURN = (
    Template("{dialog}\n{next_speaker}:", "{next_turn}"),
    Template("Continue the conversation below with one reply from {next_speaker}.\n\n{dialog}",
             "{next_turn}"),
    Template("{dialog}\n\nWhat would {next_speaker} most likely say next?", "{next_turn}"),
    Template("Read this exchange and write the next message.\n\n{dialog}", "{next_turn}"),
)
WIKI_NEXT_TURN = NEXT_TURN + (
    Template("Here is a conversation about {title}.\n\n{dialog}\n\nWrite {next_speaker}'s "
             "answer.", "{next_turn}"),
)
INVERTED = (
    Template("{earlier}\n\nLater, {next_speaker} replied: \"{next_turn}\"\nWhat did "
             "{previous_speaker} say just before that reply?", "{previous_turn}",
             turned_around=True),
    Template("Reply: {next_turn}\n\nWrite the message this reply answers.", "{previous_turn}",
             turned_around=True),
    Template("Conversation so far:\n{earlier}\n\nThe next two messages were a question and "
             "its answer. The answer was: {next_turn}\nWhat was the question?",
             "{previous_turn}", turned_around=True),
)

WIKI_DIALOG = TfdsSource("wiki_dialog/OQ:1.0.0", {"train": "train"})
QRECC = TfdsSource("q_re_cc:1.0.0", {"train": "train"})
# (name, source, fields, filter, next-turn templates, release counts (zero-shot, few-shot))
_DATASETS = (
    ("wiki_dialog", WIKI_DIALOG, wiki_dialog_fields, None, WIKI_NEXT_TURN,
     (11264000, 11263998)),
    ("qrecc", QRECC, qrecc_fields, _after_sixth_turn, NEXT_TURN, (10170, 10170)),
)


def _spec(name, source, fields_fn, filter_fn, templates, inverted) -> DatasetSpec:
    return DatasetSpec(
        name=f"{name}_inverted" if inverted else name, collection=COLLECTION,
        cluster="dialog", source=source, templates=INVERTED if inverted else templates,
        fields_fn=fields_fn, filter_fn=filter_fn, eval_split="train", display_name=name)


ENTRIES: list[Entry] = [
    Entry(_spec(name, source, fields_fn, filter_fn, templates, inverted), counts, inverted)
    for inverted in (False, True)
    for name, source, fields_fn, filter_fn, templates, counts in _DATASETS
]
