"""Optimizers and learning-rate schedules from gin."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flan_jax import optim


def test_warmup_then_cosine_reaches_the_end_factor():
    s = optim.learning_rate_schedule(base_learning_rate=1.0, warmup_steps=10, decay="cosine",
                                     total_steps=110, end_factor=0.1)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(110)) == pytest.approx(0.1, abs=1e-6)


def test_rsqrt_and_constant_schedules():
    rsqrt = optim.learning_rate_schedule(base_learning_rate=1.0, warmup_steps=0, decay="rsqrt")
    assert float(rsqrt(3)) == pytest.approx((1 / 4) ** 0.5)
    const = optim.learning_rate_schedule(base_learning_rate=3e-5)
    assert float(const(12345)) == pytest.approx(3e-5)


def test_bad_schedule_and_optimizer_names_are_explained():
    with pytest.raises(ValueError, match="use constant, cosine"):
        optim.learning_rate_schedule(decay="step")
    with pytest.raises(ValueError, match="needs total_steps"):
        optim.learning_rate_schedule(decay="cosine")
    with pytest.raises(ValueError, match="'adafactor' or 'adamw'"):
        optim.build_optimizer(name="sgd")


def test_adamw_step_matches_optax_and_clipping_bounds_the_update():
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.array([30.0, 40.0, 0.0])}  # norm 50, clipped to 1
    tx, _ = optim.build_optimizer(name="adamw", schedule=optax.constant_schedule(0.1),
                                  grad_clip_norm=1.0, weight_decay=0.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    ref = optax.adamw(0.1, weight_decay=0.0)
    clipped = {"w": grads["w"] / 50.0}
    expected, _ = ref.update(clipped, ref.init(params), params)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-6)
