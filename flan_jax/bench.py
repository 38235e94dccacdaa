"""`flan-jax bench {train,compare,pipeline,rank,decode,all} [--quick] [--gin_file=...]`.

Throughput, MFU and memory on this machine, written to `bench/results/<machine>.json` (every
number, merged with earlier runs of other benchmarks on the same machine) and `<machine>.md`
(the table README shows). Each measurement is warmed up (compilation excluded), repeated, and
reported as the median.

- train:    the jitted `make_train_step` on synthetic token batches (float32, one device, AdamW),
            decoder-only and encoder-decoder, with and without full remat: tokens/s, step time,
            estimated MFU, host peak RSS and XLA's memory analysis of the step.
- compare:  the same architecture, batch and length trained by Hugging Face transformers on
            PyTorch (LlamaForCausalLM / T5ForConditionalGeneration, torch.optim.AdamW).
- pipeline: packed tokens/s from the synthetic suite through `BatchIterator`, and from a few
            FLAN 2021 tasks under `tfds.testing.mock_data`, next to what the train step consumes.
- rank:     options/s, `rank_classify` (one pass per input) vs `rank_classify_naive`.
- decode:   generated tokens/s, `decode_tokens` (KV cache) vs `greedy_no_cache`.

Models come from gin (`--gin_file=models/decoder_tiny.gin --gin_file=models/t5_tiny.gin` by
default; several files give several models, one per family). The CPU peak FLOP/s behind MFU is
the host's measured best float32 matmul FLOP/s (`measured_cpu_matmul_flops`; override with
`--gin.peak_flops_per_device.cpu=...`).
"""

from __future__ import annotations

import os
import sys

# Benchmarks run on one device. `make` exports 8 simulated CPU devices for the tests; on a CPU
# they only split the same cores, so drop the flag when JAX is not imported yet.
if "jax" not in sys.modules:
    _flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
              if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join(_flags)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

WHATS = ("train", "compare", "pipeline", "rank", "decode")
DEFAULT_MODELS = ("models/decoder_tiny.gin", "models/t5_tiny.gin")
SMALL_MODELS = ("models/decoder_small.gin", "models/t5_small.gin")
RESULTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "bench" / "results"
BYTE_VOCAB = 259


# --- machine and timing ---------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def machine_info() -> dict:
    import jax

    dev = jax.devices()[0]
    cores, cpu = _cpu_count(), _cpu_model()
    if dev.platform == "cpu":
        slug = re.sub(r"\(r\)|\(tm\)|processor|cpu", "", cpu.lower())
        slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
        machine_id = f"cpu-{cores}core-{slug}"
    else:
        machine_id = re.sub(r"[^a-z0-9]+", "-", dev.device_kind.lower()).strip("-") + \
            f"-x{jax.device_count()}"
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"id": machine_id, "platform": dev.platform, "device_kind": dev.device_kind,
            "devices_used": 1, "cpu": cpu, "cores": cores, "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "jax": jax.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _median_time(fn: Callable[[], Any], warmup: int, repeat: int) -> tuple[float, list[float]]:
    """Median seconds of `fn()` (which must block until its work is done) after warmup calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device_bytes_in_use() -> int | None:
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    return int(stats["bytes_in_use"]) if stats and "bytes_in_use" in stats else None


@dataclasses.dataclass
class Settings:
    quick: bool
    warmup: int
    repeat: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        return cls(quick, 1, 1) if quick else cls(quick, 2, 5)


# --- models from gin --------------------------------------------------------------------------

def model_configs(gin_files: list[str], bindings: list[str]) -> list:
    """One TransformerConfig per model gin file (each parsed on its own), float32 on CPU."""
    import gin

    from flan_jax.config import parse_gin
    from flan_jax.models import TransformerConfig

    configs = []
    for f in gin_files:
        parse_gin([f], bindings, finalize=False)
        with gin.unlock_config():
            cfg = TransformerConfig()
        configs.append(cfg)
    return configs  # the last parse stays active: other bindings (peak FLOP/s) apply too


def _f32(cfg, **overrides):
    return dataclasses.replace(cfg, dtype="float32", param_dtype="float32", dropout_rate=0.0,
                               **overrides)


def _name(cfg, gin_file: str) -> str:
    return pathlib.Path(gin_file).stem


def _init_params(model, seed: int = 0):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    dummy = jnp.ones((1, 8), jnp.int32)
    args = (dummy, dummy) if model.config.family == "encoder_decoder" else (dummy,)
    return jax.jit(lambda r: nn.meta.unbox(model.init(r, *args)["params"]))(
        jax.random.PRNGKey(seed))


def synthetic_batch(family: str, batch: int, lengths: dict[str, int], vocab: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Random tokens in the train step's (unpacked, unpadded) layout."""
    rng = np.random.default_rng(seed)
    tok = lambda n: rng.integers(2, vocab, (batch, n), dtype=np.int32)  # noqa: E731
    if family == "encoder_decoder":
        tgt = tok(lengths["targets"])
        dec_in = np.zeros_like(tgt)
        dec_in[:, 1:] = tgt[:, :-1]
        return {"encoder_input_tokens": tok(lengths["inputs"]), "decoder_input_tokens": dec_in,
                "decoder_target_tokens": tgt, "decoder_loss_weights": np.ones_like(tgt)}
    seq = tok(lengths["inputs"] + lengths["targets"] + 1)
    return {"decoder_input_tokens": seq[:, :-1], "decoder_target_tokens": seq[:, 1:],
            "decoder_loss_weights": np.ones_like(seq[:, 1:])}


