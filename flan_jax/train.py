"""The gin-configured train loop: `flan-jax train --gin_file=runs/train.gin [--gin.X=V ...]`.

Read top to bottom: build the mesh and model, restore or initialise the train state with its
shardings, then loop: next batch -> jitted train_step -> metrics -> checkpoint. Preemption
(SIGTERM) saves and exits; a NaN/Inf loss stops before anything bad is saved.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import pathlib
import signal
import sys
import time
from typing import Any, Callable, Mapping

import flax
import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp

from flan_jax import checkpoints, losses, optim, partitioning
from flan_jax.models import TransformerConfig, build_model, count_params, output_head_kernel

logger = logging.getLogger("flan_jax.train")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


class TrainingError(Exception):
    """Stops a run with a message for the user (NaN loss, incompatible checkpoint, ...)."""


@gin.configurable
def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           cpu_collectives: bool = False) -> None:
    """Multi-host setup from gin or the environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID); on TPU pods `jax.distributed.initialize()` alone
    discovers the rest. Nothing happens when neither says anything."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator_address is None:
        return
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


# --- the step -------------------------------------------------------------------------------

def make_train_step(model: nn.Module, tx: optax.GradientTransformation, rules, *,
                    z_loss: float, loss_normalization: str | float, accumulate_steps: int,
                    dropout: bool, frozen_params: bool = False,
                    loss_chunk_size: int = 0) -> Callable:
    """train_step(state, batch, rng) -> (state, metrics), to be jitted with shardings.

    With `frozen_params` (prompt tuning) it is train_step(state, batch, rng, frozen): the model
    runs on `{**frozen, **state.params}` and only `state.params` get gradients and updates.
    `loss_chunk_size` > 0 computes the loss from the final hidden states that many positions
    at a time (`losses.chunked_token_loss_sums`), never holding all the logits."""
    from flan_jax.data import model_kwargs

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


def merge_params(trained, frozen):
    """The model's parameters: the trained subtree over the frozen rest (or just `trained`)."""
    return trained if frozen is None else {**frozen, **trained}


# --- throughput accounting --------------------------------------------------------------------

_PEAK_FLOPS = {"tpu v4": 275e12, "tpu v5 lite": 197e12, "tpu v5e": 197e12, "tpu v5p": 459e12,
               "tpu v6": 918e12, "h100": 989e12, "h200": 989e12, "a100": 312e12,
               "l4": 121e12}


@gin.configurable
def peak_flops_per_device(override: float | None = None, cpu: float | None = None) -> float:
    """bfloat16 dense peak of the first device. CPUs have no published figure: their peak is
    measured once as the best float32 matmul throughput of the host, shared by its (simulated)
    devices, unless `cpu` gives one."""
    if override:
        return override
    kind = jax.devices()[0].device_kind.lower()
    for name, flops in _PEAK_FLOPS.items():
        if name in kind:
            return flops
    return cpu or measured_cpu_matmul_flops() / len(jax.local_devices())


@functools.lru_cache(maxsize=1)
def measured_cpu_matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    """The best FLOP/s of an n x n float32 matmul on this host (about a second, once)."""
    a = jax.device_put(jnp.ones((n, n), jnp.float32), jax.local_devices()[0])
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def train_flops_per_token(cfg: TransformerConfig, params,
                          lengths: Mapping[str, int]) -> float:
    """Training FLOPs per position of a row of `lengths` ({"inputs": Li, "targets": Lt}): 6 x
    the weights each position multiplies (an encoder position the encoder's, a decoder position
    the decoder's and the output head's) plus attention, averaged over the Li + Lt positions."""
    sizes = {k: count_params(v) for k, v in params.items() if k not in ("token_embed", "prompt")}
    head = cfg.vocab_size * cfg.emb_dim if cfg.tie_embeddings else 0  # tied head multiplies too
    hd = cfg.num_heads * cfg.head_dim
    li, lt = int(lengths.get("inputs", 0)), int(lengths.get("targets", 0))
    if cfg.family == "encoder_decoder":
        weights = 6 * (sizes.get("encoder", 0) * li + (sizes.get("decoder", 0) + head) * lt)
        attention = 12 * hd * (cfg.num_encoder_layers * li * li
                               + cfg.num_decoder_layers * (lt * lt + lt * li))
    else:  # decoder-only rows hold inputs and targets together
        n = li + lt
        weights = 6 * (sum(sizes.values()) + head) * n
        attention = 12 * hd * cfg.num_decoder_layers * n * n
    return (weights + attention) / max(li + lt, 1)


