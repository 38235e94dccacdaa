"""Write an orbax parameter checkpoint one tensor at a time.

`checkpoints.save_params` hands orbax a tree of materialised arrays, and orbax's numpy handler
copies them all and writes them concurrently: converting a model would need the whole model in
host memory (twice). Here the tree's leaves are `LazyTensor`s (shape, dtype and a function that
produces the array), and a type handler of our own materialises, writes and drops them one after
another. It delegates the actual write to orbax's `NumpyHandler` and reports the same type string,
so the directory is an ordinary orbax checkpoint that `checkpoints.load_params` restores.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
from etils import epath


@dataclasses.dataclass(frozen=True, eq=False)
class LazyTensor:
    """An array not read yet. `order` sorts the writes (source file, offset) so a reader that
    keeps one file open at a time opens each file once."""

    shape: tuple[int, ...]
    dtype: np.dtype
    load: Callable[[], np.ndarray]
    order: tuple = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def map(self, fn: Callable[[np.ndarray], np.ndarray], shape: Sequence[int] | None = None,
            dtype: Any = None) -> "LazyTensor":
        """A lazy `fn(self)`; pass the result's shape/dtype when `fn` changes them."""
        return LazyTensor(tuple(self.shape if shape is None else shape),
                          np.dtype(self.dtype if dtype is None else dtype),
                          lambda: fn(self.load()), self.order)

    def __getitem__(self, index: int) -> "LazyTensor":
        """One entry along the first axis (a layer of a scanned stack)."""
        return self.map(lambda a: a[index], shape=self.shape[1:])

    @property
    def T(self) -> "LazyTensor":  # noqa: N802 (numpy's name)
        return self.map(lambda a: a.T, shape=self.shape[::-1])

    def reshape(self, *shape: int) -> "LazyTensor":
        if -1 in shape:  # numpy's inferred dimension
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            shape = tuple(self.size // known if d == -1 else d for d in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ValueError(f"cannot reshape {list(self.shape)} into {list(shape)}")
        return self.map(lambda a: a.reshape(shape), shape=shape)

    def astype(self, dtype: Any) -> "LazyTensor":
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else self.map(lambda a: a.astype(dtype), dtype=dtype)

    def materialize(self) -> np.ndarray:
        value = np.asarray(self.load())
        if value.shape != self.shape or value.dtype != self.dtype:
            raise ValueError(f"lazy tensor produced {value.dtype}{list(value.shape)}, declared "
                             f"{self.dtype}{list(self.shape)}")
        return value


def _handler():
    """The orbax TypeHandler for LazyTensor (built on first use: orbax imports are slow)."""
    from orbax.checkpoint import future, type_handlers

    class LazyTensorHandler(type_handlers.NumpyHandler):
        def __init__(self):
            super().__init__(deepcopy_host_arrays=False)

        async def serialize(self, values, infos, args=None):
            args = args or [type_handlers.SaveArgs()] * len(values)
            return [future.CommitFutureAwaitingContractedSignals(
                self._write_in_order(values, infos, args), name="flan_jax_lazy_tensors")]

        async def _write_in_order(self, values, infos, args):
            jobs = sorted(zip(values, infos, args), key=lambda j: j[0].order)
            for value, info, arg in jobs:
                array = value.materialize()
                # One tensor in flight: the next is read only after this one is on disk.
                await self._background_serialize([array], [info], [arg])
                del array

    return LazyTensorHandler()


def save_lazy_params(path: str | epath.PathLike, tree) -> None:
    """Writes a tree of `LazyTensor`s as an orbax checkpoint at `path` (which must not exist).

    Orbax writes into a temporary directory and renames it at the end, so `path` appears only
    complete."""
    import jax
    import orbax.checkpoint as ocp

    registry = ocp.type_handlers.create_type_handler_registry(
        (jax.Array, ocp.type_handlers.ArrayHandler()), (LazyTensor, _handler()))
    handler = ocp.PyTreeCheckpointHandler(type_handler_registry=registry)
    with ocp.Checkpointer(handler) as ckptr:
        ckptr.save(epath.Path(path), args=ocp.args.PyTreeSave(tree))


def lazy_restore(path: str | epath.PathLike, subtree: tuple[str, ...] = ()):
    """The arrays of the orbax checkpoint at `path` (below the dict keys `subtree`, e.g.
    ("params",) of a training step's state) as `LazyTensor`s: each read restores that one
    array (orbax's partial restore), so exporting holds one tensor at a time, and a training
    step's optimizer state is never read."""
    import jax
    import orbax.checkpoint as ocp

    path = epath.Path(path)
    from flan_jax.checkpoints import reading  # damaged -> one line

    with ocp.StandardCheckpointer() as ckptr, reading(path):
        meta = ckptr.metadata(path)
    tree = getattr(meta, "item_metadata", meta)
    for key in subtree:
        if tree is None:  # orbax read no metadata: as unreadable as a failed read
            from flan_jax.checkpoints import damaged

            raise damaged(path, ValueError("no readable metadata"))
        tree = tree[key]

    def lazy(keypath, m):
        keys = subtree + tuple(_dict_key(k, path) for k in keypath)
        return LazyTensor(tuple(m.shape), np.dtype(m.dtype), lambda: _restore_one(path, keys))

    return jax.tree_util.tree_map_with_path(lazy, _as_dicts(tree))


def _as_dicts(tree):
    """Plain nested dicts of the metadata's leaves (orbax's metadata tree is dict-like)."""
    if hasattr(tree, "keys"):
        return {k: _as_dicts(tree[k]) for k in tree.keys()}
    return tree


def _dict_key(key, path) -> str:
    if not hasattr(key, "key"):
        raise ValueError(f"{path}: parameters are expected to be nested dicts, found {key}.")
    return key.key


def _restore_one(path: epath.Path, keys: tuple[str, ...]) -> np.ndarray:
    import orbax.checkpoint as ocp

    item: Any = 0
    args: Any = ocp.RestoreArgs(restore_type=np.ndarray)
    for key in reversed(keys):
        item, args = {key: item}, {key: args}
    from flan_jax.checkpoints import reading  # damaged -> one line

    with ocp.PyTreeCheckpointer() as ckptr, reading(path):
        out = ckptr.restore(path, args=ocp.args.PyTreeRestore(item=item, restore_args=args,
                                                              partial_restore=True))
    for key in keys:
        out = out[key]
    return np.asarray(out)
