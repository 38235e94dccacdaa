"""`bench gpu`'s orchestration without a device: budget shares, a section that fails or runs
out of time keeps its rows and the rest go on, the child environment, the section names."""

import json
import os
import stat
import sys
import textwrap

import pytest

from flan_jax.bench import gpu_run
from flan_jax.config import GinConfigError

MACHINE = {"id": "nvidia-h100-pcie-x1", "cpu": "x", "cores": 16, "memory_gib": 1.0,
           "jax": "0", "platform": "gpu", "device_kind": "NVIDIA H100 PCIe",
           "load_average_at_start": [0.0]}


def _decoder_row(tokens_per_s, best=False):
    return {"section": "decoder_1b", "remat_policy": "full", "attention_impl": "xla",
            "scan_layers": True, "loss_chunk_size": 0, "batch": 4, "length": 2048,
            "status": "ok", "step_time_s": 0.3, "tokens_per_s": tokens_per_s, "mfu": 0.2,
            "mfu_causal_halved": 0.19, "xla_step_memory_mib": 1.0, "devices": 2,
            "assumed_peak_flops": 2 * 756e12, **({"best": True} if best else {})}


def test_sections_share_the_budget_and_a_failure_does_not_stop_the_rest(tmp_path):
    calls = []

    def fake(section, out, seconds, quick, bindings):
        calls.append((section, seconds, bindings))
        if section == "probe":
            return {"machine": MACHINE, "rows": [], "profiles": [], "status": "ok"}
        if section == "decoder_1b":
            return {"machine": MACHINE, "rows": [_decoder_row(9e3), _decoder_row(1e4, True)],
                    "profiles": [["decoder_1b best", {"ops": [], "steps": 1,
                                                      "op_ms_per_step": 2.0}]],
                    "status": "ok"}
        if section == "torch":
            return {"machine": {}, "status": "ok", "profiles": [], "rows": [
                {"section": "torch", "status": "ok", "tokens_per_s": 2500.0,
                 "step_time_s": 1.0}]}
        return {"machine": MACHINE, "rows": [], "profiles": [],
                "status": "killed after 60 s (its share of the time budget)"}

    path = gpu_run.run(False, ["x = 1"], 400.0, tmp_path, "flan-jax bench gpu",
                       ("decoder_1b", "torch", "t5_small"), runner=fake)
    assert [c[0] for c in calls] == ["probe", "decoder_1b", "torch", "t5_small"]
    # each share is taken from what is left, in proportion to the sections still to run
    assert calls[0][1] == gpu_run.PROBE_S
    assert calls[1][1] == pytest.approx(400 * 0.40 / (0.40 + 0.15 + 0.15), rel=1e-3)
    # time a section did not use goes to the next ones (the fakes return at once)
    assert calls[2][1] == pytest.approx(400 * 0.15 / (0.15 + 0.15), rel=1e-3)
    assert calls[3][1] == pytest.approx(400.0, rel=1e-3)
    assert all(c[2] == ["x = 1"] for c in calls)
    data = json.loads(path.read_text())
    assert path.name == "nvidia-h100-pcie-x1.json"
    rows = data["benchmarks"]["gpu"]["rows"]
    (torch_row,) = [r for r in rows if r["section"] == "torch"]
    assert torch_row["jax_tokens_per_s_per_device"] == 5e3  # best of 2 devices, per device
    assert torch_row["ratio_jax_over_torch"] == 2.0
    assert rows[-1] == {"section": "t5_small",
                        "status": "killed after 60 s (its share of the time budget)"}
    md = path.with_suffix(".md").read_text()
    assert "| t5_small (killed after 60 s (its share of the time budget)) |" in md
    assert "756 TFLOP/s" in md and "causal/2" in md
    assert "## decoder_1b best" in path.with_suffix(".profile.md").read_text()