# --- checkpoints ---------------------------------------------------------------------------

def _checkpoint_manager(model_dir: pathlib.Path, keep: int, every: int, use_async: bool):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every, enable_async_checkpointing=use_async,
        create=True)
    return ocp.CheckpointManager(
        model_dir.resolve() / checkpoints.STEPS_DIR, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler()})


def _shapes(tree) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in flat}


def _check_compatible(saved, expected, where: str) -> None:
    saved, expected = _shapes(saved), _shapes(expected)
    diffs = [f"{k}: saved {saved.get(k)} vs model {v}" for k, v in expected.items()
             if saved.get(k) != v]
    if diffs:
        raise TrainingError(
            f"{where} holds a checkpoint of a different model ({len(diffs)} mismatching "
            f"arrays, e.g. {diffs[0]}). Use another MODEL_DIR or delete that one.")


def _write_run_files(model_dir: pathlib.Path, cfg: TransformerConfig, vocab_spec: dict,
                     vocab_file: str | None, prompt_base: pathlib.Path | None = None) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    if prompt_base is not None:
        (model_dir / checkpoints.PROMPT_BASE).write_text(f"{prompt_base.resolve()}\n")
    (model_dir / "config.gin").write_text(gin.config_str())
    (model_dir / checkpoints.MODEL_GIN).write_text(
        checkpoints.model_gin_text(cfg, header="Model of this training run."))
    from flan_jax.vocab import save_vocab_json

    if vocab_file:
        import shutil

        shutil.copy(vocab_file, model_dir / os.path.basename(vocab_file))
    save_vocab_json(model_dir, vocab_spec)


def _task_vocabulary(name: str) -> tuple[dict, str | None]:
    import seqio

    import tasks  # noqa: F401

    provider = seqio.get_mixture_or_task(name)
    vocab = provider.output_features["targets"].vocabulary
    if isinstance(vocab, seqio.ByteVocabulary):
        return {"kind": "byte"}, None
    path = getattr(vocab, "sentencepiece_model_file", None)
    if path:
        return {"kind": "sentencepiece", "file": os.path.basename(path)}, path
    return {"kind": "missing", "expected": "a vocabulary file"}, None


# --- prompt tuning ----------------------------------------------------------------------------

def _check_prompt_tuning(cfg: TransformerConfig, data, base: str | None,
                         init_checkpoint: str | None) -> pathlib.Path:
    if not base:
        raise TrainingError(
            f"TransformerConfig.prompt_length={cfg.prompt_length} tunes a soft prompt on a frozen "
            "model: set train.prompt_tuning_base (runs/prompt_tune.gin: BASE_CHECKPOINT) to a "
            "converted or trained model directory.")
    if init_checkpoint:
        raise TrainingError("Prompt tuning loads its model from train.prompt_tuning_base; "
                            "leave INIT_CHECKPOINT unset.")
    if data.pack:
        raise TrainingError("Prompt tuning prepends one prompt to each row, so packed rows "
                            "cannot be used: set DataConfig.pack = False.")
    base_dir = pathlib.Path(base)
    if not (base_dir / checkpoints.MODEL_GIN).exists():
        raise TrainingError(f"train.prompt_tuning_base={base!r} is not a model directory "
                            f"(no {checkpoints.MODEL_GIN}).")
    if checkpoints.prompt_base_dir(base_dir) is not None:
        raise TrainingError(f"train.prompt_tuning_base={base!r} is itself a prompt-tuning run; "
                            "name the model directory it was tuned on instead.")
    return base_dir


