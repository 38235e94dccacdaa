"""`bench decode`: generated tokens per second, `decode_tokens` (KV cache; greedy and beam 4)
vs `greedy_no_cache`, random model, byte vocabulary, no early stop."""

from __future__ import annotations

from typing import Any

import numpy as np

from flan_jax.bench.common import (BYTE_VOCAB, Settings, family_models, init_params,
                                   median_time, say)


def measure_decode(model, params, s: Settings, *, batch: int, prompt_len: int, new: int,
                   beam: bool = True, no_cache: bool = True, seed: int = 0) -> dict:
    """Generated tokens per second for `batch` random prompts of `prompt_len` tokens: greedy
    with the KV cache, and (when asked) beam 4 with it and greedy without it."""
    import jax

    from flan_jax.decoding import decode_tokens, decoding_batch, greedy_no_cache

    rng = np.random.default_rng(seed)
    prompts = [list(rng.integers(3, BYTE_VOCAB, prompt_len)) for _ in range(batch)]
    inputs = decoding_batch(model, prompts, batch, prompt_len)
    tokens = batch * new
    # eos_id=-1: never stop early, so every run generates exactly `new` tokens per row
    cached, _ = median_time(lambda: jax.block_until_ready(
        decode_tokens(model, params, inputs, new, "greedy", eos_id=-1)), s.warmup, s.repeat)
    out = {"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new,
           "greedy_cache_tokens_per_s": tokens / cached}
    if beam:
        sec, _ = median_time(lambda: jax.block_until_ready(
            decode_tokens(model, params, inputs, new, "beam", num_beams=4, eos_id=-1)),
            s.warmup, s.repeat)
        out["beam4_cache_tokens_per_s"] = tokens / sec
        out["beam4_no_cache"] = "not available (greedy_no_cache only)"
    if no_cache:
        sec, _ = median_time(lambda: greedy_no_cache(model, params, inputs, new, eos_id=-1),
                             1, max(1, s.repeat - 2))
        out["greedy_no_cache_tokens_per_s"] = tokens / sec
        out["speedup_greedy"] = sec / cached
    return out


def bench_decode(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    new = 8 if s.quick else 128
    b, prompt_len = (2, 16) if s.quick else (8, 64)
    rows = []
    for name, model in family_models(models, s):
        r = measure_decode(model, init_params(model), s, batch=b, prompt_len=prompt_len,
                           new=new)
        rows.append({"model": name, "family": model.config.family, **r})
        say(f"decode {name}: cache {r['greedy_cache_tokens_per_s']:,.0f} tok/s, no cache "
            f"{r['greedy_no_cache_tokens_per_s']:,.0f} tok/s ({r['speedup_greedy']:.1f}x); "
            f"beam4 {r['beam4_cache_tokens_per_s']:,.0f}")
    return rows
