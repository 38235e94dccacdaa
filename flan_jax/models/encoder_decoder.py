"""Encoder-decoder transformer in the T5 v1.1 / Flan-T5 layout (also T5 v1.0 and mT5).

Pre-norm residual blocks with RMSNorm, relative position buckets shared by every layer of a
stack, no biases, gated-GELU or ReLU MLP, tied or untied output head. Parameter names follow
the structure of Hugging Face `T5ForConditionalGeneration` so that conversion is a renaming.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models.attention import Attention, AttentionMask
from flan_jax.models.relative_position import stack_relative_bias
from flan_jax.models.config import TransformerConfig
from flan_jax.models.layers import (SCANNED_LAYERS, DenseGeneral, Embed, Mlp, RMSNorm, constrain,
                                    layer_stack, maybe_remat, partitioned_param, prepend_prompt,
                                    prompt_segments, soft_prompt)

Array = jax.Array


def _norm(cfg: TransformerConfig, name: str) -> RMSNorm:
    return RMSNorm(cfg.norm_eps, cfg.compute_dtype, cfg.weights_dtype, name=name)


def _relpos_table(module: nn.Module, cfg: TransformerConfig) -> Array:
    return partitioned_param(module, "relpos_bias", nn.initializers.normal(1.0),
                             (cfg.num_heads, cfg.relative_attention_num_buckets),
                             ("heads", "relpos_buckets"), cfg.weights_dtype)


class EncoderLayer(nn.Module):
    config: TransformerConfig
    deterministic: bool = True
    scanned: bool = False  # under `nn.scan`: return (carry, None)

    @nn.compact
    def __call__(self, x, mask: AttentionMask, rel_bias):
        cfg = self.config
        drop = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)  # noqa
        y = _norm(cfg, "pre_attention_norm")(x)
        y = Attention(cfg, deterministic=self.deterministic, name="attention")(
            y, y, mask, rel_bias=rel_bias)
        x = x + drop(y)
        y = Mlp(cfg, self.deterministic, name="mlp")(_norm(cfg, "pre_mlp_norm")(x))
        x = x + drop(y)
        x = constrain(x, ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class DecoderLayer(nn.Module):
    config: TransformerConfig
    deterministic: bool = True
    decode: bool = False
    scanned: bool = False  # under `nn.scan`: return (carry, None)

    @nn.compact
    def __call__(self, x, self_mask: AttentionMask, cross_mask: AttentionMask, encoded,
                 rel_bias, rel_table, cross_kv=None):
        """`rel_bias` is the stack's [1, h, q, k] bias; when decoding it is None and the bias
        comes from `rel_table` and the cached positions."""
        cfg = self.config
        drop = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)  # noqa
        y = _norm(cfg, "pre_self_attention_norm")(x)
        y = Attention(cfg, relpos_bidirectional=False, decode=self.decode,
                      deterministic=self.deterministic, name="self_attention")(
            y, y, self_mask, rel_bias=rel_bias, rel_table=rel_table)
        x = x + drop(y)
        y = _norm(cfg, "pre_cross_attention_norm")(x)
        y = Attention(cfg, deterministic=self.deterministic, name="encoder_decoder_attention")(
            y, encoded, cross_mask, kv=cross_kv)
        x = x + drop(y)
        y = Mlp(cfg, self.deterministic, name="mlp")(_norm(cfg, "pre_mlp_norm")(x))
        x = x + drop(y)
        x = constrain(x, ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class Encoder(nn.Module):
    config: TransformerConfig
    embed: nn.Module

    @nn.compact
    def __call__(self, tokens, seg, pos, deterministic: bool = True, prompt=None,
                 packed: bool = True):
        cfg = self.config
        rel_table = _relpos_table(self, cfg)
        x = self.embed(tokens)
        if prompt is not None:
            x, seg, pos = prepend_prompt(prompt, x, seg, pos)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        mask = AttentionMask(seg, seg, pos, pos, packed=packed)
        n = x.shape[1]
        rel_bias = stack_relative_bias(rel_table, n, n, True, cfg.relative_attention_max_distance)
        if cfg.scan_layers:
            stack = layer_stack(EncoderLayer, cfg, cfg.num_encoder_layers,
                                in_axes=(nn.broadcast,) * 2)
            x, _ = stack(cfg, deterministic, scanned=True, name=SCANNED_LAYERS)(x, mask, rel_bias)
        else:
            layer_cls = maybe_remat(EncoderLayer, cfg.remat_policy)
            for i in range(cfg.num_encoder_layers):
                x = layer_cls(cfg, deterministic, name=f"layers_{i}")(x, mask, rel_bias)
        x = _norm(cfg, "final_norm")(x)
        return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(nn.Module):
    config: TransformerConfig
    embed: nn.Module

    @nn.compact
    def __call__(self, tokens, seg, pos, encoded, enc_seg, enc_pos, deterministic: bool = True,
                 decode: bool = False, cross_kv=None, return_hidden: bool = False,
                 packed: bool = True):
        cfg = self.config
        table = _relpos_table(self, cfg)
        x = self.embed(tokens)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        self_mask = AttentionMask(seg, seg, pos, pos, causal=True, packed=packed)
        cross_mask = AttentionMask(seg, enc_seg, pos, enc_pos, packed=packed)
        n = x.shape[1]
        # Decoding follows the cached positions (no backward pass there, so per row is fine).
        rel_bias, rel_table = (None, table) if decode else (stack_relative_bias(
            table, n, n, False, cfg.relative_attention_max_distance), None)
        if cfg.scan_layers:
            # Scanned cross_kv is (keys, values) [batch, layers, ...]: sliced along axis 1.
            stack = layer_stack(DecoderLayer, cfg, cfg.num_decoder_layers,
                                in_axes=(nn.broadcast,) * 5 + (nn.broadcast if cross_kv is None
                                                               else 1,))
            x, _ = stack(cfg, deterministic, decode, scanned=True, name=SCANNED_LAYERS)(
                x, self_mask, cross_mask, encoded, rel_bias, rel_table, cross_kv)
        else:
            layer_cls = maybe_remat(DecoderLayer, cfg.remat_policy)
            for i in range(cfg.num_decoder_layers):
                x = layer_cls(cfg, deterministic, decode, name=f"layers_{i}")(
                    x, self_mask, cross_mask, encoded, rel_bias, rel_table,
                    None if cross_kv is None else cross_kv[i])
        x = _norm(cfg, "final_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        if return_hidden:  # the loss applies the head itself, in chunks (output_head_kernel)
            return constrain(x, ("batch", "length", "embed"))
        if cfg.tie_embeddings:
            if cfg.scale_tied_logits:
                x = x * cfg.emb_dim ** -0.5
            logits = self.embed.attend(x)
        else:
            logits = DenseGeneral((cfg.vocab_size,), ("embed", "vocab"),
                                  dtype=cfg.compute_dtype, param_dtype=cfg.weights_dtype,
                                  name="logits_dense")(x)
        return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))


def _cross_kv_length(cross_kv, cfg: TransformerConfig) -> int:
    """The encoder length of precomputed cross-attention keys (either layer layout)."""
    return cross_kv[0].shape[2] if cfg.scan_layers else cross_kv[0][0].shape[1]


def _default_positions(tokens: Array) -> Array:
    return jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)


class EncoderDecoder(nn.Module):
    """T5-style model. Call for teacher-forced logits; `encode`/`decode` for inference.

    Segment ids mark padding (0) and packed examples (1, 2, ...). When not given, the encoder's
    come from `encoder_input_tokens > 0` and the decoder's from `decoder_target_tokens > 0`
    (decoder inputs begin with the pad id 0 as the start token, so they cannot tell).

    With `prompt_length` P > 0 (prompt tuning; unpacked rows only) the soft prompt is prepended
    to the embedded encoder inputs: `encode` returns [batch, P + input_length, emb], and
    `decode` accepts the input-length encoder segment ids (it prepends the prompt's itself).
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.token_embed = Embed(cfg.vocab_size, cfg.emb_dim, 1.0, cfg.compute_dtype,
                                 cfg.weights_dtype)
        if cfg.prompt_length:
            self.prompt = soft_prompt(self, cfg)
        self.encoder = Encoder(cfg, self.token_embed)
        self.decoder = Decoder(cfg, self.token_embed)

    def encode(self, encoder_input_tokens, encoder_segment_ids=None, encoder_positions=None,
               enable_dropout: bool = False, packed: bool | None = None):
        """`packed` False promises one example a row padded at the end (what cuDNN expresses);
        by default that holds when neither segment ids nor positions are given."""
        if packed is None:
            packed = encoder_segment_ids is not None or encoder_positions is not None
        seg = (encoder_input_tokens > 0).astype(jnp.int32) if encoder_segment_ids is None \
            else encoder_segment_ids
        pos = _default_positions(encoder_input_tokens) if encoder_positions is None \
            else encoder_positions
        return self.encoder(encoder_input_tokens, seg, pos, deterministic=not enable_dropout,
                            prompt=self.prompt if self.config.prompt_length else None,
                            packed=packed)

    def decode(self, encoded, encoder_segment_ids, decoder_input_tokens,
               decoder_segment_ids=None, decoder_positions=None, encoder_positions=None,
               enable_dropout: bool = False, decode: bool = False, cross_kv=None,
               return_hidden: bool = False, packed: bool = True):
        """Decoder logits [batch, length, vocab] given encoder outputs (with `return_hidden`,
        the decoder's final hidden states [batch, length, emb] before the output head).

        With `decode=True` the self-attention appends to the KV cache; pass the absolute
        `decoder_positions` of the incoming tokens. `cross_kv` (from `cross_kv`, gathered per
        row as needed) replaces `encoded`, so the cross-attention keys and values of an input
        are projected once, not once per option, beam or step.
        """
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, jnp.int32)
        if decoder_positions is None:
            if decode:
                raise ValueError("Cached decoding needs decoder_positions for the new tokens.")
            decoder_positions = _default_positions(decoder_input_tokens)
        n = self.config.prompt_length
        enc_len = _cross_kv_length(cross_kv, self.config) if encoded is None else encoded.shape[1]
        if n and enc_len == encoder_segment_ids.shape[1] + n:  # ids without the prompt
            encoder_segment_ids = jnp.concatenate(
                [prompt_segments(encoder_segment_ids, n), encoder_segment_ids], axis=1)
            encoder_positions = None
        if encoder_positions is None:
            encoder_positions = _default_positions(encoder_segment_ids)
        return self.decoder(decoder_input_tokens, decoder_segment_ids, decoder_positions,
                            encoded, encoder_segment_ids, encoder_positions,
                            deterministic=not enable_dropout, decode=decode, cross_kv=cross_kv,
                            return_hidden=return_hidden, packed=packed)

    def cross_kv(self, encoded):
        """Per decoder layer, the cross-attention (keys, values) [batch, length, kv_heads, d] of
        encoder outputs, computed with the decoder's own projection weights.

        With scanned layers: one (keys, values) pair [batch, layers, length, kv_heads, d],
        batch first in both layouts so callers can gather rows alike."""
        cfg = self.config
        dt = cfg.compute_dtype
        params = nn.meta.unbox(self.variables["params"]["decoder"])
        if cfg.scan_layers:
            attn = params[SCANNED_LAYERS]["encoder_decoder_attention"]
            return tuple(
                constrain(jnp.einsum("bse,lehd->blshd", encoded.astype(dt),
                                     attn[n]["kernel"].astype(dt)),
                          ("batch", SCANNED_LAYERS, "length", "kv_heads", "kv"))
                for n in ("key", "value"))
        out = []
        for i in range(cfg.num_decoder_layers):
            attn = params[f"layers_{i}"]["encoder_decoder_attention"]
            k, v = (jnp.einsum("bse,ehd->bshd", encoded.astype(dt), attn[n]["kernel"].astype(dt))
                    for n in ("key", "value"))
            out.append((constrain(k, ("batch", "length", "kv_heads", "kv")),
                        constrain(v, ("batch", "length", "kv_heads", "kv"))))
        return out

    def __call__(self, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens=None,
                 encoder_segment_ids=None, decoder_segment_ids=None, encoder_positions=None,
                 decoder_positions=None, enable_dropout: bool = False, decode: bool = False,
                 return_hidden: bool = False):
        packed = any(a is not None for a in (encoder_segment_ids, decoder_segment_ids,
                                             encoder_positions, decoder_positions))
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens > 0).astype(jnp.int32)
        if decoder_segment_ids is None and decoder_target_tokens is not None:
            decoder_segment_ids = (decoder_target_tokens > 0).astype(jnp.int32)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions,
                              enable_dropout, packed=packed)
        return self.decode(encoded, encoder_segment_ids, decoder_input_tokens,
                           decoder_segment_ids, decoder_positions, encoder_positions,
                           enable_dropout, decode, return_hidden=return_hidden, packed=packed)
