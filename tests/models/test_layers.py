"""flan_jax/models/layers.py: each layer against a NumPy reference of its formula."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models import TransformerConfig
from flan_jax.models.layers import (DenseGeneral, Embed, Mlp, RMSNorm, apply_rotary,
                                    prepend_prompt)

RNG = np.random.RandomState(0)


def _apply(module, *args):
    variables = module.init(jax.random.PRNGKey(0), *args)
    return nn.meta.unbox(variables["params"]), module.apply(variables, *args)


def test_rms_norm_is_x_over_its_root_mean_square_times_scale_and_its_gradient_too():
    x = RNG.randn(2, 3, 8).astype(np.float32)
    params, y = _apply(RMSNorm(eps=1e-6), jnp.asarray(x))
    ref = x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6)
    scale = RNG.rand(8).astype(np.float32) + 0.5
    y = RMSNorm().apply({"params": {"scale": scale}}, x)
    np.testing.assert_allclose(np.asarray(y), ref * scale, rtol=1e-5, atol=1e-6)
    # recomputed in the backward pass (jax.checkpoint), same gradient as the plain formula
    grad = jax.grad(lambda v: RMSNorm().apply({"params": {"scale": scale}}, v).sum())(x)
    plain = jax.grad(lambda v: (v * jax.lax.rsqrt(jnp.mean(v * v, -1, keepdims=True) + 1e-6)
                                * scale).sum())(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(plain), rtol=1e-4, atol=1e-5)


def test_rms_norm_computes_in_float32_and_returns_its_dtype():
    x = jnp.asarray(RNG.randn(4, 16) * 300, jnp.bfloat16)
    _, y = _apply(RMSNorm(dtype=jnp.bfloat16), x)
    assert y.dtype == jnp.bfloat16
    x32 = np.asarray(x, np.float32)
    ref = x32 / np.sqrt(np.mean(x32 ** 2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=1e-2)


def test_dense_general_contracts_the_trailing_axes():
    x = jnp.asarray(RNG.randn(2, 5, 3, 4), jnp.float32)
    params, y = _apply(DenseGeneral((6, 2), ("heads", "kv", "embed"), num_in=2), x)
    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (3, 4, 6, 2) and y.shape == (2, 5, 6, 2)
    np.testing.assert_allclose(np.asarray(y), np.einsum("blhd,hdef->blef", np.asarray(x), kernel),
                               rtol=1e-5, atol=1e-5)


def test_embed_gathers_rows_and_attend_is_the_tied_head():
    tokens = jnp.asarray([[0, 3, 3, 7]], jnp.int32)
    module = Embed(num_embeddings=8, features=5)
    params, y = _apply(module, tokens)
    table = np.asarray(params["embedding"])
    np.testing.assert_array_equal(np.asarray(y[0]), table[[0, 3, 3, 7]])
    x = jnp.asarray(RNG.randn(1, 2, 5), jnp.float32)
    logits = module.apply({"params": params}, x, method="attend")
    np.testing.assert_allclose(np.asarray(logits), np.asarray(x) @ table.T, rtol=1e-5, atol=1e-5)
    # the table's gradient: each row gets the sum of its occurrences' output gradients, in f32
    g = jax.grad(lambda p: (module.apply({"params": p}, tokens) * 2.0).sum())(params)
    assert g["embedding"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(g["embedding"])[:, 0], [2, 0, 0, 4, 0, 0, 0, 2])


def test_rotary_rotates_each_pair_of_halves_by_position_times_frequency():
    x = RNG.randn(1, 3, 2, 8).astype(np.float32)  # [b, t, heads, d]
    positions = np.array([[0, 1, 5]])
    y = np.asarray(apply_rotary(jnp.asarray(x), jnp.asarray(positions), theta=10_000.0))
    inv_freq = 1.0 / 10_000.0 ** (np.arange(0, 8, 2) / 8)
    angle = positions[0][:, None, None] * inv_freq  # [t, 1, d/2]
    first, second = x[0, ..., :4], x[0, ..., 4:]
    ref = np.concatenate([first * np.cos(angle) - second * np.sin(angle),
                          second * np.cos(angle) + first * np.sin(angle)], axis=-1)
    np.testing.assert_allclose(y[0], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[0, 0], x[0, 0])  # position 0: unrotated
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


CFG = TransformerConfig(family="decoder_only", vocab_size=11, emb_dim=6, num_heads=2, head_dim=3,
                        mlp_dim=10, num_encoder_layers=0, num_decoder_layers=1)


@pytest.mark.parametrize("activation, gated", [("silu", True), ("gelu", True), ("relu", False)])
def test_mlp_is_the_gated_or_plain_feed_forward_formula(activation, gated):
    cfg = dataclasses.replace(CFG, mlp_activation=activation, gated_mlp=gated)
    x = jnp.asarray(RNG.randn(2, 4, 6), jnp.float32)
    params, y = _apply(Mlp(cfg), x)
    act = {"silu": lambda v: v / (1 + np.exp(-v)),
           "gelu": lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3))),
           "relu": lambda v: np.maximum(v, 0)}[activation]
    k = {name: np.asarray(p["kernel"]) for name, p in params.items()}
    xs = np.asarray(x)
    hidden = act(xs @ k["wi_0"]) * (xs @ k["wi_1"]) if gated else act(xs @ k["wi"])
    np.testing.assert_allclose(np.asarray(y), hidden @ k["wo"], rtol=1e-4, atol=1e-5)


def test_prepend_prompt_shifts_tokens_and_gives_the_prompt_the_rows_segment():
    prompt = jnp.ones((2, 3))
    x = jnp.zeros((2, 4, 3))
    seg = jnp.asarray([[1, 1, 1, 0], [0, 0, 0, 0]])
    pos = jnp.asarray([[0, 1, 2, 0], [0, 0, 0, 0]])
    x2, seg2, pos2 = prepend_prompt(prompt, x, seg, pos)
    assert x2.shape == (2, 6, 3) and float(x2[:, :2].min()) == 1.0 and float(x2[:, 2:].max()) == 0
    np.testing.assert_array_equal(np.asarray(seg2), [[1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(pos2), [[0, 1, 2, 3, 4, 2], [0, 1, 2, 2, 2, 2]])
