"""The one path layer: every file flan-jax reads or writes goes through `etils.epath`.

`as_path` turns what a user typed (a local path or a `gs://` / `s3://` URL) into an
`epath.Path`; the helpers below do what plain `open`, `os.replace` and `os.access` did, in a way
that also works on a bucket, and without ever turning a URL into a local folder (no `gs:`
directory: `pathlib.Path("gs://b/x")` would mean `gs:/b/x`, and `.resolve()` makes it local).

Buckets are reached through fsspec (gcsfs for `gs://`), never TensorFlow's gfile: the core runs
where TensorFlow is not installed, and gfile's GCS client cannot be pointed at another endpoint
(an emulator). `EPATH_USE_TF=1` in the environment brings gfile back.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import re
import time
import uuid
from typing import IO

from etils import epath

PathLike = str | os.PathLike


def _configure_backends() -> None:
    # epath picks tf.io.gfile for URLs whenever TensorFlow is importable; fsspec otherwise.
    os.environ.setdefault("EPATH_USE_TF", "false")
    try:
        import fsspec
    except ImportError:  # local paths only
        return
    # Listings are never cached: checkpoints are written beside gcsfs (by tensorstore, by other
    # processes, by an earlier run), and a stale listing would hide a saved step.
    fsspec.config.conf.setdefault("gcs", {}).setdefault("cache_timeout", 0)


_configure_backends()


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: PathLike) -> bool:
    """Whether `path` names an object store (`gs://bucket/...`, `s3://...`), not a local path."""
    return _URL.match(os.fspath(path)) is not None


def as_path(path: PathLike) -> epath.Path:
    """An `epath.Path`: local paths made absolute (symlinks resolved), URLs left as they are."""
    if isinstance(path, epath.Path) and is_url(path):
        return path
    text = os.fspath(path)
    if is_url(text):
        return epath.Path(text)
    return epath.Path(pathlib.Path(text).expanduser().resolve())


def display(path: PathLike) -> str:
    """How a path appears in messages: as the user wrote it (URLs keep their `gs://`)."""
    return os.fspath(path)


def ensure_dir(path: PathLike) -> epath.Path:
    """Creates a local folder (and its parents). On a bucket folders are only name prefixes,
    so nothing is created there (gcsfs would create a missing *bucket*, which a typo must not)."""
    path = as_path(path)
    if not is_url(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _temporary_beside(path: epath.Path) -> epath.Path:
    return path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes `data` so that no reader ever sees a half-written file under `path`.

    Locally: to a temporary name in the same folder, then renamed into place. On a bucket an
    object becomes visible only once its upload completes (GCS and S3 uploads are atomic), so
    it is written under its final name directly: a rename there would be a copy and a delete,
    three requests instead of one, with no gain."""
    path = as_path(path)
    if is_url(path):
        path.write_bytes(data)
        return
    ensure_dir(path.parent)
    tmp = _temporary_beside(path)
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(Exception):
            if tmp.exists():
                tmp.unlink()
        raise


