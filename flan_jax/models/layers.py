"""Building blocks shared by both model families: norms, projections, MLP, positions, remat.

Every parameter is created with logical axis names (`embed`, `mlp`, `heads`, `kv_heads`, `kv`,
`vocab`, `relpos_buckets`) and the main activations are constrained to (`batch`, `length`, ...);
`flan_jax.partitioning` maps those names to mesh axes. Nothing here imports TensorFlow.
Attention lives in `flan_jax.models.attention`.

What a layer keeps for its backward pass is designed: RMSNorm recomputes its elementwise work
from its input, projections are tagged with checkpoint names (`CHECKPOINT_NAMES`), and
`TransformerConfig.remat_policy` chooses among `REMAT_POLICIES` (`minimal` keeps exactly the
projection outputs a layer needs and recomputes the rest, the attention core included).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from flan_jax.models.config import TransformerConfig

Array = jax.Array


def constrain(x: Array, axes: Sequence[str | None]) -> Array:
    """Annotates an activation with logical axes (a no-op outside a mesh with rules)."""
    return nn.with_logical_constraint(x, tuple(axes))


def partitioned_param(module: nn.Module, name: str, init, shape, axes, dtype):
    """A parameter of `module` annotated with its logical axis names (for the sharding rules)."""
    return module.param(name, nn.with_logical_partitioning(init, tuple(axes)), shape, dtype)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale and no bias (T5 and Llama alike)."""

    eps: float = 1e-6
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = partitioned_param(self, "scale", nn.initializers.ones, (x.shape[-1],),
                                  ("embed",), self.param_dtype)
        # Elementwise work, recomputed in the backward pass from the input: no float32 copies
        # of the activations are kept.
        norm = functools.partial(_rms_norm, eps=self.eps, dtype=self.dtype)
        return jax.checkpoint(norm, policy=jax.checkpoint_policies.nothing_saveable)(x, scale)


def _rms_norm(x: Array, scale: Array, eps: float, dtype: Any) -> Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return y.astype(dtype) * scale.astype(dtype)


class DenseGeneral(nn.Module):
    """A bias-free projection contracting the trailing `num_in` axes into `features`."""

    features: tuple[int, ...]
    kernel_axes: tuple[str, ...]
    num_in: int = 1
    init_scale: float = 1.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        n_in, n_out = self.num_in, len(self.features)
        in_shape = x.shape[-n_in:]
        init = nn.initializers.variance_scaling(
            self.init_scale, "fan_in", "truncated_normal",
            in_axis=tuple(range(n_in)), out_axis=tuple(range(n_in, n_in + n_out)))
        kernel = partitioned_param(self, "kernel", init, tuple(in_shape) + tuple(self.features),
                                   self.kernel_axes, self.param_dtype)
        # As one 2-D matmul: XLA:CPU picks a far slower layout for the kernel gradient of a
        # [batch, length, ...] contraction (0.93 s vs 0.21 s for a 32k-vocabulary head).
        lead = x.shape[:-n_in]
        x2 = x.astype(self.dtype).reshape((-1, int(np.prod(in_shape))))
        k2 = kernel.astype(self.dtype).reshape((x2.shape[1], -1))
        return (x2 @ k2).reshape(lead + tuple(self.features))


def soft_prompt(module: nn.Module, cfg: TransformerConfig) -> Array:
    """The prompt-tuning parameter "prompt" [prompt_length, emb_dim].

    Created normal(1.0) like the token table; training re-initialises it from the frozen base
    (`flan_jax.models.init_prompt`)."""
    return partitioned_param(module, "prompt", nn.initializers.normal(1.0),
                             (cfg.prompt_length, cfg.emb_dim), (None, "embed"), cfg.weights_dtype)


def prepend_prompt(prompt: Array, x: Array, seg: Array, pos: Array) -> tuple[Array, Array, Array]:
    """Prompt vectors before each row's embedded tokens. The prompt takes the row's segment
    (rows are unpacked: 1, or 0 for an all-padding row) and positions 0..P-1; tokens shift by P."""
    b, n = x.shape[0], prompt.shape[0]
    x = jnp.concatenate([jnp.broadcast_to(prompt.astype(x.dtype)[None], (b,) + prompt.shape),
                         x], axis=1)
    seg = jnp.concatenate([prompt_segments(seg, n), seg], axis=1)
    pos = jnp.concatenate([jnp.broadcast_to(jnp.arange(n, dtype=pos.dtype), (b, n)), pos + n],
                          axis=1)
    return x, seg, pos


def prompt_segments(seg: Array, prompt_length: int) -> Array:
    """Segment ids [b, P] of a prompt prepended to unpacked rows with segment ids `seg`."""
    return jnp.broadcast_to(jnp.max(seg, axis=1, keepdims=True), (seg.shape[0], prompt_length)
                            ).astype(seg.dtype)


