"""The decoder-only family (flan_jax/models/decoder_only.py): cached decoding equals the full
forward pass, packed examples and prefix-LM attention see what they should, the tied head."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models import init_cache
from tests.fixtures import DEC_ONLY_61 as DEC_ONLY
from tests.fixtures import init_model, jitted_apply, random_tokens

PREFIX_LM = dataclasses.replace(DEC_ONLY, prefix_lm=True)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_cached_decoding_equals_full_forward(prefix_lm):
    cfg = PREFIX_LM if prefix_lm else DEC_ONLY
    tokens = random_tokens((2, 10))
    prefix_len = 4
    flags = jnp.broadcast_to(jnp.arange(10) < prefix_len, tokens.shape)
    model, params = init_model(cfg, tokens)
    full = jitted_apply(model)({"params": params}, tokens, decoder_causal_attention=flags)

    cache = init_cache(model, params, batch_size=2, max_length=10)
    pos = jnp.broadcast_to(jnp.arange(10, dtype=jnp.int32), tokens.shape)
    seg = jnp.ones_like(tokens)
    step = jitted_apply(model, decode=True, mutable=["cache"])
    logits, vars_ = step({"params": params, "cache": cache}, tokens[:, :prefix_len],
                         seg[:, :prefix_len], pos[:, :prefix_len], flags[:, :prefix_len])
    steps = [logits]
    for t in range(prefix_len, 10):
        logits, vars_ = step({"params": params, "cache": vars_["cache"]}, tokens[:, t:t + 1],
                             seg[:, t:t + 1], pos[:, t:t + 1], flags[:, t:t + 1])
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_packed_segments_do_not_attend_to_each_other():
    """Two examples packed in one row give the logits each gives alone."""
    a, b = random_tokens((1, 4), seed=3), random_tokens((1, 5), seed=4)
    model, params = init_model(DEC_ONLY, a)
    packed = jnp.concatenate([a, b], axis=1)
    seg = jnp.asarray([[1] * 4 + [2] * 5])
    pos = jnp.asarray([list(range(4)) + list(range(5))])
    apply = jitted_apply(model)
    out = apply({"params": params}, packed, seg, pos)
    np.testing.assert_allclose(out[:, :4], apply({"params": params}, a), atol=1e-5)
    np.testing.assert_allclose(out[:, 4:], apply({"params": params}, b), atol=1e-5)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_prefix_tokens_see_each_other_and_targets_see_only_the_past(prefix_lm):
    """With `prefix_lm` the flagged inputs attend both ways: a later input token changes an
    earlier one's logits. Without it, and for every target token, the future is invisible."""
    cfg = PREFIX_LM if prefix_lm else DEC_ONLY
    tokens = random_tokens((1, 8), seed=5)
    flags = jnp.arange(8)[None] < 4  # tokens 0-3 are the inputs
    model, params = init_model(cfg, tokens)
    apply = jitted_apply(model)

    def logits(t):
        return np.asarray(apply({"params": params}, t, decoder_causal_attention=flags))

    base = logits(tokens)
    input_changed = logits(tokens.at[0, 2].set(tokens[0, 2] % 50 + 4))
    moved = np.abs(input_changed[0, :2] - base[0, :2]).max()
    assert (moved > 1e-4) if prefix_lm else (moved == 0.0), moved
    target_changed = logits(tokens.at[0, 6].set(tokens[0, 6] % 50 + 4))
    np.testing.assert_array_equal(target_changed[0, :6], base[0, :6])
    assert np.abs(target_changed[0, 6:] - base[0, 6:]).max() > 1e-4


def test_tied_head_reads_the_embedding_table():
    cfg = dataclasses.replace(DEC_ONLY, tie_embeddings=True)
    tokens = random_tokens((2, 6), seed=6)
    model, params = init_model(cfg, tokens)
    assert "logits_dense" not in params
    hidden = jitted_apply(model, return_hidden=True)({"params": params}, tokens)
    logits = jitted_apply(model)({"params": params}, tokens)
    table = np.asarray(params["token_embed"]["embedding"])
    np.testing.assert_allclose(logits, np.asarray(hidden) @ table.T, atol=1e-5, rtol=1e-5)
