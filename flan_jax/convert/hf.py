"""Import Hugging Face checkpoints: T5ForConditionalGeneration (T5, T5 v1.1, Flan-T5, mT5) and
LlamaForCausalLM, from safetensors (single or sharded) or PyTorch `.bin` files.

The result is a flan-jax model directory (see `flan_jax.checkpoints`): model.gin, vocab.json,
params/ and the SentencePiece model when the source has one. It is written to a temporary
sibling of `dst` and renamed into place at the end, so a failure leaves nothing at `dst`.
Tensors stream: each is read, reshaped and written before the next is read (`convert.lazy`), so
host memory holds a few tensors, never the model; every path goes through etils.epath.
"""

from __future__ import annotations

import json
import tempfile
from typing import Callable, Mapping

import ml_dtypes
import numpy as np
from etils import epath

from flan_jax import checkpoints, paths
from flan_jax.convert import safetensors_io
from flan_jax.convert.staging import staged_directory
from flan_jax.convert.lazy import LazyTensor, save_lazy_params
from flan_jax.models.config import TransformerConfig, plain_config
from flan_jax.vocab import VOCAB_FILE

SUPPORTED = ("T5ForConditionalGeneration", "MT5ForConditionalGeneration", "LlamaForCausalLM")
DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


class ConversionError(Exception):
    """A one-line, user-facing reason why a checkpoint cannot be converted."""


def read_hf_config(src: epath.Path) -> dict:
    path = src / "config.json"
    if not path.exists():
        raise ConversionError(f"{src} has no config.json: point --src at a Hugging Face model "
                              "directory (config.json plus *.safetensors or pytorch_model*.bin).")
    return json.loads(path.read_text())


def read_hf_weights(src: epath.Path) -> dict[str, LazyTensor]:
    """Every tensor of a checkpoint by Hugging Face name, unread (see `LazyTensor`)."""
    files = sorted(src.glob("*.safetensors"))
    if files:
        out: dict[str, LazyTensor] = {}
        for i, f in enumerate(files):
            out.update(safetensors_io.lazy_tensors(f, file_index=i))
        return out
    files = sorted(src.glob("pytorch_model*.bin"))
    if files:
        return _TorchShards(files).lazy_tensors()
    raise ConversionError(f"{src} has no weights: expected model.safetensors, "
                          "model-0000x-of-0000y.safetensors or pytorch_model.bin.")


class _TorchShards:
    """PyTorch `.bin` shards, memory-mapped one file at a time: a tensor's read maps its file
    (dropping the previous one), so resident memory is bounded by one shard, not the model."""

    def __init__(self, files: list[epath.Path]):
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise ConversionError("reading pytorch_model*.bin needs PyTorch: pip install torch "
                                  "(or convert the checkpoint to safetensors).") from e
        self.files = files
        self._open: tuple[int, dict] | None = None

    def _state(self, i: int) -> dict:
        if self._open is None or self._open[0] != i:
            self._open = None  # unmap the previous shard before mapping the next
            self._open = (i, _torch_load(self.files[i]))
        return self._open[1]

    def lazy_tensors(self) -> dict[str, LazyTensor]:
        out = {}
        for i in range(len(self.files)):
            for position, (name, t) in enumerate(self._state(i).items()):
                out[name] = LazyTensor(tuple(t.shape), _torch_dtype(t), self._loader(i, name),
                                       (i, position))
        self._open = None
        return out

    def _loader(self, i: int, name: str) -> Callable[[], np.ndarray]:
        return lambda: _torch_to_numpy(self._state(i)[name])


def _torch_load(path: epath.Path) -> dict:
    import torch

    if _is_local(path):
        return torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    # torch memory-maps local files only: stage a remote shard in a temporary file, which can
    # be unlinked at once (the mapping keeps it alive).
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        with path.open("rb") as f:
            while chunk := f.read(64 << 20):
                tmp.write(chunk)
        tmp.flush()
        return torch.load(tmp.name, map_location="cpu", mmap=True, weights_only=True)


def _torch_dtype(t) -> np.dtype:
    import torch

    if t.dtype == torch.bfloat16:
        return np.dtype(ml_dtypes.bfloat16)
    return torch.empty(0, dtype=t.dtype).numpy().dtype


def _torch_to_numpy(t) -> np.ndarray:
    import torch

    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()  # copied off the memory map, which is dropped with its shard


def _is_local(path: epath.Path) -> bool:
    return not paths.is_url(path)


# --- T5 -------------------------------------------------------------------------------------

