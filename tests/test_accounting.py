"""FLOP and MFU accounting."""

import jax
import jax.numpy as jnp
import pytest

from flan_jax import accounting
from flan_jax.models import TransformerConfig, build_model, count_params


def test_cpu_peak_is_measured_and_shared_by_simulated_devices():
    host = accounting.measured_cpu_matmul_flops()
    assert 1e8 < host < 1e14
    assert accounting.peak_flops_per_device() * len(jax.local_devices()) == pytest.approx(host)
    assert accounting.peak_flops_per_device(cpu=5e10) == 5e10
    assert accounting.peak_flops_per_device(override=1e15) == 1e15


def _params(cfg):
    model = build_model(cfg)
    args = (jnp.ones((1, 4), jnp.int32),) * (2 if cfg.family == "encoder_decoder" else 1)
    return jax.eval_shape(lambda r: model.init(r, *args)["params"], jax.random.PRNGKey(0))


def test_decoder_only_flops_are_six_times_weights_plus_attention():
    cfg = TransformerConfig(family="decoder_only", emb_dim=32, num_heads=2, head_dim=16,
                            mlp_dim=64, num_decoder_layers=2, vocab_size=50)
    params = _params(cfg)
    weights = count_params({k: v for k, v in params.items() if k != "token_embed"})
    n = 12
    expected = 6 * weights + 12 * 2 * 16 * 2 * n  # per position: 6W + 12 * hd * layers * n
    got = accounting.train_flops_per_token(cfg, params, {"inputs": 4, "targets": 8})
    assert got == pytest.approx(expected)
    assert accounting.step_flops(cfg, params, {"inputs": 4, "targets": 8}, 3) == \
        pytest.approx(got * 3 * 12)


def test_encoder_positions_do_not_pay_for_the_decoder_and_head():
    cfg = TransformerConfig(family="encoder_decoder", emb_dim=32, num_heads=2, head_dim=16,
                            mlp_dim=64, num_encoder_layers=1, num_decoder_layers=1,
                            vocab_size=50)
    params = _params(cfg)
    only_inputs = accounting.train_flops_per_token(cfg, params, {"inputs": 8, "targets": 0})
    enc = count_params(params["encoder"])
    assert only_inputs == pytest.approx(6 * enc + 12 * 32 * 8)
