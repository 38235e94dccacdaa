"""`flan-jax bench gpu [--quick]`: the accelerator suite in one run, TensorFlow-free.

For a bare GPU machine (jax, flax, optax, orbax, torch, transformers; gin-config from the wheel
in bench/wheels/; no network). Each figure is warmed up and the median of repeats:

- decoder_1b: the ~1B Llama-layout decoder (models/decoder_1b.gin) at sequence 2048, bfloat16
  compute, fsdp over every device, for each remat policy and attention implementation the
  config knows (scan_layers on when it knows that), then the fastest with the chunked loss:
  tokens/s, MFU, step time, memory; the best marked.
- torch: the same model, batch and length in transformers on one GPU (bfloat16 autocast, SDPA,
  fused AdamW, torch.compile when it works): tokens/s and the per-device ratio.
- t5: T5 v1.1 small and base at 512/128, packed: sequences (packed rows) and examples per second.
- rank, decode: rank classification (options/s) and KV-cache decoding (tokens/s) on the 1B.

`--quick` shrinks every shape so the same code path runs on a CPU in a test. A time budget
(`--budget_s`) skips what no longer fits and says so, so a run ends within the machine's limit;
results are rewritten after each section.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from flan_jax.bench.common import (Settings, init_params, model_configs, say, tokens_per_row)

DECODER_1B = "models/decoder_1b.gin"
T5_MODELS = ("models/t5_small.gin", "models/t5_base.gin")
FSDP = {"data": 1, "fsdp": -1, "tensor": 1}
REMAT_POLICIES = ("full", "dots", "none")  # memory-safe first: a later OOM still leaves a row


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


def config_knobs(cfg) -> dict[str, tuple]:
    """The settings this version of the model config can vary: attention implementations and
    scanned layers appear when `TransformerConfig` has the fields."""
    from flan_jax.models import config as model_config

    fields = {f.name for f in dataclasses.fields(cfg)}
    knobs: dict[str, tuple] = {"remat_policy": REMAT_POLICIES}
    if "attention_impl" in fields:
        knobs["attention_impl"] = tuple(getattr(model_config, "ATTENTION_IMPLS",
                                                (cfg.attention_impl,)))
    if "scan_layers" in fields:
        knobs["scan_layers"] = (True,)
    return knobs


def _variants(cfg, quick: bool) -> list[dict]:
    knobs = config_knobs(cfg)
    if quick:
        knobs["remat_policy"] = ("full", "none")
    variants = [{}]
    for name, values in knobs.items():
        variants = [{**v, name: x} for v in variants for x in values]
    return variants


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
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def bench_decoder_1b(cfg, shapes: Shapes, s: Settings, budget: Budget,
                     share: float) -> list[dict]:
    """The 1B decoder's train step for every variant, while `share` of the budget lasts."""
    import jax

    from flan_jax.bench.train import measure_train_step

    n_dev = jax.device_count()
    batch = shapes.decoder_batch * n_dev
    lengths = {"inputs": shapes.decoder_length // 2, "targets": shapes.decoder_length // 2}
    stop_at = budget.left() - share * budget.seconds
    rows = []
    for variant in _variants(cfg, s.quick):
        row = {"section": "decoder_1b", **variant, "batch": batch,
               "length": shapes.decoder_length}
        if budget.left() < stop_at:
            rows.append({**row, "status": "skipped (time budget)"})
            continue
        r = _guarded(lambda: measure_train_step(
            dataclasses.replace(cfg, **variant), batch, lengths, s, mesh_axes=FSDP),
            f"decoder_1b {variant}")
        rows.append({**row, **r})
        if r["status"] == "ok":
            say(f"decoder_1b {variant}: {r['tokens_per_s']:,.0f} tok/s, MFU "
                f"{100 * r['mfu']:.1f}%, step {1e3 * r['step_time_s']:.0f} ms")
    ok = [r for r in rows if r["status"] == "ok"]
    if ok and budget.left() >= stop_at:  # the fastest variant again, with the chunked loss
        best = max(ok, key=lambda r: r["tokens_per_s"])
        variant = {k: best[k] for k in config_knobs(cfg)}
        chunk = shapes.loss_chunk_size
        r = _guarded(lambda: measure_train_step(
            dataclasses.replace(cfg, **variant), batch, lengths, s, mesh_axes=FSDP,
            loss_chunk_size=chunk), f"decoder_1b {variant} loss chunk {chunk}")
        rows.append({"section": "decoder_1b", **variant, "batch": batch,
                     "length": shapes.decoder_length, **r})
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        max(ok, key=lambda r: r["tokens_per_s"])["best"] = True
    return rows


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
    forward = model
    compiled = "off"
    if compile_model:
        try:
            forward = torch.compile(model)
            compiled = "on"
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


def bench_torch(cfg, shapes: Shapes, s: Settings, jax_rows: list[dict]) -> list[dict]:
    import gc

    import jax

    from flan_jax.bench import train as bench_train

    bench_train._COMPILED.clear()  # give the JAX step's memory back before PyTorch runs
    gc.collect()
    r = _guarded(lambda: measure_torch_train(cfg, shapes.decoder_batch, shapes.decoder_length,
                                             s, compile_model=not s.quick), "torch")
    row = {"section": "torch", **r}
    best = [x for x in jax_rows if x.get("best")]
    if best and r["status"] == "ok":  # per device: PyTorch runs on one
        row["jax_tokens_per_s_per_device"] = best[0]["tokens_per_s"] / jax.device_count()
        row["ratio_jax_over_torch"] = row["jax_tokens_per_s_per_device"] / r["tokens_per_s"]
        say(f"torch: {r['tokens_per_s']:,.0f} tok/s (compile {r['torch_compile']}); jax/torch "
            f"{row['ratio_jax_over_torch']:.2f}x")
    return [row]


def bench_t5(configs: list[tuple[str, Any]], shapes: Shapes, s: Settings,
             budget: Budget) -> list[dict]:
    import jax

    from flan_jax.bench.train import measure_train_step

    rows = []
    for name, cfg in configs:
        batch = shapes.t5_batch[name] * jax.device_count()
        row = {"section": "t5", "model": name, "batch": batch, "lengths": shapes.t5_lengths,
               "examples_per_row": shapes.t5_examples_per_row}
        if budget.left() <= 0:
            rows.append({**row, "status": "skipped (time budget)"})
            continue
        knobs = {"scan_layers": True} if "scan_layers" in config_knobs(cfg) else {}
        r = _guarded(lambda: measure_train_step(
            dataclasses.replace(cfg, **knobs), batch, dict(shapes.t5_lengths), s,
            mesh_axes=FSDP, examples_per_row=shapes.t5_examples_per_row), name)
        if r["status"] == "ok":
            r["sequences_per_s"] = batch / r["step_time_s"]
            r["examples_per_s"] = r["sequences_per_s"] * shapes.t5_examples_per_row
            say(f"{name}: {r['sequences_per_s']:,.0f} sequences/s, MFU {100 * r['mfu']:.1f}%")
        rows.append({**row, **r})
    return rows


def bench_inference(cfg, shapes: Shapes, s: Settings, budget: Budget) -> list[dict]:
    """Rank classification and KV-cache decoding on one device, bfloat16 weights."""
    from flan_jax.bench import train as bench_train
    from flan_jax.bench.decode import measure_decode
    from flan_jax.bench.rank import measure_rank
    from flan_jax.models import build_model

    bench_train._COMPILED.clear()
    rows = []
    if budget.left() <= 0:
        return [{"section": w, "status": "skipped (time budget)"} for w in ("rank", "decode")]
    model = build_model(dataclasses.replace(cfg, param_dtype="bfloat16"))
    params = init_params(model)
    r = _guarded(lambda: measure_rank(model, params, s, naive=False, **shapes.rank), "rank")
    rows.append({"section": "rank", **r})
    if r["status"] == "ok":
        say(f"rank: {r['shared_options_per_s']:,.0f} options/s")
    if budget.left() <= 0:
        return rows + [{"section": "decode", "status": "skipped (time budget)"}]
    r = _guarded(lambda: measure_decode(model, params, s, beam=False, no_cache=False,
                                        **shapes.decode), "decode")
    rows.append({"section": "decode", **r})
    if r["status"] == "ok":
        say(f"decode: {r['greedy_cache_tokens_per_s']:,.0f} tokens/s (greedy, KV cache)")
    return rows


SECTIONS = ("decoder_1b", "torch", "t5", "inference")


def run(quick: bool, bindings: list[str], budget_s: float,
        write: Callable[[list[dict]], None], sections: tuple = SECTIONS) -> list[dict]:
    """The `sections` in turn (all by default); `write(rows so far)` after each."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        from flan_jax.config import GinConfigError

        raise GinConfigError(f"--sections: {', '.join(sorted(unknown))} unknown; choose from "
                             f"{', '.join(SECTIONS)}.")
    s = Settings.make(quick)
    shapes = QUICK if quick else FULL
    budget = Budget(budget_s)
    (decoder,) = model_configs([DECODER_1B], bindings)
    t5 = list(zip(("t5_small", "t5_base"), model_configs(list(T5_MODELS), bindings)))
    if quick:
        decoder = dataclasses.replace(decoder, **TINY)
        t5 = [(n, dataclasses.replace(c, **TINY_T5)) for n, c in t5]
    decoder = dataclasses.replace(decoder, dtype="bfloat16", param_dtype="float32",
                                  dropout_rate=0.0)
    t5 = [(n, dataclasses.replace(c, dtype="bfloat16", param_dtype="float32", dropout_rate=0.0))
          for n, c in t5]
    rows: list[dict] = []
    if "decoder_1b" in sections:
        rows += bench_decoder_1b(decoder, shapes, s, budget, share=0.45)
        write(rows)
    if "torch" in sections:
        rows += bench_torch(decoder, shapes, s, rows)
        write(rows)
    if "t5" in sections:
        rows += bench_t5(t5, shapes, s, budget)
        write(rows)
    if "inference" in sections:
        rows += bench_inference(decoder, shapes, s, budget)
        write(rows)
    return rows
