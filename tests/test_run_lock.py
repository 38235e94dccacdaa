"""One run per MODEL_DIR (`flan_jax.run_lock`): a second process is refused naming the holder,
a lock left by a killed process (kill -9) is taken over, a silent other machine's lock goes
stale after its heartbeat ages, and a refused trainer leaves MODEL_DIR as it was."""

import json
import logging
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from flan_jax import run_lock
from flan_jax.errors import UserError

REPO = pathlib.Path(__file__).resolve().parent.parent
HOLDER = ("import sys, time; from flan_jax import run_lock; run_lock.acquire(sys.argv[1]); "
          "print('held', flush=True); time.sleep(120)")


def _holder_process(model_dir):
    """Another process holding MODEL_DIR's lock (the library's lock, without a trainer)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(model_dir)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _snapshot(path):
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else "dir"
            for p in sorted(pathlib.Path(path).rglob("*"))}


def _refusal(model_dir, holder):
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
    return (f"MODEL_DIR {model_dir} is in use by another run (pid {holder['pid']} on "
            f"{holder['host']}, started {started}, heartbeat 0 s ago): wait for it to finish or "
            f"stop it, or use another MODEL_DIR. If that run is gone, remove "
            f"{model_dir}/run.lock.")


def test_a_second_process_is_refused_and_a_killed_holders_lock_is_taken_over(tmp_path, caplog):
    proc = _holder_process(tmp_path)
    try:
        holder = json.loads((tmp_path / "run.lock").read_text())
        assert holder["pid"] == proc.pid and holder["host"] == socket.gethostname()
        before = _snapshot(tmp_path)
        with pytest.raises(UserError) as refused:
            run_lock.acquire(tmp_path)
        assert str(refused.value) == _refusal(tmp_path, holder)
        assert _snapshot(tmp_path) == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with caplog.at_level(logging.WARNING, logger="flan_jax.train"):
        lock = run_lock.acquire(tmp_path)
    assert caplog.messages[-1].startswith(f"Took over the stale lock of MODEL_DIR {tmp_path} "
                                          f"(pid {proc.pid} on {socket.gethostname()}")
    assert caplog.messages[-1].endswith(
        f"its process {proc.pid} on this machine is no longer running.")
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "run.lock").exists()


def test_another_machines_lock_is_stale_only_after_its_heartbeat_ages(tmp_path):
    now = time.time()
    record = {"host": "elsewhere", "pid": 1, "token": "t", "started": now - 3600,
              "heartbeat": now - 5}
    (tmp_path / "run.lock").write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"\(pid 1 on elsewhere, started .*, heartbeat 5 s ago\)"):
        run_lock.acquire(tmp_path)
    record["heartbeat"] = now - run_lock.STALE_AFTER_S - 1
    assert run_lock.stale_reason(record, now) == "its heartbeat is 601 s old (stale after 600 s)"
    (tmp_path / "run.lock").write_text(json.dumps(record))
    lock = run_lock.acquire(tmp_path)
    assert json.loads((tmp_path / "run.lock").read_text())["token"] == lock.record["token"]
    lock.release()


def test_the_heartbeat_refreshes_the_lock_and_release_removes_an_empty_model_dir(
        tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.05)
    run = tmp_path / "runs" / "run"
    lock = run_lock.acquire(run)
    first = lock.record["heartbeat"]
    deadline = time.time() + 10
    while json.loads((run / "run.lock").read_text())["heartbeat"] == first:
        assert time.time() < deadline, "no heartbeat"
        time.sleep(0.05)
    lock.release()
    assert list(tmp_path.iterdir()) == []  # it made runs/run and nothing else was written


def test_a_trainer_is_refused_while_another_process_holds_model_dir(tmp_path, capsys):
    from tests.fixtures import train_main as _main

    (tmp_path / "config.gin").write_text("# the other run's\n")
    proc = _holder_process(tmp_path)
    try:
        holder = json.loads((tmp_path / "run.lock").read_text())
        before = _snapshot(tmp_path)
        code, out, err = _main(capsys, tmp_path)
        err = re.sub(r"heartbeat \d+ s ago", "heartbeat 0 s ago", err)  # the trainer's imports
        assert (code, out, err) == (2, "", f"flan-jax train: {_refusal(tmp_path, holder)}\n")
        assert _snapshot(tmp_path) == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_the_lock_on_a_bucket_is_created_once_and_released(request):
    """On a bucket the lock is an object created with "no such object yet" as precondition
    (the GCS emulator of tests/test_cloud_storage.py enforces it as GCS does)."""
    from flan_jax import paths
    from tests.fixtures import GCS_BUCKET as BUCKET

    request.getfixturevalue("gcs")
    run = f"gs://{BUCKET}/locked_run"
    lock = run_lock.acquire(run)
    holder = json.loads(paths.as_path(f"{run}/run.lock").read_text())
    assert holder["token"] == lock.record["token"]
    with pytest.raises(UserError) as refused:
        run_lock.acquire(run)
    assert re.sub(r"heartbeat \d+ s", "heartbeat 0 s", str(refused.value)) == _refusal(run, holder)
    lock.release()
    assert not paths.as_path(f"{run}/run.lock").exists()


@pytest.mark.slow
def test_every_process_of_a_refused_multi_host_run_stops(tmp_path):
    """Process 0 is refused the lock; process 1 learns it from process 0 and stops too (before,
    it waited at its first collective for a process that had exited)."""
    from tests.fixtures import cli_process, free_port, xla_flags

    proc = _holder_process(tmp_path)
    try:
        holder = json.loads((tmp_path / "run.lock").read_text())
        port = free_port()
        trainers = [cli_process(tmp_path, "initialize_distributed.cpu_collectives = True",
                                env={"XLA_FLAGS": xla_flags(4),
                                     "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                                     "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
                    for i in range(2)]
        outs = [p.communicate(timeout=300)[0] for p in trainers]
        assert [p.returncode for p in trainers] == [2, 2], outs
        # Gloo's C++ start-up line ("[Gloo] Rank 0 is connected to 1 peer ranks ...") reaches
        # the shared stdout/stderr whenever its thread runs, so it may follow ours.
        last = [re.sub(r"heartbeat \d+ s ago", "heartbeat 0 s ago",
                       [line for line in o.strip().splitlines()
                        if not line.startswith("[Gloo]")][-1]) for o in outs]
        assert last == [f"flan-jax train: {_refusal(tmp_path, holder)}",
                        "flan-jax train: process 0 could not take MODEL_DIR's lock (its error "
                        "says why); this process stops with it."]
        assert json.loads((tmp_path / "run.lock").read_text()) == holder
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
