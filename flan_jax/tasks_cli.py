"""`flan-jax tasks list|show`: what is registered, and what its examples look like.

    flan-jax tasks list [--json] [--collection C] [--kind K] [--mixtures] [--module M]
    flan-jax tasks show NAME [-n 3] [--split S] [--mock] [--module M]

`show` prints rendered examples (inputs, targets, options) of a task or mixture; `--mock` serves
TFDS-backed tasks from `tfds.testing.mock_data` and file-backed ones (Flan 2022's NIv2, T0-SF,
MMLU, BBH) from `tasks.flan2022.mock_files`, so they render without any download. Tasks
registered the plain seqio way are listed with collection `-` and a kind inferred from their
metric functions; `--module my_tasks` imports the module that registers them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
from typing import Any, Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flan-jax tasks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="one row per registered task")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ls.add_argument("--collection", help="only this collection (synthetic, flan2021, ...)")
    ls.add_argument("--kind", help="only this kind (train, eval, rank, fewshot_eval, ...)")
    ls.add_argument("--mixtures", action="store_true", help="list mixtures instead of tasks")
    show = sub.add_parser("show", help="print rendered examples of a task or mixture")
    show.add_argument("name")
    show.add_argument("-n", "--num", type=int, default=3, help="examples to print")
    show.add_argument("--split", help="split to read (default: the task's own)")
    show.add_argument("--mock", action="store_true", help="mock TFDS data (no download)")
    for sp in (ls, show):
        sp.add_argument("--module", action="append", default=[],
                        help="import this module first (it registers seqio tasks); repeatable")
    return p


def plain_kind(task: Any) -> str:
    """What a plain seqio task is evaluated by, from its metric functions."""
    if any(getattr(fn, "__name__", "") == "rank_classification" for fn in task.score_metric_fns):
        return "rank"
    if task.score_metric_fns:
        return "score"
    if task.predict_metric_fns or task.predict_with_aux_metric_fns:
        return "generation"
    return "loss"


def _plain_rows(kind: str | None) -> list[dict[str, Any]]:
    import seqio

    from tasks import catalogue

    rows = []
    for name in sorted(seqio.TaskRegistry.names()):
        if name in catalogue.TASKS:
            continue
        task = seqio.get_mixture_or_task(name)
        row = {"name": name, "collection": "-", "cluster": name, "dataset": name,
               "templates": None, "kind": plain_kind(task), "template_index": None,
               "shots": 0, "metrics": [getattr(f, "__name__", str(f)) for f in task.metric_fns]}
        if not kind or row["kind"] == kind:
            rows.append(row)
    return rows


def _task_rows(collection: str | None, kind: str | None) -> list[dict[str, Any]]:
    from tasks import catalogue

    rows = []
    for name in catalogue.task_names(collection):
        info = catalogue.task_info(name)
        if kind and info.kind != kind:
            continue
        rows.append({
            "name": name, "collection": info.collection, "cluster": info.cluster,
            "dataset": info.dataset, "templates": info.num_templates, "kind": info.kind,
            "template_index": info.template_index, "shots": info.num_shots,
            "metrics": list(info.metrics), "style": info.style or None,
        })
    return rows


def _mixture_rows(collection: str | None) -> list[dict[str, Any]]:
    import seqio

    from tasks import catalogue

    return [
        {"name": m, "clusters": list(catalogue.mixture_clusters(m)),
         "tasks": len(seqio.get_mixture_or_task(m).tasks)}
        for m in catalogue.mixture_names(collection)
    ]


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    def cell(v: Any) -> str:
        if isinstance(v, list):
            return ",".join(map(str, v)) or "-"
        return "-" if v is None else str(v)

    table = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())


def _list(args: argparse.Namespace) -> int:
    from tasks import catalogue

    if args.collection and args.collection not in [*catalogue.collection_names(), "-"]:
        print(f"flan-jax tasks: unknown collection `{args.collection}` "
              f"(registered: {', '.join(catalogue.collection_names())}).", file=sys.stderr)
        return 2
    if args.mixtures:
        rows = _mixture_rows(args.collection)
        columns = ["name", "clusters", "tasks"]
    else:
        rows = _task_rows(args.collection, args.kind)
        if args.collection in (None, "-"):
            rows += _plain_rows(args.kind)
        columns = ["name", "collection", "cluster", "dataset", "templates", "kind", "metrics"]
        if any(r.get("style") for r in rows):  # Flan 2022 style tasks
            columns.insert(columns.index("kind") + 1, "style")
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        _print_table(rows, columns)
    return 0


def _default_split(name: str) -> str:
    from tasks import catalogue

    try:
        return catalogue.task_info(name).split
    except KeyError:
        import seqio

        splits = list(getattr(seqio.get_mixture_or_task(name), "splits", ()) or ())
        for split in ("validation", "test", "train"):
            if split in splits:
                return split
        return "train" if name.endswith("_train") else "validation"


def _text(task: Any, ex: dict[str, Any], key: str) -> str:
    # Mixtures keep only the tokenized features: decode them.
    if f"{key}_pretokenized" in ex:
        return ex[f"{key}_pretokenized"].decode("utf-8", "replace")
    return task.output_features[key].vocabulary.decode(ex[key].tolist())


def unprepared_tfds(name: str) -> list[tuple[str, str]]:
    """(TFDS name, data dir) of each TFDS dataset `name` reads that is not prepared, found from
    the builders' metadata without downloading anything, and of each set of text files not
    fetched yet. Plain seqio tasks are not checked."""
    from tasks import catalogue
    from tasks import sources as task_sources
    from tasks.spec import TfdsSource

    try:
        specs = catalogue.dataset_specs(name)
    except KeyError:
        return []
    missing = task_sources.missing_text_files(specs)  # fetched files (Flan 2022 CoT)
    sources = sorted({s.source.name for s in specs if isinstance(s.source, TfdsSource)})
    if not sources:
        return missing
    import tensorflow_datasets as tfds

    for source in sources:
        builder = tfds.builder(source)
        if not builder.is_prepared():
            missing.append((source, str(builder.data_dir_root)))
    return missing


LARGE_MIXTURE = 64  # leaf tasks beyond which `show` samples tasks instead of the mixture


def leaf_rates(mixture: Any) -> dict[str, float]:
    """Each leaf task of a (nested) mixture and its share of the mixture's examples. (Walks
    `rate_per_task_name`: seqio's `Mixture.get_rate` rescans every sub-mixture per task.)"""
    import seqio

    items = {n: seqio.get_mixture_or_task(n) for n in mixture.rate_per_task_name}
    rates = {n: float(r(items[n]) if callable(r) else r)
             for n, r in mixture.rate_per_task_name.items()}
    total = sum(rates.values()) or 1.0
    shares: dict[str, float] = {}
    for name, rate in rates.items():
        parts = leaf_rates(items[name]) if isinstance(items[name], seqio.Mixture) else {name: 1.0}
        for leaf, s in parts.items():
            shares[leaf] = shares.get(leaf, 0.0) + rate / total * s
    return shares


