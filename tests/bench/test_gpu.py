"""`bench gpu --quick` in a fresh process where TensorFlow, seqio and t5 cannot be imported and
gin-config is not installed (only bench/wheels/ has it), as on the accelerator images: the GPU
suite's code path runs on a CPU at toy sizes and writes its JSON and table."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from flan_jax.bench.common import REPO_DIR
from flan_jax.bench.results import render_markdown

BLOCKER = textwrap.dedent('''
    import importlib.machinery, sys, sysconfig

    HIDDEN = {"tensorflow", "seqio", "t5", "tensorflow_datasets"}
    SITE = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])

    class HidingPathFinder(importlib.machinery.PathFinder):
        """As if these were not installed (find_spec finds nothing); gin only from outside
        site-packages (the wheel)."""
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                return None
            if name == "gin":
                path = [p for p in sys.path if not p.startswith(SITE)]
            return super().find_spec(name, path, target)

    sys.meta_path[:] = [HidingPathFinder if f is importlib.machinery.PathFinder else f
                        for f in sys.meta_path]
''')


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu")
    (tmp / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{REPO_DIR}", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": ""}
    code = ("import sys, runpy; sys.argv = ['flan-jax', 'bench', 'gpu', '--quick', "
            f"'--results_dir={tmp / 'results'}', '--budget_s=100000']; "  # a loaded CI machine
            "from flan_jax.cli import main; rc = main(); "
            "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'seqio', 't5', 'tensorflow_datasets')); "
            "print('GIN FROM', sys.modules['gin'].__file__); "
            "print('LEAKED', leaked); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list((tmp / "results").glob("*.json"))
    assert len(files) == 1, files
    return proc.stdout, json.loads(files[0].read_text()), \
        files[0].with_suffix(".profile.md").read_text()


@pytest.mark.slow
def test_quick_gpu_suite_runs_without_tensorflow_or_installed_gin(quick_run):
    stdout, data, profile_md = quick_run
    assert "LEAKED []" in stdout
    assert ".whl" in stdout.split("GIN FROM", 1)[1].splitlines()[0]  # gin from bench/wheels
    entry = data["benchmarks"]["gpu"]
    assert entry["quick"]
    rows = entry["rows"]
    assert all(r["status"] == "ok" for r in rows), [(r["section"], r["status"]) for r in rows]
    decoder = [r for r in rows if r["section"] == "decoder_1b"]
    assert {r["remat_policy"] for r in decoder} >= {"none", "full"}
    assert [bool(r.get("loss_chunk_size")) for r in decoder][-1]  # best variant, chunked loss
    assert sum(bool(r.get("best")) for r in decoder) == 1
    best = next(r for r in decoder if r.get("best"))
    assert best["tokens_per_s"] == max(r["tokens_per_s"] for r in decoder)
    assert all(0 < r["mfu_causal_halved"] < r["mfu"]
               and r["tokens_per_step"] == r["batch"] * r["length"] for r in decoder)
    (torch_row,) = [r for r in rows if r["section"] == "torch"]
    assert torch_row["ratio_jax_over_torch"] == pytest.approx(
        torch_row["jax_tokens_per_s_per_device"] / torch_row["tokens_per_s"])
    t5 = {r["model"]: r for r in rows if r["section"] == "t5"}
    assert set(t5) == {"t5_small", "t5_base"}
    for r in t5.values():
        assert r["sequences_per_s"] == pytest.approx(r["batch"] / r["step_time_s"])
        assert r["examples_per_s"] == pytest.approx(2 * r["sequences_per_s"])
    (rank,) = [r for r in rows if r["section"] == "rank"]
    (decode,) = [r for r in rows if r["section"] == "decode"]
    assert rank["shared_options_per_s"] > 0 and decode["greedy_cache_tokens_per_s"] > 0
    # one profiled step of the best decoder variant and of each T5: 15 ops each
    assert profile_md.count("| 15 | `") == 3, profile_md
    assert "## decoder_1b" in profile_md and "## t5_small" in profile_md


def test_gpu_table_says_why_a_row_is_missing():
    machine = {"id": "nvidia-h100-x1", "cpu": "x", "cores": 1, "memory_gib": 1, "jax": "0",
               "platform": "gpu", "device_kind": "NVIDIA H100", "load_average_at_start": [0]}
    rows = [{"section": "decoder_1b", "remat_policy": "none", "attention_impl": "xla",
             "scan_layers": False, "batch": 4, "length": 2048,
             "status": "out of memory"},
            {"section": "t5", "model": "t5_base", "batch": 64,
             "lengths": {"inputs": 512, "targets": 128}, "examples_per_row": 4,
             "remat_policy": "full", "status": "skipped (time budget)"}]
    md = render_markdown({"machine": machine, "benchmarks": {"gpu": {
        "command": "c", "quick": False, "date": "d", "rows": rows}}})
    assert "| none (out of memory) | xla | False | none | 4 x 2048 |" in md
    assert "| t5_base (skipped (time budget)) | full | 64 x 512+128 | 4 | n/a |" in md
