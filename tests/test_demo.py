"""`flan-jax demo --gin_file=runs/miniworld_demo.gin` on a tiny setting: both stages, the
ablation, the held-out summary."""

import json

import pytest

TINY_DEMO = [
    "TransformerConfig.emb_dim = 32", "TransformerConfig.num_heads = 2",
    "TransformerConfig.head_dim = 16", "TransformerConfig.mlp_dim = 64",
    "TRAIN_STEPS = 2", "BATCH_SIZE = 8", "train.checkpoint_every = 1", "train.log_every = 1",
    "learning_rate_schedule.warmup_steps = 0", "train.truncation_sample = 0",
    "demo_settings.eval_examples = 3",
]


def _demo(out, capsys):
    from flan_jax import demo

    bindings = TINY_DEMO + [f"demo_settings.output_dir = '{out}'"]
    code = demo.main(["--gin_file=runs/miniworld_demo.gin"] + [
        f"--gin.{b.replace(' = ', '=', 1)}" for b in bindings])
    return code, capsys.readouterr().out


def test_tiny_demo_writes_the_summary_then_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    code, printed = _demo(out, capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"heldout_cluster", "chance", "untuned", "tuned", "no_template",
            "shortcut_baselines", "seeds"} <= set(summary)
    assert summary["heldout_cluster"] == "nli"
    assert summary["chance"] == pytest.approx(100 / 3)
    for key in ("untuned", "tuned", "no_template"):
        steps = summary["per_checkpoint"][key]
        assert list(steps) == ["1", "2"]  # the last two checkpoints, averaged
        assert summary[key] == pytest.approx(sum(steps.values()) / 2)
        assert 0.0 <= summary[key] <= 100.0
    # 3 held-out items, one of each label: the majority rule scores a third
    assert summary["shortcut_baselines"]["majority"] == pytest.approx(100 / 3)
    assert set(summary["clusters"]) == {"color_qa", "find", "verify", "count", "same_color",
                                        "nli"}
    assert (out / "tuned" / "eval" / "clusters.png").stat().st_size > 1000
    assert "shortcut majority" in printed and "no_template" in printed
    # the base's parameters were exported for stage 1 (INIT_CHECKPOINT)
    assert (out / "base" / "params").is_dir()

    # Re-running trains and evaluates nothing held out again and gives the same summary.
    import flan_jax.train

    def refuse(*args, **kwargs):
        raise AssertionError("a finished training was redone")

    monkeypatch.setattr(flan_jax.train, "train", refuse)
    assert _demo(out, capsys)[0] == 0
    again = json.loads((out / "summary.json").read_text())
    assert {k: again[k] for k in ("untuned", "tuned", "no_template")} == {
        k: summary[k] for k in ("untuned", "tuned", "no_template")}
