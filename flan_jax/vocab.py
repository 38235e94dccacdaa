"""Vocabularies for inference without TensorFlow: bytes, or a SentencePiece model file.

Ids agree with seqio's: `ByteVocab` matches `seqio.ByteVocabulary()` (pad 0, eos 1, unk 2, byte
b -> b + 3) and `SentencePieceVocab` matches `seqio.SentencePieceVocabulary(path)` on encode.
A checkpoint directory names its vocabulary in `vocab.json`.
"""

from __future__ import annotations

import json
import os
from typing import Protocol, Sequence

from flan_jax import paths

VOCAB_FILE = "vocab.json"


class Vocab(Protocol):
    pad_id: int
    eos_id: int
    bos_id: int | None
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteVocab:
    """UTF-8 bytes shifted by three special ids; needs no file."""

    pad_id, eos_id, unk_id, bos_id = 0, 1, 2, None
    vocab_size = 259

    def encode(self, text: str) -> list[int]:
        return [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= 3:
                out.append(i - 3)
        return out.decode("utf-8", errors="ignore")

    def to_json(self) -> dict:
        return {"kind": "byte"}


class SentencePieceVocab:
    """A SentencePiece model (T5's spiece.model, Llama's tokenizer.model)."""

    def __init__(self, path: str | os.PathLike, add_bos: bool = False):
        import sentencepiece as spm

        self.path = str(path)
        self.add_bos = add_bos
        # read through epath (a bucket works too); SentencePiece itself opens only local files
        self._sp = spm.SentencePieceProcessor(model_proto=paths.as_path(self.path).read_bytes())
        self.pad_id = max(self._sp.pad_id(), 0)
        self.eos_id = self._sp.eos_id()
        self.bos_id = self._sp.bos_id() if add_bos else None
        self.vocab_size = self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        ids = list(self._sp.encode(text))
        return ([self.bos_id] if self.bos_id is not None else []) + ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self._sp.decode([i for i in ids if i != self.pad_id and i < self.vocab_size])

    def to_json(self) -> dict:
        return {"kind": "sentencepiece", "file": os.path.basename(self.path),
                "add_bos": self.add_bos}


def save_vocab_json(directory: str | os.PathLike, spec: dict) -> None:
    paths.write_text_atomic(paths.as_path(directory) / VOCAB_FILE,
                            json.dumps(spec, indent=2) + "\n")


def load_vocab(directory: str | os.PathLike) -> Vocab:
    """The vocabulary a checkpoint directory's vocab.json names."""
    path = paths.as_path(directory) / VOCAB_FILE
    if not path.exists():  # guessing bytes would silently mis-tokenize a SentencePiece model
        raise FileNotFoundError(
            f"{directory} has no {VOCAB_FILE}: write {{\"kind\": \"byte\"}} there for a byte "
            "model, or {\"kind\": \"sentencepiece\", \"file\": \"spiece.model\"} with that file "
            "next to it.")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); it should look like "
                         "{\"kind\": \"byte\"}.") from None
    if spec.get("kind") == "byte":
        return ByteVocab()
    if spec.get("kind") == "sentencepiece":
        model = paths.as_path(directory) / spec["file"]
        if not model.exists():
            raise FileNotFoundError(f"{path} names {spec['file']}, which is not in {directory}.")
        return SentencePieceVocab(model, add_bos=spec.get("add_bos", False))
    if spec.get("kind") == "missing":
        raise FileNotFoundError(
            f"{directory} has no vocabulary: copy the model's {spec.get('expected')} into it and "
            f"write {{\"kind\": \"sentencepiece\", \"file\": \"{spec.get('expected')}\"}} "
            f"to {path}.")
    raise ValueError(f"{path}: unknown vocabulary kind {spec.get('kind')!r} (byte, sentencepiece).")
