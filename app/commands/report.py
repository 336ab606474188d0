"""`mr2probe report`: show a run's report as a terminal table (or its JSON / CSV)."""
from __future__ import annotations

import argparse

NAME = "report"
HELP = "show a run directory's report (accuracy by group and class, margins, selection)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by mr2probe train")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print report.json")
    fmt.add_argument("--csv", action="store_true", help="print the per-class table as CSV")


def run(args: argparse.Namespace) -> int:
    from probe import format_report, load_report, report_csv, report_json

    report = load_report(args.run_dir)
    if args.json:
        print(report_json(report))
    elif args.csv:
        print(report_csv(report), end="")
    else:
        print(format_report(report))
    return 0