def _tokens_per_row(family: str, lengths: dict[str, int]) -> int:
    return lengths["inputs"] + lengths["targets"]


# --- train ------------------------------------------------------------------------------------

_COMPILED: dict = {}  # (config, batch, lengths, optimizer) -> compiled step, state, data


def measure_train_step(cfg, batch: int, lengths: dict[str, int], s: Settings,
                       learning_rate: float = 1e-4, weight_decay: float = 0.01) -> dict:
    """Median step time of the jitted train step (AdamW, no clipping, no z-loss). A shape
    measured before is timed again without recompiling (`compile_s` is then the first one)."""
    import jax
    import optax

    from flan_jax import partitioning
    from flan_jax.models import build_model, count_params
    from flan_jax.train import (TrainState, make_train_step, peak_flops_per_device,
                                train_flops_per_token)

    key = (cfg, batch, tuple(sorted(lengths.items())), learning_rate, weight_decay)
    mesh = partitioning.make_mesh(axes={"data": 1, "fsdp": 1, "tensor": 1}, num_devices=1)
    rng = jax.random.PRNGKey(1)
    with jax.set_mesh(mesh):
        if key not in _COMPILED:
            model = build_model(cfg)
            tx = optax.adamw(learning_rate, weight_decay=weight_decay)
            params = _init_params(model)
            state = TrainState(jax.numpy.zeros((), jax.numpy.int32), params,
                               jax.jit(tx.init)(params))
            data = jax.device_put(synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size))
            step_fn = make_train_step(model, tx, partitioning.DEFAULT_RULES, z_loss=0.0,
                                      loss_normalization="tokens", accumulate_steps=1,
                                      dropout=False)
            t0 = time.perf_counter()
            compiled = jax.jit(step_fn, donate_argnums=(0,)).lower(state, data, rng).compile()
            _COMPILED[key] = {"compiled": compiled, "state": state, "data": data,
                              "compile_s": time.perf_counter() - t0}
        holder = _COMPILED[key]
        compiled, data, compile_s = holder["compiled"], holder["data"], holder["compile_s"]

        def run():
            holder["state"], metrics = compiled(holder["state"], data, rng)
            jax.block_until_ready(metrics["loss"])

        step_s, times = _median_time(run, s.warmup, s.repeat)
    holder["state"], metrics = compiled(holder["state"], data, rng)
    loss = float(jax.device_get(metrics["loss"]))
    params = holder["state"].params
    tokens = batch * _tokens_per_row(cfg.family, lengths)
    n_params = count_params(params)
    flops_per_token = train_flops_per_token(cfg, params, lengths)
    peak = peak_flops_per_device()
    tps = tokens / step_s
    mem = compiled.memory_analysis()
    xla = None
    if mem is not None:
        xla = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
               - mem.alias_size_in_bytes) / 2 ** 20
    return {"params": n_params, "batch": batch, "lengths": dict(lengths),
            "tokens_per_step": tokens, "step_time_s": step_s, "step_times_s": times,
            "tokens_per_s": tps, "flops_per_token": flops_per_token,
            "assumed_peak_flops": peak, "mfu": tps * flops_per_token / peak,
            "compile_s": compile_s, "loss": loss, "xla_step_memory_mib": xla,
            "xla_temp_mib": None if mem is None else mem.temp_size_in_bytes / 2 ** 20,
            "host_peak_rss_mib": _rss_mib(), "device_bytes_in_use": _device_bytes_in_use()}


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
            r = measure_train_step(_f32(cfg, remat_policy=remat), batch, lengths, s)
            rows.append({"model": name, "family": cfg.family, "remat": remat, **r})
            _say(f"train {name} remat={remat}: {r['tokens_per_s']:,.0f} tok/s, "
                 f"step {1e3 * r['step_time_s']:.1f} ms, MFU {100 * r['mfu']:.2f}%")
    return rows


