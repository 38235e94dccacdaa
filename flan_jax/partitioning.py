"""Device mesh, logical-axis rules, and the shardings of params, optimizer state and batches.

Models name their axes logically (`embed`, `mlp`, `heads`, `kv_heads`, `kv`, `vocab`, `batch`,
`length`); gin binds the mesh shape and the rules that map logical names to mesh axes. No device
count appears anywhere: a mesh axis of size -1 takes whatever devices are left, so one CPU and
a TPU pod run the same config.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

Rules = Sequence[tuple[str, Any]]

# t5x/MaxText-style defaults: data parallel over `data`, parameters and optimizer state sharded
# over `fsdp` (ZeRO-3 style), tensor parallelism over `tensor`.
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("embed", "fsdp"),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),  # the stacked axis of scanned layers: every device holds every layer
)


UNEVEN_OK = ("vocab",)  # logical axes kept whole, not refused, when their size does not divide


class MeshError(ValueError):
    """A mesh that does not fit the devices or the model's dimensions (exit code 2)."""


@gin.configurable
def mesh_axes(axes: Mapping[str, int] | None = None) -> dict[str, int]:
    """Mesh axis sizes from gin, e.g. `mesh_axes.axes = {"data": -1, "fsdp": 1, "tensor": 1}`;
    an axis left out has size 1 (`{'fsdp': -1}` is fsdp over every device)."""
    return {"data": 1, "fsdp": 1, "tensor": 1, **dict(axes or {"data": -1})}


@gin.configurable
def logical_axis_rules(rules: Rules | None = None) -> tuple[tuple[str, Any], ...]:
    return tuple((name, tuple(m) if isinstance(m, list) else m) for name, m in
                 (rules or DEFAULT_RULES))


def _simulated_devices_hint(needed: int) -> str:
    """On a CPU, how to get more (simulated) devices: XLA must be told before JAX starts."""
    try:
        on_cpu = jax.default_backend() == "cpu"
    except RuntimeError:
        on_cpu = False
    if not on_cpu:
        return ""
    return (f" On a CPU, simulate {needed} devices by starting with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={needed}.")


def resolve_mesh_shape(axes: Mapping[str, int], num_devices: int) -> dict[str, int]:
    """Fills the one -1 entry so the product equals the device count; explains mismatches."""
    sizes = dict(axes)
    unknown = [k for k, v in sizes.items() if v == -1]
    if len(unknown) > 1:
        raise MeshError(f"mesh_axes.axes={sizes}: at most one axis may be -1.")
    known = int(np.prod([v for v in sizes.values() if v != -1]))
    if unknown:
        if num_devices % known:
            raise MeshError(f"mesh_axes.axes={sizes}: the {num_devices} devices do not divide "
                            f"by the fixed axes' product {known}; make the sizes divide "
                            f"{num_devices} or set one to -1.")
        sizes[unknown[0]] = num_devices // known
    needed = int(np.prod(list(sizes.values())))
    if needed != num_devices:
        raise MeshError(f"mesh_axes.axes={sizes} needs {needed} devices but {num_devices} are "
                        f"available; set one axis to -1.{_simulated_devices_hint(needed)}")
    return sizes


@gin.configurable
def make_mesh(axes: Mapping[str, int] | None = None, devices: Sequence[Any] | None = None,
              num_devices: int | None = None) -> Mesh:
    """The mesh over all devices (or the first `num_devices`, for experiments and tests)."""
    devices = list(devices if devices is not None else jax.devices())
    if num_devices:
        devices = devices[:num_devices]
    sizes = resolve_mesh_shape(mesh_axes(axes) if axes else mesh_axes(), len(devices))
    names = tuple(sizes)
    auto = (jax.sharding.AxisType.Auto,) * len(names)
    return jax.make_mesh(tuple(sizes.values()), names, axis_types=auto, devices=devices)


