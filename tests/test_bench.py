"""`flan-jax bench ... --quick` end to end: every benchmark writes positive finite numbers to
bench/results-style JSON and a Markdown table naming the machine (no timing thresholds)."""

import json
import math

import pytest

from flan_jax import bench

# benchmark -> keys every row must carry as positive finite numbers
EXPECTED = {
    "train": ("tokens_per_s", "step_time_s", "mfu", "flops_per_token", "assumed_peak_flops",
              "params", "host_peak_rss_mib"),
    "compare": ("jax_tokens_per_s", "torch_tokens_per_s", "ratio_jax_over_torch",
                "jax_params", "torch_params", "torch_threads"),
    "pipeline": ("tokens_per_s", "nonpad_tokens_per_s", "train_step_tokens_per_s",
                 "ratio_pipeline_over_step"),
    "rank": ("shared_options_per_s", "naive_options_per_s", "speedup", "options"),
    "decode": ("greedy_cache_tokens_per_s", "greedy_no_cache_tokens_per_s", "speedup_greedy",
               "beam4_cache_tokens_per_s", "new_tokens"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert bench.main(["all", "--quick", f"--results_dir={out}"]) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), files[0].with_suffix(".md").read_text()


@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_rows_have_positive_finite_numbers(results, what):
    data, _ = results
    entry = data["benchmarks"][what]
    assert entry["quick"] and entry["rows"], what
    for row in entry["rows"]:
        for key in EXPECTED[what]:
            value = row[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
                (what, key, value)


def test_both_families_measured(results):
    data, _ = results
    for what in ("train", "compare", "rank", "decode", "pipeline"):
        families = {r["family"] for r in data["benchmarks"][what]["rows"]}
        assert families == {"decoder_only", "encoder_decoder"}, (what, families)
    remats = {r["remat"] for r in data["benchmarks"]["train"]["rows"]}
    assert remats == {"none", "full"}


def test_markdown_names_the_machine(results):
    data, md = results
    machine = data["machine"]["id"]
    assert machine.startswith(data["machine"]["platform"])
    assert f"`{machine}`" in md.splitlines()[0]
    for what in EXPECTED:
        assert f"## {what}" in md
    assert "| decoder_tiny |" in md and "| t5_tiny |" in md


def test_results_merge_per_benchmark(tmp_path):
    machine = {"id": "cpu-test", "cpu": "x", "cores": 1, "memory_gib": 1, "jax": "0",
               "platform": "cpu", "device_kind": "cpu", "load_average_at_start": [0, 0, 0]}
    row = {"model": "m", "family": "decoder_only", "options": 2, "input_tokens": 8,
           "shared_options_per_s": 2.0, "naive_options_per_s": 1.0, "speedup": 2.0}
    entry = {"command": "c", "quick": True, "date": "d", "rows": [row]}
    bench.write_results(tmp_path, machine, {"rank": entry})
    bench.write_results(tmp_path, machine, {"decode": {**entry, "rows": []}})
    data = json.loads((tmp_path / "cpu-test.json").read_text())
    assert set(data["benchmarks"]) == {"rank", "decode"}
    assert "| m | 2 | 8 |" in (tmp_path / "cpu-test.md").read_text()
