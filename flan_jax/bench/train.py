"""`bench train`: the jitted train step on synthetic token batches (AdamW), decoder-only and
encoder-decoder, with and without full remat: tokens/s, step time, MFU, host peak RSS and XLA's
memory analysis of the compiled step."""

from __future__ import annotations

import time
from typing import Any, Mapping

from flan_jax.bench.common import (Settings, device_memory_stats, f32, init_params,
                                   median_time, rss_mib, say, synthetic_batch, tokens_per_row,
                                   xla_memory_mib)

ONE_DEVICE = {"data": 1, "fsdp": 1, "tensor": 1}

_COMPILED: dict = {}  # one entry per measured shape: compiled step, state, data


def clear_compiled() -> None:
    """Forgets the compiled steps and their states: the next measurement starts from a fresh
    state (two measurements then take the same steps)."""
    _COMPILED.clear()


def measure_train_step(cfg, batch: int, lengths: dict[str, int], s: Settings, *,
                       mesh_axes: Mapping[str, int] | None = None, examples_per_row: int = 1,
                       loss_chunk_size: int = 0, learning_rate: float = 1e-4,
                       weight_decay: float = 0.01) -> dict:
    """Median step time of the jitted train step (AdamW, no clipping, no z-loss).

    `mesh_axes` None runs on one device; e.g. {"data": 1, "fsdp": -1, "tensor": 1} shards
    parameters, optimizer state and the batch over every device. `loss_chunk_size` as in
    `make_train_step` (0: the whole logits at once). A shape measured before is
    timed again without recompiling (`compile_s` is then the first one)."""
    step = prepare_train_step(cfg, batch, lengths, mesh_axes=mesh_axes,
                              examples_per_row=examples_per_row,
                              loss_chunk_size=loss_chunk_size, learning_rate=learning_rate,
                              weight_decay=weight_decay)
    step_s, times = median_time(step.run, s.warmup, s.repeat)
    return train_step_row(step, step_s, times)


class PreparedStep:
    """A compiled train step with its state and data: `run()` does one step and blocks."""

    def __init__(self, holder: dict, mesh, cfg, batch: int, lengths: dict[str, int],
                 loss_chunk_size: int):
        self.holder, self.mesh, self.cfg = holder, mesh, cfg
        self.batch, self.lengths, self.loss_chunk_size = batch, dict(lengths), loss_chunk_size

    def run(self):
        import jax

        h = self.holder
        with jax.set_mesh(self.mesh):
            h["state"], h["metrics"] = h["compiled"](h["state"], h["data"], h["rng"])
        jax.block_until_ready(h["metrics"]["loss"])


def prepare_train_step(cfg, batch: int, lengths: dict[str, int], *,
                       mesh_axes: Mapping[str, int] | None = None, examples_per_row: int = 1,
                       loss_chunk_size: int = 0, learning_rate: float = 1e-4,
                       weight_decay: float = 0.01) -> PreparedStep:
    """The train step compiled for this shape (cached: a shape prepared before is reused)."""
    import jax
    import optax

    from flan_jax import partitioning
    from flan_jax.models import build_model
    from flan_jax.train_step import TrainState, make_train_step

    axes = dict(mesh_axes or ONE_DEVICE)
    key = (cfg, batch, tuple(sorted(lengths.items())), tuple(sorted(axes.items())),
           examples_per_row, loss_chunk_size, learning_rate, weight_decay)
    mesh = partitioning.make_mesh(axes=axes, num_devices=1 if mesh_axes is None else None)
    rules = partitioning.DEFAULT_RULES
    with jax.set_mesh(mesh):
        if key not in _COMPILED:
            if jax.devices()[0].platform != "cpu":
                _COMPILED.clear()  # one model's state at a time in accelerator memory
            model = build_model(cfg)
            tx = optax.adamw(learning_rate, weight_decay=weight_decay)
            params_sh, state_sh = state_shardings(model, tx, mesh, rules)
            params = init_params(model, out_shardings=params_sh)
            state = TrainState(jax.device_put(jax.numpy.zeros((), jax.numpy.int32),
                                              partitioning.replicated(mesh)), params,
                               jax.jit(tx.init, out_shardings=state_sh.opt_state)(params))
            batch_sh = partitioning.batch_sharding(mesh, rules)
            repl = partitioning.replicated(mesh)
            data = jax.device_put(
                synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size,
                                examples_per_row=examples_per_row), batch_sh)
            step_fn = make_train_step(model, tx, rules, z_loss=0.0,
                                      loss_normalization="tokens", accumulate_steps=1,
                                      dropout=False, loss_chunk_size=loss_chunk_size)
            t0 = time.perf_counter()
            # the state keeps its shardings across steps, as in training
            compiled = jax.jit(step_fn, in_shardings=(state_sh, batch_sh, repl),
                               out_shardings=(state_sh, repl), donate_argnums=(0,)).lower(
                state, data, jax.random.PRNGKey(1)).compile()
            _COMPILED[key] = {"compiled": compiled, "state": state, "data": data,
                              "rng": jax.random.PRNGKey(1),
                              "examples_per_row": examples_per_row,
                              "compile_s": time.perf_counter() - t0}
    return PreparedStep(_COMPILED[key], mesh, cfg, batch, lengths, loss_chunk_size)


def train_step_row(step: PreparedStep, step_s: float, times: list[float]) -> dict:
    """The figures of a prepared step timed at `step_s` seconds (median of `times`)."""
    import jax

    from flan_jax.accounting import flops_report
    from flan_jax.models import count_params

    holder = step.holder
    if "metrics" not in holder:
        step.run()
    loss = float(jax.device_get(holder["metrics"]["loss"]))
    params = holder["state"].params
    tokens = step.batch * tokens_per_row(step.lengths)
    stats = device_memory_stats() or {}
    return {"params": count_params(params), "batch": step.batch, "lengths": dict(step.lengths),
            "devices": step.mesh.size, "loss_chunk_size": step.loss_chunk_size,
            "tokens_per_step": tokens, "step_time_s": step_s, "step_times_s": times,
            "tokens_per_s": tokens / step_s,
            **flops_report(step.cfg, step.lengths, step.batch, holder["examples_per_row"],
                           step_s, step.mesh.size),
            "compile_s": holder["compile_s"], "loss": loss,
            **xla_memory_mib(holder["compiled"]), "host_peak_rss_mib": rss_mib(),
            "device_peak_bytes": stats.get("peak_bytes_in_use"),
            "device_bytes_in_use": stats.get("bytes_in_use")}


def state_shardings(model, tx, mesh, rules) -> tuple[Any, Any]:
    """(params shardings, TrainState shardings) from the model's logical axes."""
    import flax.linen as nn
    import jax

    from flan_jax import partitioning
    from flan_jax.models import abstract_params
    from flan_jax.train_step import TrainState

    boxed = abstract_params(model)
    params_sh = partitioning.params_shardings(boxed, mesh, rules)
    abstract = nn.meta.unbox(boxed)
    opt_sh = partitioning.state_shardings_like(jax.eval_shape(tx.init, abstract), abstract,
                                               params_sh, mesh)
    return params_sh, TrainState(partitioning.replicated(mesh), params_sh, opt_sh)


def bench_train(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    rows = []
    for name, cfg in models:
        small = "small" in name or cfg.emb_dim >= 512
        if s.quick:
            batch, lengths = 2, {"inputs": 16, "targets": 8}
        elif small:
            batch, lengths = 4, {"inputs": 96, "targets": 32}
        else:
            batch, lengths = 16, {"inputs": 128, "targets": 32}
        for remat in ("none", "full"):
            if small and remat == "full" and not s.quick:
                continue  # keeps `make bench` short; remat's effect shows on the tiny models
            r = measure_train_step(f32(cfg, remat_policy=remat), batch, lengths, s)
            rows.append({"model": name, "family": cfg.family, "remat": remat, **r})
            say(f"train {name} remat={remat}: {r['tokens_per_s']:,.0f} tok/s, "
                f"step {1e3 * r['step_time_s']:.1f} ms, MFU {100 * r['mfu']:.2f}%")
    return rows
