"""`bench compile`: seconds to trace, lower and compile the train step (AdamW, as `bench train`
builds it) of a decoder-only model of 2 and 24 layers (`--quick`: 1 and 4), with its layers
unrolled and stacked under `nn.scan` (`TransformerConfig.scan_layers`).

The width is the first decoder-only model's (decoder_tiny by default), with the byte
vocabulary, in float32, on one device. Nothing is allocated: the step is lowered from the
shapes and shardings of its state and batch. Every measurement builds a new step function and
a new `jax.jit`, so no tracing or compilation is reused (the persistent compilation cache is
switched off while timing).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from flan_jax.bench.common import (BYTE_VOCAB, Settings, f32, model_configs, say,
                                   synthetic_batch)

FULL_LAYERS, QUICK_LAYERS = (2, 24), (1, 4)


def lower_and_compile(cfg, batch: int, lengths: dict[str, int]) -> dict:
    """(lower seconds, compile seconds) of a fresh train step for `cfg` on one device."""
    import flax.linen as nn
    import jax
    import optax

    from flan_jax import partitioning
    from flan_jax.bench.train import ONE_DEVICE, state_shardings
    from flan_jax.models import abstract_params, build_model
    from flan_jax.train_step import TrainState, make_train_step

    mesh = partitioning.make_mesh(axes=ONE_DEVICE, num_devices=1)
    rules = partitioning.DEFAULT_RULES
    model = build_model(cfg)
    tx = optax.adamw(1e-4, weight_decay=0.01)
    data = synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size)
    spec = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    with jax.set_mesh(mesh):
        _, state_sh = state_shardings(model, tx, mesh, rules)
        params = nn.meta.unbox(abstract_params(model))
        state = TrainState(jax.ShapeDtypeStruct((), jax.numpy.int32), params,
                           jax.eval_shape(tx.init, params))
        batch_sh = partitioning.batch_sharding(mesh, rules)
        repl = partitioning.replicated(mesh)
        step_fn = make_train_step(model, tx, rules, z_loss=0.0, loss_normalization="tokens",
                                  accumulate_steps=1, dropout=False)
        jitted = jax.jit(step_fn, in_shardings=(state_sh, batch_sh, repl),
                         out_shardings=(state_sh, repl), donate_argnums=(0,))
        t0 = time.perf_counter()
        lowered = jitted.lower(state, jax.tree_util.tree_map(spec, data),
                               jax.random.PRNGKey(1))
        t1 = time.perf_counter()
        lowered.compile()
        t2 = time.perf_counter()
    return {"lower_s": t1 - t0, "compile_s": t2 - t1}


def measure_compile(cfg, s: Settings, batch: int, lengths: dict[str, int]) -> dict:
    """Median lower and compile seconds over `s.repeat` fresh builds (no warmup: the first
    compile is the one a run pays)."""
    import jax

    from flan_jax.models import abstract_params, build_model, count_params

    cache = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        runs = [lower_and_compile(cfg, batch, lengths) for _ in range(max(1, s.repeat))]
    finally:
        jax.config.update("jax_enable_compilation_cache", cache)
    lower = statistics.median(r["lower_s"] for r in runs)
    comp = statistics.median(r["compile_s"] for r in runs)
    return {"layers": cfg.num_decoder_layers, "scan_layers": cfg.scan_layers,
            "params": count_params(abstract_params(build_model(cfg))), "batch": batch,
            "lengths": dict(lengths), "lower_s": lower, "compile_s": comp,
            "total_s": lower + comp, "compile_times_s": [r["compile_s"] for r in runs]}


def _decoder(models: list[tuple[str, Any]]) -> tuple[str, Any]:
    for name, cfg in models:
        if cfg.family == "decoder_only":
            return name, cfg
    return "decoder_tiny", model_configs(["models/decoder_tiny.gin"])[0]


def bench_compile(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    name, cfg = _decoder(models)
    batch, lengths = (2, {"inputs": 16, "targets": 8}) if s.quick else \
        (8, {"inputs": 128, "targets": 32})
    # compiling is slow and barely noisy: fewer repeats than the throughput benchmarks
    s = dataclasses.replace(s, repeat=1 if s.quick else 2)
    rows = []
    for layers in (QUICK_LAYERS if s.quick else FULL_LAYERS):
        for scan in (False, True):
            c = f32(cfg, vocab_size=BYTE_VOCAB, num_decoder_layers=layers, scan_layers=scan,
                    remat_policy="none")
            r = measure_compile(c, s, batch, lengths)
            rows.append({"model": name, "family": cfg.family, **r})
            say(f"compile {name} {layers} layers scan={scan}: lower {r['lower_s']:.1f} s, "
                f"compile {r['compile_s']:.1f} s")
    return rows
