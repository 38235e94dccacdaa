"""flan_jax.convert.safetensors_io: files read back tensor by tensor equal what was written,
shards stay under the size limit with the index transformers reads, bad files are named."""

import json
import struct

import ml_dtypes
import numpy as np
import pytest

from flan_jax.convert import safetensors_io as st
from flan_jax.convert.lazy import LazyTensor


def _tensors():
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal((3, 4)).astype(np.float32),
            "b": np.arange(6, dtype=np.int64).reshape(2, 3),
            "c": rng.standard_normal(5).astype(ml_dtypes.bfloat16)}


def test_a_written_file_reads_back_lazily_and_exactly(tmp_path):
    tensors = _tensors()
    st.write_file(tmp_path / "m.safetensors", tensors, metadata={"format": "np"})
    header, start = st.read_header(tmp_path / "m.safetensors")
    assert list(header) == ["a", "b", "c"] and start % 8 == 0
    assert header["b"] == {"dtype": "I64", "shape": [2, 3], "data_offsets": [48, 96]}
    lazy = st.lazy_tensors(tmp_path / "m.safetensors", file_index=3)
    assert lazy["a"].shape == (3, 4) and lazy["a"].order == (3, 0)
    for name, value in tensors.items():
        got = lazy[name].materialize()
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)


def test_lazy_inputs_are_written_like_arrays(tmp_path):
    tensors = _tensors()
    lazy = {k: LazyTensor(v.shape, v.dtype, lambda v=v: v) for k, v in tensors.items()}
    st.write_file(tmp_path / "lazy.safetensors", lazy)
    st.write_file(tmp_path / "eager.safetensors", tensors)
    assert (tmp_path / "lazy.safetensors").read_bytes() == \
        (tmp_path / "eager.safetensors").read_bytes()


def test_sharded_files_respect_the_limit_and_index_every_tensor(tmp_path):
    tensors = _tensors()  # 48 + 48 + 10 bytes: a | b, c under a 60-byte limit
    names = st.write_sharded(tmp_path, tensors, max_shard_bytes=60)
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json"]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 106
    assert index["weight_map"] == {"a": names[0], "b": names[1], "c": names[1]}
    assert set(st.lazy_tensors(tmp_path / names[1])) == {"b", "c"}
    assert st.write_sharded(tmp_path / ".", {"a": tensors["a"]}, 1000) == ["model.safetensors"]


def test_truncated_and_foreign_files_are_named(tmp_path):
    st.write_file(tmp_path / "m.safetensors", {"a": np.ones((4, 4), np.float32)})
    raw = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "short.safetensors").write_bytes(raw[:-8])
    with pytest.raises(ValueError, match="truncated: tensor a needs 64 bytes"):
        st.lazy_tensors(tmp_path / "short.safetensors")["a"].materialize()
    (tmp_path / "other.bin").write_bytes(struct.pack("<Q", 10**12) + b"xx")
    with pytest.raises(ValueError, match="not a safetensors file"):
        st.read_header(tmp_path / "other.bin")
    with pytest.raises(ValueError, match="cannot be stored in safetensors"):
        st.write_file(tmp_path / "c.safetensors", {"z": np.ones(2, np.complex64)})
