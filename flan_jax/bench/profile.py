"""The costliest ops of a step, from a `jax.profiler` trace, without TensorBoard.

`jax.profiler.trace(dir)` writes `plugins/profile/<run>/<host>.trace.json.gz` (Chrome trace
format) beside the `.xplane.pb`. Ops are its complete ("X") events that name an HLO
instruction: on a CPU the thunk executor's events carry `args.hlo_op`; on a GPU/TPU the device
has a thread named "XLA Ops" whose events are the ops (its streams' kernels are not counted
again). Each op is joined with the compiled module's text for its shape and the JAX source op
(`metadata op_name`), which is what points at the model code.
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import re
import tempfile
from typing import Any, Callable

from flan_jax.bench.common import Settings, say

TOP = 15
_SKIP = ("ThreadpoolListener", "ThunkExecutor", "end: ")


def trace_steps(run: Callable[[], None], log_dir: str | pathlib.Path, steps: int = 1
                ) -> pathlib.Path:
    """Runs `run()` (one blocking step) `steps` times under the profiler; returns the trace
    file it wrote."""
    import jax

    before = set(pathlib.Path(log_dir).glob("plugins/profile/*/*.trace.json.gz"))
    with jax.profiler.trace(str(log_dir)):
        for _ in range(steps):
            run()
    new = sorted(set(pathlib.Path(log_dir).glob("plugins/profile/*/*.trace.json.gz")) - before)
    if not new:
        raise FileNotFoundError(f"jax.profiler wrote no *.trace.json.gz under {log_dir}")
    return new[-1]


def _op_threads(events: list[dict]) -> set[tuple] | None:
    """(pid, tid) of the device threads named "XLA Ops", or None when there are none (CPU)."""
    named = {(e.get("pid"), e.get("tid")) for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"
             and e.get("args", {}).get("name") == "XLA Ops"}
    return named or None


def op_times(trace_file: str | pathlib.Path) -> dict[str, dict]:
    """{op name: {"us": total microseconds, "count": events}} over the whole trace."""
    with gzip.open(trace_file, "rt") as f:
        events = json.load(f)["traceEvents"]
    threads = _op_threads(events)
    out: dict[str, dict] = collections.defaultdict(lambda: {"us": 0.0, "count": 0})
    for e in events:
        if e.get("ph") != "X" or str(e.get("name", "")).startswith(_SKIP):
            continue
        args = e.get("args") or {}
        if threads is not None:
            if (e.get("pid"), e.get("tid")) not in threads:
                continue
            name = args.get("hlo_op") or e["name"]
        elif "hlo_op" in args:
            name = args["hlo_op"]
        else:
            continue
        out[name]["us"] += float(e.get("dur", 0.0))
        out[name]["count"] += 1
    return dict(out)


_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+(?:\s*\{[^}]*\})?)\s+(.*)$")
_COMPUTATION = re.compile(r"^%?([\w.\-]+)\s.*\{\s*$")
_PLUMBING = {"parameter", "constant", "bitcast", "tuple", "get-tuple-element", "copy"}


def hlo_index(hlo_text: str) -> dict[str, dict]:
    """{instruction name: {"shape", "opcode", "source", "fused"}} of a compiled module's text
    (`as_text()`); "fused" lists the opcodes inside a fusion (what a fused kernel computes,
    since its metadata names only the root's JAX op)."""
    out, bodies, current = {}, {}, None
    for line in hlo_text.splitlines():
        comp = _COMPUTATION.match(line)
        if comp and "=" not in line.split("{")[0]:
            current = bodies.setdefault(comp.group(1), [])
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, rest = m.groups()
        src = re.search(r'op_name="([^"]*)"', rest)
        kind = re.match(r"([\w\-]+)\(", rest)
        calls = re.search(r"calls=%?([\w.\-]+)", rest)
        out[name] = {"shape": shape.split("{")[0] if "{" in shape and "(" not in shape
                     else shape, "source": src.group(1) if src else "",
                     "opcode": kind.group(1) if kind else "",
                     "calls": calls.group(1) if calls else ""}
        if current is not None and kind:
            current.append(kind.group(1))
    for info in out.values():
        called = bodies.get(info.pop("calls"), [])
        info["fused"] = ", ".join(dict.fromkeys(o for o in called if o not in _PLUMBING))
    return out


def top_ops(times: dict[str, dict], steps: int, hlo_text: str = "", n: int = TOP
            ) -> list[dict]:
    """The `n` ops with the most time per step, with their share of all op time."""
    index = hlo_index(hlo_text) if hlo_text else {}
    total = sum(t["us"] for t in times.values()) or 1.0
    rows = []
    for name, t in sorted(times.items(), key=lambda kv: -kv[1]["us"])[:n]:
        info = index.get(name, {})
        rows.append({"op": name, "ms_per_step": t["us"] / 1e3 / steps,
                     "share": t["us"] / total, "calls_per_step": t["count"] / steps,
                     "shape": info.get("shape", ""), "opcode": info.get("opcode", ""),
                     "fused": info.get("fused", ""), "source": info.get("source", "")})
    return rows


def profile_step(run: Callable[[], None], hlo_text: str, steps: int = 1, n: int = TOP
                 ) -> dict:
    """Traces `steps` steps into a temporary directory: {"ops": top rows, "op_ms_per_step"}."""
    with tempfile.TemporaryDirectory(prefix="flan-jax-profile-") as tmp:
        times = op_times(trace_steps(run, tmp, steps))
    return {"ops": top_ops(times, steps, hlo_text, n), "steps": steps,
            "op_ms_per_step": sum(t["us"] for t in times.values()) / 1e3 / steps}


def profile_train_steps(models: list[tuple[str, Any]], s: Settings) -> list[tuple[str, dict]]:
    """(title, summary) of one traced train step of each model at `bench compare`'s shapes
    (float32, AdamW, the whole logits at once)."""
    from flan_jax.bench.common import f32
    from flan_jax.bench.train import prepare_train_step

    out = []
    for name, cfg in models:
        batch, lengths = (2, {"inputs": 16, "targets": 8}) if s.quick else \
            (16, {"inputs": 128, "targets": 32})
        step = prepare_train_step(f32(cfg), batch, lengths)
        step.run()  # compiled and warm before the trace
        out.append((f"{name}, {batch} x {lengths['inputs']}+{lengths['targets']}",
                    profile_step(step.run, step.holder["compiled"].as_text(), steps=2)))
    return out


def render_profile(title: str, summary: dict) -> list[str]:
    """A Markdown section: the top ops of one step and where in the model they come from."""
    out = [f"## {title}", "", f"Op time per step (sum over ops, threads overlap on a CPU): "
           f"{summary['op_ms_per_step']:,.1f} ms, {summary['steps']} step(s) traced.", "",
           "| # | op | ms/step | share | calls | shape | computes | source (JAX op) |",
           "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(summary["ops"], 1):
        source = r["source"].replace("|", "/")[-90:]
        computes = r.get("fused") or r.get("opcode", "")
        out.append(f"| {i} | `{r['op']}` | {r['ms_per_step']:,.2f} | {100 * r['share']:.1f}% | "
                   f"{r['calls_per_step']:g} | {r['shape'][:40]} | {computes[:60]} | "
                   f"{source} |")
    return out + [""]


def write_profile(path: pathlib.Path, header: list[str], sections: list[tuple[str, dict]]
                  ) -> pathlib.Path:
    """Writes the sections (title, summary) under `header` to `path`, atomically."""
    text = "\n".join(header + [""] + [line for title, s in sections
                                      for line in render_profile(title, s)])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    say(f"wrote {path}")
    return path