# --- compare with PyTorch -------------------------------------------------------------------

def torch_model(cfg):
    """The Hugging Face model with the same dimensions as a flan-jax config."""
    import transformers

    if cfg.family == "decoder_only":
        hf = transformers.LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.emb_dim, intermediate_size=cfg.mlp_dim,
            num_hidden_layers=cfg.num_decoder_layers, num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.kv_heads, head_dim=cfg.head_dim, rms_norm_eps=cfg.norm_eps,
            rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
            hidden_act="silu", attention_dropout=0.0, max_position_embeddings=4096)
        return transformers.LlamaForCausalLM(hf)
    hf = transformers.T5Config(
        vocab_size=cfg.vocab_size, d_model=cfg.emb_dim, d_kv=cfg.head_dim, d_ff=cfg.mlp_dim,
        num_layers=cfg.num_encoder_layers, num_decoder_layers=cfg.num_decoder_layers,
        num_heads=cfg.num_heads, feed_forward_proj="gated-gelu" if cfg.gated_mlp else "relu",
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        dropout_rate=0.0, layer_norm_epsilon=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings, decoder_start_token_id=0, pad_token_id=0)
    model = transformers.T5ForConditionalGeneration(hf)
    if not cfg.tie_embeddings:  # transformers 5 always ties T5's head to the embedding: untie
        import torch

        model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    return model


def measure_torch_step(cfg, batch: int, lengths: dict[str, int], s: Settings,
                       learning_rate: float = 1e-4, weight_decay: float = 0.01) -> dict:
    import torch

    torch.manual_seed(0)
    model = torch_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    data = synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size)
    if cfg.family == "encoder_decoder":
        kwargs = {"input_ids": torch.from_numpy(data["encoder_input_tokens"]).long(),
                  "labels": torch.from_numpy(data["decoder_target_tokens"]).long()}
    else:  # HF shifts the labels itself: give it the whole sequence
        seq = np.concatenate([data["decoder_input_tokens"],
                              data["decoder_target_tokens"][:, -1:]], 1)
        ids = torch.from_numpy(seq[:, :-1].copy()).long()
        kwargs = {"input_ids": ids, "labels": ids}
    box = {}

    def run():
        opt.zero_grad(set_to_none=True)
        loss = model(**kwargs).loss
        loss.backward()
        opt.step()
        box["loss"] = loss.item()

    step_s, times = _median_time(run, s.warmup, s.repeat)
    tokens = batch * _tokens_per_row(cfg.family, lengths)
    return {"params": sum(p.numel() for p in model.parameters()), "step_time_s": step_s,
            "step_times_s": times, "tokens_per_s": tokens / step_s, "loss": box["loss"],
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "attention": getattr(model.config, "_attn_implementation", None)}


