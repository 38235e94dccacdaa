"""Token cross-entropy with z-loss, and loss normalisation for (packed) batches."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def cross_entropy_with_z_loss(logits: Array, targets: Array, z_loss: float = 0.0
                              ) -> tuple[Array, Array]:
    """Per-token cross-entropy and z-loss (z_loss * log(Z)^2, as in t5x/PaLM), in float32."""
    loss, z, _ = _loss_z_correct(logits, targets, z_loss)
    return loss, z


def _loss_z_correct(logits: Array, targets: Array, z_loss: float
                    ) -> tuple[Array, Array, Array]:
    """(cross-entropy, z-loss, 1.0 where the target has the highest logit) per token.

    "Correct" compares the target's logit with the row maximum that logsumexp computes anyway,
    instead of an argmax: on a CPU an argmax over [batch, length, vocab] cost as much as the
    output head's matmul (a tie with the maximum counts as correct)."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    z = z_loss * jnp.square(log_z)
    correct = target_logits >= jax.lax.stop_gradient(jnp.max(logits, axis=-1))
    return log_z - target_logits + z, z, jax.lax.stop_gradient(correct.astype(jnp.float32))


def token_loss_sums(logits: Array, targets: Array, weights: Array, z_loss: float = 0.0
                    ) -> dict[str, Array]:
    """Unnormalised sums over the batch; callers divide once, so accumulation stays exact."""
    weights = weights.astype(jnp.float32)
    loss, z, correct = _loss_z_correct(logits, targets, z_loss)
    return {"loss_sum": jnp.sum(loss * weights), "z_loss_sum": jnp.sum(z * weights),
            "correct_sum": jnp.sum(correct * weights), "num_tokens": jnp.sum(weights)}


def normalizer(sums: dict[str, Array], loss_normalization: str | float) -> Array:
    """The divisor of the summed loss: the number of target tokens ("tokens"), or a constant
    (t5x's loss_normalizing_factor, e.g. batch_size * target_length)."""
    if loss_normalization == "tokens":
        return jnp.maximum(sums["num_tokens"], 1.0)
    if isinstance(loss_normalization, (int, float)) and loss_normalization > 0:
        return jnp.asarray(float(loss_normalization), jnp.float32)
    raise ValueError(f"loss_normalization={loss_normalization!r}: use 'tokens' or a positive "
                     "number.")


