"""The Flan 2022 sources that are files, not TFDS datasets, and how `flan-jax data prepare`
fetches them: resumable, file by file, one status row per source.

    niv2    Super-NaturalInstructions task JSONs (allenai/natural-instructions, one file a task,
            the 57 MMLU-derived tasks not fetched)      -> DATA/niv2/tasks/TASK.json
    t0_sf   the first train shard of each of the 193 T0-SF prompts of bigscience/P3 (parquet;
            the older tfrecord where the parquet is not served)  -> DATA/p3/PROMPT/train.*
    mmlu    hendrycks' MMLU archive (dev/val/test CSVs)  -> DATA/mmlu/data/{dev,val,test}/
    bbh     BIG-Bench Hard task JSONs and CoT prompts    -> DATA/bbh/{bbh,cot-prompts}/

DATA is `tasks.text_file_dir()` (gin `tasks.text_file_dir.path`, else
$TFDS_DATA_DIR/flan_jax_files, TFDS's data dir being ~/tensorflow_datasets by default), where
the Chain-of-Thought files go too.
A file is written as FILE.part and renamed when complete; a re-run skips complete files and
resumes a .part with an HTTP Range request, so an interrupted prepare loses nothing. A source
whose files cannot all be fetched is reported with what to do; the other sources go on.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import urllib.request
from typing import Callable, Sequence

NIV2_URL = "https://raw.githubusercontent.com/allenai/natural-instructions/master/tasks/{}.json"
P3_PARQUET_URL = ("https://huggingface.co/datasets/bigscience/P3/resolve/refs%2Fconvert%2F"
                  "parquet/{}/train/0000.parquet")
P3_TFRECORD_URL = ("https://huggingface.co/datasets/bigscience/P3/resolve/main/data/{}/"
                   "train.tfrecord-00000-of-00001")
MMLU_URL = "https://people.eecs.berkeley.edu/~hendrycks/data.tar"
BBH_URL = "https://raw.githubusercontent.com/suzgunmirac/BIG-Bench-Hard/main/{}"
CHUNK = 1 << 20


def data_dir() -> str:
    """Where the file sources live: `tasks.text_file_dir` (gin `tasks.text_file_dir.path`),
    the folder of the Chain-of-Thought files too."""
    from tasks import sources

    return sources.text_file_dir()


@dataclasses.dataclass(frozen=True)
class Download:
    """One file, from the first of its (destination relative to the data dir, URL) choices that
    can be fetched (P3: the parquet shard, else the older tfrecord)."""

    choices: tuple[tuple[str, str], ...]
    extract_to: str | None = None  # a tar archive unpacked into this relative folder

    @property
    def dest(self) -> str:
        return self.choices[0][0]


@dataclasses.dataclass(frozen=True)
class FileSource:
    name: str
    downloads: Callable[[], list[Download]]
    manual: str  # what a user does when fetching fails


def _niv2() -> list[Download]:
    from tasks.flan2022 import niv2

    return [Download(tuple((f"niv2/tasks/{s}.json", NIV2_URL.format(s))
                           for s in niv2.spellings()[t])) for t in niv2.task_names()]


def _t0_sf() -> list[Download]:
    from tasks.flan2022 import t0

    return [Download(((f"p3/{p.name}/train.parquet", P3_PARQUET_URL.format(p.name)),
                      (f"p3/{p.name}/train.tfrecord-00000-of-00001",
                       P3_TFRECORD_URL.format(p.name))))
            for p in t0.prompts()]


def _mmlu() -> list[Download]:
    return [Download((("mmlu/data.tar", MMLU_URL),), extract_to="mmlu")]


def _bbh() -> list[Download]:
    from tasks.flan2022 import bbh

    return [Download(((f"bbh/{kind}/{t}.{ext}", BBH_URL.format(f"{kind}/{t}.{ext}")),))
            for t in bbh.TASKS for kind, ext in (("bbh", "json"), ("cot-prompts", "txt"))]


SOURCES = {s.name: s for s in (
    FileSource("niv2", _niv2, "put the task JSONs of github.com/allenai/natural-instructions "
               "(its tasks/ folder) into DATA/niv2/tasks/"),
    FileSource("t0_sf", _t0_sf, "put each prompt's train file from huggingface.co/datasets/"
               "bigscience/P3 (parquet, or data/PROMPT/train.tfrecord-00000-of-00001) into "
               "DATA/p3/PROMPT/"),
    FileSource("mmlu", _mmlu, f"download {MMLU_URL} and unpack it into DATA/mmlu/ (giving "
               "DATA/mmlu/data/dev/...)"),
    FileSource("bbh", _bbh, "put bbh/*.json and cot-prompts/*.txt of github.com/suzgunmirac/"
               "BIG-Bench-Hard into DATA/bbh/"),
)}

# Which sources a name reads: the sources themselves, the mixtures built on them, the collection.
_READERS = {
    "flan2022": ("niv2", "t0_sf", "mmlu", "bbh"), "flan2022_submix": ("niv2", "t0_sf"),
    "flan2022_niv2_submix": ("niv2",), "flan2022_t0_submix": ("t0_sf",),
    "mmlu_5shot": ("mmlu",), "bbh_3shot": ("bbh",), "bbh_cot_3shot": ("bbh",),
}
_PREFIXES = {"flan2022_niv2_": "niv2", "flan2022_t0_": "t0_sf", "mmlu_": "mmlu", "bbh_": "bbh"}


def sources_for(name: str) -> list[FileSource]:
    """The file sources a source, task, mixture or collection name reads ([] for none)."""
    if name in SOURCES:
        return [SOURCES[name]]
    if name in _READERS:
        return [SOURCES[s] for s in _READERS[name]]
    return [SOURCES[s] for p, s in _PREFIXES.items() if name.startswith(p)][:1]


def _open(url: str, start: int):
    request = urllib.request.Request(url, headers={"User-Agent": "flan-jax"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=60)  # noqa: S310 - https URLs above


def fetch_file(url: str, dest: str, opener: Callable = _open) -> None:
    """Downloads `url` to `dest` through `dest.part`, resuming a partial download."""
    part = dest + ".part"
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    start = os.path.getsize(part) if os.path.exists(part) else 0
    with opener(url, start) as response:
        resumed = start and getattr(response, "status", 200) == 206
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
    os.replace(part, dest)


def _extract(archive: str, folder: str) -> None:
    done = os.path.join(folder, ".extracted")
    if os.path.exists(done):
        return
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    open(done, "w").close()


def fetch(download: Download, root: str, opener: Callable = _open) -> None:
    """One download (skipped when complete); the next URL is tried when one fails."""
    done = [d for d, _ in download.choices if os.path.exists(os.path.join(root, d))]
    dest = os.path.join(root, done[0] if done else download.dest)
    if not done:
        error: Exception | None = None
        for rel, url in download.choices:
            dest = os.path.join(root, rel)
            try:
                fetch_file(url, dest, opener)
                error = None
                break
            except OSError as e:  # urllib's HTTPError and URLError are OSErrors
                error = e
        if error is not None:
            raise error
    if download.extract_to:
        _extract(dest, os.path.join(root, download.extract_to))


def _one_line(e: BaseException) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 160 else text[:157] + "..."


def prepare(source: FileSource, root: str | None = None, opener: Callable = _open,
            log: Callable[[str], None] = lambda s: None) -> tuple[bool, str]:
    """(complete, detail) after fetching every file of `source` that is not complete yet: where
    the files are, or how many are missing, the first reason and what to do."""
    root = root or data_dir()
    downloads = source.downloads()
    failures: list[tuple[Download, Exception]] = []
    for i, d in enumerate(downloads, 1):
        try:
            fetch(d, root, opener)
        except (OSError, tarfile.TarError) as e:
            failures.append((d, e))
        if i % 100 == 0 or i == len(downloads):
            log(f"{source.name}: {i}/{len(downloads)} files ({len(failures)} failed)")
    if not failures:
        return True, f"{len(downloads)} files in {root}"
    first, error = failures[0]
    what_to_do = source.manual.replace("DATA", root)
    return False, (f"{len(failures)} of {len(downloads)} files missing (first: {first.dest}: "
                    f"{_one_line(error)}); re-run to resume, or {what_to_do}")


def missing_files(source: FileSource, root: str | None = None) -> list[str]:
    """The files of `source` not yet in the data dir (nothing is fetched)."""
    root = root or data_dir()
    return [d.dest for d in source.downloads()
            if not any(os.path.exists(os.path.join(root, rel)) for rel, _ in d.choices)]


def source_names(name: str, subset: Sequence[str] | None = None) -> list[str]:
    """The names of the file sources `name` reads (those in `subset` when given)."""
    return [s.name for s in sources_for(name) if not subset or s.name in subset]
