"""`flan-jax bench gpu [--quick]`: the accelerator suite's sections, TensorFlow-free.

For a bare GPU machine (jax, flax, optax, orbax, torch, transformers; gin-config from the wheel
in bench/wheels/; no network). `flan_jax.bench.gpu_run` starts each section in a process of
its own (`python -m flan_jax.bench.gpu SECTION ...`) with its share of the time budget; a
section writes its rows (and one step's profile) to a JSON file after each figure, so a section
that runs out of time or memory still leaves what it measured. Each figure is warmed up and the
median of repeats:

- decoder_1b: the ~1B Llama-layout decoder (models/decoder_1b.gin + hardware/gpu.gin) at 2048,
  bfloat16 compute, fsdp over every device: the hardware file's remat policy and attention
  path first, then every remat policy the config knows at that path and every other attention
  path at that policy, then the fastest with the chunked loss; the best is profiled.
- torch: the same model, batch and length in transformers on one GPU (bfloat16 autocast, SDPA,
  fused AdamW, torch.compile when it works). No JAX in that process.
- t5_small, t5_base: T5 v1.1 at 512/128, packed, with the hardware file's settings (remat
  `full` if those run out of memory): sequences (packed rows) and examples per second.
- inference: rank classification (options/s) and KV-cache decoding (tokens/s) on the 1B.

`--quick` shrinks every shape so the same code path runs on a CPU in a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, Callable

from flan_jax.bench.common import Settings, ensure_gin, init_params, say, tokens_per_row

DECODER_1B = "models/decoder_1b.gin"
T5_MODELS = {"t5_small": "models/t5_small.gin", "t5_base": "models/t5_base.gin"}
HARDWARE = "hardware/gpu.gin"
FSDP = {"data": 1, "fsdp": -1, "tensor": 1}
# memory-safe first where the config does not list its policies; a later OOM still leaves rows
REMAT_POLICIES = ("full", "dots_no_batch", "dots", "none")
SECTIONS = ("decoder_1b", "torch", "t5_small", "t5_base", "inference")


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Per-device batch sizes and lengths of one run."""

    decoder_batch: int  # rows of `decoder_length` per device
    decoder_length: int
    t5_batch: dict  # model name -> rows per device
    t5_lengths: dict
    t5_examples_per_row: int
    rank: dict
    decode: dict
    loss_chunk_size: int  # positions per chunk of the chunked loss (tried on the best variant)


FULL = Shapes(decoder_batch=4, decoder_length=2048,
              t5_batch={"t5_small": 128, "t5_base": 64},
              t5_lengths={"inputs": 512, "targets": 128}, t5_examples_per_row=4,
              rank=dict(n_inputs=64, input_len=256, options=4, batch_size=16),
              decode=dict(batch=32, prompt_len=256, new=128), loss_chunk_size=512)
QUICK = Shapes(decoder_batch=2, decoder_length=32, t5_batch={"t5_small": 2, "t5_base": 2},
               t5_lengths={"inputs": 16, "targets": 8}, t5_examples_per_row=2,
               rank=dict(n_inputs=2, input_len=16, options=2, batch_size=2),
               decode=dict(batch=2, prompt_len=8, new=4), loss_chunk_size=8)
# --quick: the same families and code path at toy sizes
TINY = dict(emb_dim=64, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=128, vocab_size=512,
            num_decoder_layers=2)
TINY_T5 = dict(TINY, num_kv_heads=None, num_encoder_layers=2)


def load_config(model_gin: str, bindings: list[str], quick: bool):
    """The model's TransformerConfig with hardware/gpu.gin (its attention path, remat policy)
    and the bindings; bfloat16 compute over float32 weights, no dropout; toy-sized if quick."""
    import gin

    import flan_jax.accounting  # noqa: F401  (--peak_flops binds its override)
    from flan_jax.config import parse_gin
    from flan_jax.models import TransformerConfig

    parse_gin([model_gin, HARDWARE], bindings, finalize=False)
    with gin.unlock_config():
        cfg = TransformerConfig()
    if quick:
        cfg = dataclasses.replace(cfg, **(TINY if cfg.family == "decoder_only" else TINY_T5))
    return dataclasses.replace(cfg, dtype="bfloat16", param_dtype="float32", dropout_rate=0.0)


