"""What a training run tells its user: metrics.jsonl, TensorBoard, and a progress line."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time

from flan_jax import paths

# On a bucket metrics.jsonl and the event file are rewritten whole on each store (objects
# cannot be appended to): they are stored at most this often, and at each checkpoint.
BUCKET_STORE_EVERY_S = 30.0


class MetricsWriter:
    """metrics.jsonl (one object per logging step) and TensorBoard event files, in a local
    folder or on a bucket (see `flan_jax.paths`).

    `keep_until`: the step the run starts from; lines of later steps (written before a crash,
    and about to be replayed) are dropped, so each logged step has one line.

    Locally every line is flushed as it is written. On a bucket a line may wait up to
    `BUCKET_STORE_EVERY_S` in memory, so that a run logging every step does not upload its
    whole history every step; `sync` (the trainer calls it with each checkpoint) stores
    everything. What a crash loses there belongs to steps after the last checkpoint, which the
    resumed run replays and logs again."""

    def __init__(self, model_dir: str | os.PathLike, enabled: bool = True, keep_until: int = 0):
        self.enabled = enabled
        if not enabled:
            return
        model_dir = paths.ensure_dir(model_dir)
        path = model_dir / "metrics.jsonl"
        if path.exists():
            drop_steps_after(path, keep_until)
        self._file = paths.TextAppender(path, bucket_every_s=BUCKET_STORE_EVERY_S)
        # tensorboardX's own thread stores events every `flush_secs`; locally `write` also
        # flushes each time
        self._remote = paths.is_url(model_dir)
        self._tb = summary_writer(model_dir / "tensorboard" / "train",
                                  flush_secs=BUCKET_STORE_EVERY_S)

    def write(self, metrics: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(metrics) + "\n")
        self._file.flush()
        for k, v in metrics.items():
            if k != "step":
                self._tb.add_scalar(k, v, metrics["step"])
        if not self._remote:
            self._tb.flush()

    def sync(self) -> None:
        """Stores every metrics line written so far, and the events tensorboardX's thread has
        taken from its queue (on a bucket too)."""
        if self.enabled:
            self._file.sync()
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            self._tb.close()


def drop_steps_after(path: str | os.PathLike, step: int) -> None:
    """Rewrites metrics.jsonl without the lines of steps after `step` (and torn lines)."""
    path = paths.as_path(path)
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    paths.write_text_atomic(path, "".join(kept))


class _EpathEventFile:
    """A TensorBoard event file on a bucket, written through epath: objects cannot be appended
    to, so each flush rewrites the whole file (event files of a run are small). tensorboardX
    writes from its own thread while the trainer may flush."""

    def __init__(self, path: str):
        self.path, self._data = path, bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._data += data

    def flush(self) -> None:
        with self._lock:  # held through the upload: an older copy never lands last
            paths.write_bytes_atomic(self.path, bytes(self._data))

    def close(self) -> None:
        self.flush()


class _EpathEventFiles:
    def open(self, path: str) -> _EpathEventFile:
        return _EpathEventFile(path)

    def directory_check(self, path: str) -> None:  # bucket folders need not be created
        pass


def summary_writer(logdir: str | os.PathLike, flush_secs: float = 120):
    """A tensorboardX `SummaryWriter` for a local folder or a bucket. tensorboardX would
    write gs:// with its own google-cloud-storage client (and s3:// with boto): that scheme is
    routed through epath instead, like every other file."""
    from tensorboardX import SummaryWriter, record_writer

    logdir = paths.as_path(logdir)
    if paths.is_url(logdir):
        record_writer.register_writer_factory(os.fspath(logdir).split("://")[0],
                                              _EpathEventFiles())
    return SummaryWriter(os.fspath(logdir), flush_secs=flush_secs)


class Throughput:
    """Tokens/s, step time and MFU over the steps since the last report. This process's first
    step (restore and compile) is left out: the clock starts when it ends.

    `step_flops`: the FLOPs of one step (every padded position it computes); `peak`: the
    peak FLOP/s of all devices together (0: unknown, no MFU reported)."""

    def __init__(self, start_step: int, step_flops: float, peak: float):
        self.timed_from = start_step + 1  # the step whose end starts the clock
        self.step_flops, self.peak = step_flops, peak
        self.run_start = self._window_start = time.time()
        self._tokens, self._steps = 0.0, 0

    def step_done(self, step: int, num_tokens: float) -> None:
        if step == self.timed_from:
            self.run_start = self._window_start = time.time()
        else:
            self._tokens += num_tokens
            self._steps += 1

    def report(self) -> dict:
        """{tokens_per_sec, step_time, mfu} of the window (empty when it holds only the first
        step), and a new window."""
        out = {}
        if self._steps:
            elapsed = max(time.time() - self._window_start, 1e-9)
            out = {"tokens_per_sec": self._tokens / elapsed, "step_time": elapsed / self._steps}
            if self.peak:  # an unknown device kind has no peak, hence no MFU
                out["mfu"] = self._steps * self.step_flops / elapsed / self.peak
        self._window_start, self._tokens, self._steps = time.time(), 0.0, 0
        return out


def print_progress(m: dict, step: int, total: int, timed_from: int, run_start: float) -> None:
    """One line per logging step. Rates count the steps after `timed_from` (whose end started
    `run_start`); a line without them (only the first, compiling step) shows `-`."""
    done = step - timed_from
    rate = done / max(time.time() - run_start, 1e-9)
    eta = (total - step) / rate if rate > 0 else float("inf")
    mfu = f"{100 * m['mfu']:.1f}%" if "mfu" in m else "-"
    speed = (f"{m['tokens_per_sec']:,.0f} tok/s  MFU {mfu}"
             if "tokens_per_sec" in m else "- tok/s  MFU -")
    print(f"step {step}/{total}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
          f"lr {m['learning_rate']:.2e}  {speed}  ETA {format_seconds(eta)}", flush=True)


def setup_logging(level: int = logging.INFO) -> None:
    """Shows the `flan_jax` loggers' lines (resume, parameter count, ...) on stderr whatever
    another library did to the root logger (absl installs a handler there on import, which makes
    `logging.basicConfig` do nothing). Calling it again replaces the handler."""
    log = logging.getLogger("flan_jax")
    for handler in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressLine:
    """Progress of a long job on stderr: a live tqdm bar on a terminal; elsewhere (logs, CI,
    a pod's captured output) a plain line at least every `every` seconds and at the end."""

    def __init__(self, desc: str, total: int, initial: int = 0, enabled: bool = True,
                 every: float = 30.0, unit: str = "examples"):
        import sys

        self.desc, self.total, self.n, self.unit = desc, total, initial, unit
        self.enabled, self.every = enabled, every
        self._start_n, self._start = initial, time.time()
        self._last = self._start
        self._stream = sys.stderr
        self._bar = None
        if enabled and self._stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="ex",
                             file=self._stream)

    def update(self, n: int) -> None:
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif time.time() - self._last >= self.every:
            self._print()

    def _print(self) -> None:
        now = time.time()
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if math.isfinite(eta) else "?"
        pct = 100.0 * self.n / max(self.total, 1)
        print(f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), {rate:.1f}/s, "
              f"ETA {eta_text}", file=self._stream, flush=True)
        self._last = now

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self._print()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (tests and tools replace it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass
