"""`flan-jax infer`: score, rank or predict JSONL records with a checkpoint.

  flan-jax infer --mode {score,rank,predict} --checkpoint DIR --input_file in.jsonl
                 --output_file out.jsonl [--batch_size N] [--max_input_length N]
                 [--max_target_length N] [--skip_bad_lines] [decoding flags]

Each input line is a JSON object with "inputs" (a string) and, by mode:
  score    "targets" (string)        -> adds "score" (summed target log-likelihood) and
                                        "num_target_tokens"
  rank     "options" (strings, >= 1) -> adds "scores" (one per option) and "prediction"
                                        (the best option)
  predict  nothing more              -> adds "prediction" (generated text)
Output line k is input record k plus those fields; other keys pass through. Blank lines are
ignored. A malformed line stops the run before any model work (exit 2) naming its line number,
unless --skip_bad_lines, which skips and counts it.

The mesh comes from gin, as for `train` and `eval` (`--gin_file=hardware/tpu_v4_pod.gin`,
`--gin.mesh_axes.axes="{'fsdp': -1}"`): the parameters are restored straight into their
shardings and batches split over the data axes. Multi-host: run the same command on every
process (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a TPU pod's own
discovery); process 0 writes the output file.

Runs resume: `OUTPUT.infer.json` records the mode, checkpoint, settings and digests of the
input records done; a run whose output was made another way (another mode, checkpoint, setting
or input file) is refused unless --overwrite. Output lines already written are kept (a trailing partial line is cut) and the
run continues with the next record, so an interrupted run finished later gives the same file as
one uninterrupted run (sampling keys derive from --seed and the record's index).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Iterator

import numpy as np

from flan_jax import paths

if TYPE_CHECKING:  # the model stack is imported only when a model is loaded
    from flan_jax.placement import LoadedModel

MODES = ("score", "rank", "predict")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--checkpoint", required=True, help="a flan-jax model directory")
    p.add_argument("--input_file", required=True)
    p.add_argument("--output_file", required=True)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_input_length", type=int, default=512)
    p.add_argument("--max_target_length", type=int, default=128,
                   help="targets and options are cut to this many tokens")
    p.add_argument("--skip_bad_lines", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="start --output_file again instead of resuming it")
    p.add_argument("--chunk_size", type=int, default=256,
                   help="records processed and written per chunk")
    p.add_argument("--rank_score", choices=("sum", "mean", "per_char"), default="sum",
                   help="rank mode: summed, per-token or per-character log-likelihood")
    g = p.add_argument_group("decoding (predict mode)")
    g.add_argument("--method", choices=("greedy", "sample", "beam"), default="greedy")
    g.add_argument("--max_new_tokens", type=int, default=None,
                   help="default: --max_target_length")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top_k", type=int, default=0)
    g.add_argument("--top_p", type=float, default=1.0)
    g.add_argument("--num_beams", type=int, default=4)
    g.add_argument("--length_penalty", type=float, default=0.6)
    g.add_argument("--seed", type=int, default=0)


def check_record(line: str, mode: str) -> tuple[dict | None, str | None]:
    """(record, None) for a valid line, (None, what is wrong) otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg} at column {e.colno})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    required = {"score": ("inputs", "targets"), "rank": ("inputs", "options"),
                "predict": ("inputs",)}[mode]
    for key in required:
        if key not in record:
            return None, f"missing key {key!r} (mode {mode} needs {', '.join(required)})"
    for key in ("inputs", "targets"):
        if key in required and not isinstance(record[key], str):
            return None, f"{key!r} must be a string, got {type(record[key]).__name__}"
    if mode == "rank":
        opts = record["options"]
        if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
            return None, "'options' must be a list of strings"
        if not opts:
            return None, "'options' is empty: nothing to rank"
    return record, None


def _records(path: str, mode: str) -> Iterator[tuple[int, dict | None, str | None]]:
    from flan_jax.input_checks import text_lines  # non-UTF-8 lines

    for lineno, line, problem in text_lines(path):
        if problem is not None:
            yield lineno, None, problem
        elif line.strip():
            yield (lineno,) + check_record(line, mode)


def _resume(path: str, cut: bool = True) -> int:
    """Complete lines already in the output file; a trailing partial line is cut off (when
    `cut`)."""
    if not paths.as_path(path).exists():
        return 0
    if paths.is_url(path):  # an object cannot be truncated in place: it is rewritten
        data = paths.as_path(path).read_bytes()
        end = data.rfind(b"\n") + 1
        if cut and end < len(data):
            paths.write_bytes_atomic(path, data[:end])
        return data[:end].count(b"\n")
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if cut and end < len(data):
            f.truncate(end)
    return data[:end].count(b"\n")


def _meta_path(output_file: str) -> str:
    return output_file + ".infer.json"


