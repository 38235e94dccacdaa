"""Builds a data cache (`cache_format`): each task's seqio preprocessing run once, written as
ArrayRecord shards. Needs TensorFlow and seqio, reached through `seqio_source` (names resolved
there) and the task objects it returns; this module imports neither.

    flan-jax data cache MIXTURE_OR_TASK --out DIR [--split train] [--max_examples_per_task N]
                        [--feature_lengths inputs=1024,targets=256]

Tasks run in turn; each writes shards of `examples_per_shard` examples under temporary names
and renames each when complete, then its task.json; cache.json comes last. Killed midway, the
same command continues after the last complete shard. A finished cache is never rewritten: run
again, it checks each task's fingerprint against the registered task and reports the stale
ones (their templates, preprocessors, source or vocabulary changed since).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import re
from typing import Mapping

from etils import epath

from flan_jax.data import cache_format as dc
from flan_jax.data import seqio_source
from flan_jax import input_checks
from flan_jax.errors import UserError

logger = logging.getLogger("flan_jax.data.cache_writer")
BUILD = "build.json"  # the settings of a cache being built (a half-written cache has it)


# --- what a task is: its fingerprint ----------------------------------------------------------

def _callable_id(fn) -> str:
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return name
    return f"{name}:{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def describe(obj, depth: int = 0):
    """A JSON-able description of a preprocessor, source or feature: stable across processes
    (no memory addresses), changed by any argument or source-code change."""
    if depth > 8:
        return "..."
    d = functools.partial(describe, depth=depth + 1)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        return hashlib.sha256(obj).hexdigest()[:16]
    if isinstance(obj, functools.partial):
        return {"partial": d(obj.func), "args": [d(a) for a in obj.args],
                "kwargs": {k: d(v) for k, v in sorted(obj.keywords.items())}}
    if isinstance(obj, Mapping):
        return {str(k): d(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [d(v) for v in obj]
        return sorted(items, key=json.dumps) if isinstance(obj, (set, frozenset)) else items
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj):
        closure = [c.cell_contents for c in (getattr(obj, "__closure__", None) or ())
                   if _has_contents(c)]
        return {"fn": _callable_id(obj), "closure": [d(c) for c in closure]} if closure \
            else _callable_id(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__qualname__,
                **{f.name: d(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    path = getattr(obj, "sentencepiece_model_file", None)
    if path:  # a SentencePiece vocabulary: what it is is the model file
        return {"sentencepiece": _sha256(path), "extra_ids": getattr(obj, "extra_ids", 0)}
    if callable(obj) and hasattr(obj, "__call__") and not isinstance(obj, type):
        return {"type": _callable_id(type(obj)), "state": d(_public_state(obj))}
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _public_state(obj) -> dict:
    return {k: v for k, v in vars(obj).items() if not k.startswith("__")} \
        if hasattr(obj, "__dict__") else {}


def _sha256(path: str) -> str:
    return hashlib.sha256(epath.Path(path).read_bytes()).hexdigest()


def _source_description(source) -> dict:
    out = {"type": type(source).__qualname__}
    loader = getattr(source, "tfds_dataset", None)
    if loader is not None:
        out["tfds"] = getattr(loader, "name", None) or repr(loader)
        out["splits"] = describe(getattr(source, "splits", None))
    fn = getattr(source, "_dataset_fn", None)
    if fn is not None:
        out["dataset_fn"] = describe(fn)
    return out


def task_fingerprint(task, split: str, feature_lengths: Mapping[str, int],
                     max_examples: int | None) -> str:
    spec = {
        "task": task.name, "split": split, "lengths": dict(feature_lengths),
        "max_examples": max_examples, "source": _source_description(task.source),
        "preprocessors": [describe(p) for p in task.preprocessors],
        "features": {k: {"vocabulary": describe(f.vocabulary), "add_eos": f.add_eos,
                         "dtype": str(f.dtype)} for k, f in sorted(task.output_features.items())},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- building --------------------------------------------------------------------------------

@dataclasses.dataclass
class Plan:
    name: str
    split: str
    feature_lengths: dict
    max_examples: int | None
    examples_per_shard: int
    command: str

    def settings(self) -> dict:
        return {"mixture": self.name, "split": self.split,
                "feature_lengths": self.feature_lengths, "max_examples_per_task": self.max_examples,
                "examples_per_shard": self.examples_per_shard}


class _ShardWriter:
    """Writes one shard so that it appears under its final name only when complete: as a
    hidden .tmp file renamed at the end, or, for a bucket (ArrayRecord writes local files), in a
    local temporary file uploaded at the end (an object appears whole)."""

    def __init__(self, folder: epath.Path, name: str):
        import tempfile

        from array_record.python.array_record_module import ArrayRecordWriter

        self.final = folder / name
        self.remote = "://" in str(folder)
        self.local = (epath.Path(tempfile.mkdtemp()) / name if self.remote
                      else folder / f".{name}.tmp")
        self._writer = ArrayRecordWriter(str(self.local), "group_size:1")

    def write(self, record: bytes) -> None:
        self._writer.write(record)

    def close(self) -> str:
        self._writer.close()
        if self.remote:
            self.local.copy(self.final)
            self.local.unlink()
        else:
            self.local.rename(self.final)
        return self.final.name


def write_task(task, rate: float, plan: Plan, out: epath.Path, progress) -> dict:
    """Writes (or finishes) one task's shards; returns its task.json contents."""
    folder = dc.task_dir(out, task.name)
    folder.mkdir(parents=True, exist_ok=True)
    for tmp in folder.glob(".*.tmp"):  # a shard being written when the run was killed
        tmp.unlink()
    done = 0
    while (folder / dc.shard_name(done)).exists():
        done += 1
    per = plan.examples_per_shard
    skip = done * per
    ds = task.get_dataset(sequence_length=plan.feature_lengths, split=plan.split, shuffle=False,
                          num_epochs=1, use_cached=False, trim_output_features=True)
    if plan.max_examples is not None:
        ds = ds.take(plan.max_examples)
    features = list(plan.feature_lengths)
    progress.update(skip)
    shards, count, writer = [dc.shard_name(i) for i in range(done)], skip, None
    for example in ds.skip(skip).as_numpy_iterator():
        if writer is None:
            writer, in_shard = _ShardWriter(folder, dc.shard_name(len(shards))), 0
        writer.write(dc.encode(example, features))
        in_shard += 1
        count += 1
        progress.update(1)
        if in_shard == per:
            shards.append(writer.close())
            writer = None
    if writer is not None:
        shards.append(writer.close())
    if count == 0:
        raise UserError(f"task {task.name!r} has no {plan.split!r} examples: leave it out of "
                        "the mixture or cache another split.")
    return {"rate": rate, "examples": count, "shards": shards,
            "fingerprint": task_fingerprint(task, plan.split, plan.feature_lengths,
                                            plan.max_examples),
            "truncation": seqio_source.truncation_of(task, plan.split, plan.feature_lengths)
            or {"sampled": 0, "cut": {}, "longest": {}}}


