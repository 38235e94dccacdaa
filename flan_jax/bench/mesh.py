"""`bench mesh`: rank classification and greedy decoding through a `Placement`, examples per
second on one device vs the same work split over a mesh of every device.

Meshes: `one_device` ({data: 1, fsdp: 1, tensor: 1} on the first device), `data` ({data: N} over
all N devices) and, where there are 8 devices, `fsdp4_tensor2` ({data: 1, fsdp: 4, tensor: 2}).
Random model (first of each family), byte vocabulary, float32.

On a CPU the "devices" are simulated (`--xla_force_host_platform_device_count`): they share the
same cores, so a larger mesh cannot add compute; the ratio to one device measures what sharding
costs (collectives, per-device dispatch, smaller per-device matmuls), not a speed-up (a ratio
above 1 means the one-device run of these small shapes left a core idle). Benchmarks
otherwise run with one CPU device (`flan_jax.bench`), so when this one finds a single CPU device
it runs itself in a child process with `HOST_DEVICES` simulated devices.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from flan_jax.bench import HOST_DEVICES_ENV
from flan_jax.bench.common import (Settings, ensure_gin, family_models, init_params,
                                   median_time, say)

HOST_DEVICES = 8
NOTE = ("simulated CPU devices share the same cores: the ratio to one device shows sharding "
        "overhead (and any core a one-device run of these small shapes leaves idle), not a "
        "multi-device speed-up")


@dataclasses.dataclass(frozen=True)
class Shapes:
    inputs: int  # examples per measured call of rank_classify / generate
    batch_size: int  # examples per device step (rounded up to the data axes' size)
    input_len: int  # bytes per input text
    options: int  # rank: options per input (4 to 12 bytes each)
    new_tokens: int  # decode: greedy tokens per example

    @classmethod
    def make(cls, quick: bool) -> "Shapes":
        return cls(8, 8, 16, 2, 4) if quick else cls(32, 16, 128, 4, 32)


def mesh_layouts(num_devices: int) -> dict[str, dict[str, int]]:
    """Mesh name -> axis sizes measured with `num_devices` devices."""
    out = {"one_device": {"data": 1, "fsdp": 1, "tensor": 1}}
    if num_devices > 1:
        out["data"] = {"data": num_devices, "fsdp": 1, "tensor": 1}
    if num_devices == 8:
        out["fsdp4_tensor2"] = {"data": 1, "fsdp": 4, "tensor": 2}
    return out


def make_placement(axes: dict[str, int]):
    """A Placement over the first prod(axes) devices with the (gin-bound or default) rules."""
    import math

    from flan_jax import partitioning
    from flan_jax.placement import Placement

    mesh = partitioning.make_mesh(axes, num_devices=math.prod(axes.values()))
    return Placement(mesh, tuple(partitioning.logical_axis_rules()))


def placed_params(model, params, placement):
    """`params` (the same random ones for every mesh) moved into the shardings that inference
    restores a checkpoint into (`checkpoints.sharded_model_params`)."""
    import jax

    from flan_jax.checkpoints import sharded_model_params

    return jax.device_put(params, jax.tree_util.tree_map(
        lambda x: x.sharding, sharded_model_params(model.config, placement)))


def _texts(rng, n: int, length: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz     "))
    return ["".join(rng.choice(letters, length)) for _ in range(n)]


def measure_mesh(model, params, placement, s: Settings, shapes: Shapes, seed: int = 0) -> dict:
    """Examples/s of `rank_classify` and greedy `generate` on `placement` (`params` are moved
    there first), with what they returned (to check that every mesh computes the same)."""
    from flan_jax.decoding import DecodeSettings, generate
    from flan_jax.placement import LoadedModel, param_bytes
    from flan_jax.scoring import RankSettings, rank_classify
    from flan_jax.vocab import ByteVocab

    vocab, rng = ByteVocab(), np.random.default_rng(seed)
    # encoder inputs get an EOS; decoder-only prompts take the whole length
    text_len = shapes.input_len - (model.config.family == "encoder_decoder")
    inputs = _texts(rng, shapes.inputs, text_len)
    options = [_texts(rng, shapes.options, int(rng.integers(4, 13)))
               for _ in range(shapes.inputs)]
    params = placed_params(model, params, placement)
    total, per_device = param_bytes(params)
    loaded = LoadedModel(model, params, vocab, placement)
    box = {}

    def rank():
        box["rank"] = rank_classify(loaded, inputs, options, RankSettings(
            batch_size=shapes.batch_size, max_input_length=shapes.input_len,
            max_option_length=16))

    def decode():
        # a random model almost never emits EOS in every row at once: the loop runs to the end
        box["decode"] = generate(loaded, inputs, DecodeSettings(
            max_new_tokens=shapes.new_tokens, method="greedy", batch_size=shapes.batch_size,
            max_input_length=shapes.input_len))

    rank_s, _ = median_time(rank, s.warmup, s.repeat)
    decode_s, _ = median_time(decode, s.warmup, s.repeat)
    return {"mesh": placement.axis_sizes(), "devices": placement.mesh.size,
            "batch_multiple": placement.batch_multiple, "inputs": shapes.inputs,
            "batch_size": shapes.batch_size, "input_tokens": shapes.input_len,
            "options": shapes.options, "new_tokens": shapes.new_tokens,
            "param_mib": total / 2 ** 20, "param_mib_per_device": per_device / 2 ** 20,
            "rank_examples_per_s": shapes.inputs / rank_s,
            "decode_examples_per_s": shapes.inputs / decode_s,
            "_predictions": [r.prediction_index for r in box["rank"]], "_texts": box["decode"]}


def bench_mesh(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    import jax

    if (jax.devices()[0].platform == "cpu" and jax.device_count() < HOST_DEVICES
            and HOST_DEVICES_ENV not in os.environ):
        return _in_child(models, s)
    shapes = Shapes.make(s.quick)
    rows = []
    for name, model in family_models(models, s):
        params, base = jax.device_get(init_params(model)), None
        for label, axes in mesh_layouts(jax.device_count()).items():
            r = measure_mesh(model, params, make_placement(axes), s, shapes)
            preds, texts = r.pop("_predictions"), r.pop("_texts")
            if base is None:
                base = r, preds, texts
            one, base_preds, base_texts = base
            r["rank_vs_one_device"] = r["rank_examples_per_s"] / one["rank_examples_per_s"]
            r["decode_vs_one_device"] = (r["decode_examples_per_s"]
                                         / one["decode_examples_per_s"])
            # random models have near ties; sharded sums may reorder them
            r["rank_agreement"] = float(np.mean([a == b for a, b in zip(preds, base_preds)]))
            r["decode_agreement"] = float(np.mean([a == b for a, b in zip(texts, base_texts)]))
            platform = jax.devices()[0].platform
            rows.append({"model": name, "family": model.config.family, "layout": label,
                         "platform": platform, "note": NOTE if platform == "cpu" else "", **r})
            say(f"mesh {name} {label} {r['mesh']}: rank {r['rank_examples_per_s']:,.1f} ex/s "
                f"({r['rank_vs_one_device']:.2f}x one device), greedy "
                f"{r['decode_examples_per_s']:,.1f} ex/s ({r['decode_vs_one_device']:.2f}x)")
    return rows


# --- a child process with simulated CPU devices -----------------------------------------------

def _in_child(models: list[tuple[str, Any]], s: Settings) -> list[dict]:
    """Runs `bench_mesh` in `python -m flan_jax.bench.mesh` with HOST_DEVICES CPU devices (this
    process's JAX is already up with one); the models travel as plain config fields."""
    say(f"mesh: running with {HOST_DEVICES} simulated CPU devices in a child process")
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = os.path.join(tmp, "spec.json"), os.path.join(tmp, "rows.json")
        with open(spec, "w") as f:
            json.dump({"settings": dataclasses.asdict(s),
                       "models": [[n, dataclasses.asdict(c)] for n, c in models]}, f)
        env = {**os.environ, HOST_DEVICES_ENV: str(HOST_DEVICES), "JAX_PLATFORMS": "cpu"}
        subprocess.run([sys.executable, "-m", "flan_jax.bench.mesh", spec, out], env=env,
                       check=True)
        with open(out) as f:
            return json.load(f)


def _child_main(spec_path: str, out_path: str) -> None:
    ensure_gin()
    import jax

    from flan_jax.models.config import plain_config

    jax.config.update("jax_default_matmul_precision", "float32")
    with open(spec_path) as f:
        spec = json.load(f)
    models = [(n, plain_config(**fields)) for n, fields in spec["models"]]
    rows = bench_mesh(models, Settings(**spec["settings"]))
    with open(out_path, "w") as f:
        json.dump(rows, f, default=float)


if __name__ == "__main__":
    _child_main(*sys.argv[1:3])
