"""`mr2probe compare`: per-group and per-class accuracy deltas of one run against another."""
from __future__ import annotations

import argparse
import sys

from .report import add_export_arguments, check_export_arguments, write_document

NAME = "compare"
HELP = "compare two runs (RUN_B − RUN_A) on RUN_A's easy/medium/hard groups"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="RUN_A", help="base run directory (its groups are used)")
    parser.add_argument("other", metavar="RUN_B", help="run directory compared against the base")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_export_arguments(parser, fmt, "with every class")
    parser.add_argument("--features", metavar="CACHE.h5", default=None,
                        help="compare the runs' shipped probes (first seed, as mr2probe predict applies them) on "
                        "this cache's labelled images instead of their own test split")
    parser.add_argument("--split", default="test", help="with --features: the cache's split (default test)")
    parser.add_argument("--all-classes", action="store_true",
                        help="the per-class table lists every class (default: a comparison of more classes than "
                        "probe.report.TERMINAL_CLASSES lists those whose accuracy changed most)")


def run(args: argparse.Namespace) -> int:
    from probe import compare_reports, format_comparison, load_report
    from probe.export import COMPARE_FORMATS
    from probe.predictions import load_pair
    from probe.report import TERMINAL_CLASSES

    check_export_arguments(args)
    base, other = load_report(args.base), load_report(args.other)
    if args.features is None:
        comparison = compare_reports(base, other, load_pair(args.base, args.other))
    else:
        comparison = _on_images(args, base, other)
    if args.format:
        write_document(COMPARE_FORMATS[args.format](comparison), args.out)
        return 0
    limit = None if args.all_classes else TERMINAL_CLASSES
    print(comparison.model_dump_json(indent=2) if args.json else format_comparison(comparison, max_classes=limit))
    return 0


def _on_images(args: argparse.Namespace, base, other):
    """Both runs' shipped probes on ``--features``' split: the images of classes both runs have, paired."""
    from probe.compare import check_same_classes, compare_on_images
    from probe.deploy import UNKNOWN_CLASS, RunProbe
    from probe.predictions import Predictions

    from ..shipped import predict_cache

    check_same_classes(base, other)
    got = predict_cache([RunProbe.load(run) for run in (args.base, args.other)], args.features, args.split)
    for warning in dict.fromkeys(got[0].warnings + got[1].warnings):
        print(f"warning: {warning}", file=sys.stderr)
    known = got[0].labels != UNKNOWN_CLASS
    if not known.all():
        print(f"warning: {int((~known).sum()):,} images of classes the runs do not have are left out.",
              file=sys.stderr)
    pairs = tuple(Predictions(g.labels[known], g.predicted[known][None, :], g.confidence[known],
                              [s for s, k in zip(g.sources, known) if k]) for g in got)
    return compare_on_images(base, other, pairs, f"{args.features}, split {args.split} ({int(known.sum()):,} images)")
