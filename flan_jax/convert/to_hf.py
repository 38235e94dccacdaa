"""Export a flan-jax model directory as a Hugging Face checkpoint (`flan-jax convert to-hf`).

Encoder-decoders become `T5ForConditionalGeneration` (T5 v1.1 / Flan-T5 layout), decoder-only
models `LlamaForCausalLM`. The directory gets `config.json`, `model.safetensors` (or shards plus
`model.safetensors.index.json` above `max_shard_bytes`) and the tokenizer:
  - a SentencePiece vocabulary: the model file (`spiece.model` / `tokenizer.model`) and a
    `tokenizer_config.json` naming T5Tokenizer / LlamaTokenizer;
  - the byte vocabulary (seqio.ByteVocabulary: pad 0, EOS 1, UNK 2, byte b -> b + 3): no file,
    only a `tokenizer_config.json` naming ByT5Tokenizer with `extra_ids=0`, which maps text to
    the same ids (it appends EOS, as flan-jax does for encoder inputs and targets; a decoder-only
    prompt has none, so call it with `add_special_tokens=False` there).
A prompt-tuning run exports its base model plus `prompt.safetensors`: one tensor "prompt"
[prompt_length, d_model] to prepend to the token embeddings (`inputs_embeds`) of the encoder
input (T5) or of the sequence (Llama), with attention mask 1 over it.

Tensors keep their stored dtype and stream: each is restored from the orbax checkpoint, reshaped
and written before the next is read (a training step's optimizer state is never read). The
export is written under a temporary sibling name and renamed at the end; every path goes
through etils.epath.
"""

from __future__ import annotations

import json
import re

import numpy as np
from etils import epath

from flan_jax import checkpoints, paths
from flan_jax.convert import safetensors_io
from flan_jax.convert.hf import ConversionError
from flan_jax.convert.staging import staged_directory
from flan_jax.convert.lazy import LazyTensor, lazy_restore
from flan_jax.models import layout
from flan_jax.models.config import TransformerConfig
from flan_jax.vocab import VOCAB_FILE, load_vocab

DEFAULT_MAX_SHARD_BYTES = 5 * 10**9
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}
# Hugging Face T5 reads "gated-gelu" as the tanh approximation, like flan-jax's "gelu".
_T5_GATED = {"gelu": "gated-gelu", "silu": "gated-silu", "relu": "gated-relu"}
_T5_PLAIN = {"gelu": "gelu_new", "gelu_exact": "gelu", "silu": "silu", "relu": "relu"}
_LLAMA_ACT = {"silu": "silu", "gelu": "gelu_pytorch_tanh", "gelu_exact": "gelu", "relu": "relu"}