def _load_frozen_params(base_dir: pathlib.Path, abstract, shardings):
    """The base model's parameters (without a prompt), placed with the run's shardings."""
    if (base_dir / checkpoints.PARAMS_DIR).is_dir():
        if not _shapes_match(str(base_dir), abstract):
            raise TrainingError(f"{base_dir} has other parameter shapes than the configured "
                                "model; use the base's model.gin (plus the prompt settings).")
        return checkpoints.load_params(base_dir, target=jax.tree_util.tree_map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract,
            shardings))
    step_dir = checkpoints.latest_step_dir(base_dir)
    if step_dir is None:
        raise TrainingError(f"{base_dir} has neither {checkpoints.PARAMS_DIR}/ nor saved steps.")
    params = checkpoints.restore_params_from_step(step_dir)
    if _shapes(params) != _shapes(abstract):
        raise TrainingError(f"{base_dir} has other parameter shapes than the configured model; "
                            "use the base's model.gin (plus the prompt settings).")
    return jax.tree_util.tree_map(lambda x, a, s: jax.device_put(x.astype(a.dtype), s),
                                  params, abstract, shardings)


def _split_prompt(tree) -> tuple[dict, dict]:
    """({"prompt": ...}, everything else) of a params-shaped tree."""
    key = checkpoints.PROMPT_PARAM
    return {key: tree[key]}, {k: v for k, v in tree.items() if k != key}


# --- the loop ---------------------------------------------------------------------------------