def test_a_budget_too_small_skips_sections(tmp_path, monkeypatch):
    """Each fake section uses its whole share on a fake clock."""
    clock, ran = {"now": 0.0}, []
    monkeypatch.setattr(gpu_run.time, "perf_counter", lambda: clock["now"])

    def fake(section, out, seconds, quick, bindings):
        ran.append((section, round(seconds, 3)))
        clock["now"] += seconds if section != "probe" else 2.0
        return {"machine": MACHINE, "rows": [], "profiles": [], "status": "ok"}

    assert gpu_run.run(False, [], 15.0, tmp_path, "c", ("decoder_1b",), runner=fake) is None
    assert ran == []  # not even the probe fits: nothing written
    path = gpu_run.run(False, [], 52.0, tmp_path, "c", ("decoder_1b", "inference"), runner=fake)
    assert ran == [("probe", 52.0), ("decoder_1b", 40.0)]  # 50 x 0.4 / 0.5; 10 s left is too little
    rows = json.loads(path.read_text())["benchmarks"]["gpu"]["rows"]
    assert rows == [{"section": "inference", "status": "skipped (time budget)"}]


def test_child_killed_at_its_share_keeps_the_rows_it_wrote(tmp_path):
    """run_child with a stand-in for python: it writes one row, then hangs."""
    fake = tmp_path / "fake-python"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys, time, os
        out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--out=")][0]
        json.dump({{"machine": {{"mem": os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"]}},
                   "rows": [{{"section": "t5_small", "status": "ok"}}], "profiles": []}},
                  open(out, "w"))
        sys.stdout.flush()
        if "--quick" in sys.argv:
            sys.exit(3)
        time.sleep(60)
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = os.environ.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    try:
        r = gpu_run.run_child("t5_small", tmp_path / "a.json", 2.0, False, [], str(fake))
        assert r["status"] == "killed after 2 s (its share of the time budget)"
        assert r["rows"] == [{"section": "t5_small", "status": "ok"}]
        assert r["machine"] == {"mem": "0.9"}  # set for the child before it imports JAX
        r = gpu_run.run_child("t5_small", tmp_path / "b.json", 30.0, True, [], str(fake))
        assert r["status"].startswith("failed (exit 3)") and len(r["rows"]) == 1
    finally:
        if env is not None:
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = env
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = "0.5"
    try:
        assert gpu_run.child_env()["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"
    finally:
        del os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"]
        if env is not None:
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = env


def test_section_names():
    assert gpu_run.parse_sections("t5, torch") == ("torch", "t5_small", "t5_base")
    with pytest.raises(GinConfigError, match="t6 unknown"):
        gpu_run.parse_sections("decoder_1b,t6")


def test_decoder_variants_start_from_the_hardware_file(monkeypatch):
    import dataclasses

    from flan_jax.bench import gpu
    from flan_jax.models import config as model_config

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        remat_policy: str = "minimal"
        attention_impl: str = "cudnn"
        scan_layers: bool = False

    monkeypatch.setattr(model_config, "REMAT_POLICIES",
                        ("none", "full", "dots", "minimal"), raising=False)
    monkeypatch.setattr(model_config, "ATTENTION_IMPLS", ("einsum", "xla", "cudnn", "splash"),
                        raising=False)
    base = {"remat_policy": "minimal", "attention_impl": "cudnn", "scan_layers": True}
    assert gpu.decoder_variants(Cfg(), "gpu", quick=False) == [
        base, {**base, "remat_policy": "full"}, {**base, "remat_policy": "none"},
        {**base, "remat_policy": "dots"}, {**base, "attention_impl": "einsum"},
        {**base, "attention_impl": "xla"}]
    # cuDNN is a GPU path: elsewhere the hardware file's choice falls back to xla
    assert gpu.decoder_variants(Cfg(), "cpu", quick=True) == [
        {**base, "attention_impl": "xla"}, {**base, "attention_impl": "xla",
                                            "remat_policy": "full"},
        {**base, "attention_impl": "xla", "remat_policy": "none"}]
