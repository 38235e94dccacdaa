"""One configuration dataclass for both model families; every size is a gin binding away."""

from __future__ import annotations

import dataclasses
from typing import Any

import gin
import jax.numpy as jnp

# `flan_jax.models.attention` says what each does and when cudnn/splash fall back to xla.
ATTENTION_IMPLS = ("einsum", "xla", "cudnn", "splash")
# Earlier names: "dot_product_attention" was jax.nn.dot_product_attention's XLA path, which the
# memory-efficient "xla" path replaces.
_ATTENTION_ALIASES = {"dot_product_attention": "xla"}
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch", "minimal", "minimal_except_gate")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def as_dtype(name_or_dtype: Any) -> Any:
    if isinstance(name_or_dtype, str):
        if name_or_dtype not in _DTYPES:
            raise ValueError(f"Unknown dtype {name_or_dtype!r}; choose one of {sorted(_DTYPES)}.")
        return _DTYPES[name_or_dtype]
    return name_or_dtype


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shapes and choices of an encoder-decoder (T5 v1.1 / Flan-T5) or decoder-only (Llama) model.

    `family` picks the architecture; fields that do not apply to it are ignored.
    """

    family: str = "encoder_decoder"  # or "decoder_only"
    vocab_size: int = 32128
    emb_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int | None = None  # grouped-query attention; None = num_heads
    head_dim: int = 64
    mlp_dim: int = 1024
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    # "gelu" (tanh approximation, T5 v1.1 "gated-gelu"), "relu" (original T5), "silu" (Llama).
    mlp_activation: str = "gelu"
    gated_mlp: bool = True
    tie_embeddings: bool = False
    # Original T5 scales the decoder output by emb_dim**-0.5 before a tied output head.
    scale_tied_logits: bool = True
    norm_eps: float = 1e-6
    dropout_rate: float = 0.0
    # Encoder-decoder: T5 relative position buckets.
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    # Decoder-only: rotary positions.
    rope_theta: float = 10000.0
    # Decoder-only: attend bidirectionally over the inputs part (prefix LM).
    prefix_lm: bool = False
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    # Rematerialisation of each layer: "none", "full" (recompute each layer), "dots" (save
    # matmul outputs), "dots_no_batch" (save matmuls without a batch dimension), "minimal" (save
    # the named projection outputs, recompute norms, activations and the attention core),
    # "minimal_except_gate" (minimal, recomputing a gated MLP's linear half too).
    # `flan-jax bench memory` audits what each keeps for the backward pass.
    remat_policy: str = "none"
    # Stack each family's layers with `nn.scan` over a leading "layers" axis of the parameters
    # (and of the KV cache), so compile time stays flat as depth grows. Checkpoints of either
    # layout load into either (`flan_jax.models.layout`).
    scan_layers: bool = False
    # "einsum" (the reference), "xla" (the attention core recomputed in the backward pass; runs
    # everywhere), "cudnn" (flash attention on GPUs), "splash" (the Pallas kernel on TPUs); the
    # last two take the xla path where they cannot express the mask (`models.attention`).
    attention_impl: str = "xla"
    # The "xla" path in blocks of this many queries (0: all at once): the forward pass and the
    # backward recomputation hold one block's [batch, heads, block, keys] scores at a time, so
    # long (packed) rows need memory linear in their length; results equal the unblocked path.
    attention_q_block: int = 0
    # Prompt tuning: a trainable soft prompt of this many vectors is prepended to the encoder
    # inputs (encoder-decoder) or to the sequence (decoder-only); 0 = no prompt.
    prompt_length: int = 0
    # How training initialises the prompt from the frozen base: "vocab" (rows of the token
    # embedding table at sampled ids) or "random" (normal, the table's standard deviation).
    prompt_init: str = "vocab"

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def compute_dtype(self) -> Any:
        return as_dtype(self.dtype)

    @property
    def weights_dtype(self) -> Any:
        return as_dtype(self.param_dtype)

    def __post_init__(self):
        if self.family not in ("encoder_decoder", "decoder_only"):
            raise ValueError(
                f"TransformerConfig.family={self.family!r}: use 'encoder_decoder' or 'decoder_only'."
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.kv_heads}."
            )
        if self.prompt_length < 0:
            raise ValueError(f"prompt_length={self.prompt_length} must be >= 0 (0 = no prompt).")
        if self.prompt_init not in ("vocab", "random"):
            raise ValueError(f"prompt_init={self.prompt_init!r}: use 'vocab' or 'random'.")
        if self.attention_impl in _ATTENTION_ALIASES:
            object.__setattr__(self, "attention_impl", _ATTENTION_ALIASES[self.attention_impl])
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r}: use one of "
                             f"{', '.join(repr(a) for a in ATTENTION_IMPLS)}.")
        if self.attention_q_block < 0:
            raise ValueError(f"attention_q_block={self.attention_q_block} must be >= 0 (0: the "
                             "queries in one block).")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy={self.remat_policy!r}: use one of "
                             f"{', '.join(repr(r) for r in REMAT_POLICIES)}.")
        if self.mlp_activation not in ("gelu", "relu", "silu", "gelu_exact"):
            raise ValueError(
                f"mlp_activation={self.mlp_activation!r}: use gelu, gelu_exact, relu or silu."
            )


def attention_impls_for(platform: str) -> tuple[str, ...]:
    """The attention paths worth measuring on a backend ("cpu", "gpu", "tpu"): the fused path of
    another backend would only fall back to "xla" there."""
    native = {"gpu": "cudnn", "tpu": "splash"}.get(platform)
    return ("einsum", "xla") + ((native,) if native else ())


def plain_config(**fields: Any) -> TransformerConfig:
    """A TransformerConfig from `fields` and the class defaults only: every field is passed
    explicitly, so gin bindings parsed in this process (a training run's) cannot leak in."""
    values = {f.name: f.default for f in dataclasses.fields(TransformerConfig)}
    unknown = set(fields) - set(values)
    if unknown:
        raise TypeError(f"unknown TransformerConfig fields: {sorted(unknown)}")
    values.update(fields)
    return TransformerConfig(**values)
