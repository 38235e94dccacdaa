"""Every attention path gives the einsum reference's values and gradients: causal, prefix-LM,
padded and packed rows, both families, grouped-query heads; cuDNN's call through JAX's own
implementation of the same API, the splash kernel in Pallas interpret mode; fallbacks."""

import dataclasses
import functools
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models import attention, build_model, init_cache
from flan_jax.models.attention import AttentionMask
from flan_jax.models.config import attention_impls_for, plain_config
from tests import fixtures

ENC_DEC, DEC_ONLY = fixtures.ENC_DEC_61, fixtures.DEC_ONLY_61
CASES = {
    "encoder_decoder_packed": ENC_DEC,
    "encoder_decoder_padded_gqa_prompt": dataclasses.replace(ENC_DEC, num_kv_heads=2,
                                                             prompt_length=3),
    "decoder_only_packed_gqa_scanned": dataclasses.replace(DEC_ONLY, scan_layers=True),
    "decoder_only_causal": DEC_ONLY,
    "prefix_lm_mqa": dataclasses.replace(DEC_ONLY, prefix_lm=True, num_kv_heads=1),
}
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-2}


_tokens = fixtures.random_tokens


def _inputs(name, cfg):
    if cfg.family == "encoder_decoder":
        enc = _tokens((2, 7), 1).at[1, 4:].set(0)  # padding
        dec = _tokens((2, 6), 2).at[:, 0].set(0)
        if "padded" in name:  # one example a row, padded at the end
            return (enc, dec), {"decoder_target_tokens": dec.at[1, 3:].set(0)}
        enc_seg = jnp.asarray([[1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 0, 0, 0]])
        enc_pos = jnp.asarray([[0, 1, 2, 0, 1, 2, 3], [0, 1, 2, 3, 0, 0, 0]])
        dec_seg = jnp.asarray([[1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 0, 0]])
        dec_pos = jnp.asarray([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 0]])
        return (enc, dec), {"encoder_segment_ids": enc_seg, "decoder_segment_ids": dec_seg,
                            "encoder_positions": enc_pos, "decoder_positions": dec_pos}
    tokens = _tokens((2, 9), 3)
    if name == "decoder_only_causal":
        return (tokens,), {}
    seg = jnp.asarray([[1] * 4 + [2] * 5, [1] * 6 + [0] * 3])
    pos = jnp.asarray([list(range(4)) + list(range(5)), list(range(9))])
    flags = jnp.asarray([[1, 1, 0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0]], bool)
    return (tokens, seg, pos, flags), {}


def _logits_and_grads(cfg, params, args, kw):
    """One jitted program per path (compiling dominates these tests' time)."""
    model = build_model(cfg)

    def loss(p):
        logits = model.apply({"params": p}, *args, **kw)
        return jnp.sum(logits.astype(jnp.float32) ** 2), logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return logits, grads


# float32 for every case, bfloat16 for one case of each family
PARAMS = [(n, "float32") for n in CASES] + [("encoder_decoder_packed", "bfloat16"),
                                            ("decoder_only_packed_gqa_scanned", "bfloat16")]


@pytest.mark.parametrize("name,dtype", PARAMS)
def test_xla_path_equals_einsum_in_values_and_gradients(name, dtype):
    cfg = dataclasses.replace(CASES[name], dtype=dtype, attention_impl="einsum")
    args, kw = _inputs(name, cfg)
    params = nn.meta.unbox(jax.jit(build_model(cfg).init)(jax.random.PRNGKey(0), *args,
                                                          **kw)["params"])
    ref_out, ref_grad = _logits_and_grads(cfg, params, args, kw)
    out, grad = _logits_and_grads(dataclasses.replace(cfg, attention_impl="xla"), params, args,
                                  kw)
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(out, ref_out, atol=tol, rtol=tol)
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(ref_grad))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=tol * scale, rtol=tol), grad, ref_grad)


def _qkv(b=2, t=16, h=4, kvh=2, d=8, dtype=jnp.float32):
    ks = jax.random.split(jax.random.PRNGKey(7), 3)
    return (jax.random.normal(ks[0], (b, t, h, d), dtype),
            jax.random.normal(ks[1], (b, t, kvh, d), dtype),
            jax.random.normal(ks[2], (b, t, kvh, d), dtype))