def _expected_examples(task, split: str, cap: int | None) -> int:
    try:
        n = task.num_input_examples(split)
    except Exception:  # noqa: BLE001 - an unknown count only makes the ETA rougher
        n = None
    if n is None:
        return cap or 0
    return min(n, cap) if cap is not None else n


def check_settings(out: epath.Path, plan: Plan) -> None:
    """A folder holds one cache: continuing it with other settings is refused."""
    path = out / BUILD
    if path.exists():
        theirs = json.loads(path.read_text())
        diffs = [f"{k}: {theirs.get(k)!r} there, {v!r} now"
                 for k, v in plan.settings().items() if theirs.get(k) != v]
        if diffs:
            raise UserError(f"{out} holds a cache built with other settings ({'; '.join(diffs)})"
                            ": use another --out, or the same settings to continue it.")
    else:
        out.mkdir(parents=True, exist_ok=True)
        dc.write_json_atomic(path, {**plan.settings(), "command": plan.command})


def stale_tasks(info: dc.CacheInfo, split: str, feature_lengths, max_examples) -> list[str]:
    """Cached tasks whose registered definition no longer gives their fingerprint."""
    seqio_source.registered(info.mixture)  # registers the collections
    stale = []
    for name, cached in sorted(info.tasks.items()):
        task = seqio_source.registered_task(name)
        if task is None:
            stale.append(f"{name} (no longer registered)")
            continue
        if task_fingerprint(task, split, feature_lengths, max_examples) != cached.fingerprint:
            stale.append(name)
    return stale


