"""The gin-configured train loop: `flan-jax train --gin_file=... [--gin.X=V ...]`.

Read top to bottom: open the data source, build the mesh and model, restore or initialise the
train state with its shardings (`train_step.state_layout`, `train_step.init_or_restore`), then
loop (`_Loop`): next batch -> jitted train_step -> metrics -> checkpoint. Preemption (SIGTERM)
saves and exits; a NaN/Inf loss stops before anything bad is saved. The step itself is in
`train_step`, FLOP accounting in `accounting`, prompt tuning in `prompt_tuning`, throughput and
the progress output in `progress`, and checkpoint plumbing in `checkpoints`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import sys
import threading
from typing import Any, Callable

import gin
import jax

from flan_jax import accounting, checkpoints, optim, partitioning, prompt_tuning
from flan_jax import paths, run_checks
from flan_jax import errors, run_lock  # run_lock: one run per MODEL_DIR
from flan_jax import data as data_lib  # no TensorFlow until a seqio source is opened
from flan_jax.errors import TrainingError, UserError
from flan_jax.models import TransformerConfig, build_model, count_params
from flan_jax.progress import MetricsWriter, Throughput, print_progress, setup_logging
from flan_jax.train_step import init_or_restore, make_train_step, merge_params, state_layout

logger = logging.getLogger("flan_jax.train")


@gin.configurable(denylist=["stop_after"])
@run_lock.holding_model_dir  # one run per MODEL_DIR
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

    The data stream continues where the checkpoint left it (`DataSource.batches`); a resume
    whose data source, mixture, feature lengths, seed or cache differ is refused unless
    `restart_data_stream`, which starts the configured stream from its beginning.
    """
    # a local folder or a bucket (gs://...): every file below goes through etils.epath
    model_dir_path = paths.as_path(model_dir)
    source, base_dir = _check_inputs(model_dir, model_config, data, prompt_tuning_base,
                                     init_checkpoint, accumulate_steps, truncation_sample)
    tuning_prompt = base_dir is not None
    mesh = partitioning.make_mesh()
    rules = partitioning.logical_axis_rules()
    run_checks.check_batch_size(data.batch_size, mesh, rules, jax.process_count())
    model = build_model(model_config)
    tx, schedule = optim.build_optimizer()
    layout = state_layout(model, tx, mesh, rules, seed, base_dir)

    saved_step = checkpoints.latest_step_dir(model_dir_path)
    if saved_step is not None and int(saved_step.name) >= train_steps:  # nothing to do
        print(run_checks.already_trained(model_dir_path, int(saved_step.name), train_steps),
              file=sys.stderr)
        return {}
    if saved_step is not None:  # before the manager creates anything
        changes = run_checks.check_resume_config(model_dir_path, int(saved_step.name),
                                                 allow_config_change)
    manager = checkpoints.checkpoint_manager(model_dir_path, keep_checkpoints, checkpoint_every,
                                             async_checkpoints)
    state, data_state, latest = init_or_restore(layout, tx, manager, mesh, model_config, seed,
                                                init_checkpoint, str(model_dir_path))
    if latest is not None:
        data_state = _resumed_stream(source, data_state, restart_data_stream)
        logger.info("Resumed from step %d in %s.", latest, model_dir_path)
        if saved_step is not None and changes:
            logger.info("Changed since the run's last start: %s.", "; ".join(changes))

    source.check_model_vocabulary([model_dir_path, init_checkpoint, base_dir])
    if jax.process_index() == 0:
        checkpoints.write_run_files(model_dir_path, model_config, *source.vocabulary(),
                                    prompt_base=base_dir,
                                    config_name=run_checks.config_file_for(latest))
    batch_sh = partitioning.batch_sharding(mesh, rules)
    step_fn = make_train_step(model, tx, rules, z_loss=z_loss,
                              loss_normalization=loss_normalization,
                              accumulate_steps=accumulate_steps,
                              dropout=model_config.dropout_rate > 0,
                              frozen_params=tuning_prompt, loss_chunk_size=loss_chunk_size)
    jitted = _jit_step(step_fn, layout, batch_sh, mesh)
    start_step = int(state.step)
    logger.info("Training %s parameters%s for %d steps on %d devices (mesh %s).",
                f"{count_params(layout.abstract_params):,}",
                f" (a soft prompt; base {base_dir} frozen)" if tuning_prompt else "",
                train_steps, jax.device_count(), dict(mesh.shape))
    meter = _meter(start_step, model_config, data)
    loop = _Loop(jitted=jitted, mesh=mesh, manager=manager, frozen=layout.frozen,
                 batches=source.batches(model_config.family, batch_sh, data_state),
                 schedule=schedule, meter=meter, model_dir=model_dir_path,
                 train_steps=train_steps, log_every=log_every, eval_fn=eval_fn,
                 eval_every=eval_every, stop_after=stop_after, rng=jax.random.PRNGKey(seed + 1))
    return loop.run(state, start_step)


def _resumed_stream(source, data_state, restart: bool):
    """The data state a resume continues from: the checkpoint's, once it is checked to be
    this source's stream, or None (from the beginning) with `train.restart_data_stream`."""
    if restart:
        logger.info("train.restart_data_stream: the data stream starts from its beginning.")
        return None
    source.check_same_stream(data_state)
    return data_state


def _jit_step(step_fn, layout, batch_sharding, mesh):
    """The train step compiled onto the state's and the batch's shardings, the state donated;
    with prompt tuning the frozen base parameters are one more (not donated) argument."""
    repl = layout.shardings.step
    frozen = (layout.frozen_shardings,) if layout.frozen is not None else ()
    with jax.set_mesh(mesh):
        return jax.jit(step_fn, in_shardings=(layout.shardings, batch_sharding, repl) + frozen,
                       out_shardings=(layout.shardings, repl), donate_argnums=(0,))


