"""The train state and the step: forward, loss, gradients (accumulated over micro-batches) and
the optimizer update, as one function for `jax.jit` with shardings."""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from flan_jax import losses
from flan_jax.models import output_head_kernel


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def merge_params(trained, frozen):
    """The model's parameters: the trained subtree over the frozen rest (or just `trained`)."""
    return trained if frozen is None else {**frozen, **trained}


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, rules, *,
                    z_loss: float, loss_normalization: str | float, accumulate_steps: int,
                    dropout: bool, frozen_params: bool = False,
                    loss_chunk_size: int = 0) -> Callable:
    """train_step(state, batch, rng) -> (state, metrics), to be jitted with shardings.

    With `frozen_params` (prompt tuning) it is train_step(state, batch, rng, frozen): the model
    runs on `{**frozen, **state.params}` and only `state.params` get gradients and updates.
    `loss_chunk_size` > 0 computes the loss from the final hidden states that many positions
    at a time (`losses.chunked_token_loss_sums`), never holding all the logits."""
    from flan_jax.batching import model_kwargs

    family = model.config.family

    def micro_loss(params, batch, rng, frozen):
        merged = merge_params(params, frozen)
        with nn.logical_axis_rules(rules):
            out = model.apply({"params": merged}, **model_kwargs(batch, family),
                              enable_dropout=dropout, rngs={"dropout": rng},
                              return_hidden=loss_chunk_size > 0)
        targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        if loss_chunk_size > 0:
            sums = losses.chunked_token_loss_sums(out, output_head_kernel(model.config, merged),
                                                  targets, weights, z_loss, loss_chunk_size)
        else:
            sums = losses.token_loss_sums(out, targets, weights, z_loss)
        return sums["loss_sum"], sums

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def step_with_frozen(state: TrainState, batch, rng, frozen):
        rng = jax.random.fold_in(rng, state.step)
        if accumulate_steps == 1:
            (_, sums), grads = grad_fn(state.params, batch, rng, frozen)
        else:
            micro = jax.tree_util.tree_map(
                lambda x: x.reshape((accumulate_steps, -1) + x.shape[1:]), batch)

            def body(carry, inputs):
                mb, i = inputs
                (_, s), g = grad_fn(state.params, mb, jax.random.fold_in(rng, i), frozen)
                return jax.tree_util.tree_map(jnp.add, carry, (g, s)), None

            zero = jax.tree_util.tree_map(jnp.zeros_like, (state.params, {
                k: jnp.zeros((), jnp.float32) for k in
                ("loss_sum", "z_loss_sum", "correct_sum", "num_tokens")}))
            (grads, sums), _ = jax.lax.scan(body, zero, (micro, jnp.arange(accumulate_steps)))
        denom = losses.normalizer(sums, loss_normalization)
        grads = jax.tree_util.tree_map(lambda g: g / denom, grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        tokens = jnp.maximum(sums["num_tokens"], 1.0)
        metrics = {"loss": sums["loss_sum"] / tokens, "z_loss": sums["z_loss_sum"] / tokens,
                   "accuracy": sums["correct_sum"] / tokens, "grad_norm": optax.global_norm(grads),
                   "num_tokens": sums["num_tokens"]}
        return TrainState(state.step + 1, params, opt_state), metrics

    if frozen_params:
        return step_with_frozen

    def train_step(state: TrainState, batch, rng):
        return step_with_frozen(state, batch, rng, None)

    return train_step
