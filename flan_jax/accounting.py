"""FLOPs and MFU accounting: the peak FLOP/s of a device kind and the training FLOPs of a row.

Training FLOPs are 3x the forward pass's matmul FLOPs (forward, and the two matmuls of the
backward pass), counted from the config, attention by attention:

- weights: 2 FLOPs per weight per position that multiplies it. A decoder-only position
  multiplies every layer and the output head; a T5 encoder position the encoder's weights and
  the cross-attention key/value projections of every decoder layer (they read the encoder's
  output); a T5 decoder position the rest of the decoder and the head. Embedding lookups,
  norms and T5's relative-position tables are no matmuls and count nothing.
- attention: 4 x heads x head_dim FLOPs per (query, key) pair (scores, then the weighted sum of
  values), only over pairs inside the same example of a packed row (segment by segment).

Two conventions differ only in causal self-attention (decoder-only, T5 decoder):
- "full": every (query, key) pair of the square is counted, as the masked kernel computes it.
- "causal_halved": half of the square, as MaxText and Megatron-LM count it (the pairs a causal
  mask keeps); a prefix-LM prefix attends both ways and stays whole.
The encoder (bidirectional) and cross-attention are the same in both.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Mapping

import gin
import jax
import jax.numpy as jnp

from flan_jax.models import TransformerConfig

CONVENTIONS = ("full", "causal_halved")

# Dense (no sparsity) bfloat16 tensor-core peaks per device, from the vendors' datasheets.
# GPUs report the CUDA device name as `device_kind`; rules are tried in order, so the PCIe and
# NVL parts of a family come before its SXM part. A kind no rule knows gets no MFU.
_GPU_PEAKS: tuple[tuple[str, str, float], ...] = (
    (r"h100.*pcie", "H100 PCIe", 756e12),
    (r"h100.*nvl", "H100 NVL", 835e12),
    (r"h200.*nvl", "H200 NVL", 835e12),
    (r"gh200", "GH200", 989e12),
    (r"h100.*(sxm|hbm3)", "H100 SXM", 989e12),
    (r"h200", "H200 SXM", 989e12),
    (r"a100.*80\s*gb", "A100 80GB", 312e12),
    (r"a100.*40\s*gb", "A100 40GB", 312e12),
    (r"^nvidia l4$", "L4", 121e12),
)
# TPUs report short exact kinds ("TPU v5 lite" is v5e, "TPU v5" is v5p).
_TPU_PEAKS = {"tpu v4": ("TPU v4", 275e12), "tpu v5 lite": ("TPU v5e", 197e12),
              "tpu v5e": ("TPU v5e", 197e12), "tpu v5": ("TPU v5p", 459e12),
              "tpu v5p": ("TPU v5p", 459e12), "tpu v6 lite": ("TPU v6e", 918e12),
              "tpu v6e": ("TPU v6e", 918e12)}


def device_peak(kind: str) -> tuple[str, float] | None:
    """(datasheet name, bfloat16 dense FLOP/s) of an accelerator `device_kind`, or None when
    this table does not know that exact kind (then pass the peak yourself)."""
    k = " ".join(kind.lower().split())
    if k in _TPU_PEAKS:
        return _TPU_PEAKS[k]
    for pattern, name, flops in _GPU_PEAKS:
        if re.search(pattern, k):
            return name, flops
    return None


@gin.configurable
def peak_flops_per_device(override: float | None = None, cpu: float | None = None
                          ) -> float | None:
    """The bfloat16 dense peak of the first device: `override` if given; for a CPU the host's
    best measured float32 matmul throughput shared by its (simulated) devices (or `cpu`); for
    an accelerator the datasheet figure of its exact kind, None when the kind is unknown."""
    if override:
        return float(override)
    device = jax.devices()[0]
    if device.platform == "cpu":
        return cpu or measured_cpu_matmul_flops() / len(jax.local_devices())
    known = device_peak(device.device_kind)
    return known[1] if known else None


def unknown_peak_message(kind: str) -> str:
    return (f"no MFU: the peak FLOP/s of device kind {kind!r} is not in flan_jax.accounting; "
            "give it with --peak_flops=... (bench) or "
            "--gin.peak_flops_per_device.override=... (train).")


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


def _attention_weights(cfg: TransformerConfig) -> tuple[int, int]:
    """(query + output, key + value) projection weights of one attention block."""
    qo = 2 * cfg.emb_dim * cfg.num_heads * cfg.head_dim
    return qo, 2 * cfg.emb_dim * cfg.kv_heads * cfg.head_dim


def _pairs(length: float, examples: int, causal: bool, halved: bool, prefix: float = 0.0
           ) -> float:
    """(query, key) pairs of self-attention over `examples` equal segments of a row."""
    s, p = length / examples, prefix / examples
    if causal and halved:
        return examples * (p * p + (s * s - p * p) / 2)
    return examples * s * s


def row_flops(cfg: TransformerConfig, lengths: Mapping[str, int], examples_per_row: int = 1
              ) -> dict[str, float]:
    """Training FLOPs of one row of `lengths` ({"inputs": Li, "targets": Lt}) holding
    `examples_per_row` equal-length examples: {"weights", "attention_full",
    "attention_causal_halved"} (see the module docstring)."""
    li, lt, e = int(lengths.get("inputs", 0)), int(lengths.get("targets", 0)), examples_per_row
    qo, kv = _attention_weights(cfg)
    mlp = (3 if cfg.gated_mlp else 2) * cfg.emb_dim * cfg.mlp_dim
    head = cfg.emb_dim * cfg.vocab_size
    per_pair = 3 * 4 * cfg.num_heads * cfg.head_dim
    if cfg.family == "encoder_decoder":
        weights = (li * cfg.num_encoder_layers * (qo + kv + mlp)
                   + li * cfg.num_decoder_layers * kv  # cross-attention K/V read the encoder
                   + lt * (cfg.num_decoder_layers * (qo + kv + qo + mlp) + head))
        both = cfg.num_encoder_layers * _pairs(li, e, False, False) \
            + cfg.num_decoder_layers * e * (li / e) * (lt / e)  # cross-attention
        causal = {h: cfg.num_decoder_layers * _pairs(lt, e, True, h) for h in (False, True)}
    else:  # decoder-only rows hold inputs and targets together
        n = li + lt
        weights = n * (cfg.num_decoder_layers * (qo + kv + mlp) + head)
        both = 0.0
        prefix = li if cfg.prefix_lm else 0
        causal = {h: cfg.num_decoder_layers * _pairs(n, e, True, h, prefix) for h in (False, True)}
    return {"weights": 6.0 * weights,
            "attention_full": per_pair * (both + causal[False]),
            "attention_causal_halved": per_pair * (both + causal[True])}


def train_flops_per_token(cfg: TransformerConfig, lengths: Mapping[str, int],
                          examples_per_row: int = 1, convention: str = "full") -> float:
    """Training FLOPs of a row averaged over its Li + Lt positions, in `convention`."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: use one of {', '.join(CONVENTIONS)}.")
    f = row_flops(cfg, lengths, examples_per_row)
    total = f["weights"] + f[f"attention_{convention}"]
    return total / max(sum(int(v) for v in lengths.values()), 1)


