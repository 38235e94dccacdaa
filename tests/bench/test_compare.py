"""`bench compare`: the PyTorch twin has the flan-jax model's parameter count; both sides are
timed back to back in alternating rounds."""

import statistics

import pytest

from flan_jax.bench import common
from flan_jax.bench.common import Settings, init_params
from flan_jax.bench.compare import bench_compare, interleaved_times, torch_model
from flan_jax.models import build_model, count_params

from tests.bench.conftest import QUICK


def test_interleaved_rounds_alternate_and_take_the_median_ratio(monkeypatch):
    clock, calls = {"now": 0.0}, []
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock["now"])

    def side(name, seconds):
        def run():
            calls.append(name)
            nth = calls.count(name)  # torch's 4th and 5th steps: the second round's
            clock["now"] += seconds * (2 if name == "torch" and nth in (4, 5) else 1)
        return run

    t = interleaved_times(side("jax", 1.0), side("torch", 3.0), Settings(False, 1, 5),
                          rounds=3, steps=2)
    assert calls == ["jax", "torch"] + ["jax"] * 2 + ["torch"] * 2 + ["torch"] * 2 + \
        ["jax"] * 2 + ["jax"] * 2 + ["torch"] * 2
    assert t["round_ratios"] == [3.0, 6.0, 3.0]  # a neighbour's load in round 2 is outvoted
    assert t["ratio_jax_over_torch"] == 3.0
    assert t["jax_step_time_s"] == 1.0 and len(t["jax_step_times_s"]) == 6
    assert t["torch_step_time_s"] == statistics.median([3.0] * 4 + [6.0] * 2)


@pytest.mark.slow  # compiles models; `bench all --quick` (test_cli) covers it
def test_torch_twin_has_same_parameter_count(tiny_models):
    for _, cfg in tiny_models:
        jax_n = count_params(init_params(build_model(cfg)))
        torch_n = sum(p.numel() for p in torch_model(cfg).parameters())
        # flan-jax keeps one relative-position table per T5 stack, as HF does in its first layer
        assert jax_n == torch_n, (cfg.family, jax_n, torch_n)


@pytest.mark.slow
def test_compare_rows(tiny_models):
    rows = bench_compare(tiny_models, QUICK)
    assert [r["family"] for r in rows] == ["decoder_only", "encoder_decoder"]
    for r in rows:
        assert r["ratio_jax_over_torch"] == statistics.median(r["round_ratios"])
        assert r["jax_params"] == r["torch_params"]
        assert r["jax_tokens_per_s"] == pytest.approx(
            r["batch"] * 24 / r["jax_step_time_s"])
