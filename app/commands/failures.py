"""`mr2probe failures`: a class's misclassified test samples of a run, most confidently wrong first (the lowest
probability of their own label: the likeliest wrong labels)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = ("list a class's (or every class's) misclassified test images of a run (first seed), most confidently wrong "
        "first: the lowest probability of their own label (the likeliest wrong labels)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by mr2probe train")
    parser.add_argument("--class", dest="class_name", default=None, metavar="NAME",
                        help='class name (one that starts with "-": --class=-name); without it, the mistakes on every '
                             "class, the likeliest wrong labels of the test split first")
    parser.add_argument("--predicted", metavar="NAME", default=None,
                        help="only the mistakes predicted as this class (one cell of the confusion matrix)")
    parser.add_argument("--limit", type=int, default=20, help="at most this many samples (default 20)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="the data set folder the run's cache was extracted from: each image's path in full "
                             "(the cache records paths inside the data set)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def run(args: argparse.Namespace) -> int:
    from feature_cache.archives import printable
    from probe import load_report
    from probe.predictions import Predictions
    from probe.report import confusion_cell

    from . import share

    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.data is not None and Path(args.data).is_file():  # an archive: its members are no paths on disk
        raise ValueError(f"--data {args.data} is a file, not a folder: give the folder the data set was extracted "
                         "from, or leave --data out to list the paths inside the data set (an archive's members)")
    report = load_report(args.run_dir)
    index, predicted = confusion_cell(report.class_names, args.class_name, args.predicted, ("--class", "--predicted"))
    predictions = Predictions.load(args.run_dir, len(report.class_names))
    rows = _cache_rows(report, args.run_dir, predictions.failure_rows(index, report.class_names, args.limit,
                                                                      predicted))
    if args.data is not None:
        root = _data_root(Path(args.data), [row["source"] for row in rows if row["source"] is not None])
        rows = [{**row, "source": None if row["source"] is None else str(root / row["source"])} for row in rows]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    total = len(predictions.failures(index, predicted=predicted))
    ranked = rows and rows[0]["label_probability"] is not None  # a run that stored p(label) (or by confidence)
    shown = ("." if not rows else ":" if total == 1 else f"; the {len(rows)} most confidently wrong:"
             if len(rows) < total else ", most confidently wrong first:")
    # of every class, those predicted as a class are its false positives only: "9 of 449 test images predicted as
    # 7" where the probe predicted 48 as 7 (a new-user round)
    what = ("misclassified" if predicted is None else f"predicted as {args.predicted}" if index is not None
            else f"misclassified as {args.predicted}")
    inside = "" if args.data is not None or not rows else " (paths inside the data set; --data DIR prints them whole)"
    of = len(predictions.labels) if index is None else int((predictions.labels == index).sum())
    print(f"{'every class' if index is None else args.class_name}: {total} of {of} test images {what} "
          f"(first seed){inside}{shown}")
    for row in rows:  # escaped: a cache written before such file names were skipped may hold them
        where = printable(row["source"]) if row["source"] is not None else f"test row {row['index']}"
        # p(label) first and the predicted class's probability after its name, as label-issues prints them (a bare
        # leading per cent read as the share labelled so, a new-user round)
        label = f"p(label) {share(row['label_probability'])}  " if ranked else ""
        true = "" if index is not None else f"labelled {row['true']:<20} "
        print(f"  {label}{true}predicted {row['predicted']:<20} {share(row['confidence'])}  {where}")
    return 0


def _data_root(data: Path, sources: list[str]) -> Path:
    """The folder the listed ``sources`` (paths inside the data set) lie under: ``data``, or its parent where they
    start with its own name (a zip made from the folder keeps it as its top folder; ``--data`` naming that folder
    printed .../digits_tt/digits_tt/test/9/img.png, a path that exists nowhere, a new-user round). Otherwise
    ``data``, with one warning on stderr naming the files missing there and the folder they need."""
    import sys

    missing = [source for source in sources if not (data / source).is_file()]
    if not missing:
        return data
    try:  # a symlink to that folder under another name ('ln -s digits_tt dl') names it too (an attack round)
        named = dict.fromkeys([data, data.resolve()])
    except (OSError, RuntimeError):  # a symlink loop
        named = {data: None}
    for folder in named:
        if all(source.startswith(f"{folder.name}/") and (folder.parent / source).is_file() for source in sources):
            return folder.parent
    first = missing[0]
    print(f"warning: {len(missing)} of the {len(sources)} listed files do not exist under --data {data} (such as "
          f"{data / first}): --data must be the folder these paths start in, the one holding "
          f"{first.split('/')[0]} (the cache records paths inside the data set, such as {first})", file=sys.stderr)
    return data


def _cache_rows(report, run_dir: str, rows: list[dict]) -> list[dict]:
    """The rows with each ``index`` as its row of the cache's test split: a run that left classes out stored
    predictions of the other classes' test images alone, whose positions (``probe.run.kept_rows``) named other rows
    of its cache ('test row 337' for row 377). Its cache unreadable here (moved, a service cache id): as they are,
    their sources naming the images."""
    drop = report.config.get("drop_classes") or []
    if not drop or not rows:
        return rows
    from probe.run import kept_rows

    from ..label_issues import run_cache

    try:
        cache = run_cache(report, run_dir)
        rows_of = kept_rows(cache.labels("test"), list(cache.class_names), drop)
    except (OSError, ValueError):
        return rows
    return [{**row, "index": int(rows_of[row["index"]])} for row in rows]

