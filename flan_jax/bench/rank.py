"""`bench rank`: options scored per second, `rank_classify` (one pass per input) vs
`rank_classify_naive` (one per option), random model, byte vocabulary."""

from __future__ import annotations

from typing import Any

import numpy as np

from flan_jax.bench.common import Settings, family_models, init_params, median_time, say


def _random_text(rng, n: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz     "))
    return "".join(rng.choice(letters, n))


def measure_rank(model, params, s: Settings, *, n_inputs: int, input_len: int, options: int,
                 batch_size: int = 8, naive: bool = True, seed: int = 0) -> dict:
    """Options scored per second for `n_inputs` random texts of `input_len` bytes with
    `options` random options each (4 to 12 bytes); also the naive way when `naive`."""
    import jax

    from flan_jax.placement import LoadedModel
    from flan_jax.scoring import RankSettings, rank_classify, rank_classify_naive
    from flan_jax.vocab import ByteVocab

    vocab, rng = ByteVocab(), np.random.default_rng(seed)
    # ByteVocab: one token per byte; encoder inputs get EOS, decoder-only prompts no BOS
    text_len = input_len - 1 if model.config.family == "encoder_decoder" else input_len
    inputs = [_random_text(rng, text_len) for _ in range(n_inputs)]
    opts = [[_random_text(rng, int(rng.integers(4, 13))) for _ in range(options)]
            for _ in range(n_inputs)]
    loaded = LoadedModel(model, params, vocab)
    settings = RankSettings(batch_size=batch_size, max_input_length=input_len,
                            max_option_length=16)
    fns = {"shared": rank_classify, **({"naive": rank_classify_naive} if naive else {})}
    out = {}
    for label, fn in fns.items():
        sec, _ = median_time(
            lambda: jax.block_until_ready(fn(loaded, inputs, opts, settings)),
            s.warmup, s.repeat)
        out[f"{label}_options_per_s"] = n_inputs * options / sec
    if naive:
        out["speedup"] = out["shared_options_per_s"] / out["naive_options_per_s"]
    return {"options": options, "inputs": n_inputs, "input_tokens": input_len,
            "batch_size": batch_size, **out}


def bench_rank(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    input_len = 32 if s.quick else 256
    n_inputs = 2 if s.quick else 16
    counts = (4,) if s.quick else (2, 4, 10)
    rows = []
    for name, model in family_models(models, s):
        params = init_params(model)
        for i, k in enumerate(counts):
            r = measure_rank(model, params, s, n_inputs=n_inputs, input_len=input_len,
                             options=k, seed=i)
            rows.append({"model": name, "family": model.config.family, **r})
            say(f"rank {name} {k} options: {r['shared_options_per_s']:,.0f} vs naive "
                f"{r['naive_options_per_s']:,.0f} options/s ({r['speedup']:.1f}x)")
    return rows
