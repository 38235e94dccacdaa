"""The rows of `flan-jax data prepare`'s status table: one dataset (a TFDS builder or a set of
fetched files), the tasks that use it, and how its preparation went. Shared by the command
(flan_jax/data/cli.py) and the Flan 2022 downloads it runs (tasks/flan2022/downloads.py)."""

from __future__ import annotations

import dataclasses

READY = "ready"
MANUAL = "needs manual download"
FAILED = "failed"


@dataclasses.dataclass
class Row:
    tfds_name: str
    used_by: list[str]
    manual_download: str | None = None
    status: str = ""
    detail: str = ""
    source: object = None  # a tasks.spec.TextFileSource: fetched, not built by TFDS