def _examples(task: Any, split: str, num: int):
    """(example, "name" or "mixture -> task") pairs. A mixture of more than LARGE_MIXTURE
    tasks (Flan 2022's NIv2 has 3,112) would build every task's pipeline first: instead, `num`
    tasks are drawn by their rates (seeded) and one example of each is shown."""
    import random

    import seqio

    shares = leaf_rates(task) if isinstance(task, seqio.Mixture) else {}
    if len(shares) <= LARGE_MIXTURE:
        ds = task.get_dataset(None, split=split, shuffle=False)
        for ex in ds.take(num).as_numpy_iterator():
            yield ex, task.name
        return
    names = random.Random(0).choices(list(shares), weights=list(shares.values()), k=num)
    for name in names:
        one = seqio.get_mixture_or_task(name).get_dataset(None, split=split, shuffle=False)
        for ex in one.take(1).as_numpy_iterator():
            yield ex, f"{task.name} -> {name}"


def _show(args: argparse.Namespace) -> int:
    from tasks import catalogue

    try:
        task = catalogue.get_task_or_mixture(args.name)
    except catalogue.UnknownTaskError as e:
        print(f"flan-jax tasks: {e}", file=sys.stderr)
        return 2
    split = args.split or _default_split(args.name)
    missing = [] if args.mock else unprepared_tfds(args.name)
    if missing:  # tfds.load would start downloading them
        names = ", ".join(f"{n} (in {d})" for n, d in missing)
        print(f"flan-jax tasks: `{args.name}` reads TFDS data that is not prepared: {names}. "
              f"Run `flan-jax data prepare {args.name}`, or add --mock to show mock examples.",
              file=sys.stderr)
        return 2
    mock = contextlib.ExitStack()
    if args.mock:
        import tensorflow_datasets as tfds

        from tasks import sources

        mock.enter_context(tfds.testing.mock_data(
            num_examples=max(args.num, 8), policy=tfds.testing.MockPolicy.USE_CODE))
        mock.enter_context(sources.mock_text_files(max(args.num, 8)))
        if importlib.util.find_spec("tasks.flan2022.mock_files") is not None:
            from tasks.flan2022 import mock_files  # file-backed sources read their fixtures

            mock.enter_context(mock_files.active())
    count = 0
    with mock:
        for i, (ex, shown) in enumerate(_examples(task, split, args.num)):
            count += 1
            print(f"=== {shown} [{split}] example {i}")
            for key in ("inputs", "targets"):
                print(f"--- {key}\n" + _text(task, ex, key))
            for key in ("options", "answers"):  # answers: every gold answer (multi-reference)
                if key in ex:
                    values = [v.decode("utf-8", "replace") for v in ex[key]]
                    print(f"--- {key}\n" + "\n".join(f"- {v}" for v in values))
        if not count:  # say why nothing was shown
            from flan_jax.filter_report import no_example_message

            print(f"flan-jax tasks: {no_example_message(args.name, split, args.mock)}",
                  file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    import importlib

    import tasks  # noqa: F401 - registers the built-in collections

    for module in args.module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            print(f"flan-jax tasks: cannot import --module {module}: {e}", file=sys.stderr)
            return 2
    return _list(args) if args.command == "list" else _show(args)


if __name__ == "__main__":
    sys.exit(main())
