"""`bench train`: one measured step per model, its accounting and XLA memory."""

import pytest

from flan_jax.bench import train
from flan_jax.bench.train import bench_train, measure_train_step

from tests.bench.conftest import QUICK

pytestmark = pytest.mark.slow  # compiles train steps; `bench all --quick` (test_cli) covers it


def test_measure_train_step_accounting(tiny_models):
    name, cfg = tiny_models[0]
    r = measure_train_step(cfg, 2, {"inputs": 8, "targets": 4}, QUICK)
    assert r["tokens_per_step"] == 2 * 12 and r["devices"] == 1
    assert abs(r["tokens_per_s"] * r["step_time_s"] - 24) < 1e-6
    assert r["mfu"] == r["tokens_per_s"] * r["flops_per_token"] / r["assumed_peak_flops"]
    assert r["xla_step_memory_mib"] > r["xla_temp_mib"] > 0
    assert 4.0 < r["loss"] < 7.0  # about log(259) for a random model


def test_bench_train_both_remat_policies(tiny_models):
    train.clear_compiled()  # fresh states: both policies then take the same steps
    rows = bench_train(tiny_models[:1], QUICK)
    assert [r["remat"] for r in rows] == ["none", "full"]
    # full remat recomputes the forward pass: same loss, no more temporaries
    assert abs(rows[0]["loss"] - rows[1]["loss"]) < 1e-4