@gin.configurable(denylist=["stop_after"])
def train(model_dir: str = gin.REQUIRED, train_steps: int = gin.REQUIRED,
          model_config: TransformerConfig = gin.REQUIRED, data=gin.REQUIRED, seed: int = 0,
          z_loss: float = 1e-4, loss_normalization: str | float = "tokens",
          accumulate_steps: int = 1, checkpoint_every: int = 1000, keep_checkpoints: int = 3,
          async_checkpoints: bool = True, log_every: int = 10, init_checkpoint: str | None = None,
          eval_every: int | None = None, eval_fn: Callable | None = None,  # e.g. @evaluate
          prompt_tuning_base: str | None = None, loss_chunk_size: int = 0,
          stop_after: int | None = None) -> dict:
    """Trains `model_config` on `data` (a `DataConfig`) for `train_steps` steps in `model_dir`.

    Resumes from the latest checkpoint in `model_dir`. Returns the last metrics. `stop_after`
    (tests) ends the loop early without the final save, as a crash would.

    Prompt tuning (`model_config.prompt_length > 0`): the parameters of `prompt_tuning_base`
    (a model directory) are loaded and frozen; only the "prompt" parameter is optimised and
    checkpointed, and `model_dir/prompt_base.txt` names the base for `load_model_dir`.

    `loss_chunk_size` > 0: the loss and its gradient over that many positions of each row at a
    time, without the whole [batch, length, vocab] float32 logits (0: all at once).
    """
    from flan_jax.data import BatchIterator

    model_dir_path = pathlib.Path(model_dir)
    import tasks  # noqa: F401
    from tasks import registry

    registry.get_task_or_mixture(data.mixture_or_task_name)  # fail before any work
    prompt_tuning = model_config.prompt_length > 0
    base_dir = _check_prompt_tuning(model_config, data, prompt_tuning_base, init_checkpoint) \
        if prompt_tuning else None
    if data.batch_size % accumulate_steps:
        raise TrainingError(f"batch_size={data.batch_size} is not divisible by "
                            f"accumulate_steps={accumulate_steps}.")

    mesh = partitioning.make_mesh()
    rules = partitioning.logical_axis_rules()
    model = build_model(model_config)
    tx, schedule = optim.build_optimizer()

    dummy = jnp.ones((1, 8), jnp.int32)
    init_args = (dummy, dummy) if model_config.family == "encoder_decoder" else (dummy,)
    init_fn = lambda rng: model.init(rng, *init_args)["params"]  # noqa: E731
    boxed = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
    params_sh = partitioning.params_shardings(boxed, mesh, rules)
    abstract_params = abstract_model_params = nn.meta.unbox(boxed)
    frozen, frozen_sh = None, None
    if prompt_tuning:  # optimise (and checkpoint) the prompt; the rest stays the base's
        (abstract_params, abstract_frozen), (params_sh, frozen_sh) = (
            _split_prompt(abstract_params), _split_prompt(params_sh))
        with jax.set_mesh(mesh):
            frozen = _load_frozen_params(base_dir, abstract_frozen, frozen_sh)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_sh = partitioning.state_shardings_like(abstract_opt, abstract_params, params_sh, mesh)
    repl = partitioning.replicated(mesh)
    state_sh = TrainState(step=repl, params=params_sh, opt_state=opt_sh)
    abstract_state = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        TrainState(jax.ShapeDtypeStruct((), jnp.int32), abstract_params, abstract_opt), state_sh)

    manager = _checkpoint_manager(model_dir_path, keep_checkpoints, checkpoint_every,
                                  async_checkpoints)
    latest = manager.latest_step()
    if latest is not None:
        meta = manager.item_metadata(latest)["state"]
        _check_compatible(meta["params"], abstract_params, str(model_dir_path))
        restored = manager.restore(latest, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        state, start_batch = restored["state"], int(restored["data"]["position"])
        logger.info("Resumed from step %d in %s.", latest, model_dir_path)
    else:
        if prompt_tuning:
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
                pathlib.Path(init_checkpoint) / checkpoints.MODEL_GIN)
            if init_cfg != model_config:
                logger.warning("init_checkpoint's model.gin differs from the run's model config.")
            saved = checkpoints.load_params(init_checkpoint, target=jax.tree_util.tree_map(
                lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                abstract_params, params_sh)) if _shapes_match(init_checkpoint, abstract_params) \
                else None
            if saved is None:
                raise TrainingError(f"init_checkpoint {init_checkpoint} has other parameter "
                                    "shapes than the configured model; check the model gin.")
            params = saved
        opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
        state = TrainState(jax.device_put(jnp.zeros((), jnp.int32), repl), params, opt_state)
        start_batch = 0

    start_step = int(state.step)
    if jax.process_index() == 0:
        _write_run_files(model_dir_path, model_config, *_task_vocabulary(data.mixture_or_task_name),
                         prompt_base=base_dir)
    batch_sh = partitioning.batch_sharding(mesh, rules)
    batches = BatchIterator(data, model_config.family, batch_sh, start_batch=start_batch)

    step_fn = make_train_step(model, tx, rules, z_loss=z_loss,
                              loss_normalization=loss_normalization,
                              accumulate_steps=accumulate_steps,
                              dropout=model_config.dropout_rate > 0,
                              frozen_params=prompt_tuning, loss_chunk_size=loss_chunk_size)
    frozen_args = (frozen,) if prompt_tuning else ()
    with jax.set_mesh(mesh):
        jitted = jax.jit(step_fn, in_shardings=(state_sh, batch_sh, repl) + (
            (frozen_sh,) if prompt_tuning else ()), out_shardings=(state_sh, repl),
            donate_argnums=(0,))

    stop = {"signal": None}

    def on_sigterm(signum, frame):  # preemption: finish the step, save, exit
        stop["signal"] = signum

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm) \
        if _in_main_thread() else None
    writer = MetricsWriter(model_dir_path, enabled=jax.process_index() == 0)
    n_params = count_params(abstract_params)
    # MFU counts the FLOPs of every (padded) position the step computes.
    step_flops = train_flops_per_token(model_config, abstract_model_params,
                                       data.task_feature_lengths) * data.batch_size * sum(
        data.task_feature_lengths.values())
    peak = peak_flops_per_device() * jax.device_count()
    logger.info("Training %s parameters%s for %d steps on %d devices (mesh %s).",
                f"{n_params:,}", f" (a soft prompt; base {base_dir} frozen)" if prompt_tuning
                else "", train_steps, jax.device_count(), dict(mesh.shape))
    rng = jax.random.PRNGKey(seed + 1)
    last: dict = {}
    window_start, window_tokens, window_steps = time.time(), 0.0, 0
    run_start = time.time()
    step = last_saved = start_step
    try:
        while step < train_steps:
            batch = next(batches)
            with jax.set_mesh(mesh):
                state, metrics = jitted(state, batch, rng, *frozen_args)
            step += 1
            metrics = jax.device_get(metrics)
            if not math.isfinite(float(metrics["loss"])):
                raise TrainingError(
                    f"loss is {float(metrics['loss'])} at step {step}; stopping. The last good "
                    f"checkpoint (step {manager.latest_step()}) is kept in {model_dir_path}. "
                    "Lower the learning rate or check the data.")
            window_tokens += float(metrics["num_tokens"])
            window_steps += 1
            if step % log_every == 0 or step == train_steps:
                elapsed = time.time() - window_start
                tokens_per_sec = window_tokens / max(elapsed, 1e-9)
                last = {"step": step, **{k: float(v) for k, v in metrics.items()},
                        "learning_rate": float(schedule(step - 1)),
                        "tokens_per_sec": tokens_per_sec,
                        "step_time": elapsed / max(window_steps, 1),
                        "mfu": window_steps * step_flops / max(elapsed, 1e-9) / peak}
                writer.write(last)
                _print_progress(last, step, train_steps, start_step, run_start)
                window_start, window_tokens, window_steps = time.time(), 0.0, 0
            if manager.save(step, args=_save_args(state, batches)):
                last_saved = step
            if eval_fn is not None and eval_every and step % eval_every == 0:
                eval_fn(params=merge_params(state.params, frozen), step=step)
            if stop["signal"] is not None:
                if last_saved != step:
                    manager.save(step, args=_save_args(state, batches), force=True)
                manager.wait_until_finished()
                print(f"Received signal {stop['signal']}: saved step {step} in {model_dir_path};"
                      " rerun the same command to resume.", file=sys.stderr)
                return last
            if stop_after is not None and step >= stop_after:
                manager.wait_until_finished()
                return last
        if last_saved != step or manager.latest_step() is None:  # TRAIN_STEPS = 0 saves too
            manager.save(step, args=_save_args(state, batches), force=True)
        manager.wait_until_finished()
    finally:
        manager.wait_until_finished()
        writer.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return last


