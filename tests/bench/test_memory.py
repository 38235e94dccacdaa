"""`bench memory`: the saved-for-backward audit from the jaxpr (nothing allocated), and the
budgets of issue 24 for the 1.1B decoder and T5-small under hardware/gpu.gin."""

import dataclasses
import json

import gin
import jax
import jax.numpy as jnp
import pytest

from flan_jax.bench import cli, memory
from flan_jax.bench.common import model_configs
from flan_jax.config import parse_gin
from flan_jax.errors import UserError
from flan_jax.models import TransformerConfig

GIB = 2 ** 30


def _config(*files):
    parse_gin(list(files), finalize=False)
    with gin.unlock_config():
        return TransformerConfig()


@pytest.fixture(scope="module")
def gpu_policy():
    cfg = _config("models/decoder_1b.gin", "hardware/gpu.gin")
    return cfg.remat_policy, cfg.attention_impl


def test_decoder_1b_at_4x2048(gpu_policy):
    """bf16, scanned: remat none <= 30 GiB (70.6 before), gpu.gin's policy <= 12 GiB; nothing
    quadratic is saved and no scatter runs inside the layer scan."""
    cfg = _config("models/decoder_1b.gin")
    assert cfg.dtype == "bfloat16"
    batch, lengths = memory.parse_shape("4x2048", cfg.family)
    none = memory.audit_config(dataclasses.replace(cfg, remat_policy="none"), batch, lengths)
    remat, impl = gpu_policy
    gpu = memory.audit_config(dataclasses.replace(cfg, remat_policy=remat, attention_impl=impl),
                              batch, lengths)
    assert 5 < none["saved_gib"] <= 30, none["largest"]
    assert 1 < gpu["saved_gib"] <= 12, gpu["largest"]
    assert gpu["saved_gib"] < none["saved_gib"]
    for row in (none, gpu):
        assert row["quadratic"] == [] and row["scatters_in_scan"] == [], row
        assert 1.0e9 < row["params"] < 1.2e9


def test_t5_small_packed_at_128x512_128(gpu_policy):
    cfg = _config("models/t5_small.gin", "hardware/gpu.gin")
    assert (cfg.remat_policy, cfg.attention_impl) == gpu_policy
    batch, lengths = memory.parse_shape("128x512+128", cfg.family)
    row = memory.audit_config(cfg, batch, lengths, examples_per_row=4)
    assert 1 < row["saved_gib"] <= 8, row["largest"]
    assert row["quadratic"] == [] and row["scatters_in_scan"] == []


def test_the_detectors_find_what_they_look_for():
    """The einsum path without remat saves the attention probabilities; a gather inside a scan
    becomes a scatter-add in its backward pass."""
    cfg = dataclasses.replace(model_configs(["models/t5_tiny.gin"])[0], vocab_size=259)
    lengths = {"inputs": 40, "targets": 24}
    ref = memory.audit_config(dataclasses.replace(cfg, remat_policy="none",
                                                  attention_impl="einsum"), 2, lengths, 2)
    lean = memory.audit_config(dataclasses.replace(cfg, remat_policy="none",
                                                   attention_impl="xla"), 2, lengths, 2)
    assert ref["quadratic"] and not lean["quadratic"]
    assert ref["saved_bytes"] > lean["saved_bytes"]
    # [layers, probe batch 3, kv heads, groups, q, k] probabilities of the encoder (40 tokens)
    assert ref["probe_shape"] == "3 x 40+24"
    assert any("[2, 3, 4, 1, 40, 40]" in q for q in ref["quadratic"]), ref["quadratic"]

    def scanned_take(table, idx):
        def body(c, i):
            return c + jnp.take(table, idx + i, axis=0).sum(), None
        return jax.lax.scan(body, 0.0, jnp.arange(3))[0]

    jaxpr = jax.make_jaxpr(jax.grad(scanned_take))(jnp.ones((8, 4)), jnp.arange(5))
    found = memory.scatters_in_scan_bodies(jaxpr.jaxpr)
    assert found and found[0].startswith("scatter")


def test_probe_shapes_avoid_model_dimensions():
    cfg = _config("models/decoder_1b.gin")
    batch, lengths = memory.probe_shapes(4, {"inputs": 2048, "targets": 0}, cfg)
    assert lengths["inputs"] not in (2048, 8192, 64, 32, 8) and batch not in (4, 8, 32)


def test_bad_shapes_say_how_to_write_them():
    with pytest.raises(UserError, match="BATCHxLENGTH"):
        memory.parse_shape("4 by 2048", "decoder_only")
    with pytest.raises(UserError, match="INPUTS\\+TARGETS"):
        memory.parse_shape("4x2048", "encoder_decoder")


@pytest.mark.slow  # 12 configurations x 3 traces: ~40 s on a busy 2-core machine
def test_cli_writes_rows_for_every_policy_and_path(tmp_path, capsys):
    assert cli.main(["memory", "--quick", "--gin_file=models/decoder_tiny.gin",
                     "--loss_chunk_sizes=0", f"--results_dir={tmp_path}"]) == 0
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    rows = data["benchmarks"]["memory"]["rows"]
    from flan_jax.models.config import REMAT_POLICIES

    assert {(r["remat_policy"], r["attention_impl"]) for r in rows} == {
        (p, i) for p in REMAT_POLICIES for i in memory.AUDITED_IMPLS}
    by = {(r["remat_policy"], r["attention_impl"]): r for r in rows}
    assert by[("full", "xla")]["saved_bytes"] < by[("none", "xla")]["saved_bytes"] < \
        by[("none", "einsum")]["saved_bytes"]
    assert "| decoder_tiny | 2 x 48 | none | none | einsum |" in capsys.readouterr().out
