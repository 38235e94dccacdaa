"""T5's relative-position attention bias: buckets of key-minus-query offsets looked up in a
[heads, buckets] table, written as a one-hot contraction (no gather forward, no scatter-add
backward). The encoder and decoder stacks build one [1, heads, q, k] bias from index offsets
outside their layers (`stack_relative_bias`); cached decoding builds it per step from positions
(`relative_position_bias`)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

Array = jax.Array


def relative_position_bucket(relative_position: Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> Array:
    """T5's bucketing of (key position - query position): exact when near, log-spaced when far."""
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(jnp.int32) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact) / math.log(
        max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(is_small, distance, large)


def _bias_from_positions(table: Array, q_pos: Array, k_pos: Array, bidirectional: bool,
                         max_distance: int) -> Array:
    rel = k_pos[:, None, :] - q_pos[:, :, None]
    bucket = relative_position_bucket(rel, bidirectional, table.shape[1], max_distance)
    one_hot = jax.nn.one_hot(bucket, table.shape[1], dtype=jnp.float32)  # [b, q, k, buckets]
    return jnp.einsum("bqkn,hn->bhqk", one_hot, table.astype(jnp.float32))


def relative_position_bias(table: Array, q_pos: Array, k_pos: Array, bidirectional: bool,
                           max_distance: int) -> Array:
    """Bias [b, heads, q, k] from a [heads, buckets] table and positions [b, q] / [b, k] (b may
    be 1), as a one-hot contraction: no gather forward, no scatter backward. The one-hot tensor
    is recomputed in the backward pass rather than saved."""
    fn = functools.partial(_bias_from_positions, bidirectional=bidirectional,
                           max_distance=max_distance)
    return jax.checkpoint(fn, policy=jax.checkpoint_policies.nothing_saveable)(
        table, q_pos, k_pos)


def stack_relative_bias(table: Array, q_len: int, k_len: int, bidirectional: bool,
                        max_distance: int) -> Array:
    """The [1, heads, q, k] bias of a whole stack from index offsets, computed once outside the
    layers. Within a packed segment positions count up with the index, so position offsets equal
    index offsets: this is the per-row bias wherever the mask lets a query see a key."""
    arange = lambda n: jnp.arange(n, dtype=jnp.int32)[None]  # noqa: E731
    return relative_position_bias(table, arange(q_len), arange(k_len), bidirectional,
                                  max_distance)