def write_text_atomic(path: PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Copies one file between any two places epath reaches (local <-> bucket)."""
    write_bytes_atomic(dst, as_path(src).read_bytes())


def move(src: PathLike, dst: PathLike) -> None:
    """Renames a file. On a bucket a "folder" exists only once something is in it (which
    epath's rename insists on), so there the object is copied, then the original removed."""
    src, dst = as_path(src), as_path(dst)
    if is_url(src) and is_url(dst):
        src.copy(dst, overwrite=True)  # a copy inside the store, not through this machine
        src.unlink()
    elif is_url(src) or is_url(dst):
        write_bytes_atomic(dst, src.read_bytes())
        src.unlink()
    else:
        ensure_dir(dst.parent)
        src.rename(dst)


def modified_time(path: PathLike) -> float:
    """When the file was last written (seconds since the epoch); now, where the store does not
    say."""
    path = as_path(path)
    if not is_url(path):
        return os.stat(os.fspath(path)).st_mtime
    return float(path.stat().mtime) or time.time()


def append_text(path: PathLike, text: str) -> None:
    """Appends `text` to a file. Object stores cannot append: there the file is rewritten
    whole (atomically), so use it for small files (metrics, reports), not bulk output."""
    path = as_path(path)
    if not is_url(path):
        with open(os.fspath(path), "a", encoding="utf-8") as f:
            f.write(text)
        return
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text_atomic(path, old + text)


class TextAppender:
    """An open-for-append text file that works on buckets too.

    Locally it is a plain file opened with "a". On an object store the whole content is kept
    in memory and the object is rewritten (atomically) by `flush`, since objects cannot be
    appended to. Each rewrite uploads the whole file, so on a bucket `flush` writes at most
    once every `bucket_every_s` seconds (text written since stays in memory); `sync` and
    `close` always write. Callers make their own points of no loss with `sync` (the trainer at
    each checkpoint: lines after it are replayed on resume anyway)."""

    def __init__(self, path: PathLike, bucket_every_s: float = 0.0):
        self.path = as_path(path)
        self._remote = is_url(self.path)
        self._every = bucket_every_s
        self._written_at = -math.inf
        if self._remote:
            self._text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            self._dirty = False
        else:
            self._file: IO[str] = open(os.fspath(self.path), "a", encoding="utf-8")

    def write(self, text: str) -> None:
        if self._remote:
            self._text += text
            self._dirty = True
        else:
            self._file.write(text)

    def flush(self) -> bool:
        """Makes what was written visible (on a bucket: unless the last rewrite was less than
        `bucket_every_s` ago). Returns whether everything written so far is now stored."""
        if not self._remote:
            self._file.flush()
            return True
        if self._dirty and time.monotonic() - self._written_at >= self._every:
            self.sync()
        return not self._dirty

    def sync(self) -> None:
        """Stores everything written so far, now."""
        if not self._remote:
            self._file.flush()
        elif self._dirty:
            write_text_atomic(self.path, self._text)
            self._dirty, self._written_at = False, time.monotonic()

    def close(self) -> None:
        self.sync()
        if not self._remote:
            self._file.close()

    def __enter__(self) -> "TextAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_bucket_writable(path: PathLike, what: str) -> None:
    """Raises `UserError` unless the bucket folder `path` can be written: a small probe object
    is written and removed, which fails without credentials, without the bucket or without
    permission; the message names the path and the client's error in one line."""
    from flan_jax.errors import UserError

    shown = display(path)
    check_reachable(path)
    path = as_path(path)
    probe = path / f".flan_jax_probe-{uuid.uuid4().hex[:8]}"
    try:
        is_file = path.exists() and not path.is_dir()
        if not is_file:
            probe.write_text("")
            probe.unlink()
    except Exception as e:  # noqa: BLE001 - any client error means "cannot be written"
        cause = ("no such bucket, " if isinstance(e, FileNotFoundError) else "") + \
            f"{type(e).__name__}: {_one_line(e)}"
        raise UserError(f"{what} {shown} cannot be written ({cause}). Check the bucket name and "
                        "your credentials "
                        "(gcloud auth application-default login).") from None
    if is_file:
        raise UserError(f"{what} {shown} is a file, not a directory.")


# --- failing fast when the store cannot be reached ----------------------------------------------

_URL_IN_TEXT = re.compile(r"\b(gs)://([A-Za-z0-9._-]+)")
_reachable: dict[tuple[str, int], None] = {}
REACH_TIMEOUT_S = 5.0


def storage_endpoint(scheme: str = "gs") -> tuple[str, int, str]:
    """(host, port, where it came from) of the service behind `gs://`: STORAGE_EMULATOR_HOST
    when set (an emulator), else Google Cloud Storage."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator:
        rest = emulator.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        default = 443 if emulator.startswith("https") else 80
        return host, int(port) if port.isdigit() else default, "STORAGE_EMULATOR_HOST"
    return "storage.googleapis.com", 443, "the network connection (a proxy, a firewall)"


def check_reachable(url: PathLike) -> None:
    """Raises `UserError` within seconds when the store behind `url` cannot be reached (no
    network, no DNS, a closed emulator port), instead of the storage client's minute of quiet
    retries and its tracebacks. One TCP connection per endpoint and process; local paths and
    other schemes pass."""
    from flan_jax.errors import UserError

    match = _URL_IN_TEXT.match(os.fspath(url))
    if not match:
        return
    host, port, source = storage_endpoint(match.group(1))
    if (host, port) in _reachable:
        return
    import socket

    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(
            f"cannot reach the storage service for {match.group(0)} ({host}:{port}: "
            f"{type(e).__name__}: {_one_line(e)}). Check {source} and rerun.") from None
    _reachable[(host, port)] = None


def check_urls_reachable(args) -> None:
    """`check_reachable` for every `gs://` URL inside command-line arguments (flags, gin
    bindings such as --gin.MODEL_DIR="'gs://b/run'")."""
    for arg in args:
        for match in _URL_IN_TEXT.finditer(arg):
            check_reachable(match.group(0))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + ("..." if len(text) > 300 else "")