def _meter(start_step: int, model_config: TransformerConfig, data) -> Throughput:
    """Throughput and MFU metering; MFU counts the FLOPs of every (padded) position the step
    computes, against the devices' peak (none known: a warning, no MFU)."""
    peak = (accounting.peak_flops_per_device() or 0.0) * jax.device_count()
    if not peak:
        logger.warning(accounting.unknown_peak_message(jax.devices()[0].device_kind))
    return Throughput(start_step, accounting.step_flops(
        model_config, data.task_feature_lengths, data.batch_size), peak)


def _check_inputs(model_dir: str, model_config: TransformerConfig, data, prompt_base,
                  init_checkpoint, accumulate_steps: int, truncation_sample: int):
    """(the opened data source, the prompt-tuning base or None), after every check that needs
    no model: nothing is written before they pass."""
    run_checks.check_data_config(data)  # MODEL_DIR was checked by @holding_model_dir  # feature lengths and batch size, before any work
    source = data_lib.open_source(data)  # an unknown task or mixture fails before any work
    if truncation_sample:
        run_checks.check_truncation(source, truncation_sample)
    base_dir = prompt_tuning.check_prompt_tuning(
        model_config, data, prompt_base, init_checkpoint) if model_config.prompt_length > 0 \
        else None
    if data.batch_size % accumulate_steps:
        raise UserError(f"BATCH_SIZE={data.batch_size} is not divisible by "
                        f"train.accumulate_steps={accumulate_steps}: use a multiple of it.")
    return source, base_dir


@dataclasses.dataclass
class _Loop:
    """The loop of one run: next batch -> jitted step -> metrics -> checkpoint, until
    `train_steps`, a SIGTERM (saved, exits) or `stop_after` (tests: ends as a crash would)."""
    jitted: Callable
    mesh: Any
    manager: Any  # the orbax CheckpointManager
    frozen: Any  # prompt tuning: the frozen base parameters (else None)
    batches: Any  # a flan_jax.data.GlobalBatches
    schedule: Callable
    meter: Throughput
    model_dir: Any
    train_steps: int
    log_every: int
    eval_fn: Callable | None
    eval_every: int | None
    stop_after: int | None
    rng: jax.Array

    def run(self, state, start_step: int) -> dict:
        stop = {"signal": None}

        def on_sigterm(signum, frame):  # preemption: finish the step, save, exit
            stop["signal"] = signum

        previous_handler = signal.signal(signal.SIGTERM, on_sigterm) \
            if threading.current_thread() is threading.main_thread() else None
        # a resumed run replays the steps after its checkpoint: their old lines go
        writer = MetricsWriter(self.model_dir, enabled=jax.process_index() == 0,
                               keep_until=start_step)
        try:
            return self._steps(state, start_step, writer, stop)
        finally:
            self.manager.wait_until_finished()
            writer.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)

    def _save(self, step: int, state, force: bool = False) -> bool:
        return self.manager.save(step, args=checkpoints.save_args(state, self.batches.state()),
                                 force=force)

    def _steps(self, state, step: int, writer: MetricsWriter, stop: dict) -> dict:
        last: dict = {}
        last_saved = step
        frozen_args = (self.frozen,) if self.frozen is not None else ()
        while step < self.train_steps:
            batch = next(self.batches)
            with jax.set_mesh(self.mesh):
                state, metrics = self.jitted(state, batch, self.rng, *frozen_args)
            step += 1
            metrics = jax.device_get(metrics)
            if not math.isfinite(float(metrics["loss"])):
                raise TrainingError(run_checks.non_finite_loss(
                    float(metrics["loss"]), step, self.manager.latest_step(), self.model_dir))
            self.meter.step_done(step, float(metrics["num_tokens"]))
            if step % self.log_every == 0 or step == self.train_steps:
                last = {"step": step, **{k: float(v) for k, v in metrics.items()},
                        "learning_rate": float(self.schedule(step - 1)), **self.meter.report()}
                writer.write(last)
                print_progress(last, step, self.train_steps, self.meter.timed_from,
                               self.meter.run_start)
            if self.manager.should_save(step) and self._save(step, state):
                last_saved = step
                writer.sync()  # on a bucket, lines wait in memory until here (or 30 s)
            if self.eval_fn is not None and self.eval_every and step % self.eval_every == 0:
                self.eval_fn(params=merge_params(state.params, self.frozen), step=step)
            if stop["signal"] is not None:
                if last_saved != step:
                    self._save(step, state, force=True)
                self.manager.wait_until_finished()
                raise errors.Preempted(  # exit 143, see errors.py
                    f"received signal {stop['signal']}: saved step {step} in {self.model_dir}; "
                    "rerun the same command to resume.")
            if self.stop_after is not None and step >= self.stop_after:
                self.manager.wait_until_finished()
                return last
        if last_saved != step or self.manager.latest_step() is None:  # TRAIN_STEPS = 0 saves
            self._save(step, state, force=True)
        self.manager.wait_until_finished()
        return last


def _check_model_is_configured(args) -> None:
    from flan_jax import config

    if not config.is_bound("TransformerConfig"):
        raise config.GinConfigError(
            "no model is configured: add a model gin file, e.g. --gin_file=models/t5_small.gin "
            "(see gin/models/) or --gin_file=CONVERTED/model.gin.")


def _run(args) -> None:
    setup_logging()
    train()


def main(argv: list[str]) -> int:
    from flan_jax import config

    return config.run_command("flan-jax train", argv, _run, check=_check_model_is_configured,
                              description=__doc__, require_files=True,
                              imports=data_lib.import_tasks_if_read)
