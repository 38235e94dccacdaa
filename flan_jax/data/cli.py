"""`flan-jax data prepare|cache MIXTURE_OR_TASK`: prepare the TFDS datasets a mixture reads, or
cache its tokenized examples for training without TensorFlow (`flan_jax.data.cache_writer`).

    flan-jax data cache flan2021_heldout_nli_train --out DIR [--split train]
                        [--max_examples_per_task N] [--feature_lengths inputs=1024,targets=256]

    flan-jax data prepare flan2021_heldout_nli_train [--data_dir DIR] [--manual_dir DIR]
                          [--datasets rte,glue/mnli]

MIXTURE_OR_TASK is any registered task or mixture, a collection ("flan2021"), or, for FLAN 2021,
a cluster ("nli") or dataset ("rte"). Each TFDS dataset is prepared once however many tasks read
it; failures do not stop the rest. The run ends with a table, one row per TFDS dataset: ready,
needs manual download (which files go where), or failed (the reason). The exit status is 1 when
any dataset failed. Datasets already prepared are left as they are (TFDS reuses them), so the
command is safe to re-run after fixing a failure.

Cost. Preparing all of FLAN 2021 is large: roughly a few hundred GB of disk under the TFDS data
dir (plus downloads, which TFDS keeps in `DATA_DIR/downloads` and which can be deleted afterwards)
and many hours, dominated by the translation corpora (WMT, ParaCrawl), TriviaQA and the
summarization sets; the classification clusters (NLI, sentiment, paraphrase, commonsense) are a
few GB and minutes to tens of minutes each. Some datasets need files you fetch yourself
(StoryCloze, Newsroom, parts of WMT'16): the table says which and where they go. To prepare a
subset, name a smaller mixture or a cluster (`flan-jax data prepare nli`), or filter with
`--datasets` (our dataset names or TFDS names, comma-separated).

File sources. Flan 2022's NIv2, T0-SF (P3), MMLU and BBH are files, not TFDS datasets: their
rows read `files:niv2` etc. (`flan-jax data prepare niv2|t0_sf|mmlu|bbh`, or any mixture that
reads them). They are fetched file by file into `tasks.flan2022.data_dir` and resumed where a
previous run stopped; see `tasks/flan2022/downloads.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from typing import Sequence

READY = "ready"
MANUAL = "needs manual download"
FAILED = "failed"


@dataclasses.dataclass
class Row:
    """One row of the status table: a dataset (a TFDS builder or a set of fetched files), the
    tasks that use it, and how its preparation went."""
    tfds_name: str
    used_by: list[str]
    manual_download: str | None = None
    status: str = ""
    detail: str = ""
    source: object = None  # a tasks.spec.TextFileSource: fetched, not built by TFDS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-jax data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="download and prepare a mixture's TFDS datasets")
    prep.add_argument("name", metavar="MIXTURE_OR_TASK")
    prep.add_argument("--data_dir", default=None, help="TFDS data dir (default: TFDS's own)")
    prep.add_argument("--manual_dir", default=None,
                      help="where manually downloaded files are (default: DATA_DIR/downloads/"
                           "manual)")
    prep.add_argument("--datasets", default=None,
                      help="comma-separated subset: our dataset names or TFDS names")
    cache = sub.add_parser("cache", help="tokenize a mixture once into ArrayRecord shards "
                                         "that training reads with Grain")
    cache.add_argument("name", metavar="MIXTURE_OR_TASK")
    cache.add_argument("--out", required=True, help="the cache folder (local or gs://)")
    cache.add_argument("--split", default="train")
    cache.add_argument("--feature_lengths", default="inputs=1024,targets=256",
                       help="the TASK_FEATURE_LENGTHS training will use (default: %(default)s)")
    cache.add_argument("--max_examples_per_task", type=int, default=None,
                       help="cache only the first N examples of each task")
    cache.add_argument("--examples_per_shard", type=int, default=50_000)
    return p


def parse_lengths(text: str) -> dict[str, int]:
    """`inputs=1024,targets=256` -> {"inputs": 1024, "targets": 256}."""
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not value.strip().isdigit() or key.strip() not in ("inputs", "targets"):
            raise ValueError(f"--feature_lengths {text!r}: write it as inputs=N,targets=M.")
        out[key.strip()] = int(value)
        if out[key.strip()] < 1:  # a zero length caches nothing useful
            raise ValueError(f"--feature_lengths {text!r}: {key.strip()} is 0; every length must "
                             "be at least 1 (e.g. inputs=1024,targets=256).")
    if "targets" not in out:
        raise ValueError(f"--feature_lengths {text!r} needs a targets length.")
    return out


def cache_main(args) -> int:
    from flan_jax.data import cache_writer
    from flan_jax.errors import UserError, message
    from flan_jax.progress import setup_logging

    setup_logging()
    try:
        plan = cache_writer.Plan(
            args.name, args.split, parse_lengths(args.feature_lengths),
            args.max_examples_per_task, args.examples_per_shard,
            f"flan-jax data cache {args.name} --out {args.out} --split {args.split} "
            f"--feature_lengths {args.feature_lengths} --examples_per_shard "
            f"{args.examples_per_shard}" + (f" --max_examples_per_task {args.max_examples_per_task}"
                                            if args.max_examples_per_task is not None else ""))
        info = cache_writer.build_cache(plan, args.out)
    except (UserError, KeyError, ValueError) as e:
        print(f"flan-jax data cache: {message(e)}", file=sys.stderr)
        return 2
    examples = sum(t.examples for t in info.tasks.values())
    print(f"{info.path}: {len(info.tasks)} task(s), {examples:,} examples of {info.mixture} "
          f"({info.split}, lengths {info.feature_lengths}). Train from it with "
          f"--gin.DataConfig.source=\"'cache'\" --gin.DataConfig.cache_dir=\"'{info.path}'\".")
    return 0


def specs_for(name: str) -> list:
    """The DatasetSpecs a task, mixture, collection (or FLAN 2021 cluster/dataset) reads."""
    import tasks  # noqa: F401 - registers the built-in collections
    from tasks import catalogue

    if name in catalogue.collection_names():
        return list(catalogue.collection_info(name).specs)
    try:
        return catalogue.dataset_specs(name)
    except catalogue.UnknownTaskError:
        from tasks import flan2021  # cluster or dataset shorthand; else UnknownTaskError again

        return flan2021.datasets_for_mixture(name)


def rows_for(specs: Sequence, subset: Sequence[str] | None = None) -> list[Row]:
    """One row per TFDS dataset or set of fetched files (de-duplicated), keeping only `subset`
    when given."""
    from tasks.spec import TextFileSource, TfdsSource

    rows: dict[str, Row] = {}
    for spec in specs:
        if isinstance(spec.source, TextFileSource):  # files fetched by URL (Flan 2022 CoT)
            rows.setdefault(spec.source.name, Row(spec.source.name, [], source=spec.source))
            rows[spec.source.name].used_by.append(spec.name)
        if not isinstance(spec.source, TfdsSource):
            continue  # generated datasets need no preparation
        name = spec.source.name
        rows.setdefault(name, Row(name, [], spec.source.manual_download))
        rows[name].used_by.append(spec.name)
    if subset:
        def matches(row: Row, item: str) -> bool:
            return item in row.used_by or item in (row.tfds_name, row.tfds_name.split(":")[0])

        unknown = [s for s in subset if not any(matches(r, s) for r in rows.values())]
        if unknown:
            raise ValueError(
                f"--datasets: {', '.join(unknown)} not read by this mixture (it reads: "
                f"{', '.join(sorted({n for r in rows.values() for n in r.used_by}))})."
            )
        rows = {k: r for k, r in rows.items() if any(matches(r, s) for s in subset)}
    return list(rows.values())


def file_rows(name: str, subset: Sequence[str] | None) -> list[Row]:
    """Rows ("files:SOURCE") for the file sources `name` reads (Flan 2022's NIv2, T0-SF, MMLU,
    BBH: `tasks.flan2022.downloads`), fetched into their own data dir."""
    import importlib.util

    if importlib.util.find_spec("tasks.flan2022.downloads") is None:
        return []
    from tasks.flan2022 import downloads

    return [Row(f"files:{n}", [name]) for n in downloads.source_names(name, subset)]


def _is_prepared(builder) -> bool:
    return builder.is_prepared()


def _has_files(directory) -> bool:
    import os

    directory = os.fspath(directory)
    return os.path.isdir(directory) and bool(os.listdir(directory))


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def prepare(row: Row, data_dir: str | None, manual_dir: str | None) -> Row:
    import tensorflow_datasets as tfds

    manual = row.manual_download
    try:
        if row.source is not None:
            from tasks import sources

            root = f"{data_dir}/flan_jax_files" if data_dir else None
            row.status, row.detail = READY, sources.prepare_text_files(row.source, root)
            return row
        builder = tfds.builder(row.tfds_name, data_dir=data_dir)
        if _is_prepared(builder):
            row.status, row.detail = READY, f"already prepared in {builder.data_dir}"
            return row
        if manual and not _has_files(manual_dir or builder.data_dir_root / "downloads" / "manual"):
            row.status, row.detail = MANUAL, manual
            return row
        config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
        builder.download_and_prepare(download_config=config)
        row.status, row.detail = READY, str(builder.data_dir)
    except Exception as e:  # noqa: BLE001 - one dataset's failure must not stop the others
        looks_manual = isinstance(e, AssertionError) or "manual" in str(e).lower()
        if manual and looks_manual:
            row.status, row.detail = MANUAL, manual
        else:
            row.status, row.detail = FAILED, _one_line(e)
            if not isinstance(e, (OSError, ConnectionError, AssertionError, ValueError)):
                traceback.print_exc(limit=3, file=sys.stderr)
    return row


def table(rows: Sequence[Row]) -> str:
    head = ("TFDS dataset", "used by", "status", "detail")
    body = [(r.tfds_name, ",".join(r.used_by), r.status, r.detail) for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(3)]
    lines = []
    for cells in [head] + body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells[:3], widths)) + "  " + cells[3])
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(head[3]))
    counts = {s: sum(r.status == s for r in rows) for s in (READY, MANUAL, FAILED)}
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "cache":
        return cache_main(args)
    subset = [s.strip() for s in args.datasets.split(",") if s.strip()] if args.datasets \
        else None
    files = file_rows(args.name, subset)
    tfds_subset = [s for s in subset or () if f"files:{s}" not in {r.tfds_name for r in files}]
    try:
        specs = specs_for(args.name)
        rows = [] if subset and not tfds_subset else rows_for(specs, tfds_subset or None)
    except (KeyError, ValueError) as e:
        if not files:
            print(f"flan-jax data prepare: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
        rows = []
    rows += files
    if not rows:
        print(f"`{args.name}` reads no TFDS datasets: nothing to prepare.")
        return 0
    for i, row in enumerate(rows, 1):
        print(f"[{i}/{len(rows)}] {row.tfds_name} (for {', '.join(row.used_by)}) ...", flush=True)
        if row.tfds_name.startswith("files:"):
            from tasks.flan2022 import downloads

            source = downloads.SOURCES[row.tfds_name.removeprefix("files:")]
            complete, row.detail = downloads.prepare(source, log=print)
            row.status = READY if complete else FAILED
        else:
            prepare(row, args.data_dir, args.manual_dir)
        print(f"[{i}/{len(rows)}] {row.tfds_name}: {row.status}", flush=True)
    print()
    print(table(rows))
    return 1 if any(r.status == FAILED for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
