"""Where inference runs: the training mesh and its logical-axis rules, for eval, infer, scoring
and decoding alike.

A `Placement` turns host batches into global arrays sharded over the data axes (the mesh axes
that the logical `batch` axis maps to, `data` and `fsdp` by default), runs the jitted model
functions inside the mesh and the rules (so the models' logical constraints apply), and brings
results back to every process. Parameters are restored straight into their shardings by
`checkpoints.load_model_dir(..., placement=...)`, so no process ever holds the whole model on
one device.

Multi-host: every process runs the same command on the same examples; each feeds only the
shards of a batch its own devices hold (`jax.make_array_from_callback`), so the work is divided
over processes, and `fetch` gathers the results on all of them.

There is always a Placement: a caller without a mesh gets `Placement.single_device()` (the
same axis names and rules over one device), so scoring and decoding have one path.

A `LoadedModel` is what scoring, decoding and `predict` run: the model, its parameters placed on
a `Placement`, and its vocabulary, carried together through every hop of the inference path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from flan_jax import partitioning


@dataclasses.dataclass(frozen=True)
class Placement:
    mesh: Mesh
    rules: tuple

    @classmethod
    def from_gin(cls) -> "Placement":
        """The mesh and rules the gin config binds (`mesh_axes`, `logical_axis_rules`,
        `hardware/*.gin`): the same ones `train` uses."""
        return cls(partitioning.make_mesh(), tuple(partitioning.logical_axis_rules()))

    @classmethod
    def single_device(cls, device: jax.Device | None = None) -> "Placement":
        """One device (the default one unless given), every mesh axis of size 1."""
        sizes = {name: 1 for name in partitioning.mesh_axes()}
        mesh = partitioning.make_mesh(sizes, devices=[device or jax.devices()[0]])
        return cls(mesh, tuple(partitioning.logical_axis_rules()))

    @property
    def data_axes(self) -> tuple[str, ...]:
        """The mesh axes a batch is split over."""
        spec = nn.logical_to_mesh_axes(("batch",), self.rules)[0]
        names = (spec,) if isinstance(spec, str) else tuple(spec or ())
        return tuple(a for a in names if a in self.mesh.shape)

    @property
    def batch_multiple(self) -> int:
        """Batches are padded to a multiple of this (the product of the data axes' sizes)."""
        return int(math.prod(self.mesh.shape[a] for a in self.data_axes))

    def axis_sizes(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.mesh.shape.items()}

    def batch_sharding(self, ndim: int) -> NamedSharding:
        axes = self.data_axes
        first = (axes[0] if len(axes) == 1 else axes) if axes else None
        return NamedSharding(self.mesh, P(first, *(None,) * (ndim - 1)))

    def put(self, x) -> jax.Array:
        """A host array (the same on every process) as a global array split over the data axes
        along its first dimension, which must divide by `batch_multiple`."""
        x = np.asarray(x)
        if x.ndim == 0:
            return jax.device_put(x, NamedSharding(self.mesh, P()))
        if x.shape[0] % self.batch_multiple:
            raise ValueError(f"a batch of {x.shape[0]} rows does not split over the data axes "
                             f"{self.data_axes} of size {self.batch_multiple}; pad it first.")
        return jax.make_array_from_callback(x.shape, self.batch_sharding(x.ndim),
                                            lambda index: x[index])

    def put_tree(self, tree) -> Any:
        return jax.tree_util.tree_map(self.put, tree)

    @contextlib.contextmanager
    def context(self):
        """The mesh and the logical-axis rules, for tracing and running the jitted functions."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield

    def fetch_tree(self, tree) -> Any:
        """Model outputs as host arrays, whole, on every process."""
        return jax.tree_util.tree_map(Placement.fetch, tree)

    @staticmethod
    def fetch(x) -> np.ndarray:
        """A (possibly sharded, possibly multi-host) array, whole, on this host."""
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for inference: the Flax module (`build_model(cfg)`), its parameters (already
    in their shardings on `placement`, e.g. from `checkpoints.load_model_dir(..., placement)`),
    the vocabulary its texts are tokenized with, and where it runs (default: one device)."""
    model: nn.Module
    params: Any
    vocab: Any
    placement: Placement = dataclasses.field(default_factory=Placement.single_device)

    @property
    def family(self) -> str:
        """"encoder_decoder" or "decoder_only"."""
        return self.model.config.family


def round_up(n: int, multiple: int) -> int:
    return -(-int(n) // max(int(multiple), 1)) * max(int(multiple), 1)


def resolve(placement: Placement | None) -> Placement:
    """`placement`, or `Placement.single_device()` for a caller that names none (the public
    scoring and decoding functions resolve it once, at their entry)."""
    return placement if placement is not None else Placement.single_device()


def param_bytes(params) -> tuple[int, int]:
    """(bytes of all parameters, the most bytes any one device holds), from the arrays'
    shardings (every device of the mesh counts, addressable or not)."""
    total, per_device = 0, {}
    for leaf in jax.tree_util.tree_leaves(params):
        itemsize = np.dtype(leaf.dtype).itemsize
        total += int(np.prod(leaf.shape)) * itemsize
        sharding = getattr(leaf, "sharding", None)
        if sharding is None:
            continue
        for device, index in sharding.devices_indices_map(tuple(leaf.shape)).items():
            n = 1
            for dim, sl in zip(leaf.shape, index):
                start, stop, step = sl.indices(dim)
                n *= len(range(start, stop, step))
            per_device[device] = per_device.get(device, 0) + n * itemsize
    return total, max(per_device.values(), default=total)
