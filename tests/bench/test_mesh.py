"""`bench mesh`: rank classification and greedy decoding on each mesh vs one device."""

import json
import math

import pytest

from flan_jax.bench import cli
from flan_jax.bench.mesh import NOTE, mesh_layouts
from flan_jax.bench.results import render_markdown

POSITIVE = ("rank_examples_per_s", "decode_examples_per_s", "rank_vs_one_device",
            "decode_vs_one_device", "devices", "param_mib", "param_mib_per_device", "inputs",
            "new_tokens")


def test_mesh_layouts_follow_the_device_count():
    assert list(mesh_layouts(1)) == ["one_device"]
    assert mesh_layouts(4)["data"] == {"data": 4, "fsdp": 1, "tensor": 1}
    assert mesh_layouts(8)["fsdp4_tensor2"] == {"data": 1, "fsdp": 4, "tensor": 2}
    assert "fsdp4_tensor2" not in mesh_layouts(4)


@pytest.mark.slow  # compiles rank and decode functions on three meshes
def test_quick_mesh_run_writes_rows(tmp_path):
    # one family keeps the test short; `bench all --quick` (test_cli) measures both
    assert cli.main(["mesh", "--quick", "--gin_file=models/decoder_tiny.gin",
                     f"--results_dir={tmp_path}"]) == 0
    (path,) = tmp_path.glob("*.json")
    entry = json.loads(path.read_text())["benchmarks"]["mesh"]
    rows = entry["rows"]
    assert entry["quick"] and [r["layout"] for r in rows] == [
        "one_device", "data", "fsdp4_tensor2"]  # the tests run on 8 simulated devices
    for r in rows:
        assert r["family"] == "decoder_only" and r["note"] == NOTE
        for key in POSITIVE:
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]) and r[key] > 0, \
                (r["layout"], key, r[key])
        assert 0 <= r["rank_agreement"] <= 1 and 0 <= r["decode_agreement"] <= 1
    assert rows[0]["rank_vs_one_device"] == rows[0]["decode_vs_one_device"] == 1
    assert rows[1]["devices"] == rows[2]["devices"] == 8
    # fsdp x tensor splits the parameters, data parallelism replicates them
    assert rows[2]["param_mib_per_device"] < rows[1]["param_mib_per_device"] == rows[1]["param_mib"]
    md = path.with_suffix(".md").read_text()
    assert "## mesh" in md and "| decoder_tiny | fsdp 4, tensor 2 |" in md
    assert "not a speed-up" in md


def test_mesh_table_renders():
    row = {"model": "m", "mesh": {"data": 8, "fsdp": 1, "tensor": 1}, "inputs": 8, "options": 2,
           "param_mib_per_device": 1.0, "rank_examples_per_s": 10.0, "rank_vs_one_device": 0.5,
           "decode_examples_per_s": 5.0, "new_tokens": 4, "decode_vs_one_device": 0.25,
           "rank_agreement": 1.0, "decode_agreement": 0.5, "platform": "cpu"}
    machine = {"id": "cpu-test", "cpu": "x", "cores": 1, "memory_gib": 1, "jax": "0",
               "platform": "cpu", "device_kind": "cpu", "load_average_at_start": [0, 0, 0]}
    md = render_markdown({"machine": machine, "benchmarks": {"mesh": {
        "command": "c", "quick": False, "date": "d", "rows": [row]}}})
    assert "| m | data 8 | 8 x 2 | 1.00 | 10.0 | 0.50x | 5.0 (4) | 0.25x | 100% / 50% |" in md
    assert "sharing the same cores" in md