def t5_config(hf: Mapping, weights: Mapping[str, LazyTensor]) -> TransformerConfig:
    proj = hf.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act = proj.split("-")[-1]
    # transformers reads "gated-gelu" as the tanh approximation (our "gelu") but a plain
    # "gelu" as the exact one.
    activation = {"gelu": "gelu" if proj == "gated-gelu" else "gelu_exact", "gelu_new": "gelu",
                  "relu": "relu", "silu": "silu", "gelu_pytorch_tanh": "gelu"}.get(act)
    if activation is None:
        raise ConversionError(f"feed_forward_proj={proj!r} is not supported (relu, gated-gelu, "
                              "gated-silu).")
    untied_head = "lm_head.weight" in weights and not np.array_equal(
        weights["lm_head.weight"].materialize(), weights["shared.weight"].materialize())
    # Old configs say tie_word_embeddings=false for v1.1; transformers 5 writes
    # scale_decoder_outputs instead and always ties.
    scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
    return plain_config(
        family="encoder_decoder", vocab_size=hf["vocab_size"], emb_dim=hf["d_model"],
        num_heads=hf["num_heads"], head_dim=hf["d_kv"], mlp_dim=hf["d_ff"],
        num_encoder_layers=hf["num_layers"],
        num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        mlp_activation=activation, gated_mlp=gated, tie_embeddings=not untied_head,
        scale_tied_logits=bool(scale), norm_eps=hf.get("layer_norm_epsilon", 1e-6),
        relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf.get("relative_attention_max_distance", 128))


def _heads_in(w: LazyTensor, heads: int) -> LazyTensor:
    """torch Linear [heads*d, emb] -> kernel [emb, heads, d]."""
    return w.T.reshape(w.shape[1], heads, -1)


def _heads_out(w: LazyTensor, heads: int) -> LazyTensor:
    """torch Linear [emb, heads*d] -> kernel [heads, d, emb]."""
    return w.T.reshape(heads, -1, w.shape[0])


def t5_params(cfg: TransformerConfig, w: Mapping[str, LazyTensor]) -> dict:
    h = cfg.num_heads

    def attn(prefix):
        return {"query": {"kernel": _heads_in(w[f"{prefix}.q.weight"], h)},
                "key": {"kernel": _heads_in(w[f"{prefix}.k.weight"], h)},
                "value": {"kernel": _heads_in(w[f"{prefix}.v.weight"], h)},
                "out": {"kernel": _heads_out(w[f"{prefix}.o.weight"], h)}}

    def mlp(prefix):
        names = ("wi_0", "wi_1") if cfg.gated_mlp else ("wi",)
        out = {n: {"kernel": w[f"{prefix}.{n}.weight"].T} for n in names}
        out["wo"] = {"kernel": w[f"{prefix}.wo.weight"].T}
        return out

    norm = lambda name: {"scale": w[name]}  # noqa: E731
    enc = {"relpos_bias": w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].T,
           "final_norm": norm("encoder.final_layer_norm.weight")}
    for i in range(cfg.num_encoder_layers):
        b = f"encoder.block.{i}.layer"
        enc[f"layers_{i}"] = {"pre_attention_norm": norm(f"{b}.0.layer_norm.weight"),
                              "attention": attn(f"{b}.0.SelfAttention"),
                              "pre_mlp_norm": norm(f"{b}.1.layer_norm.weight"),
                              "mlp": mlp(f"{b}.1.DenseReluDense")}
    dec = {"relpos_bias": w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].T,
           "final_norm": norm("decoder.final_layer_norm.weight")}
    for i in range(cfg.num_decoder_layers):
        b = f"decoder.block.{i}.layer"
        dec[f"layers_{i}"] = {"pre_self_attention_norm": norm(f"{b}.0.layer_norm.weight"),
                              "self_attention": attn(f"{b}.0.SelfAttention"),
                              "pre_cross_attention_norm": norm(f"{b}.1.layer_norm.weight"),
                              "encoder_decoder_attention": attn(f"{b}.1.EncDecAttention"),
                              "pre_mlp_norm": norm(f"{b}.2.layer_norm.weight"),
                              "mlp": mlp(f"{b}.2.DenseReluDense")}
    if not cfg.tie_embeddings:
        dec["logits_dense"] = {"kernel": w["lm_head.weight"].T}
    return {"token_embed": {"embedding": w["shared.weight"]}, "encoder": enc, "decoder": dec}


# --- Llama ----------------------------------------------------------------------------------

def llama_config(hf: Mapping, weights: Mapping[str, LazyTensor]) -> TransformerConfig:
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ConversionError("Llama checkpoints with attention_bias/mlp_bias are not supported.")
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    if rope_type not in (None, "default"):
        raise ConversionError(f"rope type {rope_type!r} is not supported (only default rotary).")
    if hf.get("hidden_act", "silu") != "silu":
        raise ConversionError(f"hidden_act={hf['hidden_act']!r} is not supported (silu).")
    heads = hf["num_attention_heads"]
    return plain_config(
        family="decoder_only", vocab_size=hf["vocab_size"], emb_dim=hf["hidden_size"],
        num_heads=heads, num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        mlp_dim=hf["intermediate_size"], num_encoder_layers=0,
        num_decoder_layers=hf["num_hidden_layers"], mlp_activation="silu", gated_mlp=True,
        tie_embeddings="lm_head.weight" not in weights, norm_eps=hf.get("rms_norm_eps", 1e-6),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))))


