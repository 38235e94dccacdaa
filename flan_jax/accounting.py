"""FLOPs and MFU accounting: the peak of the devices and the training FLOPs of a position."""

from __future__ import annotations

import functools
import time
from typing import Mapping

import gin
import jax
import jax.numpy as jnp

from flan_jax.models import TransformerConfig, count_params

# bfloat16 dense peaks by device kind (substring of `device_kind`, lower case).
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


def step_flops(cfg: TransformerConfig, params, lengths: Mapping[str, int],
               batch_size: int) -> float:
    """FLOPs of one train step over every (padded) position of the batch."""
    return train_flops_per_token(cfg, params, lengths) * batch_size * sum(lengths.values())
