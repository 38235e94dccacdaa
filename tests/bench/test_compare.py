"""`bench compare`: the PyTorch twin has the flan-jax model's parameter count."""

import pytest

from flan_jax.bench.common import init_params
from flan_jax.bench.compare import bench_compare, torch_model
from flan_jax.models import build_model, count_params

from tests.bench.conftest import QUICK


pytestmark = pytest.mark.slow  # compiles models; `bench all --quick` (test_cli) covers it


def test_torch_twin_has_same_parameter_count(tiny_models):
    for _, cfg in tiny_models:
        jax_n = count_params(init_params(build_model(cfg)))
        torch_n = sum(p.numel() for p in torch_model(cfg).parameters())
        # flan-jax keeps one relative-position table per T5 stack, as HF does in its first layer
        assert jax_n == torch_n, (cfg.family, jax_n, torch_n)


def test_compare_rows(tiny_models):
    rows = bench_compare(tiny_models, QUICK)
    assert [r["family"] for r in rows] == ["decoder_only", "encoder_decoder"]
    for r in rows:
        assert r["ratio_jax_over_torch"] == r["jax_tokens_per_s"] / r["torch_tokens_per_s"]
        assert r["jax_params"] == r["torch_params"]