def llama_params(cfg: TransformerConfig, w: Mapping[str, LazyTensor]) -> dict:
    out: dict = {"token_embed": {"embedding": w["model.embed_tokens.weight"]},
                 "final_norm": {"scale": w["model.norm.weight"]}}
    for i in range(cfg.num_decoder_layers):
        p = f"model.layers.{i}"
        out[f"layers_{i}"] = {
            "pre_attention_norm": {"scale": w[f"{p}.input_layernorm.weight"]},
            "self_attention": {
                "query": {"kernel": _heads_in(w[f"{p}.self_attn.q_proj.weight"], cfg.num_heads)},
                "key": {"kernel": _heads_in(w[f"{p}.self_attn.k_proj.weight"], cfg.kv_heads)},
                "value": {"kernel": _heads_in(w[f"{p}.self_attn.v_proj.weight"], cfg.kv_heads)},
                "out": {"kernel": _heads_out(w[f"{p}.self_attn.o_proj.weight"], cfg.num_heads)}},
            "pre_mlp_norm": {"scale": w[f"{p}.post_attention_layernorm.weight"]},
            "mlp": {"wi_0": {"kernel": w[f"{p}.mlp.gate_proj.weight"].T},
                    "wi_1": {"kernel": w[f"{p}.mlp.up_proj.weight"].T},
                    "wo": {"kernel": w[f"{p}.mlp.down_proj.weight"].T}}}
    if not cfg.tie_embeddings:
        out["logits_dense"] = {"kernel": w["lm_head.weight"].T}
    return out


ARCHITECTURES: dict[str, tuple[Callable, Callable, str]] = {
    "T5ForConditionalGeneration": (t5_config, t5_params, "spiece.model"),
    "MT5ForConditionalGeneration": (t5_config, t5_params, "spiece.model"),
    "LlamaForCausalLM": (llama_config, llama_params, "tokenizer.model"),
}


def convert(src: str | epath.PathLike, dst: str | epath.PathLike, overwrite: bool = False,
            dtype: str | None = None) -> TransformerConfig:
    """Converts the checkpoint at `src` into a flan-jax model directory at `dst`.

    Tensors are read, reshaped and written one at a time. `dtype` None keeps each tensor's
    stored dtype (bfloat16 stays bfloat16); "float32", "bfloat16" or "float16" casts."""
    src, dst = paths.as_path(src), paths.as_path(dst)
    if dtype is not None and dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}.")
    if not src.is_dir():
        raise ConversionError(f"--src {src} is not a directory.")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ConversionError(f"--dst {dst} exists and is not empty (pass --overwrite).")
    hf = read_hf_config(src)
    archs = hf.get("architectures") or []
    arch = next((a for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        raise ConversionError(f"architecture {archs or hf.get('model_type')} is not supported; "
                              f"supported: {', '.join(SUPPORTED)}.")
    make_config, make_params, vocab_file = ARCHITECTURES[arch]
    weights = read_hf_weights(src)
    cfg = make_config(hf, weights)
    try:
        params = make_params(cfg, weights)
    except KeyError as e:
        raise ConversionError(f"{src} is missing tensor {e.args[0]} expected for {arch}.") from e
    import jax

    if dtype is not None:
        params = jax.tree_util.tree_map(lambda t: t.astype(DTYPES[dtype]), params)
    stored = np.dtype(params["token_embed"]["embedding"].dtype).name
    if stored in DTYPES:  # the model computes with what it loads
        cfg = plain_config(**{**_fields(cfg), "param_dtype": stored})

    with staged_directory(dst) as tmp:
        save_lazy_params(tmp / checkpoints.PARAMS_DIR, params)
        (tmp / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(
            cfg, header=f"Converted by `flan-jax convert hf` from {_display(src)} ({arch})."))
        spm = src / vocab_file
        if spm.exists():
            spm.copy(tmp / vocab_file)
            vocab = {"kind": "sentencepiece", "file": vocab_file,
                     "add_bos": arch == "LlamaForCausalLM"}
        else:
            vocab = {"kind": "missing", "expected": vocab_file}
        (tmp / VOCAB_FILE).write_text(json.dumps(vocab, indent=2) + "\n")
    return cfg


def _fields(cfg: TransformerConfig) -> dict:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _display(path: epath.Path) -> str:
    """An absolute local path, or the URL of a bucket path."""
    return str(path.resolve()) if _is_local(path) else str(path)
