"""`mr2probe report`: show a run's report as a terminal table (or its JSON / CSV), or write a shareable file."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import add_run_argument, check_out_apart, check_out_file, terminal_width

HELP = "show a run directory's report (accuracy by group and class, margins, selection) or export it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print report.json")
    fmt.add_argument("--csv", action="store_true", help="print the per-class table as CSV")
    add_export_arguments(parser, fmt, "with inline SVG charts (nothing loaded from elsewhere)")
    parser.add_argument("--all-classes", action="store_true",
                        help="the terminal tables list every class (default: a run with more classes than "
                        "probe.report.TERMINAL_CLASSES lists its worst ones; the files and exports keep every class)")


def run(args: argparse.Namespace) -> int:
    from probe import format_report, load_report, report_csv, report_json
    from probe.export import EXPORT_FORMATS
    from probe.report import TERMINAL_CLASSES

    check_export_arguments(args)
    if args.out is not None:
        check_out_file(args.out, "report.html")
        check_out_apart(args.out, runs=[args.run_dir])
    report = load_report(args.run_dir)
    if args.format:
        write_document(EXPORT_FORMATS[args.format](report.model_dump(mode="json")), args.out)
    elif args.json:
        print(report_json(report))
    elif args.csv:
        print(report_csv(report), end="")
    else:
        print(format_report(report, width=terminal_width(120),
                           max_classes=None if args.all_classes else TERMINAL_CLASSES))
    return 0


def add_export_arguments(parser: argparse.ArgumentParser, formats, what: str) -> None:
    """``--format md|html`` (in ``formats``, the command's group of exclusive outputs) and ``--out FILE``: a
    shareable file, the HTML page ``what``."""
    formats.add_argument("--format", choices=("md", "html"), default=None,
                         help=f"a shareable file: Markdown tables, or one self-contained HTML page {what}, to attach "
                              "to a pull request")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="with --format: write to FILE instead of printing")


def check_export_arguments(args: argparse.Namespace) -> None:
    if args.out is not None and args.format is None:
        raise ValueError("--out needs --format md or --format html")


def write_document(document: str, out: Path | None) -> None:
    """An exported document (``--format``) to ``out``, or printed when there is none."""
    if out is None:
        print(document, end="")
    else:
        from probe.files import write_output

        write_output(out, lambda name: Path(name).write_text(document, encoding="utf-8"))
        print(f"wrote {out}")
