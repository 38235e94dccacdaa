"""`flan-jax bench gpu`: each section of `flan_jax.bench.gpu` in a process of its own, within
one time budget.

This process never initialises JAX (the accelerator stays free for the sections). Every child
gets `XLA_PYTHON_CLIENT_MEM_FRACTION=0.9` (unless set) before it imports JAX, and a share of
what is left of the budget: its own budget a margin below the share, and it is killed at the
share. A section that fails, runs out of memory or time keeps the rows it wrote and gets a
row that says so; the next section runs. After each section `<gpu>.json`/`.md` are rewritten,
and `<gpu>.profile.md` holds the profiled steps' costliest ops.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Callable

from flan_jax.bench.common import REPO_DIR, load_average, say
from flan_jax.bench.gpu import SECTIONS

# relative shares of the budget; a section's share is taken from what is left when it starts
SHARES = {"probe": 0.0, "decoder_1b": 0.40, "torch": 0.15, "t5_small": 0.15, "t5_base": 0.12,
          "inference": 0.10}
MEM_FRACTION = "0.9"
MARGIN_S = 15.0
PROBE_S = 60.0  # the most the device probe may take (it returns in seconds)  # a child's own budget ends this much before it is killed


def parse_sections(text: str) -> tuple[str, ...]:
    """Comma-separated section names ("t5" = both T5 sizes), in the suite's order."""
    from flan_jax.config import GinConfigError

    names = {x.strip() for x in text.split(",") if x.strip()}
    if "t5" in names:
        names = (names - {"t5"}) | {"t5_small", "t5_base"}
    unknown = names - set(SECTIONS)
    if unknown:
        raise GinConfigError(f"--sections: {', '.join(sorted(unknown))} unknown; choose from "
                             f"{', '.join(SECTIONS)} (or t5).")
    return tuple(x for x in SECTIONS if x in names)


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", MEM_FRACTION)
    env["PYTHONPATH"] = os.pathsep.join(
        [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [str(REPO_DIR)])
    return env


def run_child(section: str, out: pathlib.Path, seconds: float, quick: bool,
              bindings: list[str], python: str = sys.executable) -> dict:
    """The section's JSON ({"machine", "rows", "profiles"}) plus "status": "ok", or what
    went wrong (the rows written before it are kept)."""
    cmd = [python, "-m", "flan_jax.bench.gpu", section, f"--out={out}",
           f"--budget_s={max(seconds - MARGIN_S, 1.0):.0f}"] + (["--quick"] if quick else [])
    cmd += [f"--gin={b}" for b in bindings]
    status = "ok"
    try:
        proc = subprocess.run(cmd, env=child_env(), timeout=seconds, stderr=subprocess.PIPE,
                              text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [""]
            status = f"failed (exit {proc.returncode}): {tail[0]}"[:300]
    except subprocess.TimeoutExpired:
        status = f"killed after {seconds:.0f} s (its share of the time budget)"
    data = {"machine": None, "rows": [], "profiles": []}
    if out.exists():
        try:
            data = json.loads(out.read_text())
        except json.JSONDecodeError:
            pass
    if status != "ok":
        say(f"{section}: {status}")
    return {**data, "status": status}


def _torch_ratio(rows: list[dict]) -> None:
    """JAX's best decoder tokens/s per device over PyTorch's (one device), on the torch row."""
    best = [r for r in rows if r.get("section") == "decoder_1b" and r.get("best")]
    for r in rows:
        if r.get("section") == "torch" and r.get("status") == "ok" and best \
                and "ratio_jax_over_torch" not in r:
            r["jax_tokens_per_s_per_device"] = best[0]["tokens_per_s"] / best[0]["devices"]
            r["ratio_jax_over_torch"] = r["jax_tokens_per_s_per_device"] / r["tokens_per_s"]
            say(f"jax/torch {r['ratio_jax_over_torch']:.2f}x per device")


def run(quick: bool, bindings: list[str], budget_s: float, results_dir: pathlib.Path,
        command: str, sections: tuple[str, ...] = SECTIONS,
        runner: Callable[..., dict] = run_child) -> pathlib.Path | None:
    """Every section in turn; returns the results JSON's path."""
    from flan_jax.bench.results import write_results

    start, date = time.perf_counter(), datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load = load_average()
    rows: list[dict] = []
    profiles: list = []
    machine, path = None, None

    def write() -> pathlib.Path:
        _torch_ratio(rows)
        entry = {"command": command, "quick": quick, "rows": rows, "date": date,
                 "seconds": time.perf_counter() - start, "budget_s": budget_s,
                 "load_average_after": load_average()}
        out = write_results(results_dir, {**machine, "load_average_at_start": load},
                            {"gpu": entry})
        if profiles:
            from flan_jax.bench.profile import write_profile

            write_profile(out.with_suffix(".profile.md"), [
                f"# Costliest ops of one train step on `{machine['id']}`", "",
                f"`{command}` ({date}{', quick' if quick else ''}); from a jax.profiler "
                "trace of the step (see flan_jax/bench/profile.py)."], profiles)
        return out

    with tempfile.TemporaryDirectory(prefix="flan-jax-bench-gpu-") as tmp:
        todo = ("probe",) + tuple(sections)
        for i, section in enumerate(todo):
            left = budget_s - (time.perf_counter() - start)
            share = left * SHARES[section] / sum(SHARES[x] for x in todo[i:])
            if section == "probe":  # it only starts JAX and reads the devices: what it uses
                share = min(PROBE_S, left)
            if share < MARGIN_S + 5:
                rows.append({"section": section, "status": "skipped (time budget)"})
            else:
                say(f"--- {section}: up to {share:.0f} s")
                r = runner(section, pathlib.Path(tmp) / f"{section}.json", share, quick,
                           bindings)
                machine = machine or r.get("machine") or None
                rows += r["rows"] if section != "probe" else []
                profiles += r.get("profiles", [])
                if r["status"] != "ok":
                    rows.append({"section": section, "status": r["status"]})
            if machine is not None:
                path = write()
    say(f"gpu: {time.perf_counter() - start:.0f} s of a {budget_s:.0f} s budget")
    return path
