"""flan-jax data prepare (flan_jax/data/cli.py), offline: downloads always fail here."""

import os

import pytest

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def offline_tfds(monkeypatch, tmp_path):
    """download_and_prepare always fails (as it does without network); records who called."""
    from flan_jax.data import cli as data_cli

    calls = []

    def unreachable(self, *args, **kwargs):
        calls.append(self.data_dir)
        raise ConnectionError(f"could not reach the download server for {self.name}")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", unreachable)
    # A dataset counts as prepared when our sentinel sits in its variant dir.
    monkeypatch.setattr(data_cli, "_is_prepared",
                        lambda b: os.path.exists(os.path.join(b.data_dir, "SENTINEL")))
    return tmp_path / "data", calls


def test_data_prepare_reports_failures_and_keeps_prepared(offline_tfds, capsys):
    from flan_jax.data import cli as data_cli

    data_dir, calls = offline_tfds
    sentinel = data_dir / "super_glue" / "rte" / "1.0.2" / "SENTINEL"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("prepared earlier")

    rc = data_cli.main(["prepare", "nli", "--data_dir", str(data_dir),
                        "--datasets", "rte,cb,snli,glue/mnli"])
    out = capsys.readouterr().out
    assert rc == 1
    rows = {line.split()[0]: line for line in out.splitlines() if ":" in line.split(" ")[0]}
    assert "ready" in rows["super_glue/rte:1.0.2"]
    for name in ("super_glue/cb:1.0.2", "snli:1.1.0", "glue/mnli:2.0.0"):
        assert "failed" in rows[name] and "could not reach" in rows[name], out
    assert "mnli_matched,mnli_mismatched" in rows["glue/mnli:2.0.0"]  # prepared once
    assert len(calls) == 3 and not any("rte" in c for c in calls)
    assert sentinel.read_text() == "prepared earlier"
    assert "1 ready, 0 needs manual download, 3 failed" in out


def test_data_prepare_manual_download_and_bad_subset(offline_tfds, capsys):
    from flan_jax.data import cli as data_cli

    data_dir, calls = offline_tfds
    rc = data_cli.main(["prepare", "flan2021_commonsense_eval", "--data_dir", str(data_dir),
                        "--datasets", "story_cloze"])
    out = capsys.readouterr().out
    assert rc == 0 and not calls
    assert "needs manual download" in out and "cloze_test_val__spring2016.csv" in out
    rc = data_cli.main(["prepare", "nli", "--datasets", "not_a_dataset"])
    assert rc == 2
    assert "not_a_dataset" in capsys.readouterr().err


def test_cache_command_builds_then_reports_a_finished_cache(tmp_path, capsys):
    from flan_jax.data import cli as data_cli

    args = ["cache", "synthetic_clusters1_train", "--out", str(tmp_path / "c"),
            "--feature_lengths", "inputs=64,targets=16", "--max_examples_per_task", "5"]
    assert data_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "2 task(s), 10 examples" in out and "DataConfig.source" in out
    meta = (tmp_path / "c" / "cache.json").read_text()
    assert "--max_examples_per_task 5" in meta  # the command that rebuilds it
    assert data_cli.main(args) == 0  # finished: checked, not rewritten
    assert data_cli.main(["cache", "synthetic_clusters1_train", "--out", str(tmp_path / "d"),
                          "--feature_lengths", "inputs=64"]) == 2
    assert "needs a targets length" in capsys.readouterr().err
    assert data_cli.main(["cache", "synthetc_clusters1_train", "--out", str(tmp_path / "e")]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # nothing written for a bad name