def _usable_impls(impls: tuple, platform: str) -> tuple:
    """The attention paths this platform runs (cuDNN on GPUs, splash on TPUs)."""
    only = {"cudnn": "gpu", "splash": "tpu"}
    return tuple(i for i in impls if only.get(i, platform) == platform)


def decoder_variants(cfg, platform: str, quick: bool) -> list[dict]:
    """The hardware file's (remat, attention) first; then every other remat policy at that
    attention path (leanest saving first), then every other attention path at that policy."""
    from flan_jax.models import config as model_config

    fields = {f.name for f in dataclasses.fields(cfg)}
    policies = tuple(getattr(model_config, "REMAT_POLICIES", REMAT_POLICIES))
    impls = _usable_impls(tuple(getattr(model_config, "ATTENTION_IMPLS",
                                        (getattr(cfg, "attention_impl", "xla"),))), platform)
    impl = getattr(cfg, "attention_impl", None)
    if impl is not None and impl not in impls:
        impl = "xla" if "xla" in impls else impls[0]
    policy = cfg.remat_policy
    if quick:
        policies = tuple(p for p in ("full", "none") if p in policies)
    base = {"remat_policy": policy, **({"attention_impl": impl} if impl else {}),
            **({"scan_layers": True} if "scan_layers" in fields else {})}
    order = sorted(policies, key=lambda p: (p not in ("full", "minimal", "minimal_except_gate",
                                                      "dots_no_batch"), policies.index(p)))
    out = [base] + [{**base, "remat_policy": p} for p in order if p != policy]
    if impl is not None and not quick:
        out += [{**base, "attention_impl": i} for i in impls if i != impl]
    return out


def _is_oom(e: Exception) -> bool:
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def _guarded(fn: Callable[[], dict], what: str) -> dict:
    """fn()'s row, or a row that says why there is none (out of memory, or an error)."""
    try:
        return {"status": "ok", **fn()}
    except Exception as e:  # noqa: BLE001 - one failed variant must not end the run
        status = "out of memory" if _is_oom(e) else f"error: {type(e).__name__}: {e}"[:300]
        say(f"{what}: {status}")
        return {"status": status}


class Budget:
    """Seconds left of a section's share; `fits(cost)` when `cost` more seconds still fit."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def fits(self, cost: float) -> bool:
        return self.left() > cost


class Section:
    """A section's output: rows and profiles, rewritten to `out` after every change."""

    def __init__(self, out: pathlib.Path, machine: dict):
        self.out, self.rows, self.profiles, self.machine = out, [], [], machine

    def add(self, row: dict) -> dict:
        self.rows.append(row)
        self.save()
        return row

    def save(self) -> None:
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps({"machine": self.machine, "rows": self.rows,
                                   "profiles": self.profiles}, default=float))
        tmp.replace(self.out)


def profile_into(sec: Section, title: str, step, budget: Budget, cost: float) -> None:
    """The 15 costliest ops of one traced step of a prepared step, when `cost` s still fit."""
    from flan_jax.bench.profile import profile_step

    if not budget.fits(cost):
        say(f"{title}: no profile (time budget)")
        return
    r = _guarded(lambda: profile_step(step.run, step.holder["compiled"].as_text()),
                 f"profile {title}")
    if r.pop("status") == "ok":
        sec.profiles.append([title, r])
        sec.save()


