"""Write a model folder so that nothing half-written is ever visible under its final name."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator, Sequence

from etils import epath

from flan_jax import paths

# The file each reader looks for first (flan-jax: model.gin; transformers: config.json): on a
# bucket it is copied last, so a folder without it is one still being written.
ENTRY_FILES = ("model.gin", "config.json")


@contextlib.contextmanager
def staged_directory(dst: epath.Path,
                     entry_files: Sequence[str] = ENTRY_FILES) -> Iterator[epath.Path]:
    """A fresh folder beside `dst` to write into: moved to `dst` (replacing it) when the block
    ends, removed when the block fails.

    Locally the move is one rename. A bucket has no folder rename (gcsfs would copy and
    delete object by object, in no useful order), so there every object is copied inside the
    store, the `entry_files` last: until they are there, `dst` is no model folder."""
    paths.ensure_dir(dst.parent)  # on a bucket: nothing to create (and no bucket created)
    tmp = dst.parent / f".{dst.name}.partial-{uuid.uuid4().hex[:8]}"
    paths.ensure_dir(tmp)
    try:
        yield tmp
    except BaseException:
        if tmp.exists():
            tmp.rmtree()
        raise
    if dst.exists():
        dst.rmtree()
    if not paths.is_url(dst):
        tmp.rename(dst)
        return
    files = sorted(_files(tmp), key=lambda p: p.name in entry_files)
    for f in files:
        f.copy(dst / f.relative_to(tmp), overwrite=True)
    tmp.rmtree()


def _files(folder: epath.Path) -> Iterator[epath.Path]:
    for p in folder.iterdir():
        if p.is_dir():
            yield from _files(p)
        else:
            yield p