class Embed(nn.Module):
    """Token embedding; `attend` reuses the table as a tied output head."""

    num_embeddings: int
    features: int
    init_stddev: float = 1.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self):
        self.embedding = partitioned_param(self, "embedding",
                                           nn.initializers.normal(self.init_stddev),
                                           (self.num_embeddings, self.features),
                                           ("vocab", "embed"), self.param_dtype)

    def __call__(self, tokens: Array) -> Array:
        # Gathered from the parameter table and cast after: the table's gradient is a float32
        # scatter-add of float32 rows.
        return jnp.take(self.embedding, tokens, axis=0).astype(self.dtype)

    def attend(self, x: Array) -> Array:
        x2 = x.astype(self.dtype).reshape((-1, x.shape[-1]))  # 2-D: see DenseGeneral
        return (x2 @ self.embedding.astype(self.dtype).T).reshape(x.shape[:-1] + (-1,))


def apply_rotary(x: Array, positions: Array, theta: float) -> Array:
    """Rotary embedding in the "rotate half" layout used by Hugging Face Llama weights."""
    head_dim = x.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [b, t, d/2]
    angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]  # [b, t, 1, d]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    x1, x2 = jnp.split(x, 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    return x * cos + rotated * sin


class Mlp(nn.Module):
    """Feed-forward block: gated (GeGLU / SwiGLU) or plain (ReLU, original T5)."""

    config: TransformerConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        dt, pdt = cfg.compute_dtype, cfg.weights_dtype
        act = {"gelu": lambda y: jax.nn.gelu(y, approximate=True),
               "gelu_exact": lambda y: jax.nn.gelu(y, approximate=False),
               "relu": jax.nn.relu, "silu": jax.nn.silu}[cfg.mlp_activation]
        dense = lambda n, feats, axes: DenseGeneral(  # noqa: E731
            feats, axes, dtype=dt, param_dtype=pdt, name=n)
        wi = lambda n, tag: checkpoint_name(  # noqa: E731
            dense(n, (cfg.mlp_dim,), ("embed", "mlp"))(x), tag)
        hidden = (act(wi("wi_0", "mlp_in")) * wi("wi_1", "mlp_gate") if cfg.gated_mlp
                  else act(wi("wi", "mlp_in")))
        hidden = constrain(hidden, ("batch", "length", "mlp"))
        hidden = nn.Dropout(cfg.dropout_rate)(hidden, deterministic=self.deterministic)
        return checkpoint_name(dense("wo", (cfg.emb_dim,), ("mlp", "embed"))(hidden), "mlp_out")


# Checkpoint names a layer's projections carry (`jax.ad_checkpoint.checkpoint_name`); a gated
# MLP's activation input is "mlp_in", its linear half "mlp_gate".
CHECKPOINT_NAMES = ("query_proj", "key_proj", "value_proj", "attention_out", "out_proj",
                    "mlp_in", "mlp_gate", "mlp_out")
# `minimal` keeps every matmul output the backward pass needs except the MLP's output, which
# only joins the residual stream (the next layer's input is kept by the stack anyway); norms,
# rotary positions, activations and the attention core are recomputed. `minimal_except_gate`
# also recomputes a gated MLP's linear half (one matmul a layer) for memory-bound shapes.
MINIMAL_SAVED = ("query_proj", "key_proj", "value_proj", "attention_out", "out_proj",
                 "mlp_in", "mlp_gate")
_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "minimal": jax.checkpoint_policies.save_only_these_names(*MINIMAL_SAVED),
    "minimal_except_gate": jax.checkpoint_policies.save_only_these_names(
        *(n for n in MINIMAL_SAVED if n != "mlp_gate")),
}


def maybe_remat(layer_cls: type[nn.Module], policy: str, scanned: bool = False
                ) -> type[nn.Module]:
    """Wraps a layer class in `nn.remat` according to the config's remat policy."""
    if policy == "none":
        return layer_cls
    if policy not in _REMAT_POLICIES:
        raise ValueError(f"remat_policy={policy!r}: use none, {', '.join(_REMAT_POLICIES)}.")
    # Inside `lax.scan` XLA cannot CSE the recomputation away, so the barrier is not needed.
    return nn.remat(layer_cls, policy=_REMAT_POLICIES[policy], prevent_cse=not scanned)


SCANNED_LAYERS = "layers"  # module name and logical axis of a scanned stack of layers


def layer_stack(layer_cls: type[nn.Module], cfg: TransformerConfig, num_layers: int,
                in_axes: tuple[Any, ...]) -> type[nn.Module]:
    """The layer class (remat per the config) scanned `num_layers` times.

    Parameters and cache variables gain a leading axis named "layers"; the layer's first
    argument is the carry (and it must return `(carry, None)`), the others follow `in_axes`
    (`nn.broadcast`: the same for every layer; an int: sliced along that axis). Param and
    dropout rngs are split per layer."""
    return nn.scan(maybe_remat(layer_cls, cfg.remat_policy, scanned=True),
                   variable_axes={"params": 0, "cache": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=in_axes, length=num_layers,
                   metadata_params={nn.PARTITION_NAME: SCANNED_LAYERS})