def _divisible_spec(spec: P, shape: Sequence[int], mesh: Mesh, what: str = "",
                    logical: Sequence[Any] = ()) -> P:
    """`spec` for an array of `shape`. A dimension smaller than its mesh axes stays whole
    (e.g. one kv head over 2 tensor shards: every shard holds it), and so does a vocabulary
    whose size the tokenizer fixed (259 bytes); any other dimension that does not divide is a
    mistake in the mesh or the rules and raises MeshError naming both."""
    out = []
    padded = tuple(spec) + (None,) * (len(shape) - len(spec))
    names_of = tuple(logical) + (None,) * (len(shape) - len(tuple(logical)))
    for i, (dim, axes) in enumerate(zip(shape, padded)):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        size = int(np.prod([mesh.shape[a] for a in names])) if names else 1
        if names and dim % size:
            if dim > size and names_of[i] not in UNEVEN_OK:
                axis_text = " x ".join(f"{a!r} ({mesh.shape[a]})" for a in names)
                logical_name = f" (logical axis {names_of[i]!r})" if names_of[i] else ""
                raise MeshError(
                    f"{what or 'an array'}: dimension {i} of size {dim}{logical_name} does not "
                    f"divide over mesh axis {axis_text} of size {size}; pick mesh_axes.axes "
                    f"sizes that divide it (mesh now {dict(mesh.shape)}) or map "
                    f"{names_of[i] or 'that axis'!r} to None in logical_axis_rules.")
            logging.info("Not sharding %s dim %d over %s (size %d).", what, dim, names, size)
            out.append(None)
        else:
            out.append(axes)
    return P(*out)


def logical_to_shardings(logical_specs, shapes, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for a tree of logical PartitionSpecs and matching shapes."""
    mesh_specs = nn.logical_to_mesh(logical_specs, rules)
    flat_logical = jax.tree_util.tree_leaves(logical_specs, is_leaf=lambda x: isinstance(x, P))
    flat_mesh, treedef = jax.tree_util.tree_flatten(mesh_specs,
                                                    is_leaf=lambda x: isinstance(x, P))
    flat_shapes = jax.tree_util.tree_flatten_with_path(shapes)[0]
    out = [NamedSharding(mesh, _divisible_spec(spec, x.shape, mesh, _name(path), tuple(lspec)))
           for spec, lspec, (path, x) in zip(flat_mesh, flat_logical, flat_shapes)]
    return jax.tree_util.tree_unflatten(treedef, out)


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def params_shardings(boxed_abstract_params, mesh: Mesh, rules: Rules):
    """Shardings of a model's params from the `Partitioned` boxes that `init` creates."""
    logical = nn.get_partition_spec(boxed_abstract_params)
    return logical_to_shardings(logical, nn.meta.unbox(boxed_abstract_params), mesh, rules)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int = 2) -> NamedSharding:
    spec = nn.logical_to_mesh_axes(("batch",) + (None,) * (ndim - 1), rules)
    return NamedSharding(mesh, spec)


def state_shardings_like(abstract_state, abstract_params, param_shardings, mesh: Mesh):
    """Optimizer-state shardings: a leaf shaped like its parameter shares its sharding;
    anything else (step counts, factored second moments) is replicated."""
    flat_params = {tuple(path): (x.shape, s) for (path, x), s in zip(
        jax.tree_util.tree_flatten_with_path(abstract_params)[0],
        jax.tree_util.tree_leaves(param_shardings))}

    def pick(path, leaf):
        for plen in range(len(path)):
            key = tuple(path[plen:])
            if key in flat_params and flat_params[key][0] == getattr(leaf, "shape", None):
                return flat_params[key][1]
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, abstract_state)


def shard_like(tree, shardings):
    return jax.tree_util.tree_map(lambda x, s: jax.device_put(x, s), tree, shardings)


@gin.configurable
def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           cpu_collectives: bool = False) -> None:
    """Multi-host setup from gin or the environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID); on TPU pods `jax.distributed.initialize()` alone
    discovers the rest. Nothing happens when neither says anything."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator_address is None:
        return
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
