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
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **inputs)["params"])

    def unchunked(p):
        logits = model.apply({"params": p}, **inputs)
        return losses.token_loss_sums(logits, targets, weights, 1e-3)["loss_sum"]

    def chunked(p):
        hidden = model.apply({"params": p}, **inputs, return_hidden=True)
        return losses.chunked_token_loss_sums(hidden, output_head_kernel(cfg, p), targets,
                                              weights, 1e-3, 3)["loss_sum"]

    (v_want, g_want), (v_got, g_got) = (jax.jit(jax.value_and_grad(f))(params)
                                        for f in (unchunked, chunked))
    np.testing.assert_allclose(v_got, v_want, **TOL)
    flat_want = jax.tree_util.tree_leaves_with_path(g_want)
    for (path, want), got in zip(flat_want, jax.tree_util.tree_leaves(g_got)):
        np.testing.assert_allclose(got, want, **TOL, err_msg=jax.tree_util.keystr(path))


def test_train_step_with_chunked_loss_matches_unchunked():
    """train.loss_chunk_size wiring: one AdamW step gives the same metrics and parameters."""
    import optax

    from flan_jax import partitioning
    from flan_jax.bench.common import init_params, synthetic_batch
    from flan_jax.train_step import TrainState, make_train_step

    cfg = plain_config(family="decoder_only", vocab_size=61, emb_dim=16, num_heads=2,
                       num_kv_heads=1, head_dim=8, mlp_dim=24, num_decoder_layers=1,
                       mlp_activation="silu")
    model, tx = build_model(cfg), optax.adamw(1e-2)
    batch = synthetic_batch("decoder_only", 2, {"inputs": 5, "targets": 4}, 61)
    batch["decoder_loss_weights"][0, -3:] = 0
    mesh = partitioning.make_mesh(axes={"data": 1, "fsdp": 1, "tensor": 1}, num_devices=1)
    out = {}
    with jax.set_mesh(mesh):
        params = init_params(model)
        for chunk in (0, 4):
            step = make_train_step(model, tx, partitioning.DEFAULT_RULES, z_loss=1e-3,
                                   loss_normalization="tokens", accumulate_steps=1,
                                   dropout=False, loss_chunk_size=chunk)
            state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
            out[chunk] = jax.jit(step)(state, batch, jax.random.PRNGKey(0))
    (s0, m0), (s4, m4) = out[0], out[4]
    for key in ("loss", "z_loss", "accuracy", "grad_norm", "num_tokens"):
        np.testing.assert_allclose(m4[key], m0[key], **TOL, err_msg=key)
    for a, b in zip(jax.tree_util.tree_leaves(s4.params), jax.tree_util.tree_leaves(s0.params)):
        np.testing.assert_allclose(a, b, **TOL)


def test_correct_means_the_target_has_the_highest_logit():
    """Accuracy compares the target's logit with the row maximum (no argmax): the argmax count
    for distinct logits, in both loss paths; a tie with the maximum counts as correct."""
    targets, weights = _data(b=2, length=6, vocab=5)
    logits = jax.random.normal(jax.random.PRNGKey(3), (2, 6, 5))
    logits = logits.at[0, :3].set(10.0 * jax.nn.one_hot(targets[0, :3], 5))  # surely right
    expected = float(jnp.sum((jnp.argmax(logits, -1) == targets) * weights))
    assert float(losses.token_loss_sums(logits, targets, weights)["correct_sum"]) == expected
    hidden = jnp.eye(5)[None].repeat(2, 0)[:, [0, 1, 2, 3, 4, 0]]  # one-hot rows: h @ k = k
    kernel = jax.random.normal(jax.random.PRNGKey(4), (5, 5))
    direct = losses.token_loss_sums(hidden @ kernel, targets, weights)["correct_sum"]
    chunked = losses.chunked_token_loss_sums(hidden, kernel, targets, weights, chunk_size=4)
    assert float(chunked["correct_sum"]) == float(direct)
    tie = losses.token_loss_sums(jnp.zeros((1, 1, 4)), jnp.array([[2]]), jnp.ones((1, 1)))
    assert float(tie["correct_sum"]) == 1.0
