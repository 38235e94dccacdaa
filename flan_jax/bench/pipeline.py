"""`bench pipeline`: packed tokens/s from the synthetic suite through the seqio path
(the seqio source) and the cache path (a data cache read with Grain), and from a few FLAN 2021
tasks under `tfds.testing.mock_data`, next to what the train step of the same family and shape
consumes; and the restart overhead of each path: seconds from building the pipeline for a
resume at an early and a late step to its first batch. The one benchmark that needs TensorFlow
and seqio (imported when run)."""

from __future__ import annotations

import time
from typing import Any, Callable

from flan_jax.bench.common import BYTE_VOCAB, Settings, f32, say
from flan_jax.bench.train import measure_train_step


def count_packed(batch: dict) -> tuple[int, int]:
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
        a, b = count_packed(next_batch())
        slots, nonpad = slots + a, nonpad + b
    dt = time.perf_counter() - t0
    return {"batches": n, "seconds": dt, "tokens_per_s": slots / dt,
            "nonpad_tokens_per_s": nonpad / dt, "fill": nonpad / max(slots, 1)}


FLAN_MOCK_TASKS = ("flan2021_rte_train", "flan2021_anli_r1_train", "flan2021_mnli_matched_train",
                   "flan2021_arc_easy_train", "flan2021_squad_v1_train")


def _flan_mock_iterator(family: str, lengths: dict, batch: int, quick: bool):
    """Packed batches from a few FLAN 2021 tasks under TFDS mock data, as numpy dicts."""
    import seqio
    import tensorflow as tf

    import tasks  # noqa: F401
    from flan_jax.data.seqio_source import feature_converter

    names = [t for t in FLAN_MOCK_TASKS if t in seqio.TaskRegistry.names()]
    if quick:
        names = names[:1]
    # a task whose filters reject every random mock record (ARC's answer key) would end the
    # mixture's stream at once: leave it out
    names = [n for n in names if next(iter(seqio.get_mixture_or_task(n).get_dataset(
        dict(lengths), split="train", shuffle=False, num_epochs=1, use_cached=False).take(1)),
        None) is not None]
    mixture = seqio.Mixture("bench_flan2021_mock", names, default_rate=1.0)
    ds = mixture.get_dataset(dict(lengths), split="train", shuffle=True, num_epochs=None,
                             seed=0, use_cached=False)
    ds = feature_converter(family, True)(ds, dict(lengths))
    ds = ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return names, ds.as_numpy_iterator()


RESUME_STEPS = (10, 2000)


def _first_batch_seconds(make: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    next(make())
    return time.perf_counter() - t0


def _cache_rows(data, family: str, sharding, n: int, consume: float, s: Settings) -> list[dict]:
    """The cache path: tokens/s, and restart overhead at RESUME_STEPS for it and for seqio."""
    import tempfile

    import jax

    from flan_jax.data import cache_writer, open_source

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = cache_writer.Plan(data.mixture_or_task_name, "train",
                                 dict(data.task_feature_lengths), 50 if s.quick else 5000,
                                 10_000, "bench")
        t0 = time.perf_counter()
        cache_writer.build_cache(plan, tmp, show_progress=False)
        build_s = time.perf_counter() - t0
        cfg = type(data)(**{**data.__dict__, "source": "cache", "cache_dir": tmp})
        t0 = time.perf_counter()
        it = open_source(cfg).batches(family, sharding)
        timed = _time_batches(lambda: jax.device_get(next(it)), n, warmup=2)
        timed["startup_s"] = time.perf_counter() - t0 - timed["seconds"]
        rows.append({"source": f"{data.mixture_or_task_name} (cache, Grain)", "family": family,
                     "batch": data.batch_size, "lengths": dict(data.task_feature_lengths),
                     "cache_examples_per_task": plan.max_examples, "cache_build_s": build_s,
                     **timed, "train_step_tokens_per_s": consume,
                     "ratio_pipeline_over_step": timed["tokens_per_s"] / consume})
        say(f"pipeline cache {family}: {timed['tokens_per_s']:,.0f} tok/s vs step "
            f"{consume:,.0f} tok/s")
        steps = (2, 20) if s.quick else RESUME_STEPS
        states = {}
        it = open_source(cfg).batches(family, sharding)
        for step in range(1, max(steps) + 1):
            next(it)
            if step in steps:
                states[step] = it.state()
        restart = {"family": family, "section": "restart", "batch": data.batch_size}
        for step in steps:
            restart[f"cache_first_batch_s_at_{step}"] = _first_batch_seconds(
                lambda: open_source(cfg).batches(family, sharding, states[step]))
            restart[f"seqio_first_batch_s_at_{step}"] = _first_batch_seconds(
                lambda: open_source(data).batches(family, sharding, {"position": step}))
        rows.append(restart)
        say("restart " + ", ".join(f"{k} {v:.2f}" for k, v in restart.items()
                                   if k.endswith(tuple(f"_at_{x}" for x in steps))))
    return rows


def bench_pipeline(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import logging

    import jax
    import tensorflow_datasets as tfds

    from flan_jax.data import DataConfig, open_source

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
            f32(cfg, vocab_size=BYTE_VOCAB), batch, lengths, s)["tokens_per_s"]
        data = DataConfig("synthetic_heldout_nli_train", lengths, batch, host_data="slice")
        t0 = time.perf_counter()
        it = open_source(data).batches(family, sharding)
        synth = _time_batches(lambda: jax.device_get(next(it)), n, warmup=2)
        synth["startup_s"] = time.perf_counter() - t0 - synth["seconds"]
        rows.append({"source": "synthetic_heldout_nli_train (BatchIterator)", "family": family,
                     "model_for_consumption": f"{name}, vocab {BYTE_VOCAB}", "batch": batch,
                     "lengths": dict(lengths), **synth,
                     "train_step_tokens_per_s": consume,
                     "ratio_pipeline_over_step": synth["tokens_per_s"] / consume})
        say(f"pipeline synthetic {family}: {synth['tokens_per_s']:,.0f} tok/s vs step "
            f"{consume:,.0f} tok/s")
        rows += _cache_rows(data, family, sharding, n, consume, s)
        num_examples = 8 if s.quick else 200
        t0 = time.perf_counter()
        with tfds.testing.mock_data(num_examples=num_examples,
                                    policy=tfds.testing.MockPolicy.USE_CODE):
            names, flan_it = _flan_mock_iterator(family, lengths, batch, s.quick)
            flan = _time_batches(lambda: next(flan_it), n, warmup=2)
        flan["startup_s"] = time.perf_counter() - t0 - flan["seconds"]
        rows.append({"source": f"FLAN 2021 mock ({', '.join(names)})", "family": family,
                     "model_for_consumption": f"{name}, vocab {BYTE_VOCAB}", "batch": batch,
                     "lengths": dict(lengths), "mock_num_examples": num_examples, **flan,
                     "train_step_tokens_per_s": consume,
                     "ratio_pipeline_over_step": flan["tokens_per_s"] / consume})
        say(f"pipeline flan2021-mock {family}: {flan['tokens_per_s']:,.0f} tok/s")
    return rows
