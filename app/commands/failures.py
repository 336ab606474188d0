"""`mr2probe failures`: a class's misclassified test samples of a run, most confidently wrong first (the lowest
probability of their own label: the likeliest wrong labels)."""
from __future__ import annotations

import argparse
import functools
import json

HELP = ("list a class's (or every class's) misclassified test images of a run (first seed), most confidently wrong "
        "first: the lowest probability of their own label (the likeliest wrong labels)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import add_data_argument, add_run_argument

    add_run_argument(parser)
    parser.add_argument("--class", dest="class_name", default=None, metavar="NAME",
                        help='class name (one that starts with "-": --class=-name); without it, the mistakes on every '
                             "class, the likeliest wrong labels of the test split first")
    parser.add_argument("--predicted", metavar="NAME", default=None,
                        help="only the mistakes predicted as this class (one cell of the confusion matrix)")
    parser.add_argument("--limit", type=int, default=20, help="at most this many samples (default 20)")
    add_data_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def _read(run_dir: str):
    """The run's report and its stored test predictions (``probe.rundir.read_run``: of one run)."""
    from probe import load_report
    from probe.predictions import Predictions

    report = load_report(run_dir)
    return report, Predictions.load(run_dir, len(report.class_names))


def run(args: argparse.Namespace) -> int:
    from feature_cache.archives import printable
    from probe.report_text import confusion_cell, name_cell, name_width
    from probe.splits import cache_test_rows
    from probe.rundir import read_run

    from ..label_issues import run_cache
    from . import check_data_folder, full_paths, share, warn_changed

    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    check_data_folder(args.data)
    report, predictions = read_run(args.run_dir, lambda: _read(args.run_dir))
    index, predicted = confusion_cell(report.class_names, args.class_name, args.predicted, ("--class", "--predicted"),
                                      report.config.get("drop_classes") or ())
    # found and opened once for the rows of a run that left classes out and for the check of the listed files
    cache = functools.lru_cache(maxsize=1)(lambda: run_cache(report, args.run_dir, option=None))
    rows = cache_test_rows(predictions.failure_rows(index, report.class_names, args.limit, predicted), report.config,
                           cache)
    rows = full_paths(rows, args.data)
    if args.data is not None:
        warn_changed(rows, cache)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    total = len(predictions.failures(index, predicted=predicted))
    ranked = rows and rows[0]["label_probability"] is not None  # a run that stored p(label) (or by confidence)
    # by what: ranked by p(label), the last column's confidence (86.3 % under 31.6 %) read as out of order
    by = " (by the lowest p(label))" if ranked else ""
    shown = ("." if not rows else ":" if total == 1 else "; the most confidently wrong one:" if len(rows) == 1
             else f"; the {len(rows)} most confidently wrong{by}:" if len(rows) < total
             else f", most confidently wrong first{by}:")  # 'the 1 most confidently wrong:' read as a slip
    # of every class, those predicted as a class are its false positives only: "9 of 449 test images predicted as
    # 7" where the probe predicted 48 as 7 (a new-user round)
    what = ("misclassified" if predicted is None else f"predicted as {args.predicted}" if index is not None
            else f"misclassified as {args.predicted}")
    inside = "" if args.data is not None or not rows else " (paths inside the data set; --data DIR prints them whole)"
    of = len(predictions.labels) if index is None else int((predictions.labels == index).sum())
    print(f"{'every class' if index is None else args.class_name}: {total} of {of} test images {what} "
          f"(first seed){inside}{shown}")
    width = name_width([name for row in rows for name in (row["true"], row["predicted"])], 20)
    for row in rows:  # escaped: a cache written before such file names were skipped may hold them
        where = printable(row["source"]) if row["source"] is not None else f"test row {row['index']}"
        # p(label) first and the predicted class's probability after its name, as label-issues prints them (a bare
        # leading per cent read as the share labelled so, a new-user round)
        label = f"p(label) {share(row['label_probability'])}  " if ranked else ""
        true = "" if index is not None else f"labelled {name_cell(row['true'], width)} "
        shown = name_cell(row["predicted"], width)
        print(f"  {label}{true}predicted {shown} {share(row['confidence'])}  {where}")
    return 0
