"""Flax transformer models: T5-style encoder-decoder and Llama-style decoder-only."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from flan_jax.models.config import TransformerConfig
from flan_jax.models.decoder_only import DecoderOnly
from flan_jax.models.encoder_decoder import EncoderDecoder

__all__ = ["TransformerConfig", "EncoderDecoder", "DecoderOnly", "build_model", "count_params"]


def build_model(config: TransformerConfig) -> nn.Module:
    """The Flax module for a config's family."""
    return EncoderDecoder(config) if config.family == "encoder_decoder" else DecoderOnly(config)


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