def _identity(args) -> dict:
    """What decides an output line: a resumed run must match it."""
    from flan_jax.checkpoints import saved_step

    keys = ("mode", "max_input_length", "max_target_length", "rank_score")
    if args.mode == "predict":
        keys += ("method", "max_new_tokens", "temperature", "top_k", "top_p", "num_beams",
                 "length_penalty", "seed")
    checkpoint = (args.checkpoint if paths.is_url(args.checkpoint)
                  else os.path.abspath(args.checkpoint))
    return {"checkpoint": checkpoint,
            "step": saved_step(args.checkpoint) if paths.as_path(args.checkpoint).is_dir()
            else None,
            **{k: getattr(args, k) for k in keys}}


def _record_digest(digest, record: dict) -> None:
    digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n")


def _check_resume(args, done: int) -> str | None:
    """Why the existing output must not be resumed by this run (None: it may be)."""
    import hashlib

    meta_path = _meta_path(args.output_file)
    if not paths.as_path(meta_path).exists():
        return (f"{args.output_file} has {done} lines but no {meta_path} saying how they were "
                "made; pass --overwrite to start it again, or choose another --output_file.")
    meta = json.loads(paths.as_path(meta_path).read_text(encoding="utf-8"))
    want = _identity(args)
    for key, value in want.items():
        if meta.get("identity", {}).get(key) != value:
            return (f"{args.output_file} was written with {key}={meta['identity'].get(key)!r}"
                    f" but this run has {key}={value!r}; pass --overwrite to start it again, "
                    "or choose another --output_file.")
    checks = {n: h for n, h in meta.get("input_digests", []) if n <= done}
    if checks:
        upto = max(checks)
        digest, index = hashlib.sha256(), 0
        for _, record, problem in _records(args.input_file, args.mode):
            if problem is not None:
                continue
            _record_digest(digest, record)
            index += 1
            if index == upto:
                break
        if index != upto or digest.hexdigest() != checks[upto]:
            return (f"the first {upto} records of {args.input_file} are not those "
                    f"{args.output_file} was made from; pass --overwrite to start it again, "
                    "or choose another --output_file.")
    return None


def _write_meta(args, digests: list) -> None:
    paths.write_text_atomic(_meta_path(args.output_file), json.dumps(
        {"identity": _identity(args), "input_digests": digests}, indent=1))


def _process(mode: str, args, loaded: LoadedModel, records: list[dict], offset: int,
             stats: dict) -> list[dict]:
    from flan_jax import scoring
    from flan_jax.predict import PredictSettings, predict

    inputs = [r["inputs"] for r in records]
    if mode == "score":
        scored = scoring.score_texts(loaded, inputs, [r["targets"] for r in records],
                                     batch_size=args.batch_size,
                                     max_input_length=args.max_input_length,
                                     max_target_length=args.max_target_length, stats=stats)
        return [{**r, "score": s, "num_target_tokens": n} for r, (s, n) in zip(records, scored)]
    settings = PredictSettings(
        batch_size=args.batch_size, max_input_length=args.max_input_length,
        max_target_length=args.max_target_length, max_new_tokens=args.max_new_tokens,
        rank_score=args.rank_score, method=args.method, num_beams=args.num_beams,
        length_penalty=args.length_penalty, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed)
    options = [r["options"] for r in records] if mode == "rank" else None
    predictions = predict(loaded, inputs, options, settings, stats=stats,
                          example_offset=offset)
    if mode == "rank":
        return [{**r, "scores": p.option_scores, "prediction": p.text}
                for r, p in zip(records, predictions)]
    return [{**r, "prediction": p.text} for r, p in zip(records, predictions)]


def _check_arguments(args) -> None:
    """Fails (UserError) on flags that cannot work, before any record or model is read."""
    from flan_jax.errors import UserError

    try:
        exists = paths.as_path(args.input_file).exists()
    except Exception as e:  # noqa: BLE001 - a bucket without credentials, or no such bucket
        raise UserError(f"cannot read {args.input_file}: {type(e).__name__}: {e}") from None
    if not exists:
        raise UserError(f"{args.input_file} does not exist.")
    from flan_jax.input_checks import check_output_is_not_input

    check_output_is_not_input(args.input_file, args.output_file)  # before anything is written
    for flag in ("batch_size", "max_input_length", "max_target_length", "chunk_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1 (got {getattr(args, flag)}).")
    if paths.is_url(args.output_file):
        try:
            paths.check_bucket_writable(paths.as_path(args.output_file).parent,
                                        f"the folder of {args.output_file}")
        except UserError as e:
            raise UserError(f"{e} Choose another --output_file.") from None
        return
    out_dir = os.path.dirname(os.path.abspath(args.output_file))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK) or (
            os.path.exists(args.output_file) and not os.access(args.output_file, os.W_OK)):
        raise UserError(f"cannot write {args.output_file}: its folder is missing or not "
                        "writable. Choose another --output_file.")


