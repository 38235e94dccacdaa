"""The safetensors format read and written one tensor at a time, through etils.epath.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype,
shape, [begin, end) byte offsets into the data that follows) and the raw little-endian data.
The `safetensors` package maps whole local files; reading with seek/read instead keeps only
the tensor being converted in memory and works on any path epath opens (gs://, s3://).
"""

from __future__ import annotations

import json
import struct
from typing import Mapping

import ml_dtypes
import numpy as np
from etils import epath

from flan_jax.convert.lazy import LazyTensor

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
           "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
# Files above this many header bytes are not safetensors (the format caps headers at 100 MB).
_MAX_HEADER = 100_000_000


def read_header(path: epath.Path) -> tuple[dict, int]:
    """(header without __metadata__, byte offset where the data starts)."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > _MAX_HEADER:
            raise ValueError(f"{path} is not a safetensors file (header length {n}).")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def lazy_tensors(path: str | epath.PathLike, file_index: int = 0) -> dict[str, LazyTensor]:
    """Every tensor of a safetensors file, unread; each read opens the file, seeks, reads only
    that tensor's bytes and closes it again."""
    path = epath.Path(path)
    header, data_start = read_header(path)
    out = {}
    for name, entry in header.items():
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {entry['dtype']}.")
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]

        def load(begin=begin, end=end, dtype=dtype, shape=shape, name=name):
            with path.open("rb") as f:
                f.seek(data_start + begin)
                raw = f.read(end - begin)
            if len(raw) != end - begin:
                raise ValueError(f"{path} is truncated: tensor {name} needs {end - begin} bytes.")
            return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False) \
                .reshape(shape)

        out[name] = LazyTensor(shape, dtype, load, (file_index, begin))
    return out


def _header_bytes(tensors: Mapping[str, LazyTensor | np.ndarray], metadata: dict | None) -> bytes:
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, t in tensors.items():
        dtype = np.dtype(t.dtype)
        if dtype not in _CODES:
            raise ValueError(f"tensor {name}: dtype {dtype} cannot be stored in safetensors.")
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": _CODES[dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)  # keep the data 8-byte aligned


def write_file(path: str | epath.PathLike, tensors: Mapping[str, LazyTensor | np.ndarray],
               metadata: dict | None = None) -> None:
    """Writes `tensors` (in order) into one safetensors file, materialising one at a time."""
    path = epath.Path(path)
    head = _header_bytes(tensors, metadata)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for t in tensors.values():
            value = t.materialize() if isinstance(t, LazyTensor) else np.asarray(t)
            value = np.ascontiguousarray(value.astype(value.dtype.newbyteorder("<"), copy=False))
            f.write(value.reshape(-1).view(np.uint8).data)  # the array's own buffer, no copy
            del value


def write_sharded(directory: epath.Path, tensors: Mapping[str, LazyTensor | np.ndarray],
                  max_shard_bytes: int, metadata: dict | None = None) -> list[str]:
    """`model.safetensors`, or `model-0000i-of-0000n.safetensors` files of at most
    `max_shard_bytes` each (a bigger single tensor gets a file of its own) plus
    `model.safetensors.index.json`, the layout transformers' `from_pretrained` reads.
    Returns the file names written."""
    shards: list[dict] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    if len(shards) == 1:
        write_file(directory / "model.safetensors", shards[0], metadata)
        return ["model.safetensors"]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for file_name, shard in zip(names, shards):
        write_file(directory / file_name, shard, metadata)
        weight_map.update({k: file_name for k in shard})
    total = sum(int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
                for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return names + ["model.safetensors.index.json"]

