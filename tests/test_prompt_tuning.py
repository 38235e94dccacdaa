"""Prompt tuning: the soft prompt in both model families (cached paths agree with full forward
passes), and the trainer: only the prompt changes and is saved, the loss falls, and the run
directory loads as base + prompt for evaluation."""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

from flan_jax import checkpoints, config, decoding, scoring
from flan_jax.models import init_prompt
from tests.test_scoring import DEC_ONLY, ENC_DEC, INPUTS, OPTIONS, PREFIX_LM, VOCAB, tiny_model

PROMPTED = {name: dataclasses.replace(cfg, prompt_length=5) for name, cfg in
            {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}.items()}


@pytest.mark.parametrize("name", sorted(PROMPTED))
def test_prompt_paths_agree_and_the_prompt_matters(name):
    model, params = tiny_model(PROMPTED[name])
    assert params["prompt"].shape == (5, 32)
    fast = scoring.rank_classify(model, params, VOCAB, INPUTS, OPTIONS, batch_size=3)
    slow = scoring.rank_classify_naive(model, params, VOCAB, INPUTS, OPTIONS, batch_size=8)
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f.log_likelihoods, s.log_likelihoods, atol=1e-4, rtol=1e-4)
    ids = [VOCAB.encode(p) for p in INPUTS]
    if model.config.family == "encoder_decoder":
        ids = [x + [VOCAB.eos_id] for x in ids]
    batch = decoding.decoding_batch(model, ids, 4, 64)
    cached = np.asarray(decoding.decode_tokens(model, params, batch, 6))
    np.testing.assert_array_equal(cached, decoding.greedy_no_cache(model, params, batch, 6))
    other = {**params, "prompt": params["prompt"] + 1.0}
    moved = scoring.rank_classify(model, other, VOCAB, INPUTS, OPTIONS, batch_size=3)
    assert not np.allclose(moved[0].log_likelihoods, fast[0].log_likelihoods)


def test_vocab_init_copies_embedding_rows_and_random_init_is_seeded():
    table = np.random.default_rng(0).normal(size=(259, 32)).astype(np.float32)
    cfg = dataclasses.replace(ENC_DEC, prompt_length=7)
    prompt = init_prompt(cfg, table, seed=3)
    assert prompt.shape == (7, 32)
    rows = [int(np.flatnonzero((table == r).all(-1))[0]) for r in prompt]
    assert len(set(rows)) == 7 and all(3 <= i < 259 for i in rows)
    np.testing.assert_array_equal(prompt, init_prompt(cfg, table, seed=3))
    rnd = init_prompt(dataclasses.replace(cfg, prompt_init="random"), table, seed=3)
    assert not any((table == r).all(-1).any() for r in rnd)