def chunked_token_loss_sums(hidden: Array, head_kernel: Array, targets: Array, weights: Array,
                            z_loss: float = 0.0, chunk_size: int = 128) -> dict[str, Array]:
    """`token_loss_sums(hidden @ head_kernel, ...)` without the [batch, length, vocab] logits.

    `hidden` [batch, length, emb] are the model's final hidden states (`return_hidden=True`)
    and `head_kernel` [emb, vocab] its output head (`flan_jax.models.output_head_kernel`). The
    logits are formed `chunk_size` positions of every row at a time (chunks along the length,
    so a batch sharded over devices stays sharded); each chunk's gradient is computed while its
    logits are alive, so neither the forward nor the backward pass holds more than one chunk of
    float32 logits, and no logits are recomputed. Only `loss_sum` carries a gradient (the
    z-loss is inside it; `z_loss_sum` and `correct_sum` are reported, not differentiated).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size={chunk_size}: use a positive number of positions "
                         "(train.loss_chunk_size = 0 selects the unchunked loss).")
    b, length, emb = hidden.shape
    size = min(chunk_size, length)
    n = -(-length // size)
    pad = n * size - length
    weights = weights.astype(jnp.float32)
    if pad:  # padded positions weigh 0
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
        weights = jnp.pad(weights, ((0, 0), (0, pad)))
    chunks = lambda x: jnp.swapaxes(x.reshape((b, n, size) + x.shape[2:]), 0, 1)  # noqa: E731
    loss_sum, aux = _fused_head_loss(chunks(hidden), head_kernel, chunks(targets),
                                     chunks(weights), float(z_loss))
    z_sum, correct_sum = jax.lax.stop_gradient(aux)
    return {"loss_sum": loss_sum, "z_loss_sum": z_sum, "correct_sum": correct_sum,
            "num_tokens": jnp.sum(weights)}


def _chunk_logits(h: Array, kernel: Array) -> Array:
    """[b * c, vocab] float32 logits of one chunk [b, c, emb], as one 2-D matmul in the hidden
    states' dtype (as the models' head computes them)."""
    return (h.reshape(-1, h.shape[-1]) @ kernel.astype(h.dtype)).astype(jnp.float32)


def _chunk_sums(logits: Array, t: Array, w: Array, z_loss: float):
    """(per-position unweighted loss, (weighted loss, z-loss, correct) sums) of one chunk."""
    t, w = t.reshape(-1), w.reshape(-1)
    loss, z, correct = _loss_z_correct(logits, t, z_loss)
    return loss, (jnp.sum(loss * w), jnp.sum(z * w), jnp.sum(correct * w))


def _add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused_head_loss(hs: Array, kernel: Array, ts: Array, ws: Array, z_loss: float):
    """(loss_sum, (z_loss_sum, correct_sum)) over chunks [n, b, c, ...] (no gradient work)."""
    def body(carry, xs):
        h, t, w = xs
        return _add(carry, _chunk_sums(_chunk_logits(h, kernel), t, w, z_loss)[1]), None

    zero = jnp.zeros((), jnp.float32)
    (loss, z, correct), _ = jax.lax.scan(body, (zero, zero, zero), (hs, ts, ws))
    return loss, (z, correct)


def _fused_head_loss_fwd(hs, kernel, ts, ws, z_loss):
    """The sums, and the gradients of loss_sum for a unit cotangent, chunk by chunk: the
    chunk's logits die inside the scan step that made them."""
    def body(carry, xs):
        dk, sums = carry
        h, t, w = xs
        logits = _chunk_logits(h, kernel)
        loss, chunk_sums = _chunk_sums(logits, t, w, z_loss)
        # d(lse - logit_t + z_loss * lse^2) / dlogits = (1 + 2 z_loss lse) softmax - onehot(t)
        lse = jax.nn.logsumexp(logits, axis=-1, keepdims=True)
        onehot = jax.nn.one_hot(t.reshape(-1), logits.shape[-1], dtype=jnp.float32)
        dlogits = w.reshape(-1, 1) * ((1.0 + 2.0 * z_loss * lse) * jnp.exp(logits - lse)
                                      - onehot)
        dlogits = dlogits.astype(h.dtype)
        h2 = h.reshape(-1, h.shape[-1])
        dh = (dlogits @ kernel.astype(h.dtype).T).reshape(h.shape)
        dk = dk + (h2.T @ dlogits).astype(jnp.float32)
        # d loss_sum / d weight is the position's unweighted loss
        return (dk, _add(sums, chunk_sums)), (dh, loss.reshape(w.shape))

    zero = jnp.zeros((), jnp.float32)
    init = (jnp.zeros(kernel.shape, jnp.float32), (zero, zero, zero))
    (dk, (loss, z, correct)), (dh, dw) = jax.lax.scan(body, init, (hs, ts, ws))
    return (loss, (z, correct)), (dh, dk.astype(kernel.dtype), dw, ts.shape)


def _fused_head_loss_bwd(z_loss, residuals, cotangents):
    dh, dk, dw, targets_shape = residuals
    g = cotangents[0]  # z_loss_sum and correct_sum are stop_gradient-ed by the caller
    return ((g * dh).astype(dh.dtype), (g * dk).astype(dk.dtype),
            np.zeros(targets_shape, jax.dtypes.float0), g * dw)


_fused_head_loss.defvjp(_fused_head_loss_fwd, _fused_head_loss_bwd)