def parse_size(text: str | int) -> int:
    """Bytes from "5GB", "500MB", "2GiB" or a plain number."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise ConversionError(f"--max_shard_size {text!r}: write a size like 5GB, 500MB or 2GiB.")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def refusal(cfg: TransformerConfig) -> str | None:
    """Why `cfg` has no Hugging Face equivalent (None when it has one)."""
    if cfg.family == "decoder_only":
        if cfg.prefix_lm:
            return ("a prefix-LM decoder (TransformerConfig.prefix_lm=True) attends "
                    "bidirectionally over its inputs; LlamaForCausalLM is causal only, so it "
                    "would compute different outputs")
        if not cfg.gated_mlp:
            return "LlamaForCausalLM's MLP is gated; this model has gated_mlp=False"
    else:
        if cfg.kv_heads != cfg.num_heads:
            return (f"T5 has no grouped-query attention (num_kv_heads={cfg.num_kv_heads}, "
                    f"num_heads={cfg.num_heads})")
        if cfg.gated_mlp and cfg.mlp_activation not in _T5_GATED:
            return (f"Hugging Face T5 reads gated-gelu as the tanh approximation; a gated "
                    f"{cfg.mlp_activation} MLP has no feed_forward_proj")
    return None


def export(src: str | epath.PathLike, dst: str | epath.PathLike,
           max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, overwrite: bool = False) -> list[str]:
    """Writes the model directory `src` (converted, trained or prompt-tuned) as a Hugging Face
    checkpoint at `dst`; returns the names of the files written."""
    src, dst = paths.as_path(src), paths.as_path(dst)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ConversionError(f"--dst {dst} exists and is not empty (pass --overwrite).")
    if not (src / checkpoints.MODEL_GIN).exists():
        raise ConversionError(f"--src {src} is not a flan-jax model directory (no "
                              f"{checkpoints.MODEL_GIN}); pass a converted or trained MODEL_DIR.")
    cfg = checkpoints.read_model_config(src / checkpoints.MODEL_GIN)
    reason = refusal(cfg)
    if reason:
        raise ConversionError(f"{src} cannot be exported to Hugging Face: {reason}.")
    cfg, params, vocab = _load(src)
    prompt = params.pop(checkpoints.PROMPT_PARAM, None)
    if cfg.family == "encoder_decoder":
        tensors, hf_config = t5_tensors(cfg, params), t5_config(cfg)
    else:
        tensors, hf_config = llama_tensors(cfg, params), llama_config(cfg, vocab)
    hf_config["dtype"] = np.dtype(params["token_embed"]["embedding"].dtype).name

    with staged_directory(dst) as tmp:
        written = safetensors_io.write_sharded(tmp, tensors, max_shard_bytes, {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        written.append("config.json")
        written += _write_tokenizer(tmp, cfg, vocab)
        if prompt is not None:
            safetensors_io.write_file(tmp / "prompt.safetensors", {"prompt": prompt}, {
                "format": "pt", "prompt_length": str(prompt.shape[0]),
                "usage": "prepend to the input token embeddings (inputs_embeds), mask 1"})
            written.append("prompt.safetensors")
    return written


def _load(src: epath.Path):
    """(config, params as `LazyTensor`s, vocabulary or None) of a converted model, a training
    run (its latest step's parameters) or a prompt-tuning run (its base's parameters plus the
    prompt), found as `checkpoints.load_model_dir` finds them but read one tensor at a time."""
    cfg = checkpoints.read_model_config(src / checkpoints.MODEL_GIN)
    if (src / checkpoints.PARAMS_DIR).is_dir():
        params = lazy_restore(src / checkpoints.PARAMS_DIR)
    else:
        step = checkpoints.latest_step_dir(src)
        if step is None:
            raise ConversionError(f"{src} has neither {checkpoints.PARAMS_DIR}/ nor saved steps "
                                  f"under {checkpoints.STEPS_DIR}/: train or convert it first.")
        params = lazy_restore(epath.Path(step) / "state", ("params",))
    if set(params) == {checkpoints.PROMPT_PARAM}:
        base = checkpoints.prompt_base_dir(src)
        if base is None:
            raise ConversionError(f"{src} holds only a soft prompt and no "
                                  f"{checkpoints.PROMPT_BASE} naming its base model directory.")
        _, base_params, _ = _load(epath.Path(base))
        params = {**base_params, checkpoints.PROMPT_PARAM: params[checkpoints.PROMPT_PARAM]}
    if layout.has_layers(params) and layout.params_layout(params) == "scanned":
        params = layout.unscan_params(params, cfg)  # Hugging Face numbers its layers
    spec = src / VOCAB_FILE
    if spec.exists() and json.loads(spec.read_text()).get("kind") == "missing":
        return cfg, params, None  # a conversion whose source had no tokenizer file
    try:
        return cfg, params, load_vocab(src)
    except FileNotFoundError as e:
        raise ConversionError(str(e)) from e


# --- T5 v1.1 / Flan-T5 ----------------------------------------------------------------------

def _heads_in(kernel: LazyTensor) -> LazyTensor:
    """kernel [emb, heads, d] -> torch Linear weight [heads*d, emb]."""
    return kernel.reshape(kernel.shape[0], -1).T


def _heads_out(kernel: LazyTensor) -> LazyTensor:
    """kernel [heads, d, emb] -> torch Linear weight [emb, heads*d]."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def _attention(out: dict, prefix: str, p: dict, names=("q", "k", "v", "o")) -> None:
    q, k, v, o = names
    out[f"{prefix}.{q}.weight"] = _heads_in(p["query"]["kernel"])
    out[f"{prefix}.{k}.weight"] = _heads_in(p["key"]["kernel"])
    out[f"{prefix}.{v}.weight"] = _heads_in(p["value"]["kernel"])
    out[f"{prefix}.{o}.weight"] = _heads_out(p["out"]["kernel"])


