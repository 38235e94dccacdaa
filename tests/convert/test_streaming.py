"""Streaming conversion: tensors are read and written one at a time, dtypes are kept, and a
~1.5 GB checkpoint converts in a child process whose peak resident memory stays far below it."""

import json
import os
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest

from flan_jax import checkpoints
from flan_jax.convert import safetensors_io
from flan_jax.convert.hf import convert
from flan_jax.convert.lazy import LazyTensor, save_lazy_params

BF16 = np.dtype(ml_dtypes.bfloat16)


def _filled(shape, seed):
    """A lazy bfloat16 tensor of random values; a small random block is tiled so generating
    1.5 GB stays fast, and its bits are in (1/256, 1) so no NaN or infinity appears."""
    def load():
        block = np.random.default_rng(seed).integers(0x3B80, 0x3F80, size=1 << 16,
                                                     dtype=np.uint16)
        n = int(np.prod(shape))
        return np.resize(block, n).view(BF16).reshape(shape)
    return LazyTensor(tuple(shape), BF16, load)


def _llama_checkpoint(directory, hidden, mlp, layers, vocab, heads, kv_heads, shards):
    """A Llama safetensors checkpoint in `shards` files, generated tensor by tensor."""
    head_dim = hidden // heads
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes.update({f"{p}.input_layernorm.weight": (hidden,),
                       f"{p}.post_attention_layernorm.weight": (hidden,),
                       f"{p}.self_attn.q_proj.weight": (heads * head_dim, hidden),
                       f"{p}.self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
                       f"{p}.self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
                       f"{p}.self_attn.o_proj.weight": (hidden, heads * head_dim),
                       f"{p}.mlp.gate_proj.weight": (mlp, hidden),
                       f"{p}.mlp.up_proj.weight": (mlp, hidden),
                       f"{p}.mlp.down_proj.weight": (hidden, mlp)})
    tensors = {name: _filled(shape, seed) for seed, (name, shape) in enumerate(shapes.items())}
    names = list(tensors)
    per = -(-len(names) // shards)
    for s in range(shards):
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        safetensors_io.write_file(directory / f"model-{s + 1:05d}-of-{shards:05d}.safetensors",
                                  part, metadata={"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": hidden, "intermediate_size": mlp, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "vocab_size": vocab, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16",
              "tie_word_embeddings": False}
    (directory / "config.json").write_text(json.dumps(config))
    return tensors


def test_lazy_params_write_in_source_order_and_restore(tmp_path):
    calls = []

    def lazy(value, order):
        def load():
            calls.append(order)
            return value
        return LazyTensor(value.shape, value.dtype, load, (order,))

    a = np.arange(12, dtype=np.float32).reshape(3, 4).astype(BF16)
    b = np.arange(5, dtype=np.int32)
    save_lazy_params(tmp_path / "params", {"x": {"a": lazy(a, 2)}, "y": lazy(b, 1)})
    assert calls == [1, 2]  # by source order, not tree order; each read exactly once
    params = checkpoints.load_params(tmp_path)
    assert params["x"]["a"].dtype == BF16 and np.array_equal(params["x"]["a"], a)
    assert np.array_equal(params["y"], b)


def test_lazy_transforms_match_numpy():
    x = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
    t = LazyTensor(x.shape, x.dtype, lambda: x)
    y = t.T.reshape(10, 3, -1)
    assert y.shape == (10, 3, 2)
    np.testing.assert_array_equal(y.materialize(), x.T.reshape(10, 3, -1))
    assert t.astype(BF16).materialize().dtype == BF16
    with pytest.raises(ValueError, match="cannot reshape"):
        t.reshape(7, 9)


def test_safetensors_round_trip_against_the_reference_reader(tmp_path):
    from safetensors.numpy import load_file

    rng = np.random.default_rng(1)
    tensors = {"a": rng.normal(size=(3, 5)).astype(np.float32), "b": np.arange(7, dtype=np.int64),
               "c": rng.normal(size=(2, 2, 2)).astype(np.float16)}
    safetensors_io.write_file(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"})
    ref = load_file(str(tmp_path / "x.safetensors"))
    ours = safetensors_io.lazy_tensors(tmp_path / "x.safetensors")
    for name, value in tensors.items():
        np.testing.assert_array_equal(ref[name], value)
        np.testing.assert_array_equal(ours[name].materialize(), value)


def test_bfloat16_kept_and_float32_on_request(tmp_path):
    src = tmp_path / "hf"
    src.mkdir()
    tensors = _llama_checkpoint(src, hidden=16, mlp=24, layers=2, vocab=40, heads=4, kv_heads=2,
                                shards=2)
    cfg = convert(src, tmp_path / "kept")
    assert cfg.param_dtype == "bfloat16"
    params = checkpoints.load_params(tmp_path / "kept")
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {BF16}
    up = tensors["model.layers.1.mlp.up_proj.weight"].materialize()
    np.testing.assert_array_equal(params["layers_1"]["mlp"]["wi_1"]["kernel"], up.T)
    k = tensors["model.layers.0.self_attn.k_proj.weight"].materialize()
    np.testing.assert_array_equal(params["layers_0"]["self_attention"]["key"]["kernel"],
                                  k.T.reshape(16, 2, 4))

    cfg32 = convert(src, tmp_path / "f32", dtype="float32")
    assert cfg32.param_dtype == "float32"
    params32 = checkpoints.load_params(tmp_path / "f32")
    assert {x.dtype for x in jax.tree_util.tree_leaves(params32)} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(params32["layers_1"]["mlp"]["wi_1"]["kernel"],
                                  up.T.astype(np.float32))


_CHILD = """
import sys
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from flan_jax.convert import cli, hf, lazy  # the imports are baseline, not conversion
import jax, orbax.checkpoint, tensorstore
base = rss("VmRSS:")
assert cli.main(sys.argv[1:]) == 0
print("RSS", base, rss("VmHWM:"))
"""


def _peak_rss(*argv):
    """(baseline, peak) resident bytes of `flan-jax convert ARGV` in a child process."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _CHILD, *map(str, argv)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    base, peak = map(int, out.stdout.split("RSS")[-1].split())
    return base, peak


@pytest.mark.slow
def test_streaming_conversion_and_export_peak_memory(tmp_path):
    """A 1.5 GB, three-shard bfloat16 Llama (largest tensor 131 MB) converts, and exports
    back, with a peak resident set well below the checkpoint size above the interpreter's."""
    src = tmp_path / "hf"
    src.mkdir()
    _llama_checkpoint(src, hidden=2048, mlp=5632, layers=12, vocab=32000, heads=16, kv_heads=16,
                      shards=3)
    size = sum(f.stat().st_size for f in src.glob("*.safetensors"))
    assert len(list(src.glob("*.safetensors"))) == 3 and size > 1.45e9
    base, peak = _peak_rss("hf", "--src", src, "--dst", tmp_path / "out")
    print(f"checkpoint {size / 1e6:.0f} MB; convert hf: baseline {base / 1e6:.0f} MB, "
          f"peak {peak / 1e6:.0f} MB (+{(peak - base) / 1e6:.0f} MB)")
    assert peak - base < 600e6  # measured +273 MB: about two copies of the largest tensor
    meta = jax.tree_util.tree_leaves(_metadata(tmp_path / "out"))
    assert {np.dtype(m.dtype) for m in meta} == {BF16}
    assert sum(int(np.prod(m.shape)) * 2 for m in meta) == size - _headers(src)

    base, peak = _peak_rss("to-hf", "--src", tmp_path / "out", "--dst", tmp_path / "back",
                           "--max_shard_size", "600MB")
    print(f"convert to-hf: baseline {base / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB "
          f"(+{(peak - base) / 1e6:.0f} MB)")
    # measured +434 MB: orbax's restore buffers and the transposed copy of the largest tensor
    assert peak - base < 800e6
    back = sorted((tmp_path / "back").glob("*.safetensors"))
    assert len(back) == 3 and sum(f.stat().st_size for f in back) - _headers(tmp_path / "back") \
        == size - _headers(src)
    ours = safetensors_io.lazy_tensors(back[0])
    theirs = {}
    for f in src.glob("*.safetensors"):
        theirs.update(safetensors_io.lazy_tensors(f))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert ours[name].dtype == BF16
    np.testing.assert_array_equal(ours[name].materialize(), theirs[name].materialize())


def _metadata(model_dir):
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:
        meta = ckptr.metadata(model_dir / checkpoints.PARAMS_DIR)
    return getattr(meta, "item_metadata", meta)


def _headers(src):
    return sum(safetensors_io.read_header(f)[1] for f in src.glob("*.safetensors"))


def test_bin_shards_are_mapped_one_file_at_a_time(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    src = tmp_path / "hf"
    model.config.architectures = ["LlamaForCausalLM"]
    model.config.save_pretrained(src)
    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    names = list(state)
    # Shard files in the opposite of tree order, so a reader following the tree would
    # alternate between files.
    halves = [names[len(names) // 2:], names[:len(names) // 2]]
    for i, part in enumerate(halves):
        torch.save({k: state[k] for k in part}, src / f"pytorch_model-0000{i + 1}-of-00002.bin")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load",
                        lambda path, **kw: loads.append(path) or real_load(path, **kw))
    convert(src, tmp_path / "out")
    assert len(loads) == 4  # each file once to list its tensors, once to convert them
    params = checkpoints.load_params(tmp_path / "out")
    gate = state["model.layers.2.mlp.gate_proj.weight"].float().numpy()
    assert params["layers_2"]["mlp"]["wi_0"]["kernel"].dtype == BF16
    np.testing.assert_array_equal(params["layers_2"]["mlp"]["wi_0"]["kernel"].astype(np.float32),
                                  gate.T)
