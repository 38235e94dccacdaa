"""`bench compile`: lower and compile seconds of fresh train steps, unrolled and scanned."""

import json
import math

import pytest

from flan_jax.bench import cli
from flan_jax.bench.compile import QUICK_LAYERS

POSITIVE = ("lower_s", "compile_s", "total_s", "params", "layers", "batch")


@pytest.mark.slow  # compiles four train steps
def test_quick_compile_run_writes_rows(tmp_path):
    assert cli.main(["compile", "--quick", f"--results_dir={tmp_path}"]) == 0
    (path,) = tmp_path.glob("*.json")
    entry = json.loads(path.read_text())["benchmarks"]["compile"]
    rows = entry["rows"]
    assert entry["quick"]
    assert [(r["layers"], r["scan_layers"]) for r in rows] == [
        (QUICK_LAYERS[0], False), (QUICK_LAYERS[0], True),
        (QUICK_LAYERS[1], False), (QUICK_LAYERS[1], True)]
    for r in rows:
        assert r["model"] == "decoder_tiny" and r["family"] == "decoder_only"
        for key in POSITIVE:
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]) and r[key] > 0, \
                (r["layers"], r["scan_layers"], key, r[key])
        assert abs(r["total_s"] - r["lower_s"] - r["compile_s"]) < 1e-9
    # the same weights either way: scanning only stacks them
    assert rows[0]["params"] == rows[1]["params"] < rows[2]["params"] == rows[3]["params"]
    md = path.with_suffix(".md").read_text()
    assert "## compile" in md and f"| decoder_tiny | {QUICK_LAYERS[1]} | True |" in md
