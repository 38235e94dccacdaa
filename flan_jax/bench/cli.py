"""`flan-jax bench {train,compare,pipeline,restart,rank,decode,mesh,compile,memory,all} ...`.

Throughput, MFU and memory on this machine, written to `bench/results/<machine>.json` and
`<machine>.md` (see `flan_jax.bench.results`). Each measurement is warmed up (compilation
excluded), repeated, and reported as the median.

Models come from gin (`--gin_file=models/decoder_tiny.gin --gin_file=models/t5_tiny.gin` by
default; several files give several models, one per family). MFU is reported in two
conventions (`flan_jax.accounting`): `mfu` counts causal attention over the whole square,
`mfu_causal_halved` halves it as MaxText and Megatron-LM do. The peak FLOP/s behind it is the
datasheet figure of the exact device kind, on a CPU the host's measured best float32 matmul
FLOP/s (`measured_cpu_matmul_flops`); `--peak_flops=...` overrides either.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import pathlib
import sys
import time

from flan_jax.bench.common import (BYTE_VOCAB, RESULTS_DIR, Settings, ensure_gin, load_average,
                                   machine_info, model_configs, say)

# benchmark -> (module, function); each module is imported only when its benchmark runs
RUNNERS = {"train": ("flan_jax.bench.train", "bench_train"),
           "compare": ("flan_jax.bench.compare", "bench_compare"),
           "pipeline": ("flan_jax.bench.pipeline", "bench_pipeline"),
           "restart": ("flan_jax.bench.restart", "bench_restart"),
           "rank": ("flan_jax.bench.rank", "bench_rank"),
           "decode": ("flan_jax.bench.decode", "bench_decode"),
           "mesh": ("flan_jax.bench.mesh", "bench_mesh"),
           "compile": ("flan_jax.bench.compile", "bench_compile"),
           "memory": ("flan_jax.bench.memory", "bench_memory")}
DEFAULT_MODELS = ("models/decoder_tiny.gin", "models/t5_tiny.gin")
SMALL_MODELS = ("models/decoder_small.gin", "models/t5_small.gin")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-jax bench", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=tuple(RUNNERS) + ("all", "gpu"),
                   help="a benchmark, all of them but gpu, or gpu: the accelerator suite "
                        "(flan_jax.bench.gpu)")
    p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (tests)")
    p.add_argument("--results_dir", default=str(RESULTS_DIR))
    p.add_argument("--no_small", action="store_true",
                   help="train benchmark: skip the small models (measured unless --quick or "
                        "--gin_file is given)")
    p.add_argument("--loss_chunk_sizes", default="0,128",
                   help="compare, memory: comma-separated train.loss_chunk_size values to measure "
                        "(0 = the whole logits at once)")
    p.add_argument("--shape", default=None,
                   help="memory: BATCHxLENGTH or BATCHxINPUTS+TARGETS (default: per family)")
    p.add_argument("--rounds", type=int, default=5,
                   help="compare: interleaved rounds of JAX and PyTorch steps (2 steps a side "
                        "each; the median of the rounds' ratios is reported)")
    p.add_argument("--sections", default="decoder_1b,torch,t5,inference",
                   help="gpu: the sections to run, comma-separated, each in its own process "
                        "(decoder_1b, torch, t5_small, t5_base or t5, inference; default all)")
    p.add_argument("--budget_s", type=float, default=400.0,
                   help="gpu: seconds the whole suite may take (each section gets a share; "
                        "what no longer fits is skipped, a section past its share is stopped)")
    p.add_argument("--peak_flops", type=float, default=None,
                   help="peak FLOP/s of one device behind MFU (default: the datasheet figure "
                        "of the exact device kind, or the measured host matmul on a CPU)")
    p.add_argument("--profile", action="store_true",
                   help="train/compare: also write <machine>.profile.md, the costliest ops of "
                        "one traced step of each model")
    from flan_jax.config import add_gin_flags

    add_gin_flags(p)
    return p


def _named(files: list[str], bindings: list[str], search_paths: list[str]) -> list[tuple]:
    return list(zip([pathlib.Path(f).stem for f in files],
                    model_configs(files, bindings, search_paths)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ensure_gin()  # before anything imports gin (the accelerator images have none)
    from flan_jax.config import GinConfigError, split_gin_bindings

    bindings, rest = split_gin_bindings(argv)
    args = _parser().parse_args(rest)
    if args.peak_flops:
        bindings = bindings + [f"peak_flops_per_device.override = {args.peak_flops!r}"]
    if args.what == "gpu":  # sections in processes of their own: no JAX in this one
        return _gpu(args, bindings, "flan-jax bench " + " ".join(argv))
    s = Settings.make(args.quick)
    try:
        models = _named(args.gin_file or list(DEFAULT_MODELS), bindings, args.gin_search_paths)
        small = [] if args.gin_file or args.quick or args.no_small else \
            _named(list(SMALL_MODELS), bindings, args.gin_search_paths)
    except GinConfigError as e:
        print(f"flan-jax bench: {e}", file=sys.stderr)
        return 2
    if args.quick:  # a byte vocabulary and one layer per stack keep quick runs (tests) small
        models = [(n, dataclasses.replace(
            c, vocab_size=BYTE_VOCAB, num_decoder_layers=1,
            num_encoder_layers=min(c.num_encoder_layers, 1))) for n, c in models]
    machine = machine_info()
    say(f"flan-jax bench on {machine['id']} (load {machine['load_average_at_start']})")
    whats = tuple(RUNNERS) if args.what == "all" else (args.what,)
    command = "flan-jax bench " + " ".join(argv)
    path = None
    for what in whats:
        module, func = RUNNERS[what]
        t0 = time.perf_counter()
        runner = getattr(importlib.import_module(module), func)
        if what == "compare":
            rows = runner(models, s, tuple(int(c) for c in args.loss_chunk_sizes.split(",")),
                          rounds=None if args.quick else args.rounds)
        elif what == "memory":
            rows = runner(models, s, args.shape,
                          tuple(int(c) for c in args.loss_chunk_sizes.split(",")))
        else:
            rows = runner(models + small if what == "train" else models, s)
        entry = {"command": command, "quick": args.quick, "rows": rows,
                 "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "seconds": time.perf_counter() - t0, "load_average_after": load_average()}
        from flan_jax.bench.results import write_results

        path = write_results(pathlib.Path(args.results_dir), machine, {what: entry})
        say(f"{what}: {entry['seconds']:.0f} s")
    if args.profile:
        from flan_jax.bench.profile import profile_train_steps, write_profile

        write_profile(path.with_suffix(".profile.md"), [
            f"# Costliest ops of one train step on `{machine['id']}`", "",
            f"`{command}`: float32, AdamW, the compare benchmark's shapes; from a jax.profiler "
            "trace of the step (see flan_jax/bench/profile.py)."], profile_train_steps(models, s))
    say(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


def _gpu(args, bindings: list[str], command: str) -> int:
    from flan_jax.bench import gpu_run
    from flan_jax.config import GinConfigError

    try:
        sections = gpu_run.parse_sections(args.sections)
    except GinConfigError as e:
        print(f"flan-jax bench: {e}", file=sys.stderr)
        return 2
    path = gpu_run.run(args.quick, bindings, args.budget_s, pathlib.Path(args.results_dir),
                       command, sections)
    if path is None:
        print("flan-jax bench: no section reported a device (see the errors above).",
              file=sys.stderr)
        return 1
    say(f"wrote {path}, {path.with_suffix('.md')} and {path.with_suffix('.profile.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
