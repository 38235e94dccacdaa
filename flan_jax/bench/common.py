"""What every benchmark shares: the machine, timing, settings, and fixtures (model configs from
gin, random parameters, synthetic token batches). Imports no TensorFlow, seqio or t5."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import platform
import re
import resource
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

REPO_DIR = pathlib.Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = REPO_DIR / "bench" / "results"
WHEELS_DIR = REPO_DIR / "bench" / "wheels"
BYTE_VOCAB = 259


def ensure_gin() -> None:
    """Makes gin-config importable on machines without it (the accelerator images): the pure-
    Python wheel kept in bench/wheels/ is put on sys.path (a wheel is a zip, so zipimport reads
    it in place; nothing is installed)."""
    try:
        import gin

        if hasattr(gin, "configurable"):
            return
        # the repository's gin/ folder of config files imports as an empty namespace package
        del sys.modules["gin"]
    except ImportError:
        pass
    wheels = sorted(WHEELS_DIR.glob("gin_config-*.whl"))
    if not wheels:
        raise ImportError(f"gin-config is not installed and no wheel is in {WHEELS_DIR}; "
                          "`pip install gin-config` or restore bench/wheels/.")
    sys.path.append(str(wheels[-1]))


# --- machine and timing ---------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_info(devices_used: int = 1) -> dict:
    """The machine's id (the results' file name) and what a reader needs to compare runs."""
    import jax

    dev = jax.devices()[0]
    cores, cpu = cpu_count(), _cpu_model()
    if dev.platform == "cpu":
        machine_id = f"cpu-{cores}core-" + _slug(re.sub(r"\(r\)|\(tm\)|processor|cpu", "",
                                                        cpu.lower()))
    else:
        machine_id = f"{_slug(dev.device_kind)}-x{jax.device_count()}"
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"id": machine_id, "platform": dev.platform, "device_kind": dev.device_kind,
            "devices_used": devices_used, "cpu": cpu, "cores": cores,
            "memory_gib": round(mem_gib, 1), "python": platform.python_version(),
            "jax": jax.__version__, "load_average_at_start": load_average()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median_time(fn: Callable[[], Any], warmup: int, repeat: int) -> tuple[float, list[float]]:
    """Median seconds of `fn()` (which must block until its work is done) after warmup calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory_stats() -> dict | None:
    """The first device's allocator statistics (GPU/TPU), or None where there are none."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    return dict(stats) if stats else None


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclasses.dataclass
class Settings:
    quick: bool
    warmup: int
    repeat: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        return cls(quick, 1, 1) if quick else cls(quick, 2, 5)


# --- models from gin --------------------------------------------------------------------------

def model_configs(gin_files: Sequence[str], bindings: Sequence[str] = (),
                  search_paths: Sequence[str] = ()) -> list:
    """One TransformerConfig per model gin file (each parsed on its own); the last parse stays
    active, so the other bindings (peak FLOP/s, mesh) apply to the run too."""
    import gin

    import flan_jax.accounting  # noqa: F401  (bench bindings may name the peak FLOP/s)
    import flan_jax.partitioning  # noqa: F401  (... or the mesh)
    from flan_jax.config import parse_gin
    from flan_jax.models import TransformerConfig

    configs = []
    for f in gin_files:  # a model gin file imports the model config: no TensorFlow
        parse_gin([f], bindings, search_paths, finalize=False)
        with gin.unlock_config():
            configs.append(TransformerConfig())
    return configs


def f32(cfg, **overrides):
    """The config in float32 without dropout (CPU benchmarks)."""
    return dataclasses.replace(cfg, dtype="float32", param_dtype="float32", dropout_rate=0.0,
                               **overrides)


def family_models(models: Sequence[tuple[str, Any]], s: Settings) -> list[tuple[str, Any]]:
    """The inference benchmarks' models: the first of each family in `models` (small models
    only in quick runs, where they are shrunk anyway), each built in float32 with the byte
    vocabulary. Returns (name, model) pairs; random parameters come from `init_params`."""
    from flan_jax.models import build_model

    out, families = [], set()
    for name, cfg in models:
        if cfg.family in families or ("small" in name and not s.quick):
            continue
        families.add(cfg.family)
        out.append((name, build_model(f32(cfg, vocab_size=BYTE_VOCAB))))
    return out


def init_params(model, seed: int = 0, out_shardings=None):
    """Random parameters of `model` (unboxed), optionally placed with `out_shardings`."""
    import flax.linen as nn
    import jax

    from flan_jax.models import init_params_fn

    init = init_params_fn(model)
    return jax.jit(lambda r: nn.meta.unbox(init(r)),
                   out_shardings=out_shardings)(jax.random.PRNGKey(seed))


def synthetic_batch(family: str, batch: int, lengths: dict[str, int], vocab: int,
                    seed: int = 0, examples_per_row: int = 1) -> dict[str, np.ndarray]:
    """Random tokens in the train step's layout. With `examples_per_row` > 1 each row is packed
    with that many equal-length examples (segment ids and positions, as seqio packs)."""
    rng = np.random.default_rng(seed)
    tok = lambda n: rng.integers(2, vocab, (batch, n), dtype=np.int32)  # noqa: E731
    if family == "encoder_decoder":
        tgt = tok(lengths["targets"])
        dec_in = np.zeros_like(tgt)
        dec_in[:, 1:] = tgt[:, :-1]
        out = {"encoder_input_tokens": tok(lengths["inputs"]), "decoder_input_tokens": dec_in,
               "decoder_target_tokens": tgt, "decoder_loss_weights": np.ones_like(tgt)}
        if examples_per_row > 1:
            out.update(_packing(batch, lengths["inputs"], examples_per_row, "encoder"))
            dec = _packing(batch, lengths["targets"], examples_per_row, "decoder")
            out.update(dec)
            starts = dec["decoder_positions"] == 0  # each packed target starts from pad (0)
            out["decoder_input_tokens"] = np.where(starts, 0, dec_in)
        return out
    seq = tok(lengths["inputs"] + lengths["targets"] + 1)
    out = {"decoder_input_tokens": seq[:, :-1], "decoder_target_tokens": seq[:, 1:],
           "decoder_loss_weights": np.ones_like(seq[:, 1:])}
    if examples_per_row > 1:
        out.update(_packing(batch, lengths["inputs"] + lengths["targets"], examples_per_row,
                            "decoder"))
    return out


def _packing(batch: int, length: int, n: int, prefix: str) -> dict[str, np.ndarray]:
    each = length // n
    seg = np.minimum(np.arange(length) // max(each, 1), n - 1) + 1
    pos = np.arange(length) - (seg - 1) * each
    tile = lambda a: np.broadcast_to(a.astype(np.int32), (batch, length)).copy()  # noqa: E731
    return {f"{prefix}_segment_ids": tile(seg), f"{prefix}_positions": tile(pos)}


def tokens_per_row(lengths: dict[str, int]) -> int:
    return lengths["inputs"] + lengths["targets"]


def xla_memory_mib(compiled) -> dict:
    """XLA's memory analysis of a compiled step: arguments + outputs + temporaries - aliased
    (donated) buffers, and the temporaries alone, in MiB (None where the backend has none)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return {"xla_step_memory_mib": None, "xla_temp_mib": None}
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)
    return {"xla_step_memory_mib": total / 2 ** 20,
            "xla_temp_mib": mem.temp_size_in_bytes / 2 ** 20}
