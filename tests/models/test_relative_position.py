"""T5's relative-position bias, now [1, heads, q, k] once per stack from index offsets by a
one-hot contraction, equals the per-row bias the layers used to build by `take` from each
row's positions, wherever the mask lets a query see a key (inside every packed segment)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models.attention import AttentionMask
from flan_jax.models.relative_position import (relative_position_bias,
                                               relative_position_bucket, stack_relative_bias)


# --- the previous bias computation (a per-row take from the table), kept as the reference; the
# bucketing itself did not change, so it is the library's ------------------------------------
def _old_bias(table, q_pos, k_pos, bidirectional, max_distance):
    rel = k_pos[:, None, :] - q_pos[:, :, None]
    bucket = relative_position_bucket(rel, bidirectional, table.shape[1], max_distance)
    return jnp.moveaxis(jnp.take(table, bucket, axis=1), 0, 1)  # [h,b,q,k] -> [b,h,q,k]
# ----------------------------------------------------------------------------------------------


def _packed(length=200):
    """Two rows: three packed examples, and one example with padding."""
    rows = [[70, 100, 30], [150]]
    seg, pos = np.zeros((2, length), np.int32), np.zeros((2, length), np.int32)
    for r, sizes in enumerate(rows):
        start = 0
        for i, n in enumerate(sizes):
            seg[r, start:start + n] = i + 1
            pos[r, start:start + n] = np.arange(n)
            start += n
    return jnp.asarray(seg), jnp.asarray(pos)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_stack_bias_equals_per_row_bias_inside_segments(bidirectional):
    table = jax.random.normal(jax.random.PRNGKey(0), (6, 32))
    seg, pos = _packed()
    old = _old_bias(table, pos, pos, bidirectional, 128)
    new = stack_relative_bias(table, 200, 200, bidirectional, 128)
    assert new.shape == (1, 6, 200, 200)
    allowed = AttentionMask(seg, seg, pos, pos, causal=not bidirectional).allowed()
    inside = np.broadcast_to(np.asarray(allowed)[:, None], old.shape)
    assert inside.sum() > 30000  # the comparison covers far distances (log buckets) too
    np.testing.assert_allclose(np.broadcast_to(new, old.shape)[inside], np.asarray(old)[inside],
                               rtol=0, atol=1e-6)
    # per-row positions (cached decoding) through the one-hot path equal the old gather
    np.testing.assert_allclose(relative_position_bias(table, pos, pos, bidirectional, 128), old,
                               rtol=0, atol=1e-6)


def test_stack_bias_gradient_has_no_gather_or_scatter_and_matches_the_old_one():
    table = jax.random.normal(jax.random.PRNGKey(1), (4, 16))
    w = jax.random.normal(jax.random.PRNGKey(2), (1, 4, 200, 200))
    new = lambda t: jnp.sum(stack_relative_bias(t, 200, 200, True, 64) * w)  # noqa: E731
    prims = {e.primitive.name for e in jax.make_jaxpr(jax.grad(new))(table).jaxpr.eqns}
    inner = str(jax.make_jaxpr(jax.grad(new))(table))
    assert not [p for p in prims if "gather" in p or "scatter" in p]
    assert "gather" not in inner and "scatter" not in inner
    # one row with positions 0..199 is where index and position offsets coincide everywhere;
    # the sums run over 40,000 terms in another order
    arange = jnp.arange(200)[None]
    old = lambda t: jnp.sum(_old_bias(t, arange, arange, True, 64) * w)  # noqa: E731
    np.testing.assert_allclose(jax.grad(new)(table), jax.grad(old)(table), rtol=1e-4, atol=1e-3)
