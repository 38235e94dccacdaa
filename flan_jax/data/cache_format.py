"""The pre-tokenized data cache: its layout, record format and metadata. No TensorFlow.

    DIR/cache.json                    what the cache holds; written last (a finished cache)
    DIR/<spm file>                    the SentencePiece model, when the vocabulary has one
    DIR/tasks/<task>/task.json        one finished task: examples, shards, fingerprint, rate
    DIR/tasks/<task>/shard-NNNNN.array_record
                                      its examples in order; a shard appears under its name
                                      only once it is complete (written as .tmp, then renamed)

A record is one tokenized example: `len(features)` little-endian uint32 lengths, then each
feature's int32 tokens in the order of `cache.json`'s "features". Examples are stored as the
task produced them for the cache's feature lengths (seqio trims and appends EOS), unpacked:
packing happens when reading (`packing`), so one cache serves both model families.

`flan_jax.data.cache_writer` builds a cache (with seqio); `flan_jax.data.cache_reader` reads one
(Grain).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Mapping, Sequence

import numpy as np
from etils import epath

from flan_jax.errors import UserError

FORMAT = 1
METADATA = "cache.json"
TASK_METADATA = "task.json"
TASKS_DIR = "tasks"


def build_command(name: str, out: str) -> str:
    return f"flan-jax data cache {name} --out {out}"


def encode(example: Mapping[str, np.ndarray], features: Sequence[str]) -> bytes:
    arrays = [np.asarray(example[k], "<i4").ravel() for k in features]
    header = np.array([a.size for a in arrays], "<u4").tobytes()
    return header + b"".join(a.tobytes() for a in arrays)


def decode(record: bytes, features: Sequence[str]) -> dict[str, np.ndarray]:
    n = len(features)
    sizes = np.frombuffer(record, "<u4", count=n) if len(record) >= 4 * n else None
    if sizes is None or len(record) != 4 * (n + int(sizes.sum(dtype=np.int64))):
        raise UserError(f"a record of the data cache is malformed ({len(record)} bytes, not "
                        f"the {n} lengths and tokens of {', '.join(features)}): the cache is "
                        "damaged or from another format; rebuild it into a new folder.")
    out, offset = {}, 4 * n
    for k, size in zip(features, sizes):
        out[k] = np.frombuffer(record, "<i4", count=int(size), offset=offset).astype(np.int32)
        offset += 4 * int(size)
    return out


def task_dir(cache_dir: epath.Path, task: str) -> epath.Path:
    return cache_dir / TASKS_DIR / task


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.array_record"


def write_json_atomic(path: epath.Path, data: dict) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.rename(path)


@dataclasses.dataclass(frozen=True)
class CachedTask:
    name: str
    rate: float
    examples: int
    shards: tuple[str, ...]  # file names under the task's folder
    fingerprint: str
    truncation: dict  # {"sampled", "cut": {feature: n}, "longest": {feature: n}}


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """A finished cache, as `cache.json` describes it."""
    path: epath.Path
    mixture: str
    split: str
    features: tuple[str, ...]
    feature_lengths: dict
    vocabulary: dict  # vocab.json contents ("kind", "file", "sha256")
    tasks: dict  # task name -> CachedTask
    fingerprint: str  # of the whole cache: changes when any task's data would

    def files(self, task: str) -> list[str]:
        folder = task_dir(self.path, task)
        return [str(folder / s) for s in self.tasks[task].shards]

    def vocab_file(self) -> str | None:
        name = self.vocabulary.get("file")
        return str(self.path / name) if name else None

    def select(self, name: str, resolve_mixture=None) -> dict[str, float]:
        """{task: rate} for training on `name`: the cached mixture, one cached task, or (with
        `resolve_mixture(name) -> {task: rate}`, which needs seqio) another mixture whose tasks
        are all cached."""
        if name == self.mixture:
            return {t: c.rate for t, c in self.tasks.items()}
        if name in self.tasks:
            return {name: 1.0}
        held = (f"the cache {self.path} holds {self.mixture!r} ({len(self.tasks)} tasks)")
        if resolve_mixture is None:
            raise UserError(f"{held}, not {name!r}: train on {self.mixture!r} or one of its "
                            f"tasks, or build a cache of {name!r} "
                            f"(`{build_command(name, 'DIR')}`).")
        wanted = resolve_mixture(name)
        missing = sorted(set(wanted) - set(self.tasks))
        if missing:
            raise UserError(f"{held}; {name!r} also needs {len(missing)} task(s) it does not "
                            f"hold: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}"
                            f". Build a cache of {name!r} (`{build_command(name, 'DIR')}`).")
        return wanted


def cache_fingerprint(tasks: Mapping[str, CachedTask], feature_lengths: Mapping[str, int],
                      vocabulary: Mapping) -> str:
    h = hashlib.sha256(json.dumps(
        {"lengths": dict(feature_lengths), "vocab": dict(vocabulary),
         "tasks": {t: [c.fingerprint, c.examples, c.rate] for t, c in sorted(tasks.items())}},
        sort_keys=True).encode())
    return h.hexdigest()[:16]


def task_from_json(name: str, d: dict) -> CachedTask:
    return CachedTask(name, float(d["rate"]), int(d["examples"]), tuple(d["shards"]),
                      d["fingerprint"], d.get("truncation", {}))


def open_cache(cache_dir: str | None) -> CacheInfo:
    """The finished cache at `cache_dir`, or a UserError that says what is wrong with it and
    how to (re)build it."""
    if not cache_dir:
        raise UserError("DataConfig.source = 'cache' needs DataConfig.cache_dir: the folder "
                        "`flan-jax data cache MIXTURE --out DIR` wrote.")
    path = epath.Path(cache_dir)
    meta = path / METADATA
    if not meta.exists():
        if not path.exists():
            raise UserError(f"no data cache at {cache_dir}: build it with "
                            f"`{build_command('MIXTURE', cache_dir)}`.")
        finished = list((path / TASKS_DIR).glob(f"*/{TASK_METADATA}")) \
            if (path / TASKS_DIR).exists() else []
        raise UserError(f"the data cache at {cache_dir} is half-written ({len(finished)} tasks "
                        "finished, no cache.json): re-run the `flan-jax data cache` command "
                        "that built it; it continues from the finished shards.")
    command = build_command("MIXTURE", cache_dir)
    try:
        d = json.loads(meta.read_text())
        command = d.get("command", command)
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')}, this version reads {FORMAT}")
        tasks = {t: task_from_json(t, v) for t, v in d["tasks"].items()}
        info = CacheInfo(path, d["mixture"], d["split"], tuple(d["features"]),
                         dict(d["feature_lengths"]), dict(d["vocabulary"]), tasks,
                         d["fingerprint"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{meta} is not a data cache this version can read ({e}): rebuild it "
                        f"with `{command}` into a new folder.") from None
    for t in tasks:
        for f in info.files(t):
            if not epath.Path(f).exists():
                raise UserError(f"the data cache at {cache_dir} is damaged: {f} is missing. "
                                "Rebuild it into a new folder with "
                                f"`{command}`.")
    return info


def check_vocabulary(info: CacheInfo, vocab_json: epath.Path) -> None:
    """Refuses a cache tokenized with another vocabulary than a model directory's vocab.json
    (a resumed run, or INIT_CHECKPOINT)."""
    if not vocab_json.exists():
        return
    theirs = json.loads(vocab_json.read_text())
    same = theirs.get("kind") == info.vocabulary.get("kind")
    if same and info.vocabulary.get("kind") == "sentencepiece":
        spm = vocab_json.parent / theirs.get("file", "")
        same = spm.exists() and hashlib.sha256(spm.read_bytes()).hexdigest() == \
            info.vocabulary.get("sha256")
    if not same:
        raise UserError(f"the data cache at {info.path} is tokenized with another vocabulary "
                        f"({info.vocabulary.get('file') or info.vocabulary.get('kind')}) than "
                        f"{vocab_json.parent} ({theirs.get('file') or theirs.get('kind')}): "
                        "build a cache with that model's vocabulary (tasks registered with it).")
