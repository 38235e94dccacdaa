"""The gin-configured train loop: `flan-jax train --gin_file=... [--gin.X=V ...]`.

Read top to bottom: build the mesh and model, restore or initialise the train state with its
shardings, then loop: next batch -> jitted train_step -> metrics -> checkpoint. Preemption
(SIGTERM) saves and exits; a NaN/Inf loss stops before anything bad is saved. The step itself
is in `train_step`, FLOP accounting in `accounting`, prompt tuning in `prompt_tuning`, the
progress output in `progress`, and checkpoint plumbing in `checkpoints`.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from typing import Callable

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from flan_jax import accounting, checkpoints, errors, optim, partitioning, prompt_tuning
from flan_jax import paths, run_checks
from flan_jax import run_lock  # reliability (issue 29)
from flan_jax import data as data_lib  # no TensorFlow until a dataset is read
from flan_jax.errors import TrainingError, UserError
from flan_jax.models import TransformerConfig, build_model, count_params, init_params_fn
from flan_jax.progress import MetricsWriter, print_progress, setup_logging
from flan_jax.train_step import TrainState, make_train_step, merge_params

logger = logging.getLogger("flan_jax.train")


@gin.configurable(denylist=["stop_after"])
@run_lock.holding_model_dir  # reliability (issue 29): one run per MODEL_DIR
def train(model_dir: str = gin.REQUIRED, train_steps: int = gin.REQUIRED,
          model_config: TransformerConfig = gin.REQUIRED, data=gin.REQUIRED, seed: int = 0,
          z_loss: float = 1e-4, loss_normalization: str | float = "tokens",
          accumulate_steps: int = 1, checkpoint_every: int = 1000, keep_checkpoints: int = 3,
          async_checkpoints: bool = True, log_every: int = 10, init_checkpoint: str | None = None,
          eval_every: int | None = None, eval_fn: Callable | None = None,  # e.g. @evaluate
          prompt_tuning_base: str | None = None, loss_chunk_size: int = 0,
          allow_config_change: bool = False, truncation_sample: int = 8,
          restart_data_stream: bool = False, stop_after: int | None = None) -> dict:
    """Trains `model_config` on `data` (a `DataConfig`) for `train_steps` steps in `model_dir`.

    Resumes from the latest checkpoint in `model_dir`. Returns the last metrics. `stop_after`
    (tests) ends the loop early without the final save, as a crash would.

    Prompt tuning (`model_config.prompt_length > 0`): the parameters of `prompt_tuning_base`
    (a model directory) are loaded and frozen; only the "prompt" parameter is optimised and
    checkpointed, and `model_dir/prompt_base.txt` names the base for `load_model_dir`.

    `loss_chunk_size` > 0: the loss and its gradient over that many positions of each row at a
    time, without the whole [batch, length, vocab] float32 logits (0: all at once).

    Nothing is written before the checks pass (`run_checks`): a resume whose batch size, model,
    optimizer, mixture or feature lengths differ from the run's last start is refused unless
    `allow_config_change`, and so is a run whose TASK_FEATURE_LENGTHS truncate every target
    of `truncation_sample` examples per task (0: no check). Each start keeps its config:
    config.gin (the first) and config.restart_STEP.gin (each resume, logging what changed).

    The data stream continues where the checkpoint left it (`data.batch_iterator`); a resume
    whose data source, mixture, feature lengths, seed or cache differ is refused unless
    `restart_data_stream`, which starts the configured stream from its beginning.
    """
    # a local folder or a bucket (gs://...): every file below goes through etils.epath
    model_dir_path = paths.as_path(model_dir)
    run_checks.check_model_dir(model_dir)
    run_checks.check_data_config(data)  # reliability (issue 29): lengths and batch size
    data_lib.check_source(data)  # an unknown task or mixture fails before any work
    if truncation_sample:
        run_checks.check_truncation(data, truncation_sample)
    tuning_prompt = model_config.prompt_length > 0
    base_dir = prompt_tuning.check_prompt_tuning(
        model_config, data, prompt_tuning_base, init_checkpoint) if tuning_prompt else None
    if data.batch_size % accumulate_steps:
        raise UserError(f"BATCH_SIZE={data.batch_size} is not divisible by "
                        f"train.accumulate_steps={accumulate_steps}: use a multiple of it.")

    mesh = partitioning.make_mesh()
    rules = partitioning.logical_axis_rules()
    run_checks.check_batch_size(data.batch_size, mesh, rules, jax.process_count())
    model = build_model(model_config)
    tx, schedule = optim.build_optimizer()

    init_fn = init_params_fn(model)
    boxed = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
    params_sh = partitioning.params_shardings(boxed, mesh, rules)
    abstract_params = abstract_model_params = nn.meta.unbox(boxed)
    frozen, frozen_sh = None, None
    if tuning_prompt:  # optimise (and checkpoint) the prompt; the rest stays the base's
        (abstract_params, abstract_frozen), (params_sh, frozen_sh) = (
            prompt_tuning.split_prompt(abstract_params), prompt_tuning.split_prompt(params_sh))
        with jax.set_mesh(mesh):
            frozen = prompt_tuning.load_frozen_params(base_dir, abstract_frozen, frozen_sh)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_sh = partitioning.state_shardings_like(abstract_opt, abstract_params, params_sh, mesh)
    repl = partitioning.replicated(mesh)
    state_sh = TrainState(step=repl, params=params_sh, opt_state=opt_sh)
    abstract_state = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        TrainState(jax.ShapeDtypeStruct((), jnp.int32), abstract_params, abstract_opt), state_sh)

    saved_step = checkpoints.latest_step_dir(model_dir_path)
    if saved_step is not None and int(saved_step.name) >= train_steps:  # reliability (#29)
        print(run_checks.already_trained(model_dir_path, int(saved_step.name), train_steps),
              file=sys.stderr)
        return {}
    if saved_step is not None:  # before the manager creates anything
        changes = run_checks.check_resume_config(model_dir_path, int(saved_step.name),
                                                 allow_config_change)
    manager = checkpoints.checkpoint_manager(model_dir_path, keep_checkpoints, checkpoint_every,
                                             async_checkpoints)
    latest = manager.latest_step()
    if latest is not None:
        state, data_state = checkpoints.restore_step(manager, latest, abstract_state,
                                                     abstract_params, str(model_dir_path))
        if restart_data_stream:
            logger.info("train.restart_data_stream: the data stream starts from its beginning.")
            data_state = None
        else:
            data_lib.check_same_stream(data_state, data)
        logger.info("Resumed from step %d in %s.", latest, model_dir_path)
        if saved_step is not None and changes:
            logger.info("Changed since the run's last start: %s.", "; ".join(changes))
    else:
        if tuning_prompt:
            from flan_jax.models import init_prompt

            prompt = init_prompt(model_config, frozen["token_embed"]["embedding"], seed)
            params = {checkpoints.PROMPT_PARAM: jax.device_put(
                prompt, params_sh[checkpoints.PROMPT_PARAM])}
        else:
            with jax.set_mesh(mesh):
                params = jax.jit(lambda r: nn.meta.unbox(init_fn(r)), out_shardings=params_sh)(
                    jax.random.PRNGKey(seed))
        if init_checkpoint:
            init_cfg = checkpoints.read_model_config(
                paths.as_path(init_checkpoint) / checkpoints.MODEL_GIN)
            if init_cfg != model_config:
                logger.warning("init_checkpoint's model.gin differs from the run's model config.")
            if not checkpoints.params_shapes_match(init_checkpoint, abstract_params):
                raise TrainingError(f"init_checkpoint {init_checkpoint} has other parameter "
                                    "shapes than the configured model; check the model gin.")
            params = checkpoints.load_params(init_checkpoint, target=checkpoints.sharded_abstract(
                abstract_params, params_sh))
        opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
        state = TrainState(jax.device_put(jnp.zeros((), jnp.int32), repl), params, opt_state)
        data_state = None

    start_step = int(state.step)
    data_lib.check_run_vocabulary(data, [model_dir_path, init_checkpoint, base_dir])
    if jax.process_index() == 0:
        checkpoints.write_run_files(model_dir_path, model_config, *data_lib.run_vocabulary(data),
                                    prompt_base=base_dir,
                                    config_name=run_checks.config_file_for(latest))
    batch_sh = partitioning.batch_sharding(mesh, rules)
    batches = data_lib.batch_iterator(data, model_config.family, batch_sh, data_state)

    step_fn = make_train_step(model, tx, rules, z_loss=z_loss,
                              loss_normalization=loss_normalization,
                              accumulate_steps=accumulate_steps,
                              dropout=model_config.dropout_rate > 0,
                              frozen_params=tuning_prompt, loss_chunk_size=loss_chunk_size)
    frozen_args = (frozen,) if tuning_prompt else ()
    with jax.set_mesh(mesh):
        jitted = jax.jit(step_fn, in_shardings=(state_sh, batch_sh, repl) + (
            (frozen_sh,) if tuning_prompt else ()), out_shardings=(state_sh, repl),
            donate_argnums=(0,))

    stop = {"signal": None}

    def on_sigterm(signum, frame):  # preemption: finish the step, save, exit
        stop["signal"] = signum

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm) \
        if threading.current_thread() is threading.main_thread() else None
    # a resumed run replays the steps after its checkpoint: their old lines go
    writer = MetricsWriter(model_dir_path, enabled=jax.process_index() == 0,
                           keep_until=start_step)
    n_params = count_params(abstract_params)
    # MFU counts the FLOPs of every (padded) position the step computes.
    step_flops = accounting.step_flops(model_config, abstract_model_params,
                                       data.task_feature_lengths, data.batch_size)
    peak = accounting.peak_flops_per_device() * jax.device_count()
    logger.info("Training %s parameters%s for %d steps on %d devices (mesh %s).",
                f"{n_params:,}", f" (a soft prompt; base {base_dir} frozen)" if tuning_prompt
                else "", train_steps, jax.device_count(), dict(mesh.shape))
    rng = jax.random.PRNGKey(seed + 1)
    last: dict = {}
    # Throughput, MFU and the ETA leave out this process's first step (restore and compile).
    window_start, window_tokens, window_steps = time.time(), 0.0, 0
    run_start, timed_from = time.time(), start_step + 1
    step = last_saved = start_step
    try:
        while step < train_steps:
            batch = next(batches)
            with jax.set_mesh(mesh):
                state, metrics = jitted(state, batch, rng, *frozen_args)
            step += 1
            metrics = jax.device_get(metrics)
            if not math.isfinite(float(metrics["loss"])):
                raise TrainingError(run_checks.non_finite_loss(  # reliability (issue 29)
                    float(metrics["loss"]), step, manager.latest_step(), model_dir_path))
            if step == timed_from:  # the clock starts after the first step
                window_start = run_start = time.time()
            else:
                window_tokens += float(metrics["num_tokens"])
                window_steps += 1
            if step % log_every == 0 or step == train_steps:
                last = {"step": step, **{k: float(v) for k, v in metrics.items()},
                        "learning_rate": float(schedule(step - 1))}
                if window_steps:  # else only the untimed first step is in the window
                    elapsed = max(time.time() - window_start, 1e-9)
                    last.update(tokens_per_sec=window_tokens / elapsed,
                                step_time=elapsed / window_steps,
                                mfu=window_steps * step_flops / elapsed / peak)
                writer.write(last)
                print_progress(last, step, train_steps, timed_from, run_start)
                window_start, window_tokens, window_steps = time.time(), 0.0, 0
            if manager.should_save(step) and manager.save(
                    step, args=checkpoints.save_args(state, batches.state())):
                last_saved = step
                writer.sync()  # on a bucket, lines wait in memory until here (or 30 s)
            if eval_fn is not None and eval_every and step % eval_every == 0:
                eval_fn(params=merge_params(state.params, frozen), step=step)
            if stop["signal"] is not None:
                if last_saved != step:
                    manager.save(step, args=checkpoints.save_args(state, batches.state()), force=True)
                manager.wait_until_finished()
                raise errors.Preempted(  # reliability (issue 29): exit 143, see errors.py
                    f"received signal {stop['signal']}: saved step {step} in {model_dir_path}; "
                    "rerun the same command to resume.")
            if stop_after is not None and step >= stop_after:
                manager.wait_until_finished()
                return last
        if last_saved != step or manager.latest_step() is None:  # TRAIN_STEPS = 0 saves too
            manager.save(step, args=checkpoints.save_args(state, batches.state()), force=True)
        manager.wait_until_finished()
    finally:
        manager.wait_until_finished()
        writer.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return last


def main(argv: list[str]) -> int:
    from flan_jax import config

    try:
        config.parse_command("flan-jax train", argv, description=__doc__, require_files=True)
        if not config.is_bound("TransformerConfig"):
            raise config.GinConfigError(
                "no model is configured: add a model gin file, e.g. "
                "--gin_file=models/t5_small.gin (see gin/models/) or --gin_file=CONVERTED/model.gin.")
    except config.GinConfigError as e:
        print(f"flan-jax train: {e}", file=sys.stderr)
        return 2
    setup_logging()
    partitioning.initialize_distributed()
    try:
        train()
    except TrainingError as e:
        print(f"flan-jax train: {errors.message(e)}", file=sys.stderr)
        return 1
    except (UserError, KeyError, partitioning.MeshError) as e:  # e.g. an unknown mixture
        print(f"flan-jax train: {errors.message(e)}", file=sys.stderr)
        return 2
    return 0
