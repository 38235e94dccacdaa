"""Flax transformer models: T5-style encoder-decoder and Llama-style decoder-only."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from flan_jax.models.config import TransformerConfig
from flan_jax.models.decoder_only import DecoderOnly
from flan_jax.models.encoder_decoder import EncoderDecoder

__all__ = ["TransformerConfig", "EncoderDecoder", "DecoderOnly", "abstract_params",
           "build_model", "count_params", "init_cache", "init_prompt", "output_head_kernel"]


def build_model(config: TransformerConfig) -> nn.Module:
    """The Flax module for a config's family."""
    return EncoderDecoder(config) if config.family == "encoder_decoder" else DecoderOnly(config)


def init_params_fn(model: nn.Module):
    """rng -> the model's parameters (`Partitioned` boxes carrying their logical axis names)."""
    import jax.numpy as jnp

    dummy = jnp.ones((1, 8), jnp.int32)
    args = (dummy, dummy) if model.config.family == "encoder_decoder" else (dummy,)
    return lambda rng: model.init(rng, *args)["params"]


def abstract_params(model: nn.Module):
    """The parameters' shapes and dtypes, boxed with their logical axes; nothing allocated."""
    return jax.eval_shape(init_params_fn(model), jax.random.PRNGKey(0))


def output_head_kernel(config: TransformerConfig, params) -> jax.Array:
    """The output head as an [emb, vocab] kernel: logits = hidden @ kernel for the hidden
    states a model returns with `return_hidden=True` (a tied head is the embedding table,
    transposed, with T5's emb_dim**-0.5 scaling folded in where the model applies it)."""
    params = nn.meta.unbox(params)
    if config.tie_embeddings:
        kernel = params["token_embed"]["embedding"].T
        if config.family == "encoder_decoder" and config.scale_tied_logits:
            kernel = kernel * config.emb_dim ** -0.5
        return kernel
    head = params["decoder"] if config.family == "encoder_decoder" else params
    return head["logits_dense"]["kernel"]


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def init_cache(model: nn.Module, params, batch_size: int, max_length: int,
               encoder_length: int = 1):
    """An empty KV cache (the "cache" collection) for `max_length` decoder tokens.

    A decoder-only model with a soft prompt gets `prompt_length` more slots, the prompt already
    written into them (the cache index starts after it)."""
    import jax.numpy as jnp

    cfg = model.config
    n_prompt = cfg.prompt_length if cfg.family == "decoder_only" else 0
    tokens = jnp.zeros((batch_size, max_length + n_prompt), jnp.int32)
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
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), variables["cache"])
    if n_prompt:
        _, state = model.apply({"params": params, "cache": cache}, tokens[:, :1], decode=True,
                               prompt_only=True, mutable=["cache"])
        cache = state["cache"]
    return cache


# Prompt tuning (Lester et al., 2021) initialises the prompt from embeddings of common tokens;
# SentencePiece orders pieces by frequency, so the first ids are the common ones.
_PROMPT_VOCAB_RANGE = (3, 5000)  # skip pad, EOS, UNK


def init_prompt(config: TransformerConfig, embedding, seed: int = 0) -> np.ndarray:
    """The initial soft prompt [prompt_length, emb_dim] from a (frozen) token embedding table.

    "vocab": rows of the table at ids sampled (without replacement where the range allows)
    from the first 5000 non-special ids; "random": normal with the table's standard deviation.
    """
    table = np.asarray(embedding, np.float32)
    n, rng = config.prompt_length, np.random.default_rng(seed)
    if config.prompt_init == "vocab":
        lo, hi = _PROMPT_VOCAB_RANGE
        lo, hi = (lo, min(hi, table.shape[0])) if table.shape[0] > lo else (0, table.shape[0])
        ids = rng.choice(np.arange(lo, hi), size=n, replace=n > hi - lo)
        prompt = table[ids]
    else:
        prompt = rng.normal(0.0, float(table.std()), size=(n, table.shape[1]))
    return prompt.astype(np.asarray(embedding).dtype)
