"""Parity of converted Hugging Face checkpoints against the `transformers` reference (PyTorch)."""

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flan_jax import checkpoints  # noqa: E402
from flan_jax.convert import cli as convert_cli  # noqa: E402
from flan_jax.convert.hf import ConversionError, convert  # noqa: E402
from flan_jax.models import build_model  # noqa: E402
from tests.convert.hf_models import max_diff, tiny_llama, tiny_t5  # noqa: E402

T5_CONFIGS = {
    "v1_1_gated_gelu": dict(feed_forward_proj="gated-gelu", num_heads=3, d_kv=8),
    "v1_0_relu_tied": dict(feed_forward_proj="relu", num_heads=4, d_kv=4, tie_word_embeddings=True),
    "odd_heads_more_decoder": dict(feed_forward_proj="gated-gelu", num_heads=5, d_kv=6,
                                   num_decoder_layers=3),
}
LLAMA_CONFIGS = {
    "gqa_untied": dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
    "mha_tied": dict(num_attention_heads=3, num_key_value_heads=3, hidden_size=24,
                     tie_word_embeddings=True),
    "mqa_odd": dict(num_attention_heads=5, num_key_value_heads=1, hidden_size=30, head_dim=8,
                    tie_word_embeddings=False, rope_theta=500.0),
}


@pytest.mark.parametrize("name", sorted(T5_CONFIGS))
def test_t5_logits_match_transformers(tmp_path, name):
    hf_model, src = tiny_t5(tmp_path, name, **T5_CONFIGS[name])
    cfg = convert(src, tmp_path / "converted")
    cfg2, params, _ = (checkpoints.read_model_config(tmp_path / "converted" / "model.gin"),
                       checkpoints.load_params(tmp_path / "converted"), None)
    assert cfg2 == cfg
    rng = np.random.RandomState(1)
    enc = rng.randint(2, 97, size=(3, 11))
    enc[1, 7:] = 0  # padding
    dec = rng.randint(2, 97, size=(3, 6))
    dec[:, 0] = 0  # start token
    with torch.no_grad():
        ref = hf_model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                       decoder_input_ids=torch.tensor(dec)).logits.numpy()
    ours = build_model(cfg).apply({"params": params}, enc, dec,
                                  decoder_segment_ids=np.ones_like(dec))
    assert ours.shape == ref.shape
    assert max_diff(ours, ref) <= 1e-4


def test_t5_untied_lm_head_like_flan_t5(tmp_path):
    """Flan-T5 checkpoints ship a separate lm_head; transformers 5 ignores it, so compare with
    the reference decoder states times that head."""
    hf_model, src = tiny_t5(tmp_path, "untied", feed_forward_proj="gated-gelu", num_heads=2, d_kv=8)
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(src / "model.safetensors"))
    head = np.random.RandomState(3).normal(size=weights["shared.weight"].shape).astype(np.float32)
    weights["lm_head.weight"] = head
    save_file(weights, str(src / "model.safetensors"))
    cfg = convert(src, tmp_path / "converted")
    assert not cfg.tie_embeddings
    enc = np.random.RandomState(1).randint(2, 97, size=(2, 9))
    dec = np.random.RandomState(2).randint(2, 97, size=(2, 5))
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(enc), decoder_input_ids=torch.tensor(dec),
                       output_hidden_states=True)
        ref = out.decoder_hidden_states[-1].numpy() @ head.T
    params = checkpoints.load_params(tmp_path / "converted")
    ours = build_model(cfg).apply({"params": params}, enc, dec,
                                  decoder_segment_ids=np.ones_like(dec))
    assert max_diff(ours, ref) <= 1e-4


@pytest.mark.parametrize("name", sorted(LLAMA_CONFIGS))
def test_llama_logits_match_transformers(tmp_path, name):
    hf_model, src = tiny_llama(tmp_path, name, **LLAMA_CONFIGS[name])
    cfg = convert(src, tmp_path / "converted")
    assert cfg.tie_embeddings == LLAMA_CONFIGS[name]["tie_word_embeddings"]
    params = checkpoints.load_params(tmp_path / "converted")
    tokens = np.random.RandomState(1).randint(0, 101, size=(2, 13))
    with torch.no_grad():
        ref = hf_model(input_ids=torch.tensor(tokens)).logits.numpy()
    ours = build_model(cfg).apply({"params": params}, tokens)
    assert max_diff(ours, ref) <= 1e-4


def test_vocabulary_is_copied(tmp_path):
    _, src = tiny_llama(tmp_path, "vocab", num_attention_heads=2, num_key_value_heads=2)
    (src / "tokenizer.model").write_bytes(b"not really a model")
    convert(src, tmp_path / "converted")
    assert (tmp_path / "converted" / "tokenizer.model").read_bytes() == b"not really a model"
    spec = json.loads((tmp_path / "converted" / "vocab.json").read_text())
    assert spec == {"kind": "sentencepiece", "file": "tokenizer.model", "add_bos": True}


def test_unsupported_architecture_is_one_line_and_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "gpt2"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    dst = tmp_path / "out"
    assert convert_cli.main(["hf", "--src", str(src), "--dst", str(dst)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "GPT2LMHeadModel" in err and "LlamaForCausalLM" in err
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_weights_or_tensor(tmp_path):
    src = tmp_path / "empty"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ConversionError, match="no weights"):
        convert(src, tmp_path / "out")
    _, src = tiny_llama(tmp_path, "broken", num_attention_heads=2, num_key_value_heads=2)
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(src / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(src / "model.safetensors"))
    with pytest.raises(ConversionError, match="model.layers.1.mlp.up_proj.weight"):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pytorch_bin_checkpoint(tmp_path):
    hf_model, src = tiny_llama(tmp_path, "bin", num_attention_heads=2, num_key_value_heads=1)
    (src / "model.safetensors").unlink()
    torch.save(hf_model.state_dict(), src / "pytorch_model.bin")
    cfg = convert(src, tmp_path / "converted")
    params = checkpoints.load_params(tmp_path / "converted")
    tokens = np.arange(1, 9)[None]
    with torch.no_grad():
        ref = hf_model(input_ids=torch.tensor(tokens)).logits.numpy()
    assert max_diff(build_model(cfg).apply({"params": params}, tokens), ref) <= 1e-4
