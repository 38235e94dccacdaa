"""Results files: benchmarks merge per machine, tables render, nothing half-written is left."""

import json

from flan_jax.bench.results import render_markdown, write_results

MACHINE = {"id": "cpu-test", "cpu": "x", "cores": 1, "memory_gib": 1, "jax": "0",
           "platform": "cpu", "device_kind": "cpu", "load_average_at_start": [0, 0, 0]}
RANK_ROW = {"model": "m", "family": "decoder_only", "options": 2, "input_tokens": 8,
            "shared_options_per_s": 2.0, "naive_options_per_s": 1.0, "speedup": 2.0}


def test_results_merge_per_benchmark(tmp_path):
    entry = {"command": "c", "quick": True, "date": "d", "rows": [RANK_ROW]}
    write_results(tmp_path, MACHINE, {"rank": entry})
    write_results(tmp_path, MACHINE, {"decode": {**entry, "rows": []}})
    data = json.loads((tmp_path / "cpu-test.json").read_text())
    assert set(data["benchmarks"]) == {"rank", "decode"}
    assert data["benchmarks"]["rank"]["rows"] == [RANK_ROW]
    assert "| m | 2 | 8 | 2 | 1 | 2.0x |" in (tmp_path / "cpu-test.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu-test.json", "cpu-test.md"]


def test_tables_follow_benchmark_order_and_skip_unknown():
    entry = {"command": "c", "quick": False, "date": "d", "rows": [RANK_ROW]}
    md = render_markdown({"machine": MACHINE, "benchmarks": {
        "someday": entry, "rank": entry, "decode": {**entry, "rows": []}}})
    assert md.index("## rank") < md.index("## decode")
    assert "## someday" not in md
