"""flan_jax.paths on local paths (tests/test_cloud_storage.py covers a bucket)."""

import os

from flan_jax import paths


def test_urls_stay_urls_and_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(paths.as_path("gs://bucket/run")) == "gs://bucket/run"
    assert str(paths.as_path(paths.as_path("gs://bucket/run") / "x")) == "gs://bucket/run/x"
    assert str(paths.as_path("run")) == str(tmp_path.resolve() / "run")
    assert paths.is_url("gs://b/x") and paths.is_url("s3://b/x")
    assert not paths.is_url("run") and not paths.is_url("/tmp/gs://b")  # only a leading scheme
    assert not (tmp_path / "gs:").exists()


def test_atomic_writes_leave_no_temporary_and_replace(tmp_path):
    target = tmp_path / "sub" / "report.json"
    paths.write_text_atomic(target, "one")
    paths.write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(tmp_path / "sub") == ["report.json"]


def test_appender_move_and_copy(tmp_path):
    log = tmp_path / "metrics.jsonl"
    with paths.TextAppender(log) as f:
        f.write("1\n")
        f.flush()
        f.write("2\n")
    paths.append_text(log, "3\n")
    assert log.read_text() == "1\n2\n3\n"
    paths.move(log, tmp_path / "old" / "1" / "metrics.jsonl")
    assert not log.exists() and (tmp_path / "old" / "1" / "metrics.jsonl").exists()
    paths.copy_file(tmp_path / "old" / "1" / "metrics.jsonl", tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_text() == "1\n2\n3\n"
    assert paths.modified_time(tmp_path / "copy.jsonl") > 0
