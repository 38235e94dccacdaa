"""FLOP and MFU accounting: hand-computed FLOPs in both conventions, and peaks by device kind."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from flan_jax import accounting
from flan_jax.models import TransformerConfig, build_model

DECODER = TransformerConfig(family="decoder_only", emb_dim=32, num_heads=2, num_kv_heads=1,
                            head_dim=16, mlp_dim=64, num_decoder_layers=2, vocab_size=50)
T5 = TransformerConfig(family="encoder_decoder", emb_dim=32, num_heads=2, head_dim=16,
                       mlp_dim=64, num_encoder_layers=1, num_decoder_layers=1, vocab_size=50)


def test_cpu_peak_is_measured_and_shared_by_simulated_devices():
    host = accounting.measured_cpu_matmul_flops()
    assert 1e8 < host < 1e14
    assert accounting.peak_flops_per_device() * len(jax.local_devices()) == pytest.approx(host)
    assert accounting.peak_flops_per_device(cpu=5e10) == 5e10
    assert accounting.peak_flops_per_device(override=1e15) == 1e15


@pytest.mark.parametrize("kind, name, flops", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989e12),
    ("NVIDIA H100 SXM5 80GB", "H100 SXM", 989e12),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", "H100 NVL", 835e12),
    ("NVIDIA H200", "H200 SXM", 989e12),
    ("NVIDIA H200 NVL", "H200 NVL", 835e12),
    ("NVIDIA GH200 480GB", "GH200", 989e12),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB", 312e12),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB", 312e12),
    ("NVIDIA A100 80GB PCIe", "A100 80GB", 312e12),
    ("TPU v4", "TPU v4", 275e12),
    ("TPU v5 lite", "TPU v5e", 197e12),
    ("TPU v5", "TPU v5p", 459e12),
    ("TPU v5p", "TPU v5p", 459e12),
])
def test_peak_by_exact_device_kind(kind, name, flops):
    assert accounting.device_peak(kind) == (name, flops)


@pytest.mark.parametrize("kind", ["NVIDIA H100", "NVIDIA H20", "NVIDIA GeForce RTX 4090",
                                  "TPU v4 lite", "TPU v3"])
def test_unknown_or_ambiguous_kind_has_no_peak(kind):
    assert accounting.device_peak(kind) is None
    assert "--peak_flops" in accounting.unknown_peak_message(kind)


def test_decoder_only_flops_by_hand():
    # per layer: q,o 2*32*2*16 = 2048; k,v 2*32*1*16 = 1024; gated MLP 3*32*64 = 6144
    # -> 9216 x 2 layers + head 32*50 = 20032 weights per position, 6 FLOPs each
    weights = 12 * 6 * 20032
    per_pair = 12 * 2 * 16  # 3 (train) x 4 (scores + values) x heads x head_dim
    f = accounting.row_flops(DECODER, {"inputs": 4, "targets": 8})
    assert f == {"weights": weights, "attention_full": per_pair * 2 * 144,
                 "attention_causal_halved": per_pair * 2 * 72}
    full = accounting.train_flops_per_token(DECODER, {"inputs": 4, "targets": 8})
    assert full == pytest.approx(129_408)
    assert accounting.train_flops_per_token(DECODER, {"inputs": 4, "targets": 8},
                                            convention="causal_halved") == pytest.approx(124_800)
    assert accounting.step_flops(DECODER, {"inputs": 4, "targets": 8}, 3) == \
        pytest.approx(full * 3 * 12)
    # a prefix LM's 4-token prefix attends both ways: 16 + (144 - 16) / 2 pairs per layer
    prefix = accounting.row_flops(dataclasses.replace(DECODER, prefix_lm=True),
                                  {"inputs": 4, "targets": 8})
    assert prefix["attention_causal_halved"] == per_pair * 2 * 80
    # two packed examples: attention within each 6-position example only
    packed = accounting.row_flops(DECODER, {"inputs": 4, "targets": 8}, examples_per_row=2)
    assert packed["attention_full"] == per_pair * 2 * 2 * 36
    assert packed["weights"] == weights
    with pytest.raises(ValueError, match="causal_halved"):
        accounting.train_flops_per_token(DECODER, {"inputs": 4}, convention="half")


def test_t5_flops_by_hand_per_attention():
    # inputs 8, targets 4, two examples per row (segments of 4 inputs and 2 targets)
    f = accounting.row_flops(T5, {"inputs": 8, "targets": 4}, examples_per_row=2)
    enc = 8 * (2048 + 2048 + 6144)  # q,o + k,v + gated MLP, at every input position
    cross_kv = 8 * 2048  # the decoder's cross-attention keys/values read the encoder output
    dec = 4 * (2048 + 2048 + 2048 + 6144 + 32 * 50)  # self q,o,k,v; cross q,o; MLP; head
    assert f["weights"] == 6 * (enc + cross_kv + dec)
    per_pair = 12 * 2 * 16
    encoder_pairs, cross_pairs = 2 * 4 * 4, 2 * 4 * 2  # per example, not over the whole row
    assert f["attention_full"] == per_pair * (encoder_pairs + cross_pairs + 2 * 2 * 2)
    assert f["attention_causal_halved"] == per_pair * (encoder_pairs + cross_pairs + 2 * 2)
    assert accounting.train_flops_per_token(T5, {"inputs": 8, "targets": 4}, 2) == \
        pytest.approx(944_640 / 12)


@pytest.mark.parametrize("cfg", [DECODER, T5], ids=["decoder_only", "encoder_decoder"])
def test_weight_count_matches_the_models_matmul_kernels(cfg):
    """The config-derived weights are the model's kernels (all but embeddings, norms and
    relative-position tables), each used by the positions the docstring says."""
    model = build_model(cfg)
    args = (jnp.ones((1, 4), jnp.int32),) * (2 if cfg.family == "encoder_decoder" else 1)
    params = jax.eval_shape(lambda r: model.init(r, *args)["params"], jax.random.PRNGKey(0))
    kernels = {jax.tree_util.keystr(p): x.size for p, x in
               jax.tree_util.tree_leaves_with_path(params) if "kernel" in jax.tree_util.keystr(p)}
    if cfg.family == "decoder_only":
        assert accounting.row_flops(cfg, {"inputs": 1, "targets": 0})["weights"] == \
            6 * sum(kernels.values())
    else:
        cross_kv = sum(n for k, n in kernels.items()
                       if "encoder_decoder_attention" in k and ("'key'" in k or "'value'" in k))
        on_inputs = sum(n for k, n in kernels.items() if k.startswith("['encoder']")) + cross_kv
        on_targets = sum(kernels.values()) - on_inputs
        assert accounting.row_flops(cfg, {"inputs": 1, "targets": 0})["weights"] == \
            6 * on_inputs
        assert accounting.row_flops(cfg, {"inputs": 0, "targets": 1})["weights"] == \
            6 * on_targets


def test_flops_report_gives_both_conventions():
    r = accounting.flops_report(DECODER, {"inputs": 4, "targets": 8}, 2, 1, step_s=0.5,
                                n_devices=1)
    peak = accounting.peak_flops_per_device()
    assert r["assumed_peak_flops"] == peak
    assert r["mfu"] == pytest.approx(48 * 129_408 / peak)
    assert r["mfu_causal_halved"] == pytest.approx(48 * 124_800 / peak)
    assert "MaxText" in r["flops_convention"]
