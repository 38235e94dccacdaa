"""attention_impl='dot_product_attention' (jax.nn's fused attention) gives the einsum path's
numbers: T5 relative-position bias without 1/sqrt(d), GQA/MQA, padding, packing, causal and
prefix-LM masks, soft prompts, and the KV cache."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models import build_model, init_cache
from flan_jax.models.config import plain_config

ENC_DEC = plain_config(family="encoder_decoder", vocab_size=61, emb_dim=32, num_heads=4,
                       head_dim=8, mlp_dim=48, num_encoder_layers=2, num_decoder_layers=2,
                       relative_attention_num_buckets=8, relative_attention_max_distance=16)
DEC_ONLY = plain_config(family="decoder_only", vocab_size=61, emb_dim=32, num_heads=4,
                        num_kv_heads=2, head_dim=8, mlp_dim=48, num_encoder_layers=0,
                        num_decoder_layers=2, mlp_activation="silu")
CASES = {
    "encoder_decoder": ENC_DEC,
    "encoder_decoder_gqa_prompt": dataclasses.replace(ENC_DEC, num_kv_heads=2, prompt_length=3),
    "decoder_only_gqa": DEC_ONLY,
    "prefix_lm_mqa": dataclasses.replace(DEC_ONLY, prefix_lm=True, num_kv_heads=1),
    "decoder_only_prompt_scanned": dataclasses.replace(DEC_ONLY, prompt_length=3,
                                                       scan_layers=True),
}


def _tokens(shape, seed):
    return jnp.asarray(np.random.RandomState(seed).randint(3, 61, size=shape), jnp.int32)


def _inputs(cfg):
    if cfg.family == "encoder_decoder":
        enc = _tokens((2, 7), 1).at[1, 4:].set(0)  # padding
        dec = _tokens((2, 6), 2).at[:, 0].set(0)
        if cfg.prompt_length:  # prompt tuning runs unpacked rows
            return (enc, dec), {"decoder_segment_ids": jnp.asarray([[1] * 6, [1] * 3 + [0] * 3])}
        # Packed encoder and decoder rows (segment ids and positions restart per example).
        enc_seg = jnp.asarray([[1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 0, 0, 0]])
        enc_pos = jnp.asarray([[0, 1, 2, 0, 1, 2, 3], [0, 1, 2, 3, 0, 0, 0]])
        dec_seg = jnp.asarray([[1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 0, 0]])
        dec_pos = jnp.asarray([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 0]])
        return (enc, dec), {"encoder_segment_ids": enc_seg, "decoder_segment_ids": dec_seg,
                            "encoder_positions": enc_pos, "decoder_positions": dec_pos}
    tokens = _tokens((2, 9), 3)
    if cfg.prompt_length:
        seg = jnp.asarray([[1] * 9, [1] * 6 + [0] * 3])
        pos = jnp.broadcast_to(jnp.arange(9), (2, 9))
    else:
        seg = jnp.asarray([[1] * 4 + [2] * 5, [1] * 6 + [0] * 3])
        pos = jnp.asarray([list(range(4)) + list(range(5)), list(range(9))])
    flags = jnp.asarray([[1, 1, 0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0]], bool)
    return (tokens, seg, pos, flags), {}


@pytest.mark.parametrize("name", CASES)
def test_fused_attention_equals_einsum_attention(name):
    cfg = CASES[name]
    args, kw = _inputs(cfg)
    model = build_model(cfg)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), *args, **kw)["params"])
    fused = build_model(dataclasses.replace(cfg, attention_impl="dot_product_attention"))
    # Jitted: eager Flax runs op by op, far slower.
    expected = jax.jit(model.apply)({"params": params}, *args, **kw)
    got = jax.jit(fused.apply)({"params": params}, *args, **kw)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    # The gradients as well (what training sees).
    loss = lambda m, p: jnp.sum(m.apply({"params": p}, *args, **kw) ** 2)  # noqa: E731
    g_ref, g_got = (jax.jit(jax.grad(functools.partial(loss, m)))(params)
                    for m in (model, fused))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4),
                           g_got, g_ref)


def test_fused_attention_with_the_kv_cache():
    cfg = dataclasses.replace(DEC_ONLY, prefix_lm=True, attention_impl="dot_product_attention")
    model = build_model(cfg)
    tokens = _tokens((2, 8), 4)
    flags = jnp.broadcast_to(jnp.arange(8) < 3, tokens.shape)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(1), tokens)["params"])
    full = jax.jit(build_model(dataclasses.replace(cfg, attention_impl="xla")).apply)(
        {"params": params}, tokens, decoder_causal_attention=flags)
    run = jax.jit(functools.partial(model.apply, decode=True, mutable=["cache"]))
    cache = init_cache(model, params, batch_size=2, max_length=8)
    pos = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32), tokens.shape)
    seg = jnp.ones_like(tokens)
    steps = []
    for lo, hi in [(0, 3)] + [(t, t + 1) for t in range(3, 8)]:
        logits, state = run({"params": params, "cache": cache}, tokens[:, lo:hi],
                            seg[:, lo:hi], pos[:, lo:hi], flags[:, lo:hi])
        cache = state["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_unknown_attention_impl_names_the_valid_ones():
    with pytest.raises(ValueError, match="attention_impl='cudnn'.*'xla', 'dot_product_attention'"):
        plain_config(attention_impl="cudnn")