def bench_decoder_1b(sec: Section, cfg, shapes: Shapes, s: Settings, budget: Budget) -> None:
    """The 1B decoder's train step for each variant while its cost still fits the budget;
    then the fastest with the chunked loss, and a profile of the fastest."""
    import jax

    from flan_jax.bench.train import prepare_train_step, train_step_row
    from flan_jax.bench.common import median_time

    batch = shapes.decoder_batch * jax.device_count()
    lengths = {"inputs": shapes.decoder_length // 2, "targets": shapes.decoder_length // 2}
    cost = 0.0 if s.quick else 20.0  # seconds a variant takes (compile + steps), then measured

    def measure(variant: dict, chunk: int = 0) -> dict:
        nonlocal cost
        row = {"section": "decoder_1b", **variant, "batch": batch,
               "length": shapes.decoder_length}
        if not budget.fits(cost):
            return sec.add({**row, "loss_chunk_size": chunk, "status": "skipped (time budget)"})
        t0 = time.perf_counter()

        def run():
            step = prepare_train_step(dataclasses.replace(cfg, **variant), batch, lengths,
                                      mesh_axes=FSDP, loss_chunk_size=chunk)
            return train_step_row(step, *median_time(step.run, s.warmup, s.repeat))

        r = _guarded(run, f"decoder_1b {variant} loss chunk {chunk}")
        cost = max(cost, time.perf_counter() - t0)
        if r["status"] == "ok":
            say(f"decoder_1b {variant} chunk {chunk}: {r['tokens_per_s']:,.0f} tok/s, MFU "
                f"{_pct(r['mfu'])} (causal halved {_pct(r['mfu_causal_halved'])}), step "
                f"{1e3 * r['step_time_s']:.0f} ms")
        return sec.add({**row, **r})

    variants = decoder_variants(cfg, jax.devices()[0].platform, s.quick)
    for variant in variants:
        measure(variant)
    ok = [r for r in sec.rows if r["status"] == "ok"]
    if not ok:
        return
    best = max(ok, key=lambda r: r["tokens_per_s"])
    variant = {k: best[k] for k in variants[0]}
    measure(variant, shapes.loss_chunk_size)
    best = max((r for r in sec.rows if r["status"] == "ok"), key=lambda r: r["tokens_per_s"])
    best["best"] = True
    sec.save()
    step = prepare_train_step(dataclasses.replace(cfg, **variant), batch, lengths,
                              mesh_axes=FSDP, loss_chunk_size=best.get("loss_chunk_size", 0))
    profile_into(sec, f"decoder_1b {variant} loss chunk {best.get('loss_chunk_size', 0)}",
                 step, budget, cost)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def measure_torch_train(cfg, batch: int, length: int, s: Settings, compile_model: bool) -> dict:
    """Tokens/s of the Hugging Face twin on one device: bfloat16 autocast over float32
    weights (as the JAX side computes), SDPA attention, AdamW (fused on a GPU)."""
    import numpy as np
    import torch

    from flan_jax.bench.common import median_time, synthetic_batch
    from flan_jax.bench.compare import torch_inputs, torch_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = torch_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01,
                            fused=device == "cuda")
    lengths = {"inputs": length // 2, "targets": length // 2}
    kwargs = torch_inputs(cfg, synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size),
                          device)
    forward, compiled = model, "off"
    if compile_model:
        try:
            forward, compiled = torch.compile(model), "on"
        except Exception as e:  # noqa: BLE001 - fall back to eager, and say so
            compiled = f"failed: {type(e).__name__}"
    box: dict[str, Any] = {}

    def step(fwd):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = fwd(**kwargs).loss
        loss.backward()
        opt.step()
        box["loss"] = loss.item()  # synchronises the device

    try:
        step(forward)  # compilation happens here
    except Exception as e:  # noqa: BLE001
        compiled, forward = f"failed: {type(e).__name__}: {e}"[:200], model
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_s, times = median_time(lambda: step(forward), s.warmup, s.repeat)
    tokens = batch * tokens_per_row(lengths)
    return {"params": sum(p.numel() for p in model.parameters()), "device": device,
            "batch": batch, "length": length, "step_time_s": step_s, "step_times_s": times,
            "tokens_per_s": tokens / step_s, "loss": box["loss"], "torch_compile": compiled,
            "attention": getattr(model.config, "_attn_implementation", None),
            "torch": torch.__version__,
            "peak_memory_mib": torch.cuda.max_memory_allocated() / 2 ** 20
            if device == "cuda" else None, "finite": bool(np.isfinite(box["loss"]))}


def bench_torch(sec: Section, cfg, shapes: Shapes, s: Settings, budget: Budget) -> None:
    r = _guarded(lambda: measure_torch_train(cfg, shapes.decoder_batch, shapes.decoder_length,
                                             s, compile_model=not s.quick), "torch")
    if r["status"] == "ok":
        say(f"torch: {r['tokens_per_s']:,.0f} tok/s (compile {r['torch_compile']})")
    sec.add({"section": "torch", **r})


