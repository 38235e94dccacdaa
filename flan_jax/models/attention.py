"""Attention for both model families: one mask structure, one call, four implementations.

`attend(q, k, v, mask, impl=...)` takes queries [batch, q, heads, d], keys and values
[batch, k, kv_heads, d] (grouped-query: query head i reads kv head i // (heads // kv_heads)) and
an `AttentionMask` built from per-token metadata (segment ids, positions, prefix flags), and
returns [batch, q, heads, d]. `TransformerConfig.attention_impl` picks the implementation:

- "einsum": the reference, written out. Its backward pass keeps the [b, h, q, k] probabilities.
- "xla": the same arithmetic with the attention core recomputed in the backward pass (a custom
  VJP): only q, k, v (and the core's output, downstream) live until the backward pass, which
  recomputes the scores one layer at a time. Runs everywhere; the default. With
  `TransformerConfig.attention_q_block` it runs a block of queries at a time, forward and
  backward, so the transient scores are [b, h, block, k] instead of [b, h, q, k].
- "cudnn": cuDNN flash attention (`jax.nn.dot_product_attention(implementation='cudnn')`),
  causal through `is_causal`, padding through sequence lengths, T5's bias as a [1, h, q, k]
  bias. It expresses one example per row padded at the end; packed rows, prefix LMs and cached
  decoding take the "xla" path instead (logged once per shape), as does a backend without cuDNN.
- "splash": the Pallas splash-attention kernel on TPUs (segment ids and a causal mask; grouped
  heads through its multi-query form). An additive bias (T5) or a prefix LM takes the "xla"
  path; so does any backend but TPU unless `SPLASH_INTERPRET` (tests: Pallas interpret mode).

Masks are additive float32 biases (0 allowed, NEG_INF not) computed from the [b, q] metadata
inside the core, so no [b, h, q, k] fill constant exists for XLA to hoist, and the recomputed
core saves nothing with two sequence axes.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from flan_jax.models.config import TransformerConfig
from flan_jax.models.layers import DenseGeneral, apply_rotary, constrain
from flan_jax.models.relative_position import relative_position_bias

Array = jax.Array
NEG_INF = -1e10  # finite, so a fully masked (padding) query row stays NaN-free
SPLASH_INTERPRET = False  # run the splash kernel in Pallas interpret mode (CPU tests)
_LOGGED: set = set()


@flax.struct.dataclass
class AttentionMask:
    """Who attends to whom, from per-token metadata (every array [batch, length]).

    Segment ids: 0 = padding, packed examples 1, 2, ...; a query sees keys of its own non-padding
    segment. With `causal`, only keys at positions <= its own, except that prefix tokens (prefix
    LM: `q_prefix`/`k_prefix` both set) see each other both ways. `packed` (static) says the rows
    may hold several examples or padding before the end; False promises one example a row,
    padded at the end, positions 0..n-1 (what cuDNN can express)."""

    q_segments: Array
    k_segments: Array
    q_positions: Array | None = None
    k_positions: Array | None = None
    q_prefix: Array | None = None
    k_prefix: Array | None = None
    causal: bool = flax.struct.field(pytree_node=False, default=False)
    packed: bool = flax.struct.field(pytree_node=False, default=True)

    def allowed(self) -> Array:
        """Boolean [batch, q, k]."""
        ok = (self.q_segments[:, :, None] == self.k_segments[:, None, :]) & (
            self.k_segments[:, None, :] > 0)
        if self.causal:
            sees = self.k_positions[:, None, :] <= self.q_positions[:, :, None]
            if self.q_prefix is not None and self.k_prefix is not None:
                sees = sees | (self.q_prefix[:, :, None] & self.k_prefix[:, None, :])
            ok = ok & sees
        return ok

    def bias(self) -> Array:
        """Additive float32 [batch, 1, q, k]: 0 where allowed, NEG_INF elsewhere."""
        # arithmetic, not `where` with a fill value: no constant to broadcast and hoist
        return ((self.allowed().astype(jnp.float32) - 1.0) * -NEG_INF)[:, None]

    @property
    def has_prefix(self) -> bool:
        return self.q_prefix is not None and self.k_prefix is not None


def _log_once(key: tuple, message: str) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        logging.info(message)


def einsum_attention(q: Array, k: Array, v: Array, mask: AttentionMask, bias: Array | None,
                     scale: float, dropout_rate: float = 0.0, dropout_rng: Array | None = None
                     ) -> Array:
    """The reference: float32 scores [b, kv_heads, groups, q, k], additive mask, softmax."""
    b, tq, h, d = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    logits = jnp.einsum("bqhgd,bkhd->bhgqk", q.reshape(b, tq, kvh, g, d), k,
                        preferred_element_type=jnp.float32) * scale
    if bias is not None:  # [1 or b, h, q, k]
        logits = logits + bias.astype(jnp.float32).reshape(bias.shape[0], kvh, g, tq, tk)
    logits = logits + mask.bias()[:, :, None]
    probs = jax.nn.softmax(logits, axis=-1)
    if dropout_rate > 0.0 and dropout_rng is not None:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = probs * (keep.astype(probs.dtype) / (1.0 - dropout_rate))
    out = jnp.einsum("bhgqk,bkhd->bqhgd", probs.astype(v.dtype), v)
    return out.reshape(b, tq, h, d)


def xla_attention(q, k, v, mask, bias, scale, dropout_rate=0.0, dropout_rng=None,
                  q_block: int = 0) -> Array:
    """`einsum_attention` recomputed in the backward pass: it keeps only its inputs (q, k, v,
    the [b, q]/[b, k] metadata, the stack's bias). A custom VJP rather than `jax.checkpoint`,
    so no enclosing remat policy (e.g. `dots`) can reach inside and save the scores.

    `q_block` > 0 (and fewer than the queries): `_blocked_core`, the same arithmetic a block of
    queries at a time (each block sees every key, so no online softmax is needed)."""
    if 0 < q_block < q.shape[1]:
        return _blocked_core(float(scale), float(dropout_rate), int(q_block), q, k, v, mask,
                             bias, dropout_rng)
    return _recomputed_core(float(scale), float(dropout_rate), q, k, v, mask, bias,
                            dropout_rng)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recomputed_core(scale, rate, q, k, v, mask, bias, rng):
    return einsum_attention(q, k, v, mask, bias, scale, rate, rng)


def _recomputed_core_fwd(scale, rate, q, k, v, mask, bias, rng):
    return einsum_attention(q, k, v, mask, bias, scale, rate, rng), (q, k, v, mask, bias, rng)


def _recomputed_core_bwd(scale, rate, residuals, g):
    q, k, v, mask, bias, rng = residuals
    core = lambda q, k, v, b: einsum_attention(q, k, v, mask, b, scale, rate, rng)  # noqa: E731
    _, vjp = jax.vjp(core, q, k, v, bias)
    dq, dk, dv, dbias = vjp(g)
    return dq, dk, dv, None, dbias, None


_recomputed_core.defvjp(_recomputed_core_fwd, _recomputed_core_bwd)


# --- the xla path a block of queries at a time -------------------------------------------------

def _q_blocks(x: Array | None, axis: int, block: int, n: int) -> Array | None:
    """`x` cut along its query `axis` into `n` blocks of `block` (zero-padded at the end),
    blocks leading: [n, ..., block, ...]. Broadcast (size-1) axes are kept whole."""
    if x is None or x.shape[axis] == 1:
        return None if x is None else jnp.broadcast_to(x[None], (n,) + x.shape)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, n * block - x.shape[axis])
    x = jnp.pad(x, pad)
    x = x.reshape(x.shape[:axis] + (n, block) + x.shape[axis + 1:])
    return jnp.moveaxis(x, axis, 0)


def _block_inputs(q, mask: AttentionMask, bias, block: int):
    """Per-block queries [n, b, block, h, d], query metadata and bias rows (padded queries have
    segment 0: they see nothing, and their zero cotangents add nothing to dk, dv)."""
    n = -(-q.shape[1] // block)
    q_meta = {name: _q_blocks(getattr(mask, name), 1, block, n)
              for name in ("q_segments", "q_positions", "q_prefix")}
    return _q_blocks(q, 1, block, n), q_meta, _q_blocks(bias, 2, block, n)


def _block_core(scale, rate, rng, mask, k, v, i, q_i, meta_i, bias_i):
    mask_i = mask.replace(**{name: m for name, m in meta_i.items() if m is not None})
    rng_i = None if rng is None else jax.random.fold_in(rng, i)
    return einsum_attention(q_i, k, v, mask_i, bias_i, scale, rate, rng_i)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _blocked_core(scale, rate, block, q, k, v, mask, bias, rng):
    return _blocked_core_fwd(scale, rate, block, q, k, v, mask, bias, rng)[0]


def _blocked_core_fwd(scale, rate, block, q, k, v, mask, bias, rng):
    q_b, meta_b, bias_b = _block_inputs(q, mask, bias, block)
    n = q_b.shape[0]

    def one(args):
        i, q_i, meta_i, bias_i = args
        return _block_core(scale, rate, rng, mask, k, v, i, q_i, meta_i, bias_i)

    out = jax.lax.map(one, (jnp.arange(n), q_b, meta_b, bias_b))  # [n, b, block, h, d]
    out = jnp.moveaxis(out, 0, 1).reshape((q.shape[0], n * block) + q.shape[2:])
    return out[:, :q.shape[1]], (q, k, v, mask, bias, rng)


def _blocked_core_bwd(scale, rate, block, residuals, g):
    q, k, v, mask, bias, rng = residuals
    q_b, meta_b, bias_b = _block_inputs(q, mask, bias, block)
    g_b = _q_blocks(g, 1, block, q_b.shape[0])
    n = q_b.shape[0]

    def one(carry, args):  # recompute one block's scores; accumulate dk, dv in float32
        dk, dv = carry
        i, q_i, meta_i, bias_i, g_i = args
        core = lambda q_, k_, v_, b_: _block_core(  # noqa: E731
            scale, rate, rng, mask, k_, v_, i, q_, meta_i, b_)
        _, vjp = jax.vjp(core, q_i, k, v, bias_i)
        dq_i, dk_i, dv_i, dbias_i = vjp(g_i)
        return (dk + dk_i.astype(jnp.float32), dv + dv_i.astype(jnp.float32)), (dq_i, dbias_i)

    zeros = (jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
    (dk, dv), (dq_b, dbias_b) = jax.lax.scan(one, zeros, (jnp.arange(n), q_b, meta_b, bias_b,
                                                          g_b))
    dq = jnp.moveaxis(dq_b, 0, 1).reshape((q.shape[0], n * block) + q.shape[2:])[:, :q.shape[1]]
    dbias = None
    if bias is not None:
        if bias.shape[2] == 1:  # a bias broadcast over queries: the blocks' gradients add up
            dbias = dbias_b.sum(0)
        else:  # [n, B, h, block, k] -> [B, h, q, k]
            dbias = jnp.moveaxis(dbias_b, 0, 2).reshape(
                bias.shape[:2] + (n * block,) + bias.shape[3:])[:, :, :bias.shape[2]]
        dbias = dbias.astype(bias.dtype)
    return dq, dk.astype(k.dtype), dv.astype(v.dtype), None, dbias, None


_blocked_core.defvjp(_blocked_core_fwd, _blocked_core_bwd)


def _cudnn_reason(mask: AttentionMask, decoding: bool, implementation: str) -> str | None:
    if decoding:
        return "cached decoding"
    if mask.packed:
        return "packed or explicitly segmented rows"
    if mask.has_prefix:
        return "a prefix-LM mask"
    if implementation == "cudnn" and jax.default_backend() != "gpu":
        return f"the {jax.default_backend()} backend (cuDNN needs a GPU)"
    return None


def cudnn_attention(q, k, v, mask: AttentionMask, bias, scale, implementation: str = "cudnn"
                    ) -> Array:
    """`jax.nn.dot_product_attention` for one example a row padded at the end.

    `implementation='xla'` runs the same call through JAX's own path (tests on CPU)."""
    q_len = jnp.sum(mask.q_segments > 0, axis=1).astype(jnp.int32)
    k_len = jnp.sum(mask.k_segments > 0, axis=1).astype(jnp.int32)
    if bias is not None:
        bias = bias.astype(q.dtype)
    return jax.nn.dot_product_attention(
        q, k.astype(q.dtype), v.astype(q.dtype), bias=bias, scale=scale, is_causal=mask.causal,
        query_seq_lengths=q_len, key_value_seq_lengths=k_len, implementation=implementation)


SPLASH_BLOCK = 128  # the kernel's block sizes must be multiples of the 128 TPU lanes


def _splash_reason(mask: AttentionMask, bias, decoding: bool, interpret: bool) -> str | None:
    if decoding:
        return "cached decoding"
    lengths = (mask.q_segments.shape[1], mask.k_segments.shape[1])
    if any(n % SPLASH_BLOCK for n in lengths):
        return f"lengths {lengths} that are not multiples of {SPLASH_BLOCK}"
    if bias is not None:
        return "an additive bias (T5 relative positions)"
    if mask.has_prefix:
        return "a prefix-LM mask"
    if not interpret and jax.default_backend() != "tpu":
        return f"the {jax.default_backend()} backend (splash needs a TPU)"
    return None


def splash_attention(q, k, v, mask: AttentionMask, scale: float, interpret: bool = False,
                     block: int = SPLASH_BLOCK) -> Array:
    """The Pallas splash kernel, per example and kv head (its multi-query form serves GQA).

    Packed segments go in as segment ids; causality is by index, which equals causality by
    position inside a segment (positions count up within each packed example). Padding queries
    (segment 0) attend to padding keys, so their rows differ from the reference; nothing reads
    them."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    b, tq, h, d = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    bq, bk = min(block, tq), min(block, tk)
    shape = (tq, tk)
    one = sm.CausalMask(shape) if mask.causal else sm.FullMask(shape)
    sizes = sk.BlockSizes(block_q=bq, block_kv=bk, block_kv_compute=bk, block_q_dkv=bq,
                          block_kv_dkv=bk, block_kv_dkv_compute=bk, block_q_dq=bq, block_kv_dq=bk)
    kernel = sk.make_splash_mqa_single_device(sm.MultiHeadMask([one] * g), block_sizes=sizes,
                                              interpret=interpret)
    qh = (q * scale).astype(q.dtype).reshape(b, tq, kvh, g, d).transpose(0, 2, 3, 1, 4)
    kh, vh = (x.astype(q.dtype).transpose(0, 2, 1, 3) for x in (k, v))  # [b, kvh, t, d]

    def one_row(qr, kr, vr, qs, ks):  # qr [kvh, g, tq, d], kr/vr [kvh, tk, d]
        segs = sk.SegmentIds(q=qs, kv=ks)
        return jax.vmap(lambda a, c, e: kernel(a, c, e, segment_ids=segs))(qr, kr, vr)

    out = jax.vmap(one_row)(qh, kh, vh, mask.q_segments.astype(jnp.int32),
                            mask.k_segments.astype(jnp.int32))
    return out.transpose(0, 3, 1, 2, 4).reshape(b, tq, h, d).astype(q.dtype)


def attend(q: Array, k: Array, v: Array, mask: AttentionMask, *, impl: str, scale: float,
           bias: Array | None = None, dropout_rate: float = 0.0, dropout_rng: Array | None = None,
           decoding: bool = False, q_block: int = 0) -> Array:
    """Attention output [batch, q, heads, d] by `impl` ("einsum", "xla", "cudnn", "splash");
    see the module docstring for what each takes and when one falls back to "xla" (which runs
    `q_block` queries at a time when it is > 0)."""
    if impl == "cudnn" or impl == "splash":
        reason = (_cudnn_reason(mask, decoding, "cudnn") if impl == "cudnn" else
                  _splash_reason(mask, bias, decoding, SPLASH_INTERPRET))
        if reason is None and dropout_rate > 0.0 and dropout_rng is not None:
            reason = "dropout on the attention probabilities"
        if reason is not None:
            _log_once((impl, reason, q.shape, k.shape),
                      f"attention_impl={impl!r}: {reason} takes the 'xla' path for q "
                      f"{tuple(q.shape)}, k {tuple(k.shape)}.")
            impl = "xla"
        elif impl == "cudnn":
            return cudnn_attention(q, k, v, mask, bias, scale)
        else:
            return splash_attention(q, k, v, mask, scale, interpret=SPLASH_INTERPRET)
    if impl == "einsum" or decoding:  # no backward pass when decoding: nothing to save
        return einsum_attention(q, k, v, mask, bias, scale, dropout_rate, dropout_rng)
    if impl == "xla":
        return xla_attention(q, k, v, mask, bias, scale, dropout_rate, dropout_rng, q_block)
    raise ValueError(f"attention_impl={impl!r}: use einsum, xla, cudnn or splash.")


def dropout_key(module: Any, rate: float, deterministic: bool) -> Array | None:
    """A "dropout" rng for the attention probabilities, or None when there is no dropout."""
    return None if deterministic or rate <= 0.0 else module.make_rng("dropout")


# --- the Flax module ------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention with grouped-query heads, optional rotary positions, an optional
    additive bias (T5's relative positions) and a KV cache.

    Self-attention with `decode=True` keeps keys, values and their metadata (position, segment,
    prefix flag) in the "cache" collection and appends the incoming chunk at the cache index:
    one token a step when generating, or many at once to prefill a prompt. Projection outputs
    carry checkpoint names ("query_proj", "key_proj", "value_proj", "attention_out",
    "out_proj") for the remat policies of `flan_jax.models.layers`.
    """

    config: TransformerConfig
    use_rope: bool = False
    relpos_bidirectional: bool = True
    decode: bool = False
    deterministic: bool = True

    @nn.compact
    def __call__(self, x_q: Array, x_kv: Array, mask: AttentionMask,
                 rel_bias: Array | None = None, rel_table: Array | None = None,
                 kv: tuple[Array, Array] | None = None) -> Array:
        """`rel_bias` [1, h, q, k] is a stack's precomputed bias; `rel_table` [h, buckets] is
        used instead when decoding (the bias then follows the cached positions)."""
        cfg = self.config
        dt, pdt = cfg.compute_dtype, cfg.weights_dtype
        h, kvh, d = cfg.num_heads, cfg.kv_heads, cfg.head_dim
        is_t5 = cfg.family == "encoder_decoder"
        # T5 folds 1/sqrt(d) into the query initialisation; Llama scales the logits.
        q_init_scale, scale = (1.0 / d, 1.0) if is_t5 else (1.0, d ** -0.5)
        proj = lambda n, heads, axes, s=1.0: DenseGeneral(  # noqa: E731
            (heads, d), ("embed", axes, "kv"), init_scale=s, dtype=dt, param_dtype=pdt, name=n)
        q = checkpoint_name(proj("query", h, "heads", q_init_scale)(x_q), "query_proj")
        if kv is None:
            k = checkpoint_name(proj("key", kvh, "kv_heads")(x_kv), "key_proj")
            v = checkpoint_name(proj("value", kvh, "kv_heads")(x_kv), "value_proj")
        else:  # keys and values projected once per input (cross-attention at inference)
            k, v = kv
        q = constrain(q, ("batch", "length", "heads", "kv"))
        k = constrain(k, ("batch", "length", "kv_heads", "kv"))
        v = constrain(v, ("batch", "length", "kv_heads", "kv"))
        if self.use_rope:
            q = apply_rotary(q, mask.q_positions, cfg.rope_theta)
            k = apply_rotary(k, mask.k_positions, cfg.rope_theta)
        if self.decode:
            k, v, mask = self._update_cache(k, v, mask)
        if rel_table is not None:
            rel_bias = relative_position_bias(rel_table, mask.q_positions, mask.k_positions,
                                              self.relpos_bidirectional,
                                              cfg.relative_attention_max_distance)
        rng = dropout_key(self, cfg.dropout_rate, self.deterministic)
        out = attend(q, k.astype(q.dtype), v.astype(q.dtype), mask, impl=cfg.attention_impl,
                     scale=scale, bias=rel_bias, dropout_rate=cfg.dropout_rate,
                     dropout_rng=rng, decoding=self.decode, q_block=cfg.attention_q_block)
        out = checkpoint_name(constrain(out, ("batch", "length", "heads", "kv")),
                              "attention_out")
        out = DenseGeneral((cfg.emb_dim,), ("heads", "kv", "embed"), num_in=2, dtype=dt,
                           param_dtype=pdt, name="out")(out)
        return checkpoint_name(out, "out_proj")

    def _update_cache(self, k, v, mask: AttentionMask):
        """Appends this chunk to the cache; returns the whole cache and its mask."""
        initialized = self.has_variable("cache", "cached_key")
        b, n = k.shape[:2]
        zeros = lambda shape, dtype: (lambda: jnp.zeros(shape, dtype))  # noqa: E731
        ck = self.variable("cache", "cached_key", zeros(k.shape, k.dtype))
        cv = self.variable("cache", "cached_value", zeros(v.shape, v.dtype))
        cseg = self.variable("cache", "cached_segment", zeros((b, n), jnp.int32))
        cpos = self.variable("cache", "cached_position", zeros((b, n), jnp.int32))
        cpre = self.variable("cache", "cached_prefix", zeros((b, n), jnp.bool_))
        index = self.variable("cache", "cache_index", zeros((), jnp.int32))
        if not initialized:  # the shape-defining call: nothing is written
            return k, v, mask
        i = index.value
        upd = lambda var, new: jax.lax.dynamic_update_slice_in_dim(var, new, i, axis=1)  # noqa
        ck.value = upd(ck.value, k.astype(ck.value.dtype))
        cv.value = upd(cv.value, v.astype(cv.value.dtype))
        cseg.value = upd(cseg.value, mask.k_segments.astype(jnp.int32))
        cpos.value = upd(cpos.value, mask.k_positions.astype(jnp.int32))
        prefix = jnp.zeros((b, n), jnp.bool_) if mask.k_prefix is None else mask.k_prefix
        cpre.value = upd(cpre.value, prefix.astype(jnp.bool_))
        index.value = i + n
        return ck.value, cv.value, mask.replace(
            k_segments=cseg.value, k_positions=cpos.value,
            k_prefix=cpre.value if mask.k_prefix is not None else None)