def step_flops(cfg: TransformerConfig, lengths: Mapping[str, int], batch_size: int,
               examples_per_row: int = 1, convention: str = "full") -> float:
    """FLOPs of one train step over every (padded) position of the batch."""
    return train_flops_per_token(cfg, lengths, examples_per_row, convention) * batch_size * \
        sum(int(v) for v in lengths.values())


def flops_report(cfg: TransformerConfig, lengths: Mapping[str, int], batch_size: int,
                 examples_per_row: int, step_s: float, n_devices: int) -> dict:
    """FLOPs per token, the assumed peak and MFU of a step timed at `step_s`, in both
    conventions (`mfu`: full; `mfu_causal_halved`). Without a known peak the MFU keys are None
    and `mfu_note` says how to give one."""
    per_device = peak_flops_per_device()
    peak = per_device * n_devices if per_device else None
    out: dict = {"flops_convention": "mfu: full attention square; mfu_causal_halved: causal "
                                     "attention halved (MaxText/Megatron)",
                 "assumed_peak_flops": peak}
    for convention, key in (("full", ""), ("causal_halved", "_causal_halved")):
        fpt = train_flops_per_token(cfg, lengths, examples_per_row, convention)
        out[f"flops_per_token{key}"] = fpt
        tps = batch_size * sum(int(v) for v in lengths.values()) / step_s
        out[f"mfu{key}"] = tps * fpt / peak if peak else None
    if peak is None:
        out["mfu_note"] = unknown_peak_message(jax.devices()[0].device_kind)
    return out
