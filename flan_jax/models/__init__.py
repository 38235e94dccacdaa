"""Flax transformer models: T5-style encoder-decoder and Llama-style decoder-only."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from flan_jax.models.config import TransformerConfig
from flan_jax.models.decoder_only import DecoderOnly
from flan_jax.models.encoder_decoder import EncoderDecoder

__all__ = ["TransformerConfig", "EncoderDecoder", "DecoderOnly", "build_model", "count_params",
           "init_cache"]


def build_model(config: TransformerConfig) -> nn.Module:
    """The Flax module for a config's family."""
    return EncoderDecoder(config) if config.family == "encoder_decoder" else DecoderOnly(config)


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def init_cache(model: nn.Module, params, batch_size: int, max_length: int,
               encoder_length: int = 1):
    """An empty KV cache (the "cache" collection) for `max_length` decoder tokens."""
    import jax.numpy as jnp

    cfg = model.config
    tokens = jnp.zeros((batch_size, max_length), jnp.int32)
    positions = jnp.zeros_like(tokens)
    if cfg.family == "encoder_decoder":
        encoded = jnp.zeros((batch_size, encoder_length, cfg.emb_dim), cfg.compute_dtype)
        enc_seg = jnp.ones((batch_size, encoder_length), jnp.int32)

        def shape_fn(p):
            return model.apply({"params": p}, encoded, enc_seg, tokens,
                               decoder_positions=positions, decode=True, method="decode",
                               mutable=["cache"])
    else:
        def shape_fn(p):
            return model.apply({"params": p}, tokens, decoder_positions=positions, decode=True,
                               mutable=["cache"])
    _, variables = jax.eval_shape(shape_fn, params)
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), variables["cache"])