def t5_tensors(cfg: TransformerConfig, params: dict) -> dict[str, LazyTensor]:
    emb = params["token_embed"]["embedding"]
    out = {"shared.weight": emb}
    for side, n_layers in (("encoder", cfg.num_encoder_layers),
                           ("decoder", cfg.num_decoder_layers)):
        p = params[side]
        for i in range(n_layers):
            layer, b = p[f"layers_{i}"], f"{side}.block.{i}.layer"
            if side == "encoder":
                parts = [("pre_attention_norm", "attention", "SelfAttention")]
            else:
                parts = [("pre_self_attention_norm", "self_attention", "SelfAttention"),
                         ("pre_cross_attention_norm", "encoder_decoder_attention",
                          "EncDecAttention")]
            for j, (norm, attn, hf_name) in enumerate(parts):
                out[f"{b}.{j}.layer_norm.weight"] = layer[norm]["scale"]
                _attention(out, f"{b}.{j}.{hf_name}", layer[attn])
            j = len(parts)
            out[f"{b}.{j}.layer_norm.weight"] = layer["pre_mlp_norm"]["scale"]
            for name, kernel in layer["mlp"].items():
                out[f"{b}.{j}.DenseReluDense.{name}.weight"] = kernel["kernel"].T
        out[f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = \
            p["relpos_bias"].T
        out[f"{side}.final_layer_norm.weight"] = p["final_norm"]["scale"]
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = params["decoder"]["logits_dense"]["kernel"].T
    elif not cfg.scale_tied_logits:
        # Hugging Face scales tied logits by d_model**-0.5 whenever tie_word_embeddings is true;
        # an unscaled tied head is written as an untied head equal to the table.
        out["lm_head.weight"] = emb
    return out


def t5_config(cfg: TransformerConfig) -> dict:
    act = (_T5_GATED if cfg.gated_mlp else _T5_PLAIN)[cfg.mlp_activation]
    return {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
        "vocab_size": cfg.vocab_size, "d_model": cfg.emb_dim, "d_kv": cfg.head_dim,
        "d_ff": cfg.mlp_dim, "num_layers": cfg.num_encoder_layers,
        "num_decoder_layers": cfg.num_decoder_layers, "num_heads": cfg.num_heads,
        "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
        "relative_attention_max_distance": cfg.relative_attention_max_distance,
        "dropout_rate": cfg.dropout_rate, "layer_norm_epsilon": cfg.norm_eps,
        "feed_forward_proj": act, "initializer_factor": 1.0, "is_encoder_decoder": True,
        # Both transformers 4 and 5 read this as "scale the decoder output by d_model**-0.5".
        "tie_word_embeddings": bool(cfg.tie_embeddings and cfg.scale_tied_logits),
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "use_cache": True,
    }


# --- Llama ----------------------------------------------------------------------------------

def llama_tensors(cfg: TransformerConfig, params: dict) -> dict[str, LazyTensor]:
    out = {"model.embed_tokens.weight": params["token_embed"]["embedding"]}
    for i in range(cfg.num_decoder_layers):
        layer, p = params[f"layers_{i}"], f"model.layers.{i}"
        out[f"{p}.input_layernorm.weight"] = layer["pre_attention_norm"]["scale"]
        _attention(out, f"{p}.self_attn", layer["self_attention"],
                   ("q_proj", "k_proj", "v_proj", "o_proj"))
        out[f"{p}.post_attention_layernorm.weight"] = layer["pre_mlp_norm"]["scale"]
        for ours, theirs in (("wi_0", "gate_proj"), ("wi_1", "up_proj"), ("wo", "down_proj")):
            out[f"{p}.mlp.{theirs}.weight"] = layer["mlp"][ours]["kernel"].T
    out["model.norm.weight"] = params["final_norm"]["scale"]
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = params["logits_dense"]["kernel"].T
    return out


def llama_config(cfg: TransformerConfig, vocab) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.emb_dim,
        "intermediate_size": cfg.mlp_dim, "num_hidden_layers": cfg.num_decoder_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim, "hidden_act": _LLAMA_ACT[cfg.mlp_activation],
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False, "mlp_bias": False, "attention_dropout": cfg.dropout_rate,
        "tie_word_embeddings": bool(cfg.tie_embeddings), "max_position_embeddings": 4096,
        # Without a vocabulary: Llama's own ids (<s> 1, </s> 2).
        "bos_token_id": getattr(vocab, "bos_id", 1) if vocab else 1,
        "eos_token_id": vocab.eos_id if vocab else 2,
        "pad_token_id": vocab.pad_id if vocab else None, "use_cache": True,
    }


# --- tokenizer ------------------------------------------------------------------------------

def _write_tokenizer(tmp: epath.Path, cfg: TransformerConfig, vocab) -> list[str]:
    if vocab is None:  # nothing to export; from_pretrained takes the weights alone
        return []
    t5 = cfg.family == "encoder_decoder"
    path = getattr(vocab, "path", None)
    if path is not None:  # SentencePiece
        name = "spiece.model" if t5 else "tokenizer.model"
        epath.Path(path).copy(tmp / name)
        if t5:
            # T5's tokenizer appends 100 sentinel ids after the pieces when the table has room.
            extra = 100 if cfg.vocab_size >= vocab.vocab_size + 100 else 0
            spec = {"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>",
                    "pad_token": "<pad>", "extra_ids": extra}
        else:
            spec = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                    "unk_token": "<unk>", "add_bos_token": bool(vocab.add_bos),
                    "add_eos_token": False}
        files = [name]
    else:  # seqio.ByteVocabulary's ids are ByT5's without its 125 sentinels
        spec = {"tokenizer_class": "ByT5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>",
                "pad_token": "<pad>", "extra_ids": 0}
        files = []
    (tmp / "tokenizer_config.json").write_text(json.dumps(spec, indent=2) + "\n")
    return files + ["tokenizer_config.json"]