def build_cache(plan: Plan, out: str, show_progress: bool = True) -> dc.CacheInfo:
    """Builds (or finishes) the cache of `plan.name` in `out`; returns it."""
    from flan_jax.progress import ProgressLine

    out_path = epath.Path(out)
    if (out_path / dc.METADATA).exists():
        info = dc.open_cache(out)
        theirs = json.loads((out_path / BUILD).read_text()) if (out_path / BUILD).exists() else {}
        if theirs and theirs.get("mixture") != plan.name:
            raise UserError(f"{out} holds a finished cache of {info.mixture!r}: use another --out.")
        input_checks.check_finished_cache_matches(out, theirs or {
            "split": info.split, "feature_lengths": info.feature_lengths}, plan.settings())
        stale = stale_tasks(info, info.split, info.feature_lengths,
                            theirs.get("max_examples_per_task"))
        if stale:
            raise UserError(f"the cache at {out} is stale for {len(stale)} task(s) whose "
                            f"registered definition changed: {', '.join(stale)}. A finished cache "
                            "is never rewritten: build a new one with --out NEW_DIR.")
        logger.info("%s is a finished, current cache of %s; nothing to do.", out, info.mixture)
        return info

    tasks = seqio_source.tasks_and_rates(plan.name)  # an unknown name fails before writing
    check_settings(out_path, plan)
    vocab_spec, vocab_file = seqio_source.vocabulary_spec(plan.name)
    if vocab_file:
        target = out_path / epath.Path(vocab_file).name
        if not target.exists():
            epath.Path(vocab_file).copy(target)
        vocab_spec = {**vocab_spec, "sha256": _sha256(vocab_file)}
    total = sum(_expected_examples(t, plan.split, plan.max_examples) for t in tasks)
    progress = ProgressLine(f"caching {plan.name}", total, enabled=show_progress)
    cached = {}
    try:
        for task, rate in sorted(tasks.items(), key=lambda kv: kv[0].name):
            meta_path = dc.task_dir(out_path, task.name) / dc.TASK_METADATA
            if meta_path.exists():
                d = json.loads(meta_path.read_text())
                progress.update(int(d["examples"]))
            else:
                d = write_task(task, rate, plan, out_path, progress)
                dc.write_json_atomic(meta_path, d)
            cached[task.name] = dc.task_from_json(task.name, d)
    finally:
        progress.close()
    fingerprint = dc.cache_fingerprint(cached, plan.feature_lengths, vocab_spec)
    dc.write_json_atomic(out_path / dc.METADATA, {
        "format": dc.FORMAT, "mixture": plan.name, "split": plan.split,
        "features": list(plan.feature_lengths), "feature_lengths": plan.feature_lengths,
        "vocabulary": vocab_spec, "fingerprint": fingerprint, "command": plan.command,
        "tasks": {t: {"rate": c.rate, "examples": c.examples, "shards": list(c.shards),
                      "fingerprint": c.fingerprint, "truncation": c.truncation}
                  for t, c in cached.items()}})
    return dc.open_cache(out)