def _compare_cores(fn, mask, q, k, v, bias, valid, tol):
    """Values and gradients of `fn` against the einsum reference on the non-padding queries."""
    w = valid[:, :, None, None].astype(jnp.float32)
    ref = lambda q, k, v: attention.einsum_attention(q, k, v, mask, bias, 0.3)  # noqa: E731
    got = lambda q, k, v: fn(q, k, v)  # noqa: E731
    np.testing.assert_allclose(jax.jit(got)(q, k, v) * w, jax.jit(ref)(q, k, v) * w,
                               atol=tol, rtol=tol)
    loss = lambda f: lambda q, k, v: jnp.sum((f(q, k, v).astype(jnp.float32) * w) ** 2)  # noqa
    g_ref = jax.jit(jax.grad(loss(ref), argnums=(0, 1, 2)))(q, k, v)
    g_got = jax.jit(jax.grad(loss(got), argnums=(0, 1, 2)))(q, k, v)
    for a, b in zip(g_got, g_ref):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_cudnn_call_equals_einsum_on_padded_rows(causal, with_bias):
    """The arguments the cuDNN path builds (is_causal, sequence lengths, a [1, h, q, k] bias),
    run through jax.nn.dot_product_attention's XLA implementation, which shares the API."""
    q, k, v = _qkv()
    lengths = jnp.asarray([16, 11])
    seg = (jnp.arange(16)[None] < lengths[:, None]).astype(jnp.int32)
    pos = jnp.broadcast_to(jnp.arange(16), (2, 16))
    mask = AttentionMask(seg, seg, pos, pos, causal=causal, packed=False)
    bias = jax.random.normal(jax.random.PRNGKey(3), (1, 4, 16, 16)) if with_bias else None
    fn = lambda q, k, v: attention.cudnn_attention(q, k, v, mask, bias, 0.3,  # noqa: E731
                                                   implementation="xla")
    _compare_cores(fn, mask, q, k, v, bias, seg > 0, 1e-5)


def _packed_mask(causal=True, t=128):
    seg = jnp.asarray([[1] * 20 + [2] * 60 + [3] * 48, [1] * 90 + [0] * 38])
    starts = jnp.asarray([[0] * 20 + [20] * 60 + [80] * 48, [0] * 128])
    pos = jnp.arange(t)[None] - starts
    return AttentionMask(seg, seg, pos, pos, causal=causal)


@pytest.mark.parametrize("causal", [True, False])
def test_splash_kernel_in_interpret_mode_equals_einsum(causal):
    q, k, v = _qkv(t=128)
    mask = _packed_mask(causal)
    fn = lambda q, k, v: attention.splash_attention(q, k, v, mask, 0.3,  # noqa: E731
                                                    interpret=True)
    _compare_cores(fn, mask, q, k, v, None, mask.q_segments > 0, 1e-5)


def test_cudnn_and_splash_fall_back_to_xla_where_they_cannot_mask(caplog):
    q, k, v = _qkv(t=128)
    packed = _packed_mask()
    prefix = packed.replace(q_prefix=packed.q_positions < 3, k_prefix=packed.k_positions < 3)
    pos = jnp.broadcast_to(jnp.arange(128), (2, 128))
    one_a_row = AttentionMask(packed.q_segments > 0, packed.k_segments > 0, pos, pos,
                              causal=True, packed=False)
    bias = jnp.zeros((1, 4, 128, 128))
    with caplog.at_level(logging.INFO):
        for impl, m, b, why in [("cudnn", packed, None, "packed"),
                                ("splash", prefix, None, "prefix-LM"),
                                ("splash", packed, bias, "additive bias"),
                                ("cudnn", one_a_row, None, "cuDNN needs a GPU")]:
            out = attention.attend(q, k, v, m, impl=impl, scale=0.3, bias=b)
            np.testing.assert_array_equal(out, attention.xla_attention(q, k, v, m, b, 0.3))
            assert any(why in r.message and repr(impl) in r.message
                       for r in caplog.records), (impl, why)


def test_xla_path_keeps_only_its_inputs_for_the_backward_pass():
    """The einsum path saves [b, h, q, k] probabilities; the xla path saves nothing that size."""
    from jax._src.ad_checkpoint import saved_residuals

    q, k, v = _qkv(t=128)
    mask = _packed_mask()
    sizes = {}
    for impl in ("einsum", "xla"):
        f = lambda q, k, v: jnp.sum(attention.attend(q, k, v, mask, impl=impl,  # noqa: E731
                                                     scale=0.3))
        sizes[impl] = max(a.size for a, _ in saved_residuals(f, q, k, v))
    assert sizes["einsum"] >= 2 * 4 * 128 * 128
    assert sizes["xla"] == q.size


def test_attention_mask_is_an_additive_bias_without_full_size_constants():
    mask = _packed_mask()
    bias = mask.bias()
    assert bias.shape == (2, 1, 128, 128) and bias.dtype == jnp.float32
    np.testing.assert_array_equal(bias[:, 0] == 0, mask.allowed())
    jaxpr = jax.make_jaxpr(lambda q, k, v: attention.xla_attention(q, k, v, mask, None, 0.3))(
        *_qkv(t=128))
    assert not [c for c in jaxpr.consts if getattr(c, "size", 0) >= 128 * 128]