def bench_compare(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import torch
    import transformers

    torch.set_num_threads(_cpu_count())
    rows = []
    for name, cfg in models:
        if "small" in name and not s.quick:
            continue  # the target is the tiny config; small is covered by `train`
        batch, lengths = (2, {"inputs": 16, "targets": 8}) if s.quick else \
            (16, {"inputs": 128, "targets": 32})
        cfg = _f32(cfg)
        jx = measure_train_step(cfg, batch, lengths, s)
        pt = measure_torch_step(cfg, batch, lengths, s)
        rows.append({"model": name, "family": cfg.family, "batch": batch,
                     "lengths": dict(lengths), "optimizer": "AdamW(lr=1e-4, wd=0.01)",
                     "jax_params": jx["params"], "torch_params": pt["params"],
                     "jax_tokens_per_s": jx["tokens_per_s"],
                     "torch_tokens_per_s": pt["tokens_per_s"],
                     "jax_step_time_s": jx["step_time_s"], "torch_step_time_s": pt["step_time_s"],
                     "ratio_jax_over_torch": jx["tokens_per_s"] / pt["tokens_per_s"],
                     "torch_threads": pt["threads"], "torch_version": pt["torch"],
                     "transformers_version": transformers.__version__,
                     "torch_attention": pt["attention"]})
        _say(f"compare {name}: jax {jx['tokens_per_s']:,.0f} tok/s vs torch "
             f"{pt['tokens_per_s']:,.0f} tok/s ({rows[-1]['ratio_jax_over_torch']:.2f}x)")
    return rows


# --- input pipeline ---------------------------------------------------------------------------

def _count_packed(batch: dict) -> tuple[int, int]:
    """(slots, non-padding tokens) of a packed numpy batch."""
    slots = nonpad = 0
    for key in ("encoder_input_tokens", "decoder_target_tokens"):
        if key in batch:
            slots += batch[key].size
            nonpad += int((batch[key] > 0).sum())
    return slots, nonpad


def _time_batches(next_batch: Callable[[], dict], n: int, warmup: int) -> dict:
    for _ in range(warmup):
        next_batch()
    slots = nonpad = 0
    t0 = time.perf_counter()
    for _ in range(n):
        a, b = _count_packed(next_batch())
        slots, nonpad = slots + a, nonpad + b
    dt = time.perf_counter() - t0
    return {"batches": n, "seconds": dt, "tokens_per_s": slots / dt,
            "nonpad_tokens_per_s": nonpad / dt, "fill": nonpad / max(slots, 1)}


FLAN_MOCK_TASKS = ("flan2021_rte_train", "flan2021_anli_r1_train", "flan2021_mnli_matched_train",
                   "flan2021_arc_easy_train", "flan2021_squad_v1_train")


def _flan_mock_iterator(family: str, lengths: dict, batch: int, num_examples: int,
                        quick: bool):
    """Packed batches from a few FLAN 2021 tasks under TFDS mock data, as numpy dicts."""
    import seqio
    import tensorflow as tf

    import tasks  # noqa: F401
    from flan_jax.data import feature_converter

    names = [t for t in FLAN_MOCK_TASKS if t in seqio.TaskRegistry.names()]
    if quick:
        names = names[:1]
    mixture = seqio.Mixture("bench_flan2021_mock", names, default_rate=1.0)
    ds = mixture.get_dataset(dict(lengths), split="train", shuffle=True, num_epochs=None,
                             seed=0, use_cached=False)
    ds = feature_converter(family, True)(ds, dict(lengths))
    ds = ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return names, ds.as_numpy_iterator()


def bench_pipeline(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import logging

    import jax
    import tensorflow_datasets as tfds

    from flan_jax.data import BatchIterator, DataConfig

    logging.getLogger("absl").setLevel(logging.ERROR)  # TFDS mock data warns per dataset
    lengths = {"inputs": 16, "targets": 8} if s.quick else {"inputs": 128, "targets": 32}
    batch = 2 if s.quick else 16
    n = 3 if s.quick else 40
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    rows = []
    families = {}
    for name, cfg in models:
        families.setdefault(cfg.family, (name, cfg))
    for family, (name, cfg) in families.items():
        consume = measure_train_step(
            _f32(cfg, vocab_size=BYTE_VOCAB), batch, lengths, s)["tokens_per_s"]
        data = DataConfig("synthetic_heldout_nli_train", lengths, batch, host_data="slice")
        t0 = time.perf_counter()
        it = BatchIterator(data, family, sharding)
        synth = _time_batches(lambda: jax.device_get(next(it)), n, warmup=2)
        synth["startup_s"] = time.perf_counter() - t0 - synth["seconds"]
        rows.append({"source": "synthetic_heldout_nli_train (BatchIterator)", "family": family,
                     "model_for_consumption": f"{name}, vocab {BYTE_VOCAB}", "batch": batch,
                     "lengths": dict(lengths), **synth,
                     "train_step_tokens_per_s": consume,
                     "ratio_pipeline_over_step": synth["tokens_per_s"] / consume})
        _say(f"pipeline synthetic {family}: {synth['tokens_per_s']:,.0f} tok/s vs step "
             f"{consume:,.0f} tok/s")
        num_examples = 8 if s.quick else 200
        t0 = time.perf_counter()
        with tfds.testing.mock_data(num_examples=num_examples,
                                    policy=tfds.testing.MockPolicy.USE_CODE):
            names, flan_it = _flan_mock_iterator(family, lengths, batch, num_examples, s.quick)
            flan = _time_batches(lambda: next(flan_it), n, warmup=2)
        flan["startup_s"] = time.perf_counter() - t0 - flan["seconds"]
        rows.append({"source": f"FLAN 2021 mock ({', '.join(names)})", "family": family,
                     "model_for_consumption": f"{name}, vocab {BYTE_VOCAB}", "batch": batch,
                     "lengths": dict(lengths), "mock_num_examples": num_examples, **flan,
                     "train_step_tokens_per_s": consume,
                     "ratio_pipeline_over_step": flan["tokens_per_s"] / consume})
        _say(f"pipeline flan2021-mock {family}: {flan['tokens_per_s']:,.0f} tok/s")
    return rows


# --- rank classification ---------------------------------------------------------------------

def _random_text(rng, n: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz     "))
    return "".join(rng.choice(letters, n))


def bench_rank(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import jax

    from flan_jax.models import build_model
    from flan_jax.scoring import rank_classify, rank_classify_naive
    from flan_jax.vocab import ByteVocab

    vocab, rng = ByteVocab(), np.random.default_rng(0)
    input_len = 32 if s.quick else 256
    n_inputs = 2 if s.quick else 16
    counts = (4,) if s.quick else (2, 4, 10)
    rows, seen = [], set()
    for name, cfg in models:
        if cfg.family in seen or ("small" in name and not s.quick):
            continue
        seen.add(cfg.family)
        cfg = _f32(cfg, vocab_size=BYTE_VOCAB)
        model = build_model(cfg)
        params = _init_params(model)
        # ByteVocab: one token per byte; encoder inputs get EOS, decoder-only prompts no BOS
        text_len = input_len - 1 if cfg.family == "encoder_decoder" else input_len
        inputs = [_random_text(rng, text_len) for _ in range(n_inputs)]
        for k in counts:
            options = [[_random_text(rng, int(rng.integers(4, 13))) for _ in range(k)]
                       for _ in range(n_inputs)]
            kw = dict(batch_size=8, max_input_length=input_len, max_option_length=16)
            out = {}
            for label, fn in (("shared", rank_classify), ("naive", rank_classify_naive)):
                sec, _ = _median_time(
                    lambda: jax.block_until_ready(fn(model, params, vocab, inputs, options, **kw)),
                    s.warmup, s.repeat)
                out[label] = n_inputs * k / sec
            rows.append({"model": name, "family": cfg.family, "options": k, "inputs": n_inputs,
                         "input_tokens": input_len, "batch_size": 8,
                         "shared_options_per_s": out["shared"],
                         "naive_options_per_s": out["naive"],
                         "speedup": out["shared"] / out["naive"]})
            _say(f"rank {name} {k} options: {out['shared']:,.0f} vs naive {out['naive']:,.0f} "
                 f"options/s ({rows[-1]['speedup']:.1f}x)")
    return rows


# --- decoding ---------------------------------------------------------------------------------

def bench_decode(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import jax

    from flan_jax.decoding import decode_tokens, decoding_batch, greedy_no_cache
    from flan_jax.models import build_model

    new = 8 if s.quick else 128
    b, prompt_len = (2, 16) if s.quick else (8, 64)
    rng = np.random.default_rng(0)
    rows, seen = [], set()
    for name, cfg in models:
        if cfg.family in seen or ("small" in name and not s.quick):
            continue
        seen.add(cfg.family)
        cfg = _f32(cfg, vocab_size=BYTE_VOCAB)
        model = build_model(cfg)
        params = _init_params(model)
        prompts = [list(rng.integers(3, BYTE_VOCAB, prompt_len)) for _ in range(b)]
        batch = decoding_batch(model, prompts, b, prompt_len)
        # eos_id=-1: never stop early, so every run generates exactly `new` tokens per row
        cached, _ = _median_time(lambda: jax.block_until_ready(
            decode_tokens(model, params, batch, new, "greedy", eos_id=-1)), s.warmup, s.repeat)
        beam, _ = _median_time(lambda: jax.block_until_ready(
            decode_tokens(model, params, batch, new, "beam", num_beams=4, eos_id=-1)),
            s.warmup, s.repeat)
        nocache, _ = _median_time(lambda: greedy_no_cache(model, params, batch, new, eos_id=-1),
                                  1, max(1, s.repeat - 2))
        tokens = b * new
        rows.append({"model": name, "family": cfg.family, "batch": b, "prompt_tokens": prompt_len,
                     "new_tokens": new, "greedy_cache_tokens_per_s": tokens / cached,
                     "greedy_no_cache_tokens_per_s": tokens / nocache,
                     "speedup_greedy": nocache / cached,
                     "beam4_cache_tokens_per_s": tokens / beam,
                     "beam4_no_cache": "not available (greedy_no_cache only)"})
        _say(f"decode {name}: cache {tokens / cached:,.0f} tok/s, no cache "
             f"{tokens / nocache:,.0f} tok/s ({nocache / cached:.1f}x); beam4 {tokens / beam:,.0f}")
    return rows


# --- results ----------------------------------------------------------------------------------

TARGETS = {"compare": "JAX >= PyTorch tokens/s (tiny)", "pipeline": "pipeline >= 3x step",
           "rank": ">= 3x at 4 options", "decode": ">= 5x (greedy)"}


def _fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:,.{digits}f}"


def _lengths_str(lengths: dict) -> str:
    return f"{lengths['inputs']}+{lengths['targets']}"


def render_markdown(results: dict) -> str:
    m = results["machine"]
    out = [f"# flan-jax benchmarks on `{m['id']}`", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; JAX {m['jax']} on "
           f"{m['platform']} ({m['device_kind']}), one device, float32. Load average at start "
           f"{m['load_average_at_start']}.", ""]
    b = results["benchmarks"]
    for what in WHATS:
        if what not in b:
            continue
        entry = b[what]
        out += [f"## {what}", "", f"`{entry['command']}` ({entry['date']}"
                f"{', quick' if entry['quick'] else ''}).", ""]
        rows = entry["rows"]
        if what == "train":
            peak = rows[0]["assumed_peak_flops"] if rows else 0
            out += [f"MFU = tokens/s x (6 x params + attention) / {peak:.3g} FLOP/s: on a CPU "
                    "that peak is the host's best measured float32 matmul throughput "
                    "(`measured_cpu_matmul_flops`), not a datasheet figure. AdamW, synthetic "
                    "tokens. XLA memory = arguments + outputs + temporaries of the compiled "
                    "step; host RSS is the process peak so far (cumulative).", "",
                    "| model | remat | params | batch x len | step ms | tokens/s | MFU | "
                    "XLA memory MiB | host peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|"]
            out += [f"| {r['model']} | {r['remat']} | {r['params'] / 1e6:.2f}M | {r['batch']} x "
                    f"{_lengths_str(r['lengths'])} | {1e3 * r['step_time_s']:.1f} | "
                    f"{_fmt(r['tokens_per_s'])} | {100 * r['mfu']:.2f}% | "
                    f"{_fmt(r['xla_step_memory_mib'], 1)} | {_fmt(r['host_peak_rss_mib'])} |"
                    for r in rows]
        elif what == "compare":
            threads = rows[0]["torch_threads"] if rows else "?"
            ver = f"torch {rows[0]['torch_version']}, transformers " \
                f"{rows[0]['transformers_version']}" if rows else ""
            out += [f"Same dimensions, batch, length and AdamW on both sides; {ver}, "
                    f"{threads} threads. Target: {TARGETS['compare']}.", "",
                    "| model | batch x len | params jax / torch | jax tokens/s | torch tokens/s | "
                    "jax / torch |", "|---|---|---|---|---|---|"]
            out += [f"| {r['model']} | {r['batch']} x {_lengths_str(r['lengths'])} | "
                    f"{r['jax_params'] / 1e6:.2f}M / {r['torch_params'] / 1e6:.2f}M | "
                    f"{_fmt(r['jax_tokens_per_s'])} | {_fmt(r['torch_tokens_per_s'])} | "
                    f"{r['ratio_jax_over_torch']:.2f}x |" for r in rows]
        elif what == "pipeline":
            out += [f"Packed tokens (slots) per second delivered to the host vs consumed by "
                    f"the train step of the same family and shape. Target: {TARGETS['pipeline']}.",
                    "", "| source | family | batch x len | tokens/s | fill | step tokens/s | "
                    "pipeline / step |", "|---|---|---|---|---|---|---|"]
            out += [f"| {r['source']} | {r['family']} | {r['batch']} x "
                    f"{_lengths_str(r['lengths'])} | {_fmt(r['tokens_per_s'])} | "
                    f"{100 * r['fill']:.0f}% | {_fmt(r['train_step_tokens_per_s'])} | "
                    f"{r['ratio_pipeline_over_step']:.1f}x |" for r in rows]
        elif what == "rank":
            out += [f"Options scored per second, random model, byte vocabulary. Target: "
                    f"{TARGETS['rank']}.", "", "| model | options | input tokens | "
                    "rank_classify | naive | speedup |", "|---|---|---|---|---|---|"]
            out += [f"| {r['model']} | {r['options']} | {r['input_tokens']} | "
                    f"{_fmt(r['shared_options_per_s'])} | {_fmt(r['naive_options_per_s'])} | "
                    f"{r['speedup']:.1f}x |" for r in rows]
        elif what == "decode":
            out += [f"Generated tokens per second, random model, byte vocabulary, no early stop. "
                    f"Beam search has no uncached reference. Target: {TARGETS['decode']}.", "",
                    "| model | batch | prompt | new | greedy cache | greedy no cache | speedup "
                    "| beam 4 cache |", "|---|---|---|---|---|---|---|---|"]
            out += [f"| {r['model']} | {r['batch']} | {r['prompt_tokens']} | {r['new_tokens']} | "
                    f"{_fmt(r['greedy_cache_tokens_per_s'])} | "
                    f"{_fmt(r['greedy_no_cache_tokens_per_s'])} | {r['speedup_greedy']:.1f}x | "
                    f"{_fmt(r['beam4_cache_tokens_per_s'])} |" for r in rows]
        out.append("")
    return "\n".join(out)


def write_results(results_dir: pathlib.Path, machine: dict, new: dict[str, dict]) -> pathlib.Path:
    """Merges `new` benchmarks into <machine>.json and rewrites <machine>.md."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{machine['id']}.json"
    results = {"machine": machine, "benchmarks": {}}
    if path.exists():
        try:
            results["benchmarks"] = json.loads(path.read_text()).get("benchmarks", {})
        except json.JSONDecodeError:
            pass
    results["benchmarks"].update(new)
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    path.with_suffix(".md").write_text(render_markdown(results))
    return path


def _say(msg: str) -> None:
    print(msg, flush=True)


RUNNERS = {"train": bench_train, "compare": bench_compare, "pipeline": bench_pipeline,
           "rank": bench_rank, "decode": bench_decode}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-jax bench", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=WHATS + ("all",))
    p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (tests)")
    p.add_argument("--results_dir", default=str(RESULTS_DIR))
    p.add_argument("--no_small", action="store_true",
                   help="train benchmark: skip the small models (measured unless --quick or "
                        "--gin_file is given)")
    from flan_jax.config import add_gin_flags

    add_gin_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from flan_jax.config import split_gin_bindings

    argv = list(sys.argv[1:] if argv is None else argv)
    bindings, rest = split_gin_bindings(argv)
    args = _parser().parse_args(rest)
    import jax

    jax.config.update("jax_default_matmul_precision", "float32")
    s = Settings.make(args.quick)
    files = args.gin_file or list(DEFAULT_MODELS)
    models = list(zip([pathlib.Path(f).stem for f in files], model_configs(files, bindings)))
    if args.quick:  # a byte vocabulary and one layer per stack keep quick runs (tests) small
        models = [(n, dataclasses.replace(
            c, vocab_size=BYTE_VOCAB, num_decoder_layers=1,
            num_encoder_layers=min(c.num_encoder_layers, 1))) for n, c in models]
    small = []
    if not args.gin_file and not args.quick and not args.no_small:
        small = list(zip([pathlib.Path(f).stem for f in SMALL_MODELS],
                         model_configs(list(SMALL_MODELS), bindings)))
    machine = machine_info()
    _say(f"flan-jax bench on {machine['id']} (load {machine['load_average_at_start']})")
    whats = WHATS if args.what == "all" else (args.what,)
    command = "flan-jax bench " + " ".join(argv)
    path = None
    for what in whats:
        t0 = time.perf_counter()
        rows = RUNNERS[what](models + small if what == "train" else models, s)
        entry = {"command": command, "quick": args.quick, "rows": rows,
                 "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "seconds": time.perf_counter() - t0,
                 "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        path = write_results(pathlib.Path(args.results_dir), machine, {what: entry})
        _say(f"{what}: {entry['seconds']:.0f} s")
    _say(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
