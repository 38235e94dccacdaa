"""Decoder-only transformer in the Llama layout: causal LM, optionally a prefix LM.

RMSNorm pre-norm blocks, rotary positions, grouped-query attention, SwiGLU MLP, untied (or tied)
output head, no biases. With `prefix_lm`, tokens flagged by `decoder_causal_attention` (the
inputs part, as seqio's prefix-LM feature converter marks it) attend to each other both ways.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models.attention import Attention, AttentionMask
from flan_jax.models.config import TransformerConfig
from flan_jax.models.layers import (SCANNED_LAYERS, DenseGeneral, Embed, Mlp, RMSNorm, constrain,
                                    layer_stack, maybe_remat, prepend_prompt, soft_prompt)

Array = jax.Array


class DecoderOnlyLayer(nn.Module):
    config: TransformerConfig
    deterministic: bool = True
    decode: bool = False
    scanned: bool = False  # under `nn.scan`: return (carry, None)

    @nn.compact
    def __call__(self, x, mask: AttentionMask):
        cfg = self.config
        norm = lambda n: RMSNorm(cfg.norm_eps, cfg.compute_dtype, cfg.weights_dtype, name=n)  # noqa
        drop = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)  # noqa
        y = norm("pre_attention_norm")(x)
        y = Attention(cfg, use_rope=True, decode=self.decode,
                      deterministic=self.deterministic, name="self_attention")(y, y, mask)
        x = x + drop(y)
        y = Mlp(cfg, self.deterministic, name="mlp")(norm("pre_mlp_norm")(x))
        x = x + drop(y)
        x = constrain(x, ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class DecoderOnly(nn.Module):
    """Causal (or prefix) language model.

    Segment ids default to `decoder_input_tokens > 0` only when no explicit ids are given; pass
    them whenever the pad id can occur as a real token. Positions default to 0..length-1.

    With `prompt_length` P > 0 (prompt tuning; unpacked rows only) the soft prompt precedes the
    tokens at positions 0..P-1 and the tokens' positions shift by P; logits keep the tokens'
    shape. With `return_hidden` the final (normalised) hidden states [batch, length, emb] come
    back instead of logits; `flan_jax.models.output_head_kernel` gives the head. The prompt
    attends causally (also in a prefix LM, so it does not depend on the
    inputs); inputs and targets see it. With `decode=True` the prompt is not prepended: it must
    already sit in the KV cache, which `flan_jax.models.init_cache` writes by calling the model
    with `prompt_only=True`.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, decoder_input_tokens, decoder_segment_ids=None, decoder_positions=None,
                 decoder_causal_attention=None, enable_dropout: bool = False,
                 decode: bool = False, prompt_only: bool = False, return_hidden: bool = False):
        cfg = self.config
        n_prompt = cfg.prompt_length
        deterministic = not enable_dropout
        tokens = decoder_input_tokens
        # Without explicit ids or positions a row is one example (what cuDNN can express).
        packed = decoder_segment_ids is not None or decoder_positions is not None
        seg = jnp.ones_like(tokens, jnp.int32) if decoder_segment_ids is None \
            else decoder_segment_ids
        if decoder_positions is None:
            if decode and not prompt_only:
                raise ValueError("Cached decoding needs decoder_positions for the new tokens.")
            decoder_positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32),
                                                 tokens.shape)
        prefix = None
        if cfg.prefix_lm:
            prefix = (jnp.zeros_like(tokens, jnp.bool_) if decoder_causal_attention is None
                      else decoder_causal_attention.astype(jnp.bool_))
        embed = Embed(cfg.vocab_size, cfg.emb_dim, 1.0,
                      cfg.compute_dtype, cfg.weights_dtype, name="token_embed")
        x = embed(tokens)
        if n_prompt:
            prompt = soft_prompt(self, cfg)
            if prompt_only:  # write just the prompt into the cache (rows of `tokens`' batch)
                if not decode:
                    raise ValueError("prompt_only=True fills the KV cache; pass decode=True.")
                b = tokens.shape[0]
                x = jnp.broadcast_to(prompt.astype(x.dtype)[None], (b,) + prompt.shape)
                seg = jnp.ones((b, n_prompt), jnp.int32)
                decoder_positions = jnp.broadcast_to(jnp.arange(n_prompt, dtype=jnp.int32),
                                                     (b, n_prompt))
                prefix = None if prefix is None else jnp.zeros((b, n_prompt), jnp.bool_)
            elif decode:  # the prompt is already in the cache
                decoder_positions = decoder_positions + n_prompt
            else:
                x, seg, decoder_positions = prepend_prompt(prompt, x, seg, decoder_positions)
                if prefix is not None:
                    prefix = jnp.concatenate(
                        [jnp.zeros((tokens.shape[0], n_prompt), jnp.bool_), prefix], axis=1)
        elif prompt_only:
            raise ValueError("prompt_only=True needs a model with prompt_length > 0.")
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        mask = AttentionMask(seg, seg, decoder_positions, decoder_positions, prefix, prefix,
                             causal=True, packed=packed)
        if cfg.scan_layers:
            stack = layer_stack(DecoderOnlyLayer, cfg, cfg.num_decoder_layers,
                                in_axes=(nn.broadcast,))
            x, _ = stack(cfg, deterministic, decode, scanned=True, name=SCANNED_LAYERS)(x, mask)
        else:
            layer_cls = maybe_remat(DecoderOnlyLayer, cfg.remat_policy)
            for i in range(cfg.num_decoder_layers):
                x = layer_cls(cfg, deterministic, decode, name=f"layers_{i}")(x, mask)
        if prompt_only:
            return None
        if n_prompt and not decode:
            x = x[:, n_prompt:]
        x = RMSNorm(cfg.norm_eps, cfg.compute_dtype, cfg.weights_dtype, name="final_norm")(x)
        if return_hidden:  # the loss applies the head itself, in chunks (output_head_kernel)
            return constrain(x, ("batch", "length", "embed"))
        if cfg.tie_embeddings:
            logits = embed.attend(x)
        else:
            logits = DenseGeneral((cfg.vocab_size,), ("embed", "vocab"), dtype=cfg.compute_dtype,
                                  param_dtype=cfg.weights_dtype, name="logits_dense")(x)
        return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))