def test_fused_path_with_the_kv_cache():
    """Cached decoding under "cudnn" (which decodes through the reference) equals a full
    forward pass of the xla path."""
    cfg = dataclasses.replace(DEC_ONLY, prefix_lm=True, attention_impl="cudnn")
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


def test_attention_impl_names():
    with pytest.raises(ValueError, match="attention_impl='flash'.*'einsum', 'xla', 'cudnn', "
                                         "'splash'"):
        plain_config(attention_impl="flash")
    # the earlier name of jax.nn.dot_product_attention's XLA path still loads
    assert plain_config(attention_impl="dot_product_attention").attention_impl == "xla"
    with pytest.raises(ValueError, match="remat_policy='dot'.*'minimal'"):
        plain_config(remat_policy="dot")
    assert attention_impls_for("gpu") == ("einsum", "xla", "cudnn")
    assert attention_impls_for("tpu") == ("einsum", "xla", "splash")
    assert attention_impls_for("cpu") == ("einsum", "xla")


def _two_rows_of_packed_segments(b=2, t=16, causal=True):
    seg = jnp.asarray([[1] * 6 + [2] * 7 + [0] * 3, [1] * 11 + [2] * 5])[:b, :t]
    pos = jnp.asarray([list(range(6)) + list(range(7)) + [0] * 3,
                       list(range(11)) + list(range(5))])[:b, :t]
    return AttentionMask(seg, seg, pos, pos, causal=causal), seg > 0


@pytest.mark.parametrize("block", [3, 8])  # 16 queries: a padded last block, and whole blocks
@pytest.mark.parametrize("causal", [True, False])
def test_query_blocks_equal_the_whole_core_in_values_and_gradients(block, causal):
    q, k, v = _qkv()
    mask, valid = _two_rows_of_packed_segments(causal=causal)
    bias = jax.random.normal(jax.random.PRNGKey(3), (1, 4, 16, 16)) if not causal else None
    blocked = lambda q, k, v: attention.xla_attention(q, k, v, mask, bias, 0.3,  # noqa: E731
                                                      q_block=block)
    _compare_cores(blocked, mask, q, k, v, bias, valid, 1e-5)
    if bias is not None:  # T5's bias is trained: its gradient too
        w = valid[:, :, None, None].astype(jnp.float32)

        def loss(fn):
            return lambda b: jnp.sum((fn(b) * w) ** 2)

        ref = jax.grad(loss(lambda b: attention.einsum_attention(q, k, v, mask, b, 0.3)))(bias)
        got = jax.grad(loss(lambda b: attention.xla_attention(q, k, v, mask, b, 0.3,
                                                              q_block=block)))(bias)
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


def test_query_blocks_hold_one_block_of_scores_at_a_time():
    """The scores ([b, kv_heads, groups, q, k], 16 keys) of the blocked core's forward and
    backward programs have a block's queries, the whole core's all 16."""
    q, k, v = _qkv()
    mask, valid = _two_rows_of_packed_segments()

    def widest(block):
        fn = lambda q, k, v: jnp.sum(attention.xla_attention(  # noqa: E731
            q, k, v, mask, None, 0.3, q_block=block) ** 2)
        jaxpr = jax.make_jaxpr(jax.grad(fn, argnums=(0, 1, 2)))(q, k, v)
        shapes = []

        def walk(jp):
            for eqn in jp.eqns:
                shapes.extend(tuple(o.aval.shape) for o in eqn.outvars)
                for sub in jax.core.jaxprs_in_params(eqn.params):
                    walk(sub)

        walk(jaxpr.jaxpr)
        return max(s[-2] for s in shapes if len(s) == 5 and s[-1] == 16)

    assert widest(0) == 16 and widest(4) == 4


def test_query_blocks_in_the_model_equal_einsum():
    cfg = dataclasses.replace(CASES["prefix_lm_mqa"], attention_impl="einsum")
    args, kw = _inputs("prefix_lm_mqa", cfg)
    params = nn.meta.unbox(jax.jit(build_model(cfg).init)(jax.random.PRNGKey(0), *args,
                                                          **kw)["params"])
    ref_out, ref_grad = _logits_and_grads(cfg, params, args, kw)
    out, grad = _logits_and_grads(dataclasses.replace(cfg, attention_impl="xla",
                                                      attention_q_block=4), params, args, kw)
    np.testing.assert_allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(ref_grad))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5 * scale, rtol=1e-5), grad,
        ref_grad)
    with pytest.raises(ValueError, match="attention_q_block=-1 must be >= 0"):
        dataclasses.replace(cfg, attention_q_block=-1)
