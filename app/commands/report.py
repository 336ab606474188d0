"""`mr2probe report`: show a run's report as a terminal table (or its JSON / CSV), or write a shareable file."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import (add_data_argument, add_run_argument, check_out_apart, check_out_file, print_document,
               terminal_width)

HELP = "show a run directory's report (accuracy by group and class, margins, selection) or export it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print report.json")
    fmt.add_argument("--csv", action="store_true", help="print the per-class table as CSV")
    add_export_arguments(parser, fmt, "with inline SVG charts (nothing loaded from elsewhere)")
    fmt.add_argument("--near-duplicates", action="store_true",
                     help="list every test image that duplicates a train or val image (the run's "
                          "near_duplicates.csv), most similar first, with the image it duplicates and their cosine")
    parser.add_argument("--paths", action="store_true",
                        help="with --near-duplicates: print only those test images' paths, one a line, to remove "
                             "them from the test split (mr2probe report RUN --near-duplicates --paths > remove.txt)")
    add_data_argument(parser)
    parser.add_argument("--all-classes", action="store_true",
                        help="the terminal tables list every class (default: a run with more classes than "
                        "probe.report_text.TERMINAL_CLASSES lists its worst ones; the files and exports keep every "
                        "class)")


def run(args: argparse.Namespace) -> int:
    from probe import format_report, load_report, report_csv, report_json
    from probe.report_text import LEAST_WIDTH, REPORT_WIDTH
    from probe.export import EXPORT_FORMATS
    from probe.report_text import TERMINAL_CLASSES

    check_export_arguments(args)
    for given, flag in ((args.paths, "--paths"), (args.data is not None, "--data")):
        if given and not args.near_duplicates:
            raise ValueError(f"{flag} needs --near-duplicates")
    if args.near_duplicates:
        return list_near_duplicates(args.run_dir, args.paths, args.data)
    if args.out is not None:
        check_out_file(args.out, "report.html")
        check_out_apart(args.out, runs=[args.run_dir])
    report = load_report(args.run_dir)
    if args.format:
        write_document(EXPORT_FORMATS[args.format](report.model_dump(mode="json")), args.out)
    elif args.json:
        print_document(report_json(report))
    elif args.csv:
        print_document(report_csv(report), end="")
    else:
        print(format_report(report, width=terminal_width(REPORT_WIDTH, LEAST_WIDTH),
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
        print_document(document, end="")
    else:
        from probe.files import write_output

        write_output(out, lambda name: Path(name).write_text(document, encoding="utf-8"))
        print(f"wrote {out}")


def list_near_duplicates(run_dir, paths_only: bool, data) -> int:
    """Print the run's near-duplicate pairs (:func:`probe.near_duplicates.read_pairs`), or with ``paths_only`` the
    test images' paths alone, one a line; ``data``: the paths in full (``--data``)."""
    from feature_cache.archives import printable
    from probe import load_report
    from probe.near_duplicates import no_pairs_message, outside_sample, read_pairs, rule_text
    from probe.rundir import read_run

    from . import check_data_folder, full_paths, run_folder

    check_data_folder(data)
    folder = run_folder(run_dir)

    def checked_and_pairs() -> tuple:  # test rows past the report's test images are damage
        found = load_report(run_dir).near_duplicates
        return found, read_pairs(folder, found and found.test_images)

    # the report's check and its list of pairs, of one run: a train --force between them mixed two runs
    found, pairs = read_run(folder, checked_and_pairs)
    if pairs is None or found is None:
        raise ValueError(no_pairs_message(folder.name, checked=found is not None))
    # one call for both columns: an idx folder's note on its records was said once for each (a review)
    sides = ("test",) if paths_only else ("test", "seen")
    both = [row["source"] for row in full_paths([{"source": p[side]} for side in sides for p in pairs], data)]
    tests, seen = both[:len(pairs)], both[len(pairs):]
    if paths_only:
        if None in tests:  # a run given arrays without paths: an empty list read as "nothing to remove"
            raise ValueError(f"run {folder.name} stored no path for {tests.count(None):,} of its {len(tests):,} "
                             "duplicating test images (it was given arrays without sources); drop --paths to list "
                             "their test rows")
        for path in tests:  # escaped: a file name with a line break would read as two
            print(printable(path))
        return 0
    identical = sum(p["identical"] for p in pairs)
    outside = outside_sample(pairs, found.test_images, found.sampled, found.sample_draw)
    inside = "" if data is not None or not pairs else " (paths inside the data set; --data DIR prints them whole)"
    of = (f"{found.test_images:,} test images" if found.sampled is None else
          f"{found.sampled:,} sampled test images (a random sample of the {found.test_images:,})")
    more = (f"; {outside:,} more test image{'s' if outside != 1 else ''} outside the sample, byte-identical to one "
            "(content digests, every test image's), listed too" if outside else "")
    print(f"{len(pairs) - outside:,} of {of} duplicate a train or val image ("
          f"{rule_text(found.threshold, found.encoder, found.ratio)}; {identical - outside:,} byte-identical)"
          f"{more}{inside}"
          f"{', most similar first:' if pairs else '.'}")
    for pair, test, other in zip(pairs, tests, seen):
        where = (f"test row {pair['test_row']}" if test is None else printable(test),
                 f"{pair['seen_split']} row {pair['seen_row']}" if other is None else printable(other))
        same = "  byte-identical" if pair["identical"] else ""
        print(f"  {pair['similarity']:.3f}  {where[0]}  ~  {pair['seen_split']}: {where[1]}{same}")
    return 0
