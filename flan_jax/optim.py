"""Optimizers from optax, built from gin: Adafactor (the paper's preset) and AdamW, schedules."""

from __future__ import annotations

import gin
import optax


@gin.configurable
def learning_rate_schedule(base_learning_rate: float = 1e-3, warmup_steps: int = 0,
                           decay: str = "constant", total_steps: int | None = None,
                           end_factor: float = 0.0) -> optax.Schedule:
    """Linear warmup, then constant, cosine, linear or rsqrt (T5 pre-training) decay."""
    if decay == "constant":
        after = optax.constant_schedule(base_learning_rate)
    elif decay in ("cosine", "linear"):
        if total_steps is None:
            raise ValueError(f"learning_rate_schedule.decay={decay!r} needs total_steps.")
        steps = max(total_steps - warmup_steps, 1)
        after = (optax.cosine_decay_schedule(base_learning_rate, steps, alpha=end_factor)
                 if decay == "cosine" else
                 optax.linear_schedule(base_learning_rate, base_learning_rate * end_factor, steps))
    elif decay == "rsqrt":
        start = max(warmup_steps, 1)
        after = lambda step: base_learning_rate * (start / (step + start)) ** 0.5  # noqa: E731
    else:
        raise ValueError(f"learning_rate_schedule.decay={decay!r}: use constant, cosine, "
                         "linear or rsqrt.")
    if warmup_steps <= 0:
        return after
    warmup = optax.linear_schedule(0.0, base_learning_rate, warmup_steps)
    return optax.join_schedules([warmup, after], [warmup_steps])


@gin.configurable
def build_optimizer(name: str = "adafactor", schedule: optax.Schedule | None = None,
                    grad_clip_norm: float | None = 1.0, weight_decay: float = 0.0,
                    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                    adafactor_decay_rate: float = 0.8, adafactor_momentum: float | None = None,
                    adafactor_parameter_scale: bool = False) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optimizer, schedule). The FLAN paper fine-tunes with Adafactor at a constant 3e-5:
    `gin/optimizers/adafactor_flan.gin`."""
    schedule = schedule or learning_rate_schedule()
    if name == "adafactor":
        tx = optax.adafactor(learning_rate=schedule, decay_rate=adafactor_decay_rate,
                             momentum=adafactor_momentum, multiply_by_parameter_scale=adafactor_parameter_scale,
                             clipping_threshold=None, weight_decay_rate=weight_decay or None)
    elif name == "adamw":
        tx = optax.adamw(learning_rate=schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    else:
        raise ValueError(f"build_optimizer.name={name!r}: use 'adafactor' or 'adamw'.")
    if grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
    return tx, schedule
