"""Token cross-entropy with z-loss, and loss normalisation for (packed) batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def cross_entropy_with_z_loss(logits: Array, targets: Array, z_loss: float = 0.0
                              ) -> tuple[Array, Array]:
    """Per-token cross-entropy and z-loss (z_loss * log(Z)^2, as in t5x/PaLM), in float32."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    z = z_loss * jnp.square(log_z)
    return log_z - target_logits + z, z


def token_loss_sums(logits: Array, targets: Array, weights: Array, z_loss: float = 0.0
                    ) -> dict[str, Array]:
    """Unnormalised sums over the batch; callers divide once, so accumulation stays exact."""
    weights = weights.astype(jnp.float32)
    loss, z = cross_entropy_with_z_loss(logits, targets, z_loss)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
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
