"""Vocabularies of model directories (no TensorFlow)."""

import json

import pytest

from flan_jax.vocab import ByteVocab, load_vocab, save_vocab_json


def test_bytes_round_trip_and_stop_at_eos():
    v = ByteVocab()
    ids = v.encode("héllo")
    assert min(ids) >= 3 and v.decode(ids) == "héllo"
    assert v.decode(ids[:1] + [v.eos_id] + ids[1:]) == "h"


def test_vocab_json_round_trip(tmp_path):
    save_vocab_json(tmp_path, {"kind": "byte"})
    assert isinstance(load_vocab(tmp_path), ByteVocab)
    assert json.loads((tmp_path / "vocab.json").read_text()) == {"kind": "byte"}


def test_missing_sentencepiece_file_and_unknown_kind_are_named(tmp_path):
    save_vocab_json(tmp_path, {"kind": "sentencepiece", "file": "spiece.model"})
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        load_vocab(tmp_path)
    save_vocab_json(tmp_path, {"kind": "wordpiece"})
    with pytest.raises(ValueError, match="unknown vocabulary kind 'wordpiece'"):
        load_vocab(tmp_path)


def test_missing_or_malformed_vocab_json_is_an_error_not_bytes(tmp_path):
    with pytest.raises(FileNotFoundError, match='no vocab.json: write {"kind": "byte"}'):
        load_vocab(tmp_path)
    (tmp_path / "vocab.json").write_text("{kind: byte")
    with pytest.raises(ValueError, match="vocab.json is not valid JSON"):
        load_vocab(tmp_path)
