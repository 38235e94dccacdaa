"""Losses: the chunked head loss equals the unchunked one, values and gradients (float32)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import losses
from flan_jax.models import build_model, output_head_kernel
from flan_jax.models.config import plain_config

TOL = dict(rtol=1e-5, atol=1e-5)


def _data(b=3, length=10, vocab=37, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, vocab, (b, length)).astype(np.int32)
    weights = (rng.random((b, length)) > 0.3).astype(np.float32)  # padding and packing gaps
    weights[0, -4:] = 0.0
    return jnp.asarray(targets), jnp.asarray(weights)


@pytest.mark.parametrize("chunk", [3, 10, 64])  # uneven, exact, longer than the rows
def test_chunked_sums_and_gradients_match_logits_path(chunk):
    rng = np.random.default_rng(1)
    hidden = jnp.asarray(rng.normal(size=(3, 10, 8)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(8, 37)), jnp.float32)
    targets, weights = _data()

    def ref(h, k, w):
        return losses.token_loss_sums(h @ k, targets, w, 1e-2)

    def chunked(h, k, w):
        return losses.chunked_token_loss_sums(h, k, targets, w, 1e-2, chunk)

    want, got = ref(hidden, kernel, weights), chunked(hidden, kernel, weights)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], **TOL, err_msg=key)
    loss = lambda f: lambda *a: f(*a)["loss_sum"]  # noqa: E731
    g_want = jax.grad(loss(ref), argnums=(0, 1, 2))(hidden, kernel, weights)
    g_got = jax.jit(jax.grad(loss(chunked), argnums=(0, 1, 2)))(hidden, kernel, weights)
    for name, a, b in zip(("hidden", "kernel", "weights"), g_got, g_want):
        np.testing.assert_allclose(a, b, **TOL, err_msg=name)
    # the cotangent scales the gradient (loss normalisation divides after the sum)
    g2 = jax.grad(lambda h: 0.5 * chunked(h, kernel, weights)["loss_sum"])(hidden)
    np.testing.assert_allclose(g2, 0.5 * g_want[0], **TOL)


def test_chunk_size_must_be_positive():
    targets, weights = _data()
    with pytest.raises(ValueError, match="loss_chunk_size"):
        losses.chunked_token_loss_sums(jnp.zeros((3, 10, 8)), jnp.zeros((8, 37)), targets,
                                       weights, 0.0, 0)


FAMILIES = {
    "decoder_untied": dict(family="decoder_only", mlp_activation="silu", tie_embeddings=False),
    "decoder_tied": dict(family="decoder_only", mlp_activation="silu", tie_embeddings=True),
    "t5_untied": dict(family="encoder_decoder", tie_embeddings=False),
    "t5_tied_scaled": dict(family="encoder_decoder", tie_embeddings=True),
}


@pytest.mark.parametrize("name", [
    "decoder_untied", "t5_tied_scaled", *(pytest.param(n, marks=pytest.mark.slow)
                                          for n in ("decoder_tied", "t5_untied"))])
def test_model_gradients_match_unchunked(name):
    cfg = plain_config(vocab_size=53, emb_dim=16, num_heads=2, num_kv_heads=1, head_dim=8,
                       mlp_dim=24, num_encoder_layers=1, num_decoder_layers=1, **FAMILIES[name])
    model = build_model(cfg)
    targets, weights = _data(2, 7, 53, seed=2)
    tokens = jnp.where(targets > 0, targets, 3)
    if cfg.family == "encoder_decoder":
        inputs = {"encoder_input_tokens": tokens, "decoder_input_tokens": tokens,
                  "decoder_target_tokens": tokens}
    else:
        inputs = {"decoder_input_tokens": tokens}
    params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), **inputs)["params"])

    def unchunked(p):
        logits = model.apply({"params": p}, **inputs)
        return losses.token_loss_sums(logits, targets, weights, 1e-3)["loss_sum"]

    def chunked(p):
        hidden = model.apply({"params": p}, **inputs, return_hidden=True)
        return losses.chunked_token_loss_sums(hidden, output_head_kernel(cfg, p), targets,
                                              weights, 1e-3, 3)["loss_sum"]

    (v_want, g_want), (v_got, g_got) = (jax.value_and_grad(f)(params)
                                        for f in (unchunked, chunked))
    np.testing.assert_allclose(v_got, v_want, **TOL)
    flat_want = jax.tree_util.tree_leaves_with_path(g_want)
    for (path, want), got in zip(flat_want, jax.tree_util.tree_leaves(g_got)):
        np.testing.assert_allclose(got, want, **TOL, err_msg=jax.tree_util.keystr(path))
