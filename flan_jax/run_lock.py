"""One run per MODEL_DIR: the lock a training run holds on its directory.

Two trainers writing one MODEL_DIR would interleave checkpoints and overwrite each other's
config.gin and metrics.jsonl. So `train` holds `MODEL_DIR/run.lock` from before it writes
anything until it exits, and a second run stops in one line naming the holder.

The lock file is JSON: the holder's host, process id, the process's start time (so a reused
process id is not mistaken for the holder), its pid namespace (containers on one host name),
when it started, its command, and a heartbeat time rewritten every `HEARTBEAT_S` seconds.

Taking it is atomic where the run writes:
- a local disk: the content is written to a temporary file, then hard-linked to `run.lock`,
  which fails when the name exists (no half-written lock is ever visible);
- a bucket (`gs://`): the object is created with the precondition "no such object yet"
  (`ifGenerationMatch=0`), which the store enforces; a second creator gets an error.

A lock left by a run that did not exit (kill -9, out of memory, a lost machine) is stale, and
the next run takes it over, logging whose lock it replaced:
- same machine (host name and pid namespace): at once, when the holder's process is gone (or
  its process id now belongs to a process started at another time);
- another machine: when its heartbeat is older than `STALE_AFTER_S` seconds (10 minutes; the
  holder rewrites it every minute). Clocks are compared across machines, so they must agree to
  within minutes. A run that must not wait can remove the file: `rm MODEL_DIR/run.lock`
  (`gcloud storage rm gs://.../run.lock`) once sure the holder is gone.

Only process 0 of a multi-host run takes the lock (the others write nothing of their own); it
tells the others whether it did, so a refused multi-host run stops on every process.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid

from flan_jax import errors, paths
from flan_jax.errors import UserError

logger = logging.getLogger("flan_jax.train")

LOCK_NAME = "run.lock"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _holder_record(token: str) -> dict:
    now = time.time()
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "process_start": _process_start(os.getpid()), "pid_namespace": _pid_namespace(),
            "token": token, "started": now, "heartbeat": now,
            "command": " ".join(["flan-jax", *sys.argv[1:]])[:500]}


def _same_machine(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and \
        holder.get("pid_namespace") == _pid_namespace()


def _process_running(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return start is None or _process_start(pid) in (None, start)


def stale_reason(holder: dict, now: float | None = None) -> str | None:
    """Why the lock `holder` wrote is stale (None: it is held)."""
    now = time.time() if now is None else now
    if _same_machine(holder):
        if not _process_running(int(holder.get("pid", -1)), holder.get("process_start")):
            return f"its process {holder.get('pid')} on this machine is no longer running"
        return None
    age = now - float(holder.get("heartbeat", 0))
    if age > STALE_AFTER_S:
        return f"its heartbeat is {age:.0f} s old (stale after {STALE_AFTER_S:.0f} s)"
    return None


def _describe(holder: dict, now: float) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {started}, heartbeat "
            f"{max(0.0, now - float(holder.get('heartbeat', 0))):.0f} s ago")


# --- the file itself: local or on a bucket ------------------------------------------------------

def _create(path, record: dict) -> bool:
    """Writes `record` to `path` unless `path` exists; whether it did."""
    data = json.dumps(record).encode()
    if paths.is_url(path):
        import fsspec

        fs, name = fsspec.core.url_to_fs(os.fspath(path))
        try:
            fs.pipe_file(name, data, mode="create")  # ifGenerationMatch=0
        except FileExistsError:
            return False
        return True
    tmp = f"{path}.{record['token']}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _read(path) -> dict | None:
    """The lock's record; None when there is no lock; {} when it cannot be parsed."""
    try:
        text = paths.as_path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        return record if isinstance(record, dict) else {}
    except ValueError:
        return {}


def _remove_if(path, token: str | None) -> bool:
    """Removes the lock if it (still) carries `token`; whether it did."""
    holder = _read(path)
    if holder is None or holder.get("token") != token:
        return False
    with contextlib.suppress(FileNotFoundError):
        paths.as_path(path).unlink()
    return True


# --- holding it ----------------------------------------------------------------------------------