def _count_records(args) -> tuple[int, int]:
    """(valid records, bad lines skipped): every line is checked before the model is loaded."""
    from flan_jax.errors import UserError

    total, bad = 0, 0
    for lineno, _, problem in _records(args.input_file, args.mode):
        if problem is None:
            total += 1
            continue
        if not args.skip_bad_lines:
            raise UserError(f"{args.input_file}:{lineno}: {problem}. Fix the line or pass "
                            "--skip_bad_lines.")
        bad += 1
    if not total:  # no output file to report
        raise UserError(f"{args.input_file} has no records"
                        + (f" ({bad} bad lines skipped)" if bad else "")
                        + f": nothing to do; {args.output_file} was not written.")
    return total, bad


def _resume_position(args, total: int, writer: bool) -> int:
    """How many records the output file already holds (0 when starting anew), agreed by every
    process; refuses (UserError) an output made another way."""
    import jax

    from flan_jax.errors import UserError

    done, refusal = 0, None
    if writer:
        if args.overwrite:
            for path in (args.output_file, _meta_path(args.output_file)):
                if paths.as_path(path).exists():
                    paths.as_path(path).unlink()
        done = _resume(args.output_file, cut=False)
        if done:
            refusal = _check_resume(args, done)
        if refusal is None:
            done = _resume(args.output_file)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        done = int(multihost_utils.broadcast_one_to_all(np.int32(-1 if refusal else done)))
        if done < 0 and refusal is None:
            refusal = "process 0 refused to resume the output file (see its message)."
    if refusal:
        raise UserError(refusal)
    if done > total:
        raise UserError(f"{args.output_file} already has {done} lines but {args.input_file} "
                        f"has only {total} valid records; is it the output of another input "
                        "file?")
    return done


def _infer_remaining(args, done: int, total: int, writer: bool) -> dict[str, int]:
    """Loads the model and writes the records after the first `done`, chunk by chunk; returns
    the truncation counts."""
    import hashlib

    from flan_jax.checkpoints import load_model_dir
    from flan_jax.errors import UserError
    from flan_jax.models import build_model
    from flan_jax.placement import LoadedModel, Placement
    from flan_jax.progress import BUCKET_STORE_EVERY_S, ProgressLine

    try:
        placement = Placement.from_gin()
        cfg, params, vocab = load_model_dir(args.checkpoint, placement)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    loaded = LoadedModel(build_model(cfg), params, vocab, placement)
    stats: dict[str, int] = {}
    progress = ProgressLine(f"infer {args.mode}", total, initial=done, enabled=writer)
    index, chunk = 0, []
    digest = hashlib.sha256()  # of the valid records so far, in order
    digests = []
    if writer and paths.as_path(_meta_path(args.output_file)).exists():
        digests = json.loads(paths.as_path(_meta_path(args.output_file)).read_text(
            encoding="utf-8"))["input_digests"]
    digests = [d for d in digests if d[0] <= done]
    # Locally the output is appended after each chunk. A bucket object cannot be appended to:
    # the whole output is rewritten, at most every BUCKET_STORE_EVERY_S seconds (chunks done
    # since wait in memory; a crash recomputes them). The sidecar's digests are stored only
    # with the lines they vouch for.
    with (paths.TextAppender(args.output_file, bucket_every_s=BUCKET_STORE_EVERY_S)
          if writer else open(os.devnull, "w")) as out:
        def flush():
            results = _process(args.mode, args, loaded, chunk, index - len(chunk), stats)
            out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
            if writer:
                digests.append([index, digest.hexdigest()])
                if out.flush():
                    _write_meta(args, digests)
            progress.update(len(chunk))
            chunk.clear()

        for _, record, problem in _records(args.input_file, args.mode):
            if problem is not None:
                continue
            index += 1
            _record_digest(digest, record)
            if index <= done:
                continue
            chunk.append(record)
            if len(chunk) >= args.chunk_size:
                flush()
        if chunk:
            flush()
    if writer:  # the output is stored whole now (closed)
        _write_meta(args, digests)
    progress.close()
    return stats


def _run(args) -> None:
    """Arguments, then where to resume, then the run; one summary line on stderr."""
    import jax

    _check_arguments(args)
    total, bad = _count_records(args)  # every line checked before the model is loaded
    writer = jax.process_index() == 0  # every process computes; process 0 writes
    done = _resume_position(args, total, writer)
    stats = _infer_remaining(args, done, total, writer) if done < total else {}
    parts = [f"{total - done} records written to {args.output_file}"]
    if done:
        parts.append(f"{done} already there (resumed)")
    if bad:
        parts.append(f"{bad} bad lines skipped")
    parts.append(f"{stats.get('inputs_truncated', 0)} inputs and "
                 f"{stats.get('targets_truncated', 0)} targets/options truncated "
                 f"(--max_input_length {args.max_input_length}, "
                 f"--max_target_length {args.max_target_length})")
    print("flan-jax infer: " + "; ".join(parts) + ".", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from flan_jax import config

    return config.run_command("flan-jax infer", sys.argv[1:] if argv is None else argv, _run,
                              description=__doc__, add_arguments=_add_arguments,
                              imports=_import_configurables)


def _import_configurables(files, bindings) -> None:
    """Every configurable this command may touch, before gin locks the config."""
    import flan_jax.checkpoints  # noqa: F401
    import flan_jax.placement  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
