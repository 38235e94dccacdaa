"""Write a model folder so that nothing half-written is ever visible under its final name."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from etils import epath

from flan_jax import paths


@contextlib.contextmanager
def staged_directory(dst: epath.Path) -> Iterator[epath.Path]:
    """A fresh folder beside `dst` to write into: renamed to `dst` (replacing it) when the block
    ends, removed when the block fails."""
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
    tmp.rename(dst)
