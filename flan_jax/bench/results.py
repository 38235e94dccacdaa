"""Results: every number in `bench/results/<machine>.json` (merged with earlier runs of other
benchmarks on the same machine) and the tables README shows in `<machine>.md`."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Callable

ORDER = ("train", "compare", "pipeline", "restart", "rank", "decode", "mesh", "compile", "memory",
         "gpu")
TARGETS = {"compare": "JAX >= 1.2x PyTorch tokens/s (decoder_tiny); T5 keeps its lead",
           "pipeline": "pipeline >= 3x step", "rank": ">= 3x at 4 options",
           "decode": ">= 5x (greedy)"}


def fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:,.{digits}f}"


def _lengths(lengths: dict) -> str:
    return f"{lengths['inputs']}+{lengths['targets']}"


def _mfu(r: dict, key: str = "mfu", digits: int = 2) -> str:
    return "n/a" if r.get(key) is None else f"{100 * r[key]:.{digits}f}%"


MFU_NOTE = ("MFU (`flan_jax.accounting`): training FLOPs = 6 x the weights each position "
            "multiplies + 12 x heads x head_dim per attended (query, key) pair within an "
            "example; *full* counts causal attention over the whole square, *causal/2* halves "
            "it as MaxText and Megatron-LM do.")


def _train(rows: list[dict]) -> list[str]:
    peak = rows[0]["assumed_peak_flops"] if rows else 0
    out = [f"{MFU_NOTE} Peak {fmt(peak, 0) if peak else 'unknown'} FLOP/s: on a CPU the host's "
           "best measured float32 matmul throughput (`measured_cpu_matmul_flops`), not a "
           "datasheet figure. AdamW, synthetic tokens. XLA memory = arguments + outputs + "
           "temporaries of the compiled step; host RSS is the process peak so far (cumulative).",
           "", "| model | remat | params | batch x len | step ms | tokens/s | MFU full | "
           "MFU causal/2 | XLA memory MiB | host peak RSS MiB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {r['remat']} | {r['params'] / 1e6:.2f}M | {r['batch']} x "
                  f"{_lengths(r['lengths'])} | {1e3 * r['step_time_s']:.1f} | "
                  f"{fmt(r['tokens_per_s'])} | {_mfu(r)} | {_mfu(r, 'mfu_causal_halved')} | "
                  f"{fmt(r['xla_step_memory_mib'], 1)} | {fmt(r['host_peak_rss_mib'])} |"
                  for r in rows]


def _compare(rows: list[dict]) -> list[str]:
    threads = rows[0]["torch_threads"] if rows else "?"
    ver = (f"torch {rows[0]['torch_version']}, transformers {rows[0]['transformers_version']}"
           if rows else "")
    out = [f"Same dimensions, batch, length and AdamW on both sides, float32; {ver}, {threads} "
           "threads. Both sides run back to back in one process, in rounds (the side that goes "
           "first alternates), so a neighbour's load falls on both: tokens/s are medians over "
           "every step, jax / torch the median of the rounds' ratios (range, rounds). XLA "
           f"memory is the compiled JAX step's. Target: {TARGETS['compare']}.", "",
           "| model | batch x len | loss chunk | params jax / torch | jax tokens/s | "
           "torch tokens/s | jax / torch (rounds) | XLA memory MiB |",
           "|---|---|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {r['batch']} x {_lengths(r['lengths'])} | "
                  f"{r.get('loss_chunk_size', 0) or 'none'} | "
                  f"{r['jax_params'] / 1e6:.2f}M / {r['torch_params'] / 1e6:.2f}M | "
                  f"{fmt(r['jax_tokens_per_s'])} | {fmt(r['torch_tokens_per_s'])} | "
                  f"{r['ratio_jax_over_torch']:.2f}x{_range(r.get('round_ratios'))} | "
                  f"{fmt(r.get('jax_xla_step_memory_mib'), 1)} |" for r in rows]


def _range(xs) -> str:
    return f" ({min(xs):.2f}-{max(xs):.2f}, {len(xs)})" if xs and len(xs) > 1 else ""


def _pipeline(rows: list[dict]) -> list[str]:
    flow = [r for r in rows if r.get("section") != "restart"]
    out = ["Packed tokens (slots) per second delivered to the host vs consumed by the train step "
           f"of the same family and shape. Target: {TARGETS['pipeline']}.", "",
           "| source | family | batch x len | tokens/s | fill | step tokens/s | pipeline / step |",
           "|---|---|---|---|---|---|---|"]
    out += [f"| {r['source']} | {r['family']} | {r['batch']} x {_lengths(r['lengths'])} | "
            f"{fmt(r['tokens_per_s'])} | {100 * r['fill']:.0f}% | "
            f"{fmt(r['train_step_tokens_per_s'])} | {r['ratio_pipeline_over_step']:.1f}x |"
            for r in flow]
    restarts = [r for r in rows if r.get("section") == "restart"]
    if restarts:
        steps = sorted({int(k.rsplit("_", 1)[1]) for r in restarts for k in r if "_at_" in k})
        out += ["", "Restart overhead: seconds from building the pipeline to its first batch when "
                "resuming at a step (the seqio path skips the batches before it; the cache path "
                "restores the Grain state).", "",
                "| family | batch | " + " | ".join(f"{p} at step {s}" for p in ("seqio", "cache")
                                                    for s in steps) + " |",
                "|---|---|" + "---|" * (2 * len(steps))]
        out += [f"| {r['family']} | {r['batch']} | " + " | ".join(
            f"{r[f'{p}_first_batch_s_at_{s}']:.2f} s" for p in ("seqio", "cache")
            for s in steps) + " |" for r in restarts]
    return out


def _rank(rows: list[dict]) -> list[str]:
    out = [f"Options scored per second, random model, byte vocabulary. Target: "
           f"{TARGETS['rank']}.", "",
           "| model | options | input tokens | rank_classify | naive | speedup |",
           "|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {r['options']} | {r['input_tokens']} | "
                  f"{fmt(r['shared_options_per_s'])} | {fmt(r['naive_options_per_s'])} | "
                  f"{r['speedup']:.1f}x |" for r in rows]


def _decode(rows: list[dict]) -> list[str]:
    out = ["Generated tokens per second, random model, byte vocabulary, no early stop. Beam "
           f"search has no uncached reference. Target: {TARGETS['decode']}.", "",
           "| model | batch | prompt | new | greedy cache | greedy no cache | speedup "
           "| beam 4 cache |", "|---|---|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {r['batch']} | {r['prompt_tokens']} | {r['new_tokens']} | "
                  f"{fmt(r['greedy_cache_tokens_per_s'])} | "
                  f"{fmt(r['greedy_no_cache_tokens_per_s'])} | {r['speedup_greedy']:.1f}x | "
                  f"{fmt(r['beam4_cache_tokens_per_s'])} |" for r in rows]


def _axes(mesh: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in mesh.items() if v > 1) or "one device"


def _mesh(rows: list[dict]) -> list[str]:
    platform = rows[0].get("platform", "cpu") if rows else "cpu"
    out = ["Examples per second of `rank_classify` and greedy `generate` with a `Placement`, "
           "random model, byte vocabulary; ratios are to the same model on one device."
           + (" **The devices are simulated CPU devices sharing the same cores: this measures "
              "the overhead of sharding, not a speed-up** (a ratio above 1 only means one device "
              "left a core idle on these small shapes)." if platform == "cpu" else ""), "",
           "| model | mesh | inputs x options | params MiB per device | rank examples/s | "
           "vs one device | greedy examples/s (new tokens) | vs one device | same answers |",
           "|---|---|---|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {_axes(r['mesh'])} | {r['inputs']} x {r['options']} | "
                  f"{r['param_mib_per_device']:.2f} | {fmt(r['rank_examples_per_s'], 1)} | "
                  f"{r['rank_vs_one_device']:.2f}x | {fmt(r['decode_examples_per_s'], 1)} "
                  f"({r['new_tokens']}) | {r['decode_vs_one_device']:.2f}x | "
                  f"{100 * r['rank_agreement']:.0f}% / {100 * r['decode_agreement']:.0f}% |"
                  for r in rows]


def _compile(rows: list[dict]) -> list[str]:
    out = ["Seconds to lower (trace) and compile a fresh train step (AdamW, one device, "
           "float32), median of fresh builds; `scan` stacks the layers under `nn.scan`.", "",
           "| model | layers | scan | params | batch x len | lower s | compile s | total s |",
           "|---|---|---|---|---|---|---|---|"]
    return out + [f"| {r['model']} | {r['layers']} | {r['scan_layers']} | "
                  f"{r['params'] / 1e6:.2f}M | {r['batch']} x {_lengths(r['lengths'])} | "
                  f"{r['lower_s']:.2f} | {r['compile_s']:.2f} | {r['total_s']:.2f} |"
                  for r in rows]


def _mib(x) -> str:
    return "n/a" if x is None else f"{x / 2 ** 20:,.0f}"


def _gpu(rows: list[dict]) -> list[str]:
    """One table per section of `bench gpu`; rows without figures say why (OOM, budget, a
    section stopped or failed)."""
    def status(r):
        return "" if r.get("status") == "ok" else f" ({r.get('status')})"

    sec = lambda name: [r for r in rows if r["section"] == name]  # noqa: E731
    peaks = {r["assumed_peak_flops"] / r.get("devices", 1) for r in rows
             if r.get("assumed_peak_flops")}
    out = [f"{MFU_NOTE} Peak: the device kind's dense bfloat16 datasheet figure "
           f"({', '.join(f'{p / 1e12:,.0f}' for p in sorted(peaks)) or 'unknown'} TFLOP/s per "
           "device; `--peak_flops` overrides), summed over the devices. XLA memory is per device "
           "(arguments + outputs + temporaries of the compiled step); device peak is the "
           "allocator's peak in the section's process. Each section ran in its own process.",
           "", "### 1B decoder (bfloat16, fsdp)", "",
           "| remat | attention | scan | loss chunk | batch x len | step ms | tokens/s | MFU full "
           "| MFU causal/2 | XLA MiB | device peak MiB | best |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sec("decoder_1b"):
        ok = r.get("status") == "ok"
        out.append(f"| {r.get('remat_policy', '')}{status(r)} | {r.get('attention_impl', '')} | "
                   f"{r.get('scan_layers', '')} | {r.get('loss_chunk_size') or 'none'} | "
                   f"{r.get('batch', '')} x {r.get('length', '')} | "
                   + (f"{1e3 * r['step_time_s']:.0f} | {fmt(r['tokens_per_s'])} | "
                      f"{_mfu(r, digits=1)} | {_mfu(r, 'mfu_causal_halved', 1)} | "
                      f"{fmt(r['xla_step_memory_mib'])} | {_mib(r.get('device_peak_bytes'))} | "
                      f"{'yes' if r.get('best') else ''} |" if ok else "| | | | | | |"))
    out += ["", "### The same decoder in transformers/PyTorch (one device)", "",
            "| tokens/s | step ms | torch.compile | attention | peak MiB | JAX tokens/s per device "
            "| JAX / torch |", "|---|---|---|---|---|---|---|"]
    for r in sec("torch"):
        out.append(f"| {fmt(r.get('tokens_per_s'))}{status(r)} | "
                   f"{fmt(1e3 * r['step_time_s'] if 'step_time_s' in r else None)} | "
                   f"{r.get('torch_compile', '')} | {r.get('attention', '')} | "
                   f"{fmt(r.get('peak_memory_mib'))} | "
                   f"{fmt(r.get('jax_tokens_per_s_per_device'))} | "
                   f"{fmt(r.get('ratio_jax_over_torch'), 2)}x |")
    out += ["", "### T5 v1.1, packed (sequences = packed rows)", "",
            "| model | remat | batch x len | examples/row | sequences/s | examples/s | MFU full | "
            "MFU causal/2 | XLA MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sec("t5") + sec("t5_small") + sec("t5_base"):
        lengths = _lengths(r["lengths"]) if "lengths" in r else ""
        out.append(f"| {r.get('model', r['section'])}{status(r)} | {r.get('remat_policy', '')} "
                   f"| {r.get('batch', '')} x {lengths} | {r.get('examples_per_row', '')} | "
                   f"{fmt(r.get('sequences_per_s'))} | {fmt(r.get('examples_per_s'))} | "
                   f"{_mfu(r, digits=1)} | {_mfu(r, 'mfu_causal_halved', 1)} | "
                   f"{fmt(r.get('xla_step_memory_mib'))} |")
    out += ["", "### Inference on the 1B decoder (one device, bfloat16 weights)", "",
            "| what | shape | throughput |", "|---|---|---|"]
    for r in sec("rank"):
        out.append(f"| rank classification{status(r)} | {r.get('inputs')} inputs x "
                   f"{r.get('options')} options, {r.get('input_tokens')} tokens | "
                   f"{fmt(r.get('shared_options_per_s'))} options/s |")
    for r in sec("decode") + sec("inference"):
        out.append(f"| greedy, KV cache{status(r)} | batch {r.get('batch')}, prompt "
                   f"{r.get('prompt_tokens')}, {r.get('new_tokens')} new | "
                   f"{fmt(r.get('greedy_cache_tokens_per_s'))} tokens/s |")
    for r in sec("probe"):
        out += ["", f"The device probe: {r.get('status')}."]
    return out


def _restart(rows: list[dict]) -> list[str]:
    steps = sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r
                    if k.startswith("first_step_s_at_")})
    out = ["Seconds from launching `flan-jax train` to the end of its first step when resuming "
           "(t5_tiny, 8 x 64+16; imports, restore and compile included), and to the process's "
           "exit (one step and the final save).", "",
           "| source | " + " | ".join(f"first step, resumed at {s}" for s in steps) + " | "
           + " | ".join(f"exit, at {s}" for s in steps) + " |",
           "|---|" + "---|" * (2 * len(steps))]
    return out + [f"| {r['source']} | " + " | ".join(
        f"{r[f'first_step_s_at_{s}']:.1f} s" for s in steps) + " | " + " | ".join(
        f"{r[f'exit_s_at_{s}']:.1f} s" for s in steps) + " |" for r in rows]


def _memory(rows: list[dict]) -> list[str]:
    from flan_jax.bench.memory import render  # its own table; imported only when present

    return render(rows)


RENDERERS: dict[str, Callable[[list[dict]], list[str]]] = {
    "restart": _restart, "memory": _memory,
    "train": _train, "compare": _compare, "pipeline": _pipeline, "rank": _rank,
    "decode": _decode, "mesh": _mesh, "compile": _compile, "gpu": _gpu}


def render_markdown(results: dict) -> str:
    m = results["machine"]
    out = [f"# flan-jax benchmarks on `{m['id']}`", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; JAX {m['jax']} on "
           f"{m['platform']} ({m['device_kind']}), {m.get('devices_used', 1)} device(s). Load "
           f"average at start {m['load_average_at_start']}.", ""]
    b = results["benchmarks"]
    for what in sorted(b, key=lambda w: ORDER.index(w) if w in ORDER else len(ORDER)):
        entry = b[what]
        render = RENDERERS.get(what)
        if render is None:  # written by a newer version: keep the numbers, skip the table
            continue
        out += [f"## {what}", "", f"`{entry['command']}` ({entry['date']}"
                f"{', quick' if entry['quick'] else ''}).", ""]
        out += render(entry["rows"])
        out.append("")
    return "\n".join(out)


def write_results(results_dir: pathlib.Path, machine: dict, new: dict[str, dict]) -> pathlib.Path:
    """Merges `new` benchmarks into <machine>.json and rewrites <machine>.md; each file is
    written beside its final name and renamed, so no half-written table is ever visible."""
    results_dir = pathlib.Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{machine['id']}.json"
    results = {"machine": machine, "benchmarks": {}}
    if path.exists():
        try:
            results["benchmarks"] = json.loads(path.read_text()).get("benchmarks", {})
        except json.JSONDecodeError:
            pass
    results["benchmarks"].update(new)
    _write_atomic(path, json.dumps(results, indent=1, default=float) + "\n")
    _write_atomic(path.with_suffix(".md"), render_markdown(results))
    return path


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
