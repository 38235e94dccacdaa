"""Bad input and faults end in one line and a documented exit code, with nothing lost: infer's
output that is its input, non-UTF-8 and empty inputs, a finished data cache asked for other
lengths, impossible TASK_FEATURE_LENGTHS / BATCH_SIZE / evaluate sizes, a model directory that
does not exist, an unreachable bucket, SIGTERM while starting, and simulated CPU devices.
(Issue 29; damaged checkpoints, resumes and caches of other mixtures: tests/test_faults.py.)"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from flan_jax import cli, errors, infer, paths
from flan_jax.data import cli as data_cli
from tests.fixtures import REPO, TINY
from tests.fixtures import snapshot as _snapshot
from tests.fixtures import train_main as _main

RECORD = json.dumps({"inputs": "Is the sky blue?"})


def _infer(capsys, src, out, *extra):
    capsys.readouterr()
    code = infer.main(["--mode", "predict", "--checkpoint", "/nonexistent", "--input_file",
                       str(src), "--output_file", str(out), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_infer_refuses_an_output_that_is_its_input(tmp_path, capsys, how):
    src = tmp_path / "x.jsonl"
    src.write_text(RECORD + "\n")
    out = {"same": lambda: src, "symlink": lambda: tmp_path / "link.jsonl",
           "hardlink": lambda: tmp_path / "hard.jsonl"}[how]()
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    before = _snapshot(tmp_path)
    code, err = _infer(capsys, src, out, "--overwrite")
    assert (code, err) == (2, f"flan-jax infer: --output_file {out} is the input file {src}: "
                              "writing it would destroy the input. Choose another "
                              "--output_file.\n")
    assert _snapshot(tmp_path) == before


def test_infer_names_a_non_utf8_line_and_an_empty_input_writes_nothing(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(RECORD.encode() + b"\n" + b'{"inputs": "caf\xe9"}\n')
    code, err = _infer(capsys, src, tmp_path / "out.jsonl")
    assert (code, err) == (2, f"flan-jax infer: {src}:2: not UTF-8 text (byte 0xe9 at column "
                              "16). Fix the line or pass --skip_bad_lines.\n")
    src.write_text("\n  \n")
    code, err = _infer(capsys, src, tmp_path / "out.jsonl")
    assert (code, err) == (2, f"flan-jax infer: {src} has no records: nothing to do; "
                              f"{tmp_path / 'out.jsonl'} was not written.\n")
    src.write_bytes(b"\xff\n")
    code, err = _infer(capsys, src, tmp_path / "out.jsonl", "--skip_bad_lines")
    assert (code, err) == (2, f"flan-jax infer: {src} has no records (1 bad lines skipped): "
                              f"nothing to do; {tmp_path / 'out.jsonl'} was not written.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_data_cache_refuses_zero_lengths_and_other_lengths_for_a_finished_cache(tmp_path,
                                                                               capsys):
    out = tmp_path / "cache"
    common = ["cache", "synthetic_clusters1_train", "--out", str(out),
              "--max_examples_per_task", "4"]
    assert data_cli.main(common + ["--feature_lengths", "inputs=0,targets=0"]) == 2
    assert capsys.readouterr().err == (
        "flan-jax data cache: --feature_lengths 'inputs=0,targets=0': inputs is 0; every "
        "length must be at least 1 (e.g. inputs=1024,targets=256).\n")
    assert not out.exists()
    assert data_cli.main(common + ["--feature_lengths", "inputs=64,targets=16"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert data_cli.main(common + ["--feature_lengths", "inputs=32,targets=16"]) == 2
    assert capsys.readouterr().err == (
        f"flan-jax data cache: {out} holds a finished cache built with other settings "
        "(feature_lengths {'inputs': 64, 'targets': 16} there, {'inputs': 32, 'targets': 16} "
        "asked now): build this one with another --out, or train from that cache with its "
        "settings.\n")
    assert _snapshot(out) == before


@pytest.mark.parametrize("binding,message", [
    ("TASK_FEATURE_LENGTHS = {'inputs': 0, 'targets': 16}", "TASK_FEATURE_LENGTHS={'inputs': "
     "0, 'targets': 16}: 'inputs' is 0. Give each of 'inputs', 'targets' a length of at least "
     "1, e.g. {'inputs': 512, 'targets': 128}."),
    ("TASK_FEATURE_LENGTHS = {'inputs': 64}", "TASK_FEATURE_LENGTHS={'inputs': 64}: missing "
     "'targets'. Give each of 'inputs', 'targets' a length of at least 1, e.g. {'inputs': 512, "
     "'targets': 128}."),
    ("TASK_FEATURE_LENGTHS = {'inputs': -4, 'targets': -1}", "TASK_FEATURE_LENGTHS={'inputs': "
     "-4, 'targets': -1}: 'inputs' is -4, 'targets' is -1. Give each of 'inputs', 'targets' a "
     "length of at least 1, e.g. {'inputs': 512, 'targets': 128}."),
    ("BATCH_SIZE = 0", "BATCH_SIZE=0: it must be a whole number of at least 1."),
    ("BATCH_SIZE = -8", "BATCH_SIZE=-8: it must be a whole number of at least 1."),
])
def test_impossible_lengths_and_batch_sizes_stop_before_model_dir_is_written(
        tmp_path, capsys, binding, message):
    code, out, err = _main(capsys, tmp_path / "run", binding)
    assert (code, out, err) == (2, "", f"flan-jax train: {message}\n")
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.gin").write_text("# an earlier run's\n")
    before = _snapshot(tmp_path / "run")
    assert _main(capsys, tmp_path / "run", binding)[0] == 2
    assert _snapshot(tmp_path / "run") == before


def _eval(capsys, *bindings):
    from flan_jax import evaluate

    capsys.readouterr()
    code = evaluate.main(["--gin.EVAL_MIXTURES=['synthetic_fact_nli_t0_rank']", *bindings])
    return code, capsys.readouterr().err


def test_eval_refuses_zero_sizes_and_a_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    code, err = _eval(capsys, f"--gin.CHECKPOINT_PATH='{missing}'",
                      "--gin.evaluate.max_input_length=0")
    assert (code, err) == (2, "flan-jax eval: evaluate.max_input_length=0: it must be a whole "
                              "number of at least 1.\n")
    code, err = _eval(capsys, f"--gin.CHECKPOINT_PATH='{missing}'")
    assert (code, err) == (2, f"flan-jax eval: the model directory {missing} does not exist: "
                              "pass a `flan-jax train` MODEL_DIR or a `flan-jax convert hf` "
                              "--dst.\n")
    assert not missing.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_an_unreachable_bucket_fails_within_seconds_in_one_line(tmp_path, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(paths, "_reachable", {})
    from flan_jax import run_checks

    expected = (f"cannot reach the storage service for gs://no-such-bucket (127.0.0.1:{port}: "
                "ConnectionRefusedError: [Errno 111] Connection refused). Check "
                "STORAGE_EMULATOR_HOST and rerun.")
    with pytest.raises(errors.UserError) as e:
        run_checks.check_model_dir("gs://no-such-bucket/run")
    assert str(e.value) == expected
    # the command line as a user runs it: no retries, no traceback, exit 2, well within 15 s
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "flan_jax.cli", "convert", "to-hf", "--src",
         "gs://no-such-bucket/model", "--dst", str(tmp_path / "hf")], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=60)
    assert time.time() - start < 15
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", f"flan-jax convert: {expected}\n")
    assert not (tmp_path / "hf").exists()


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask of /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(line for line in f if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def test_sigterm_while_starting_exits_143_in_one_line_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "flan_jax.cli", "train", "--gin_file=runs/demo.gin",
            f"--gin.MODEL_DIR='{run}'"] + [f"--gin.{b.replace(' = ', '=', 1)}" for b in TINY]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not _catches_sigterm(proc.pid):  # the handler is set first, before any import
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.5)  # now importing TensorFlow and JAX, with fd 2 redirected for TensorFlow
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == errors.EXIT_PREEMPTED == 143, (out, err)
    assert err.splitlines()[-1] == f"flan-jax train: {errors.PREEMPTED_MESSAGE}", (out, err)
    assert not run.exists() or not list(run.iterdir())


def test_demo_and_experiment_get_eight_simulated_cpu_devices(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    cli.default_simulated_devices("demo")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    cli.default_simulated_devices("experiment")  # the user's count stays
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    cli.default_simulated_devices("infer")  # other commands use the devices there are
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"
    code = ("import os; from flan_jax import cli; cli.default_simulated_devices('demo'); "
            "import jax; print(jax.device_count())")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(REPO),
                                          "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert proc.stdout.strip() == "8", proc.stderr


def test_a_mesh_larger_than_the_cpu_names_the_simulated_devices_flag():
    from flan_jax import partitioning

    with pytest.raises(partitioning.MeshError) as e:
        partitioning.resolve_mesh_shape({"data": 16}, 8)
    assert str(e.value) == (
        "mesh_axes.axes={'data': 16} needs 16 devices but 8 are available; set one axis to "
        "-1. On a CPU, simulate 16 devices by starting with "
        "XLA_FLAGS=--xla_force_host_platform_device_count=16.")


def test_tasks_show_says_which_filter_dropped_every_mock_example(capsys):
    from flan_jax import tasks_cli

    code = tasks_cli.main(["show", "flan2021_true_case_train", "--mock", "-n", "2"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err.splitlines()[-1] == (
        "flan-jax tasks: no example of flan2021_true_case_train [train] survived its filters "
        "(true_case: 8 records read, its filter _has_case dropped 8). Mock records are random "
        "text: real data may pass (flan-jax data prepare flan2021_true_case_train, then drop "
        "--mock).")


def test_the_non_finite_loss_message_without_a_checkpoint():
    from flan_jax import run_checks

    assert run_checks.non_finite_loss(float("nan"), 1, None, "/r") == (
        "loss is nan at step 1; stopping. No checkpoint was saved yet in /r. Lower the learning "
        "rate or check the data.")
    assert run_checks.non_finite_loss(float("inf"), 7, 5, "/r") == (
        "loss is inf at step 7; stopping. The last good checkpoint (step 5) is kept in /r. "
        "Lower the learning rate or check the data.")
