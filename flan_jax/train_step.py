"""The train state and the step: forward, loss, gradients (accumulated over micro-batches) and
the optimizer update, as one function for `jax.jit` with shardings; and where a run's state
comes from (`state_layout`, then `init_or_restore`: the latest checkpoint, or a fresh
initialisation, or INIT_CHECKPOINT's parameters), as t5x's TrainStateInitializer does."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from flan_jax import checkpoints, losses, partitioning, paths, prompt_tuning
from flan_jax.errors import TrainingError
from flan_jax.models import init_params_fn, output_head_kernel

logger = logging.getLogger("flan_jax.train")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


@dataclasses.dataclass
class StateLayout:
    """A run's train state before any array exists: shapes, dtypes and shardings.

    With prompt tuning the trained parameters are the prompt alone; the rest of the model
    (`frozen`, restored from the base onto `frozen_shardings`) is passed to the step apart."""
    init_fn: Callable  # rng -> the model's boxed parameters
    abstract: TrainState  # ShapeDtypeStructs carrying their shardings
    shardings: TrainState
    abstract_params: Any  # the trained parameters
    frozen: Any = None
    frozen_shardings: Any = None


def state_layout(model: nn.Module, tx: optax.GradientTransformation, mesh, rules, seed: int,
                 prompt_base: str | None = None) -> StateLayout:
    """The shardings of every parameter and optimizer slot (logical axes -> `mesh`); with
    `prompt_base` (prompt tuning), the base's frozen parameters restored onto theirs."""
    init_fn = init_params_fn(model)
    boxed = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
    params_sh = partitioning.params_shardings(boxed, mesh, rules)
    abstract_params = nn.meta.unbox(boxed)
    frozen, frozen_sh = None, None
    if prompt_base:  # optimise (and checkpoint) the prompt; the rest stays the base's
        (abstract_params, abstract_frozen), (params_sh, frozen_sh) = (
            prompt_tuning.split_prompt(abstract_params), prompt_tuning.split_prompt(params_sh))
        with jax.set_mesh(mesh):
            frozen = prompt_tuning.load_frozen_params(prompt_base, abstract_frozen, frozen_sh)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_sh = partitioning.state_shardings_like(abstract_opt, abstract_params, params_sh, mesh)
    state_sh = TrainState(step=partitioning.replicated(mesh), params=params_sh, opt_state=opt_sh)
    abstract = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        TrainState(jax.ShapeDtypeStruct((), jnp.int32), abstract_params, abstract_opt), state_sh)
    return StateLayout(init_fn, abstract, state_sh, abstract_params, frozen, frozen_sh)


def init_or_restore(layout: StateLayout, tx: optax.GradientTransformation, manager, mesh,
                    model_config, seed: int, init_checkpoint: str | None,
                    where: str) -> tuple[TrainState, dict | None, int | None]:
    """(train state, the checkpoint's data state or None, the step restored or None): the
    latest step `manager` holds, restored straight into its shardings, or else a new state."""
    latest = manager.latest_step()
    if latest is not None:
        state, data_state = checkpoints.restore_step(manager, latest, layout.abstract,
                                                     layout.abstract_params, where)
        return state, data_state, latest
    return initial_state(layout, tx, mesh, model_config, seed, init_checkpoint), None, None


def initial_state(layout: StateLayout, tx: optax.GradientTransformation, mesh, model_config,
                  seed: int, init_checkpoint: str | None) -> TrainState:
    """Step 0: initialised parameters (a prompt drawn from the base's embeddings when prompt
    tuning), or INIT_CHECKPOINT's, and a fresh optimizer state, all on their shardings."""
    params_sh = layout.shardings.params
    if layout.frozen is not None:
        from flan_jax.models import init_prompt

        prompt = init_prompt(model_config, layout.frozen["token_embed"]["embedding"], seed)
        params = {checkpoints.PROMPT_PARAM: jax.device_put(
            prompt, params_sh[checkpoints.PROMPT_PARAM])}
    else:
        with jax.set_mesh(mesh):
            params = jax.jit(lambda r: nn.meta.unbox(layout.init_fn(r)),
                             out_shardings=params_sh)(jax.random.PRNGKey(seed))
    if init_checkpoint:
        init_cfg = checkpoints.read_model_config(
            paths.as_path(init_checkpoint) / checkpoints.MODEL_GIN)
        if init_cfg != model_config:
            logger.warning("init_checkpoint's model.gin differs from the run's model config.")
        if not checkpoints.params_shapes_match(init_checkpoint, layout.abstract_params):
            raise TrainingError(f"init_checkpoint {init_checkpoint} has other parameter "
                                "shapes than the configured model; check the model gin.")
        params = checkpoints.load_params(init_checkpoint, target=checkpoints.sharded_abstract(
            layout.abstract_params, params_sh))
    opt_state = jax.jit(tx.init, out_shardings=layout.shardings.opt_state)(params)
    step = jax.device_put(jnp.zeros((), jnp.int32), layout.shardings.step)
    return TrainState(step, params, opt_state)


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
