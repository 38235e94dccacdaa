"""The two layer layouts of a parameter tree, and conversion between them.

"unscanned": one subtree per layer, `layers_0`, `layers_1`, ... (what `convert hf` writes).
"scanned":   one subtree `layers` whose arrays carry a leading layers axis
             (`TransformerConfig.scan_layers`, the stack `nn.scan` runs over).

A stack sits at the tree's root (decoder-only) or under `encoder` / `decoder`. Conversion
stacks or splits leaves; it works on numpy arrays, jax arrays (inside `jit` too) and
`jax.ShapeDtypeStruct` restore targets, whose shardings gain or lose the leading axis. The
KV cache of a scanned model has the layers axis first as well: `gather_cache` knows both.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from flan_jax.models.config import TransformerConfig
from flan_jax.models.layers import SCANNED_LAYERS

SCANNED = "scanned"
UNSCANNED = "unscanned"
_LAYER_KEY = re.compile(r"^layers_(\d+)$")


class LayoutError(ValueError):
    """A parameter tree whose layer layout cannot be turned into the one wanted."""


def config_layout(cfg: TransformerConfig) -> str:
    """The layout a model built from `cfg` creates and expects."""
    return SCANNED if cfg.scan_layers else UNSCANNED


def _stacks(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(path, layout) of every dict in `tree` that holds a stack of layers."""
    if not isinstance(tree, Mapping):
        return []
    kinds = {SCANNED if k == SCANNED_LAYERS else UNSCANNED for k in tree
             if k == SCANNED_LAYERS or _LAYER_KEY.match(str(k))}
    if len(kinds) > 1:
        raise LayoutError(f"{'/'.join(path) or 'the tree root'} mixes `layers` with `layers_N` "
                          "subtrees; it is neither layout, so it cannot be converted.")
    found = [(path, kinds.pop())] if kinds else []
    for key, sub in tree.items():  # layer subtrees themselves hold no further stacks
        if key != SCANNED_LAYERS and not _LAYER_KEY.match(str(key)):
            found += _stacks(sub, path + (str(key),))
    return found


def has_layers(tree: Any) -> bool:
    """Whether `tree` holds any stack of layers (a prompt-only tree does not)."""
    return bool(_stacks(tree))


def params_layout(params: Any) -> str:
    """"scanned" or "unscanned" (keys only: arrays, shape structs or orbax metadata alike)."""
    stacks = _stacks(params)
    if not stacks:
        raise LayoutError("the parameter tree holds no transformer layers (neither `layers_N` "
                          "subtrees nor a scanned `layers` subtree).")
    kinds = {kind for _, kind in stacks}
    if len(kinds) > 1:
        raise LayoutError("the parameter tree has scanned and unscanned stacks at once: "
                          + ", ".join(f"{'/'.join(p) or 'root'}: {k}" for p, k in stacks))
    return kinds.pop()


def _expected_depth(cfg: TransformerConfig | None, path: tuple[str, ...]) -> int | None:
    if cfg is None:
        return None
    return cfg.num_encoder_layers if path and path[-1] == "encoder" else cfg.num_decoder_layers


def _stack_leaves(*leaves):
    first = leaves[0]
    if isinstance(first, jax.ShapeDtypeStruct):
        sharding = first.sharding
        if isinstance(sharding, NamedSharding):
            sharding = NamedSharding(sharding.mesh, P(None, *sharding.spec))
        return jax.ShapeDtypeStruct((len(leaves),) + tuple(first.shape), first.dtype,
                                    sharding=sharding)
    if all(isinstance(x, np.ndarray) for x in leaves):
        return np.stack(leaves)
    return jnp.stack(leaves)


def _split_leaf(x, n: int) -> list:
    if isinstance(x, jax.ShapeDtypeStruct):
        sharding = x.sharding
        if isinstance(sharding, NamedSharding):
            sharding = NamedSharding(sharding.mesh, P(*tuple(sharding.spec)[1:]))
        return [jax.ShapeDtypeStruct(tuple(x.shape[1:]), x.dtype, sharding=sharding)] * n
    return [x[i] for i in range(n)]


def _map_stacks(tree: Any, fn: Callable[[tuple[str, ...], dict], dict],
                path: tuple[str, ...] = ()) -> Any:
    """`tree` with `fn(path, node)` applied to every dict holding a stack of layers."""
    if not isinstance(tree, Mapping):
        return tree
    node = dict(tree)
    if any(k == SCANNED_LAYERS or _LAYER_KEY.match(str(k)) for k in node):
        node = fn(path, node)
    return {k: v if k == SCANNED_LAYERS or _LAYER_KEY.match(str(k))
            else _map_stacks(v, fn, path + (str(k),)) for k, v in node.items()}