def _shapes_match(directory: str, abstract_params) -> bool:
    with ocp.StandardCheckpointer() as ckptr:
        meta = ckptr.metadata(pathlib.Path(directory).resolve() / checkpoints.PARAMS_DIR)
    tree = getattr(meta, "item_metadata", meta)
    return _shapes(tree) == _shapes(abstract_params)


def _save_args(state: TrainState, batches) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(batches.state()))


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _print_progress(m: dict, step: int, total: int, start_step: int, run_start: float) -> None:
    done = step - start_step
    rate = done / max(time.time() - run_start, 1e-9)
    eta = (total - step) / rate if rate > 0 else float("inf")
    print(f"step {step}/{total}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
          f"lr {m['learning_rate']:.2e}  {m['tokens_per_sec']:,.0f} tok/s  "
          f"MFU {100 * m['mfu']:.1f}%  ETA {_fmt_seconds(eta)}", flush=True)


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class MetricsWriter:
    """metrics.jsonl (one object per logging step) and TensorBoard event files."""

    def __init__(self, model_dir: pathlib.Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        model_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(model_dir / "metrics.jsonl", "a")
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(model_dir / "tensorboard" / "train"))
        except ImportError:  # pragma: no cover - tensorboardX is a core dependency
            self._tb = None

    def write(self, metrics: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(metrics) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if k != "step":
                    self._tb.add_scalar(k, v, metrics["step"])
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def main(argv: list[str]) -> int:
    from flan_jax import config

    parser = argparse.ArgumentParser(prog="flan-jax train", description=__doc__)
    config.add_gin_flags(parser)
    try:
        bindings, rest = config.split_gin_bindings(argv)
        args = parser.parse_args(rest)
        if not args.gin_file:
            parser.error("give at least one --gin_file (e.g. --gin_file=runs/demo.gin)")
        config.parse_gin(args.gin_file, bindings, args.gin_search_paths)
    except config.GinConfigError as e:
        print(f"flan-jax train: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    initialize_distributed()
    try:
        train()
    except TrainingError as e:
        print(f"flan-jax train: {e}", file=sys.stderr)
        return 1
    except KeyError as e:  # unknown task or mixture from the registry
        print(f"flan-jax train: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0
