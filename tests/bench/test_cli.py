"""`flan-jax bench all --quick` end to end: every benchmark writes positive finite numbers to
bench/results-style JSON and a Markdown table naming the machine (no timing thresholds)."""

import json
import math
import sys

import pytest

from flan_jax.bench import cli

# benchmark -> keys every row must carry as positive finite numbers
EXPECTED = {
    "train": ("tokens_per_s", "step_time_s", "mfu", "flops_per_token", "assumed_peak_flops",
              "params", "host_peak_rss_mib"),
    "compare": ("jax_tokens_per_s", "torch_tokens_per_s", "ratio_jax_over_torch",
                "jax_params", "torch_params", "torch_threads"),
    "pipeline": ("tokens_per_s", "nonpad_tokens_per_s", "train_step_tokens_per_s",
                 "ratio_pipeline_over_step"),
    "restart": ("first_step_s_at_2", "first_step_s_at_4", "exit_s_at_2", "exit_s_at_4"),
    "rank": ("shared_options_per_s", "naive_options_per_s", "speedup", "options"),
    "decode": ("greedy_cache_tokens_per_s", "greedy_no_cache_tokens_per_s", "speedup_greedy",
               "beam4_cache_tokens_per_s", "new_tokens"),
    "mesh": ("rank_examples_per_s", "decode_examples_per_s"),
    "compile": ("lower_s", "compile_s", "total_s"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every benchmark once (minutes: its tests are `slow`; each benchmark also has a test file
    of its own)."""
    out = tmp_path_factory.mktemp("bench")
    assert cli.main(["all", "--quick", f"--results_dir={out}"]) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), files[0].with_suffix(".md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_rows_have_positive_finite_numbers(results, what):
    data, _ = results
    entry = data["benchmarks"][what]
    assert entry["quick"] and entry["rows"], what
    for row in entry["rows"]:
        keys = EXPECTED[what]
        if row.get("section") == "restart":  # pipeline: first-batch seconds at two steps
            keys = [k for k in row if "_first_batch_s_at_" in k]
            assert len(keys) == 4, row
        for key in keys:
            value = row[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
                (what, key, value)


@pytest.mark.slow
def test_both_families_measured(results):
    data, _ = results
    for what in ("train", "compare", "rank", "decode", "pipeline"):
        families = {r["family"] for r in data["benchmarks"][what]["rows"]}
        assert families == {"decoder_only", "encoder_decoder"}, (what, families)
    remats = {r["remat"] for r in data["benchmarks"]["train"]["rows"]}
    assert remats == {"none", "full"}


@pytest.mark.slow
def test_markdown_names_the_machine(results):
    data, md = results
    machine = data["machine"]["id"]
    assert machine.startswith(data["machine"]["platform"])
    assert f"`{machine}`" in md.splitlines()[0]
    for what in EXPECTED:
        assert f"## {what}" in md
    assert "| decoder_tiny |" in md and "| t5_tiny |" in md


def test_unknown_gin_file_is_a_readable_error(tmp_path, capsys):
    assert cli.main(["rank", "--quick", "--gin_file=models/decoder_tinyy.gin",
                     f"--results_dir={tmp_path}"]) == 2
    assert "decoder_tiny.gin" in capsys.readouterr().err  # the close match is suggested


@pytest.mark.slow
def test_compare_with_profile_writes_the_costliest_ops(tmp_path):
    assert cli.main(["compare", "--quick", "--profile", "--loss_chunk_sizes=0",
                     "--gin_file=models/decoder_tiny.gin", f"--results_dir={tmp_path}"]) == 0
    (md,) = tmp_path.glob("*.profile.md")
    text = md.read_text()
    assert "## decoder_tiny, 2 x 16+8" in text and "| 1 | `" in text
    rows = [r.split(" | ") for r in text.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert len(rows) >= 3
    ms = [float(r[2]) for r in rows]
    assert ms == sorted(ms, reverse=True)  # costliest first
    assert any("train_step" in r[-1] for r in rows)  # ops of the traced train step


def test_peak_flops_flag_overrides_the_peak(tmp_path, monkeypatch):
    seen = {}

    def fake_runner(models, s, chunks, rounds):
        from flan_jax.accounting import peak_flops_per_device

        seen["peak"] = peak_flops_per_device()
        return []

    monkeypatch.setitem(cli.RUNNERS, "compare", ("tests.bench.test_cli", "FAKE"))
    monkeypatch.setattr(sys.modules[__name__], "FAKE", fake_runner, raising=False)
    assert cli.main(["compare", "--quick", "--peak_flops=3e14", "--gin_file=models/t5_tiny.gin",
                     f"--results_dir={tmp_path}"]) == 0
    assert seen["peak"] == 3e14