def bench_t5(sec: Section, name: str, cfg, shapes: Shapes, s: Settings,
             budget: Budget) -> None:
    """One T5 size at the hardware file's settings (remat `full` again if they run out of
    memory), then a profile of its step."""
    import jax

    from flan_jax.bench.common import median_time
    from flan_jax.bench.train import prepare_train_step, train_step_row

    batch = shapes.t5_batch[name] * jax.device_count()
    e = shapes.t5_examples_per_row
    knobs = {"scan_layers": True} if "scan_layers" in {f.name for f in
                                                       dataclasses.fields(cfg)} else {}
    step = None
    for remat in dict.fromkeys((cfg.remat_policy, "full")):
        variant = {**knobs, "remat_policy": remat}

        def run():
            nonlocal step
            step = prepare_train_step(dataclasses.replace(cfg, **variant), batch,
                                      dict(shapes.t5_lengths), mesh_axes=FSDP,
                                      examples_per_row=e)
            r = train_step_row(step, *median_time(step.run, s.warmup, s.repeat))
            r["sequences_per_s"] = batch / r["step_time_s"]
            r["examples_per_s"] = r["sequences_per_s"] * e
            return r

        t0 = time.perf_counter()
        r = sec.add({"section": "t5", "model": name, **variant, "batch": batch,
                     "lengths": shapes.t5_lengths, "examples_per_row": e,
                     **_guarded(run, f"{name} {variant}")})
        if r["status"] == "ok":
            say(f"{name} {variant}: {r['sequences_per_s']:,.0f} sequences/s, MFU "
                f"{_pct(r['mfu'])}")
            profile_into(sec, f"{name} {variant}", step, budget, time.perf_counter() - t0)
            return
        if not budget.fits(time.perf_counter() - t0):
            return


def bench_inference(sec: Section, cfg, shapes: Shapes, s: Settings, budget: Budget) -> None:
    """Rank classification and KV-cache decoding on one device, bfloat16 weights."""
    from flan_jax.bench.decode import measure_decode
    from flan_jax.bench.rank import measure_rank
    from flan_jax.models import build_model

    model = build_model(dataclasses.replace(cfg, param_dtype="bfloat16"))
    params = init_params(model)
    t0 = time.perf_counter()
    r = sec.add({"section": "rank", **_guarded(lambda: measure_rank(
        model, params, s, naive=False, **shapes.rank), "rank")})
    if r["status"] == "ok":
        say(f"rank: {r['shared_options_per_s']:,.0f} options/s")
    if not budget.fits(time.perf_counter() - t0):
        sec.add({"section": "decode", "status": "skipped (time budget)"})
        return
    r = sec.add({"section": "decode", **_guarded(lambda: measure_decode(
        model, params, s, beam=False, no_cache=False, **shapes.decode), "decode")})
    if r["status"] == "ok":
        say(f"decode: {r['greedy_cache_tokens_per_s']:,.0f} tokens/s (greedy, KV cache)")


def run_section(section: str, out: pathlib.Path, quick: bool, bindings: list[str],
                budget_s: float) -> None:
    """One section in this process (started by `gpu_run`), its rows written to `out`."""
    shapes, s = (QUICK if quick else FULL), Settings.make(quick)
    budget = Budget(budget_s)
    if section == "torch":  # no JAX in this process: the GPU is PyTorch's alone
        sec = Section(out, {})
        bench_torch(sec, load_config(DECODER_1B, bindings, quick), shapes, s, budget)
        return
    from flan_jax.bench.common import machine_info
    import jax

    sec = Section(out, machine_info(devices_used=jax.device_count()))
    sec.save()
    if section == "probe":
        return
    if section == "decoder_1b":
        bench_decoder_1b(sec, load_config(DECODER_1B, bindings, quick), shapes, s, budget)
    elif section in T5_MODELS:
        bench_t5(sec, section, load_config(T5_MODELS[section], bindings, quick), shapes, s,
                 budget)
    elif section == "inference":
        bench_inference(sec, load_config(DECODER_1B, bindings, quick), shapes, s, budget)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flan_jax.bench.gpu")
    p.add_argument("section", choices=SECTIONS + ("probe",))
    p.add_argument("--out", required=True)
    p.add_argument("--budget_s", type=float, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--gin", action="append", default=[], help="a gin binding")
    args = p.parse_args(argv)
    ensure_gin()
    run_section(args.section, pathlib.Path(args.out), args.quick, args.gin, args.budget_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
