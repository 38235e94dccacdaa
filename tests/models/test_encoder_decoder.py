"""The encoder-decoder family (flan_jax/models/encoder_decoder.py): cached decoding equals the
full forward pass, packed examples and encoder padding change nothing, the tied head."""

import dataclasses

import jax.numpy as jnp
import numpy as np

from flan_jax.models import init_cache
from tests.fixtures import ENC_DEC_61 as ENC_DEC
from tests.fixtures import init_model, jitted_apply, random_tokens


def test_cached_decoding_equals_full_forward():
    enc = random_tokens((2, 7), seed=1).at[1, 5:].set(0)
    dec = random_tokens((2, 6), seed=2).at[:, 0].set(0)
    model, params = init_model(ENC_DEC, enc, dec)
    full = jitted_apply(model)({"params": params}, enc, dec,
                               decoder_segment_ids=jnp.ones_like(dec))

    encoded = jitted_apply(model, method="encode")({"params": params}, enc)
    enc_seg = (enc > 0).astype(jnp.int32)
    cache = init_cache(model, params, batch_size=2, max_length=6, encoder_length=7)
    step = jitted_apply(model, decode=True, method="decode", mutable=["cache"])
    steps = []
    for t in range(6):
        pos = jnp.full((2, 1), t, jnp.int32)
        logits, vars_ = step({"params": params, "cache": cache}, encoded, enc_seg,
                             dec[:, t:t + 1], decoder_positions=pos)
        cache = vars_["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_packed_examples_give_what_each_gives_alone():
    """Two examples packed in one row, on both sides (as seqio's packing feature converter
    writes them), give each one's logits alone: no attention across segments, and the
    relative-position bias is the same inside each."""
    enc_a, enc_b = random_tokens((1, 5), seed=3), random_tokens((1, 7), seed=4)
    dec_a, dec_b = random_tokens((1, 4), seed=5), random_tokens((1, 3), seed=6)
    model, params = init_model(ENC_DEC, enc_a, dec_a)
    apply = jitted_apply(model)

    def alone(enc, dec):
        return apply({"params": params}, enc, dec, decoder_segment_ids=jnp.ones_like(dec))

    def ids(a, b):
        return (jnp.asarray([[1] * a + [2] * b]),
                jnp.asarray([list(range(a)) + list(range(b))], jnp.int32))

    enc_seg, enc_pos = ids(5, 7)
    dec_seg, dec_pos = ids(4, 3)
    packed = apply({"params": params}, jnp.concatenate([enc_a, enc_b], axis=1),
                   jnp.concatenate([dec_a, dec_b], axis=1), encoder_segment_ids=enc_seg,
                   decoder_segment_ids=dec_seg, encoder_positions=enc_pos,
                   decoder_positions=dec_pos)
    np.testing.assert_allclose(packed[:, :4], alone(enc_a, dec_a), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(packed[:, 4:], alone(enc_b, dec_b), atol=1e-5, rtol=1e-5)


def test_encoder_padding_changes_nothing():
    enc, dec = random_tokens((2, 6), seed=7), random_tokens((2, 5), seed=8)
    model, params = init_model(ENC_DEC, enc, dec)
    apply = jitted_apply(model)
    padded = jnp.concatenate([enc, jnp.zeros((2, 4), jnp.int32)], axis=1)
    seg = jnp.ones_like(dec)
    np.testing.assert_allclose(apply({"params": params}, padded, dec, decoder_segment_ids=seg),
                               apply({"params": params}, enc, dec, decoder_segment_ids=seg),
                               atol=1e-5, rtol=1e-5)


def test_tied_head_scales_then_reads_the_embedding_table():
    """T5's tied head: the decoder output times emb_dim ** -0.5, against the shared table."""
    cfg = dataclasses.replace(ENC_DEC, tie_embeddings=True)
    enc, dec = random_tokens((2, 6), seed=9), random_tokens((2, 4), seed=10)
    model, params = init_model(cfg, enc, dec)
    assert "logits_dense" not in params["decoder"] and "logits_dense" not in params
    hidden = jitted_apply(model, return_hidden=True)({"params": params}, enc, dec)
    logits = jitted_apply(model)({"params": params}, enc, dec)
    table = np.asarray(params["token_embed"]["embedding"])
    np.testing.assert_allclose(logits, np.asarray(hidden) * cfg.emb_dim ** -0.5 @ table.T,
                               atol=1e-5, rtol=1e-5)
