"""The miniworld's word-level vocabulary: a SentencePiece `word` model over a fixed word list.

A SentencePiece file, not a new vocabulary class, so everything that reads T5's spiece.model
(seqio, the data cache, `flan_jax.vocab`, vocab.json, evaluation's vocabulary check) reads it
unchanged. Ids: pad 0, EOS 1, UNK 2, then one id per word; `EXTRA_IDS` sentinels for span
corruption follow (seqio numbers them down from the top). NFKC normalization turns newlines
(the OPTIONS suffix's) into spaces, so "OPTIONS:" and "-" are words too.

`python -m tasks.miniworld.vocabulary` rewrites MODEL_FILE from `word_list()` after a change.
"""

from __future__ import annotations

import functools
import io
import os

from tasks.miniworld import datasets, world
from tasks.templates import OPTIONS_HEADER, OPTIONS_SEPARATOR

MODEL_FILE = os.path.join(os.path.dirname(__file__), "miniworld_words.model")
EXTRA_IDS = 32
VOCAB_SIZE = 128  # model embedding rows: the words + EXTRA_IDS sentinels, rounded up


def word_list() -> list[str]:
    """Every word a miniworld text can hold: the world's, the templates', the answers', and the
    OPTIONS suffix's."""
    found = set(world.WORLD_WORDS)
    for templates in datasets.TEMPLATES.values():
        for t in templates:
            for text in (t.inputs, t.targets):
                found.update(w for w in text.split() if not w.startswith("{"))
    found.update(datasets.COUNTS + datasets.NLI_OPTIONS)
    found.update((OPTIONS_HEADER + OPTIONS_SEPARATOR).split())
    return sorted(found)


def build_model_proto(words: list[str]) -> bytes:
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(words), model_writer=out, model_type="word",
        vocab_size=len(words) + 3, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, normalization_rule_name="nmt_nfkc", minloglevel=2,
        hard_vocab_limit=True, use_all_vocab=True)
    return out.getvalue()


def pieces(model_proto: bytes) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


@functools.lru_cache(maxsize=None)
def seqio_vocabulary():
    import seqio

    return seqio.SentencePieceVocabulary(MODEL_FILE, extra_ids=EXTRA_IDS)


if __name__ == "__main__":
    with open(MODEL_FILE, "wb") as f:
        f.write(build_model_proto(word_list()))
    print(f"wrote {MODEL_FILE}: {len(word_list())} words")
