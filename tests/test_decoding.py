"""Decoding: cached greedy equals the no-cache reference; 1-beam search and top-k=1 sampling
equal greedy; EOS stops an example; sampling is seeded per example."""

import dataclasses

import numpy as np
import pytest

from flan_jax import decoding
from flan_jax.decoding import DecodeSettings
from flan_jax.placement import LoadedModel
from tests.fixtures import DEC_ONLY, ENC_DEC, PREFIX_LM, VOCAB, tiny_model

CONFIGS = {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}
PROMPTS = ["hello there", "a", "what is the capital of France?"]
STEPS = 6


def make(name):
    model, params = tiny_model(CONFIGS[name])
    ids = [VOCAB.encode(p) for p in PROMPTS]
    if model.config.family == "encoder_decoder":
        ids = [x + [VOCAB.eos_id] for x in ids]
    return model, params, decoding.decoding_batch(model, ids, 4, 32)


def greedy(model, params, batch, **kw):
    return np.asarray(decoding.decode_tokens(model, params, batch, STEPS, **kw))[:3]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_greedy_with_cache_equals_no_cache(name):
    model, params, batch = make(name)
    cached = greedy(model, params, batch)
    reference = decoding.greedy_no_cache(model, params, batch, STEPS)[:3]
    np.testing.assert_array_equal(cached, reference)
    assert len({tuple(r) for r in cached}) > 1  # the prompts matter


@pytest.mark.parametrize("name", ["encoder_decoder", "decoder_only"])
def test_one_beam_and_top_k_one_equal_greedy(name):
    model, params, batch = make(name)
    expected = greedy(model, params, batch)
    np.testing.assert_array_equal(
        greedy(model, params, batch, method="beam", num_beams=1, length_penalty=0.0), expected)
    np.testing.assert_array_equal(
        greedy(model, params, batch, method="sample", top_k=1, temperature=0.7), expected)
    np.testing.assert_array_equal(
        greedy(model, params, batch, method="sample", top_p=1e-6), expected)


@pytest.mark.parametrize("name", ["encoder_decoder", "decoder_only"])
def test_eos_stops_an_example(name):
    model, params, batch = make(name)
    plain = greedy(model, params, batch)
    eos = int(plain[0, 2])  # pretend the third token of example 0 is EOS
    for method in ("greedy", "beam"):
        kw = {"method": method, "num_beams": 1, "length_penalty": 0.0}
        out = greedy(model, params, batch, eos_id=eos, **kw)
        for row, ref in zip(out, plain):
            hits = np.flatnonzero(ref == eos)
            stop = hits[0] + 1 if len(hits) else STEPS
            np.testing.assert_array_equal(row[:stop], ref[:stop])
            assert (row[stop:] == 0).all()
        assert (out[0, 3:] == 0).all()


def test_beam_search_and_sampling_run_batched():
    model, params, batch = make("decoder_only")
    beams = greedy(model, params, batch, method="beam", num_beams=3, length_penalty=0.6)
    assert beams.shape == (3, STEPS)
    loaded = LoadedModel(model, params, VOCAB)
    sample = DecodeSettings(max_new_tokens=STEPS, method="sample", top_p=0.9, seed=3,
                            batch_size=4)
    texts = decoding.generate(loaded, PROMPTS, sample)
    # A sample depends on (seed, example index), not on its batch-mates.
    again = decoding.generate(loaded, PROMPTS[1:], sample, example_offset=1)
    assert texts[1:] == again
    other = decoding.generate(loaded, PROMPTS, dataclasses.replace(sample, seed=4))
    assert other != texts
