"""What a training run tells its user: metrics.jsonl, TensorBoard, and a progress line."""

from __future__ import annotations

import json
import math
import pathlib
import time


class MetricsWriter:
    """metrics.jsonl (one object per logging step) and TensorBoard event files."""

    def __init__(self, model_dir: pathlib.Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        model_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(model_dir / "metrics.jsonl", "a")
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(model_dir / "tensorboard" / "train"))

    def write(self, metrics: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(metrics) + "\n")
        self._file.flush()
        for k, v in metrics.items():
            if k != "step":
                self._tb.add_scalar(k, v, metrics["step"])
        self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            self._tb.close()


def print_progress(m: dict, step: int, total: int, start_step: int, run_start: float) -> None:
    done = step - start_step
    rate = done / max(time.time() - run_start, 1e-9)
    eta = (total - step) / rate if rate > 0 else float("inf")
    print(f"step {step}/{total}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
          f"lr {m['learning_rate']:.2e}  {m['tokens_per_sec']:,.0f} tok/s  "
          f"MFU {100 * m['mfu']:.1f}%  ETA {format_seconds(eta)}", flush=True)


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
