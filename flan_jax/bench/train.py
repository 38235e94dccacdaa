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


def measure_train_step(cfg, batch: int, lengths: dict[str, int], s: Settings, *,
                       mesh_axes: Mapping[str, int] | None = None, examples_per_row: int = 1,
                       loss_chunk_size: int = 0, learning_rate: float = 1e-4,
                       weight_decay: float = 0.01) -> dict:
    """Median step time of the jitted train step (AdamW, no clipping, no z-loss).

    `mesh_axes` None runs on one device; e.g. {"data": 1, "fsdp": -1, "tensor": 1} shards
    parameters, optimizer state and the batch over every device. `loss_chunk_size` as in
    `make_train_step` (0: the whole logits at once). A shape measured before is
    timed again without recompiling (`compile_s` is then the first one)."""
    import jax
    import optax

    from flan_jax import partitioning
    from flan_jax.models import build_model, count_params
    from flan_jax.accounting import peak_flops_per_device, train_flops_per_token
    from flan_jax.train_step import TrainState, make_train_step

    axes = dict(mesh_axes or ONE_DEVICE)
    key = (cfg, batch, tuple(sorted(lengths.items())), tuple(sorted(axes.items())),
           examples_per_row, loss_chunk_size, learning_rate, weight_decay)
    mesh = partitioning.make_mesh(axes=axes, num_devices=1 if mesh_axes is None else None)
    rules = partitioning.DEFAULT_RULES
    rng = jax.random.PRNGKey(1)
    with jax.set_mesh(mesh):
        if key not in _COMPILED:
            if jax.devices()[0].platform != "cpu":
                _COMPILED.clear()  # one model's state at a time in accelerator memory
            model = build_model(cfg)
            tx = optax.adamw(learning_rate, weight_decay=weight_decay)
            params_sh, state_sh = _state_shardings(model, tx, mesh, rules)
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
                state, data, rng).compile()
            _COMPILED[key] = {"compiled": compiled, "state": state, "data": data,
                              "compile_s": time.perf_counter() - t0}
        holder = _COMPILED[key]
        compiled, data = holder["compiled"], holder["data"]

        def run():
            holder["state"], metrics = compiled(holder["state"], data, rng)
            jax.block_until_ready(metrics["loss"])

        step_s, times = median_time(run, s.warmup, s.repeat)
        holder["state"], metrics = compiled(holder["state"], data, rng)
    loss = float(jax.device_get(metrics["loss"]))
    params = holder["state"].params
    tokens = batch * tokens_per_row(lengths)
    flops_per_token = train_flops_per_token(cfg, params, lengths)
    peak = peak_flops_per_device() * mesh.size
    tps = tokens / step_s
    stats = device_memory_stats() or {}
    return {"params": count_params(params), "batch": batch, "lengths": dict(lengths),
            "devices": mesh.size, "loss_chunk_size": loss_chunk_size,
            "tokens_per_step": tokens, "step_time_s": step_s,
            "step_times_s": times, "tokens_per_s": tps, "flops_per_token": flops_per_token,
            "assumed_peak_flops": peak, "mfu": tps * flops_per_token / peak,
            "compile_s": holder["compile_s"], "loss": loss, **xla_memory_mib(compiled),
            "host_peak_rss_mib": rss_mib(),
            "device_peak_bytes": stats.get("peak_bytes_in_use"),
            "device_bytes_in_use": stats.get("bytes_in_use")}


def _state_shardings(model, tx, mesh, rules) -> tuple[Any, Any]:
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