def _where(path: tuple[str, ...]) -> str:
    return f"the {path[-1]}'s" if path else "the"


def scan_params(params: Any, cfg: TransformerConfig | None = None) -> Any:
    """`layers_0..N-1` subtrees stacked into one `layers` subtree (a no-op if already scanned).

    With `cfg`, each stack's depth must be the configured one."""
    def stack(path, node):
        if SCANNED_LAYERS in node:
            return node
        idx = sorted(int(_LAYER_KEY.match(k).group(1)) for k in node if _LAYER_KEY.match(k))
        if idx != list(range(len(idx))):
            raise LayoutError(f"{_where(path)} layers are numbered {idx}, not 0..{len(idx) - 1}; "
                              "cannot stack them into a scanned layout.")
        _check_depth(cfg, path, len(idx), UNSCANNED)
        layers = [node.pop(f"layers_{i}") for i in idx]
        try:
            node[SCANNED_LAYERS] = jax.tree_util.tree_map(_stack_leaves, *layers)
        except ValueError as e:  # tree structures or shapes differ between layers
            raise LayoutError(f"{_where(path)} layers differ in structure or shapes, so they "
                              f"cannot be stacked into a scanned layout: {e}") from e
        return node

    return _map_stacks(params, stack)


def unscan_params(params: Any, cfg: TransformerConfig | None = None) -> Any:
    """A scanned `layers` subtree split into `layers_0..N-1` (a no-op if already unscanned)."""
    def split(path, node):
        if SCANNED_LAYERS not in node:
            return node
        stacked = node.pop(SCANNED_LAYERS)
        depths = {x.shape[0] for x in jax.tree_util.tree_leaves(stacked)}
        if len(depths) != 1:
            raise LayoutError(f"{_where(path)} scanned layers have leading axes of different "
                              f"sizes {sorted(depths)}; cannot split them into layers.")
        n = depths.pop()
        _check_depth(cfg, path, n, SCANNED)
        leaves, treedef = jax.tree_util.tree_flatten(stacked)
        per_leaf = [_split_leaf(x, n) for x in leaves]
        for i in range(n):
            node[f"layers_{i}"] = jax.tree_util.tree_unflatten(treedef, [s[i] for s in per_leaf])
        return node

    return _map_stacks(params, split)


def _check_depth(cfg, path, depth: int, have: str) -> None:
    want = _expected_depth(cfg, path)
    if want is not None and want != depth:
        stack = path[-1] if path else "decoder"
        raise LayoutError(
            f"the parameters have {have} layers, {depth} {stack} layers, but the configured "
            f"model wants {config_layout(cfg)} layers, {want} of them; no conversion changes the "
            "depth. Build the model from the checkpoint's own model.gin.")


def to_layout(params: Any, layout: str, cfg: TransformerConfig | None = None) -> Any:
    """`params` in `layout` ("scanned" or "unscanned")."""
    if layout == SCANNED:
        return scan_params(params, cfg)
    if layout == UNSCANNED:
        return unscan_params(params, cfg)
    raise ValueError(f"layout={layout!r}: use {SCANNED!r} or {UNSCANNED!r}.")


def convert_params(params: Any, cfg: TransformerConfig, source: str = "the checkpoint") -> Any:
    """`params` in the layout `cfg` wants; trees without layers (a soft prompt) pass through.

    Errors name `source` and the layout on each side."""
    if not has_layers(params):
        return params
    want = config_layout(cfg)
    try:
        have = params_layout(params)
    except LayoutError as e:
        raise LayoutError(f"{source} has no usable layer layout and the configured model wants "
                          f"{want} layers (scan_layers={cfg.scan_layers}): {e}") from e
    try:
        return to_layout(params, want, cfg)
    except LayoutError as e:
        raise LayoutError(f"{source} has {have} layers and the configured model wants {want} "
                          f"layers (scan_layers={cfg.scan_layers}), but they do not convert: "
                          f"{e}") from e


def gather_cache(cache: Any, index: jax.Array) -> Any:
    """The KV cache with its batch rows taken at `index`, in either layout: a scanned stack's
    variables are [layers, batch, ...]; the cache index (scalar, or [layers]) is shared."""
    def take(path, x):
        keys = [getattr(k, "key", None) for k in path]
        if keys and keys[-1] == "cache_index":
            return x
        return x[:, index] if SCANNED_LAYERS in keys else x[index]

    return jax.tree_util.tree_map_with_path(take, cache)