class RunLock:
    """A held lock: a heartbeat thread keeps it fresh until `release`."""

    def __init__(self, path, record: dict, created: list[str]):
        self.path, self.record, self._created = path, record, created
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                holder = _read(self.path)
                if holder is None or holder.get("token") != self.record["token"]:
                    logger.error("The lock %s was taken over by another run (%s); this run "
                                 "goes on, but two runs now write this MODEL_DIR.", self.path,
                                 holder)
                    return
                self.record["heartbeat"] = time.time()
                paths.write_text_atomic(self.path, json.dumps(self.record))
            except Exception as e:  # noqa: BLE001 - a missed beat is retried at the next one
                logger.warning("Could not refresh the lock %s: %s", self.path, e)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            _remove_if(self.path, self.record["token"])
        for folder in self._created:  # a run refused before writing leaves no empty folders
            try:
                os.rmdir(folder)
            except OSError:  # not empty: the run wrote there
                break


def acquire(model_dir) -> RunLock:
    """Takes MODEL_DIR's lock (creating MODEL_DIR locally), taking over a stale one; raises
    `UserError` naming the holder when another run holds it."""
    shown = paths.display(model_dir)
    directory = paths.as_path(model_dir)
    created = []  # the folders this creates, deepest first
    if not paths.is_url(directory):
        folder = os.fspath(directory)
        while not os.path.exists(folder):
            created.append(folder)
            folder = os.path.dirname(folder)
    paths.ensure_dir(directory)
    path = directory / LOCK_NAME
    record = _holder_record(uuid.uuid4().hex)
    for _ in range(3):  # a stale lock taken over by someone else in between: look again
        if _create(path, record):
            return RunLock(path, record, created)
        holder = _read(path)
        if holder is None:
            continue
        now = time.time()
        reason = stale_reason(holder, now) if holder else (
            "it cannot be read" if now - paths.modified_time(path) > STALE_AFTER_S else None)
        if reason is None:
            held_by = _describe(holder, now) if holder else "a run whose lock is being written"
            raise UserError(
                f"MODEL_DIR {shown} is in use by another run ({held_by}): wait for it to "
                f"finish or stop it, or use another MODEL_DIR. If that run is gone, remove "
                f"{shown.rstrip('/')}/{LOCK_NAME}.")
        if _remove_if(path, holder.get("token")):
            logger.warning("Took over the stale lock of MODEL_DIR %s (%s): %s.", shown,
                           _describe(holder, now) if holder else "unreadable", reason)
    raise UserError(f"MODEL_DIR {shown}: another run took its lock at the same time; "
                    "rerun when it has finished, or use another MODEL_DIR.")


def _agreed(refusal: UserError | None, processes: int) -> None:
    """Every process of a multi-host run learns whether process 0 took the lock, so that all
    of them stop on a refusal (the others would otherwise wait at their first collective for a
    process that has exited). Raises the refusal on process 0 and a line naming it elsewhere."""
    if processes > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        took = int(multihost_utils.broadcast_one_to_all(np.int32(refusal is None)))
        if not took and refusal is None:
            raise UserError("process 0 could not take MODEL_DIR's lock (its error says why); "
                            "this process stops with it.")
    if refusal is not None:
        raise refusal


@contextlib.contextmanager
def hold(model_dir, enabled: bool = True, processes: int = 1):
    """Holds MODEL_DIR's lock for the duration of the block (`enabled`: process 0). With
    several `processes`, all of them stop when process 0 is refused."""
    lock, refusal = None, None
    if enabled:
        try:
            lock = acquire(model_dir)
        except UserError as e:
            refusal = e
    _agreed(refusal, processes)
    try:
        with errors.release_on_sigterm(lock.release if lock else lambda: None):
            yield lock
    finally:
        if lock is not None:
            lock.release()


def holding_model_dir(fn):
    """Decorates a function with a `model_dir` parameter (the trainer): each call holds that
    directory's lock while it runs. MODEL_DIR is checked first (a file, read-only, a bucket
    that cannot be written), so a refusal leaves nothing behind."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        import jax

        from flan_jax import run_checks

        model_dir = signature.bind_partial(*args, **kwargs).arguments.get("model_dir")
        run_checks.check_model_dir(model_dir)
        with hold(model_dir, enabled=jax.process_index() == 0, processes=jax.process_count()):
            return fn(*args, **kwargs)

    return run
