"""`mr2probe label-issues`: the likeliest wrong labels among a run's train + val images, found out of fold (the run's
chosen configuration fitted k-fold on its cache; ``app.label_issues``)."""
from __future__ import annotations

import argparse
import json
import sys

HELP = ("list the likeliest wrong labels among a run's train + val images: its chosen configuration fitted k-fold "
        "on its cache (first seed, no sweep), each image scored by the fold model that did not train on it; those "
        "predicted otherwise than labelled (or, --method confident-learning, cleanlab's confident-learning filter), "
        "lowest probability of their label first")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.config import DEFAULT_CV_FOLDS, MAX_CV_FOLDS, MIN_CV_FOLDS
    from probe.label_issues import DEFAULT_METHOD, METHODS

    from ..label_issues import MAX_LIMIT
    from . import add_data_argument, add_run_argument

    add_run_argument(parser)
    parser.add_argument("--features", metavar="CACHE.h5", default=None,
                        help="the cache the run was trained on (default: the one its report names); checked by its "
                             "fingerprint")
    parser.add_argument("--folds", type=int, default=None,
                        help=f"stratified folds of train + val, {MIN_CV_FOLDS}..{MAX_CV_FOLDS}: one fit each "
                             f"(default {DEFAULT_CV_FOLDS}, or the smallest class's images there where fewer, "
                             "said in a note)")
    parser.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD,
                        help="which images to list: predicted-neq-given, every image whose out-of-fold prediction "
                             "is not its label; confident-learning, cleanlab's find_label_issues (prune_by_noise_rate: "
                             "per pair of labels as many as the calibrated confident joint counts, of the largest "
                             f"margin), fewer and surer (default {DEFAULT_METHOD}); either ranked by p(label)")
    parser.add_argument("--class", dest="class_name", default=None, metavar="NAME",
                        help="only images labelled NAME (one that starts with \"-\": --class=-name)")
    parser.add_argument("--limit", type=int, default=20, help=f"at most this many images, 1..{MAX_LIMIT} (default 20)")
    add_data_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def run(args: argparse.Namespace) -> int:
    from feature_cache.archives import printable
    from probe import load_report
    from probe.config import MAX_CV_FOLDS, MIN_CV_FOLDS
    from probe.label_issues import METHODS, weak_refit_caution
    from probe.numbers import percent
    from probe.report_text import name_cell, name_width
    from probe.rundir import read_run

    from ..label_issues import MAX_LIMIT, run_cache
    from . import check_data_folder, full_paths, share, warn_changed

    if not 1 <= args.limit <= MAX_LIMIT:
        raise ValueError(f"--limit must be in [1, {MAX_LIMIT}], got {args.limit}")
    if args.folds is not None and not MIN_CV_FOLDS <= args.folds <= MAX_CV_FOLDS:
        raise ValueError(f"--folds must be in [{MIN_CV_FOLDS}, {MAX_CV_FOLDS}], got {args.folds}")
    check_data_folder(args.data)
    index, found = read_run(args.run_dir, lambda: _found(args))
    rows = full_paths(found.rows_of(index, args.limit), args.data)  # the paths to fix the folders by
    if found.note:  # --folds not given, fewer than the default on few-shot data (as the service's job log says)
        print(f"note: {found.note}", file=sys.stderr)
    if args.data is not None:
        warn_changed(rows, lambda: run_cache(load_report(args.run_dir), args.run_dir, args.features))
    caution = weak_refit_caution(found.accuracy)
    if caution:  # before the listing, which it qualifies
        print(f"warning: {caution}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    predictions = found.predictions
    total = found.total(index)
    of = len(predictions.labels) if index is None else int((predictions.labels == index).sum())
    chosen = ", ".join(f"{k}={v:g}" for k, v in found.params.items())
    inside = "" if args.data is not None else "; paths inside the data set, --data DIR prints them whole"
    shown = ("." if not rows else "; the likeliest wrong label:" if len(rows) == 1 < total  # not 'the 1 ... labels'
             else f"; the {len(rows)} likeliest wrong labels:" if len(rows) < total
             else ", likeliest wrong labels first:")
    print(f"{'every class' if index is None else args.class_name}: {total} of {of} train + val images "
          f"{METHODS[found.method]}, out of fold ({found.folds} folds of the run's configuration, {chosen}, "
          f"first seed; out-of-fold accuracy {percent(found.accuracy, 1)} % on all {len(predictions.labels)} images"
          f"{inside}){shown}")
    width = name_width([name for row in rows for name in (row["true"], row["predicted"])], 20)
    for row in rows:  # escaped, as failures prints them
        where = printable(row["source"]) if row["source"] is not None else f"{row['split']} row {row['row']}"
        print(f"  p(label) {share(row['label_probability'])}  labelled {name_cell(row['true'], width)} predicted "
              f"{name_cell(row['predicted'], width)} {share(row['confidence'])}  {row['split']:<5}  {where}")
    return 0


def _found(args: argparse.Namespace) -> tuple:
    """The index of ``--class`` (checked before any fit) and the run's label issues, both of one report
    (``probe.rundir.read_run``): a train --force that moved its run in between looked the class up in the old
    run's classes and listed the new run's issues by that index."""
    from probe import load_report
    from probe.report_text import confusion_cell

    from ..label_issues import find_label_issues

    report = load_report(args.run_dir)
    index, _ = confusion_cell(report.class_names, args.class_name, None, ("--class", "--predicted"),
                              report.config.get("drop_classes") or ())
    return index, find_label_issues(args.run_dir, args.features, args.folds, method=args.method)
