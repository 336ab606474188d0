"""`mr2probe compare`: per-group and per-class accuracy deltas of one run against another."""
from __future__ import annotations

import argparse
import textwrap

from . import check_out_apart, check_out_file, print_document, run_folder, terminal_width
from .report import add_export_arguments, check_export_arguments, write_document

HELP = ("compare two runs (RUN_B − RUN_A) on RUN_A's easy/medium/hard groups, or several against RUN_A (one row "
        "each)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="RUN_A", help="base run directory (its groups are used)")
    parser.add_argument("other", metavar="RUN_B", nargs="+",
                        help="run directory compared against the base; several: one row each (overall, balanced, "
                        "hard third, worst class), their tests Holm-corrected over the runs")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_export_arguments(parser, fmt, "with every class")
    parser.add_argument("--features", metavar="CACHE.h5", default=None,
                        help="compare the runs' shipped probes (first seed, as mr2probe predict applies them) on "
                        "this cache's labelled images instead of their own test split")
    parser.add_argument("--split", default="test", help="with --features: the cache's split (default test)")
    parser.add_argument("--all-classes", action="store_true",
                        help="the per-class table lists every class (default: a comparison of more classes than "
                        "probe.report_text.TERMINAL_CLASSES lists those whose accuracy changed most)")


def run(args: argparse.Namespace) -> int:
    from probe import format_comparison
    from probe.export import COMPARE_FORMATS, runs_context
    from probe.report_text import COMPARE_WIDTH, LEAST_WIDTH, TERMINAL_CLASSES
    from probe.rundir import read_run

    check_export_arguments(args)
    if args.out is not None:
        check_out_file(args.out, "compare.html")
        check_out_apart(args.out, runs=[args.base, *args.other], inputs=[args.features] if args.features else [])
    if len(args.other) > 1:
        return _many(args)
    base, other, comparison = read_run([args.base, args.other[0]], lambda: _read_pair(args, args.other[0]))
    if run_folder(args.base) == run_folder(args.other[0]):  # it compared alike without a word (a new-user round)
        from probe.compare import itself_warning

        # in the comparison's warnings, as GET /api/compare gives them: the JSON and exports lacked it
        comparison.warnings.append(itself_warning(comparison.base))
    if args.format:
        names = {base.run_id: str(args.base), other.run_id: str(args.other[0])}  # the runs' folders, as given
        write_document(COMPARE_FORMATS[args.format](comparison, runs_context(base, other, names)), args.out)
        return 0
    limit = None if args.all_classes else TERMINAL_CLASSES
    if args.json:
        print_document(comparison.model_dump_json(indent=2))
        return 0
    width = terminal_width(COMPARE_WIDTH, LEAST_WIDTH)
    print(format_comparison(comparison, width=width, max_classes=limit))
    # the runs' own warnings, as the exports carry them (a user choosing in the terminal saw none; a new-user round),
    # wrapped at the comparison's width (each was one line of 300 to 400 characters under it)
    for label, text in runs_context(base, other).warnings:
        print(textwrap.fill(f"{label}: {text}", width, break_long_words=False, break_on_hyphens=False))
    return 0


def _read_pair(args: argparse.Namespace, other_dir: str) -> tuple:
    """(base report, other report, comparison) of the runs in ``args.base`` and ``other_dir``: every file read of
    them, which :func:`probe.rundir.read_run` reads again where a writer replaced one meanwhile."""
    from probe import load_report

    base, other = load_report(args.base), load_report(other_dir)
    comparison = _compare(args, base, other_dir, other)
    if args.features is not None:
        from ..predicted_near import with_near_lines

        with_near_lines([comparison], _near_lines(args, [(args.base, base), (other_dir, other)]))
    return base, other, comparison


def _near_lines(args: argparse.Namespace, runs: list[tuple]) -> list:
    """The runs' (``(run_dir, report)``) near-duplicate check of the ``--features`` cache's split, as predict makes
    it, once per distinct run cache and left-out classes (``app.predicted_near.near_lines``)."""
    from functools import partial

    from feature_cache import open_cache

    from ..label_issues import run_cache
    from ..predicted_near import near_lines

    # option=None: compare's --features is the cache scored, not where the runs' own cache is given
    own = [(report.run_id, report, partial(run_cache, report, run_dir, option=None)) for run_dir, report in runs]
    return near_lines(own, open_cache(args.features), args.split)


def _compare(args: argparse.Namespace, base, other_dir: str, other):
    """The comparison of the run in ``other_dir`` (its report ``other``) against ``base``, on their test split or,
    with ``--features``, on that cache's images."""
    from probe import compare_reports
    from probe.predictions import load_pair

    from ..shipped import compare_on_cache

    if args.features is None:
        return compare_reports(base, other, load_pair(args.base, other_dir,
                                                      (len(base.class_names), len(other.class_names))))
    comparison, warnings = compare_on_cache(base, other, (args.base, other_dir), args.features, args.split,
                                            args.features)
    comparison.warnings = warnings  # in the JSON and every view (comparison_facts)
    return comparison


def _many(args: argparse.Namespace) -> int:
    """Several runs against the base: one row each (:mod:`probe.compare_many`), then each run's warnings."""
    from probe.compare_many import format_many
    from probe.report_text import COMPARE_WIDTH, LEAST_WIDTH
    from probe.rundir import read_run

    seen: dict = {}
    for other_dir in args.other:  # one row each, as GET /api/compare/many: a run twice counted twice in Holm's family
        folder = run_folder(other_dir)
        if folder == run_folder(args.base):  # a row of zeros, p = 1, that made Holm's correction of the others stricter
            raise ValueError(f"{other_dir} is the base run {args.base}: leave it out of the runs compared with it")
        if folder in seen:
            raise ValueError(f"{other_dir} is the run {seen[folder]} again: give each run once (each is one row)")
        seen[folder] = other_dir
    if args.features is not None:  # the cache's own problems, once, not as the first pair's
        from ..shipped import check_scored_cache

        check_scored_cache(args.features, args.split)
    base, reports, comparisons = read_run([args.base, *args.other], lambda: _read_many(args))
    if args.json:  # the runs by their ids, as GET /api/compare/many gives them
        print_document(_with_warnings(comparisons, base, reports).model_dump_json(indent=2))
        return 0
    many = _with_warnings(_as_given(comparisons, args.base, args.other), base, reports)
    if args.format:
        from probe.export import MANY_FORMATS

        write_document(MANY_FORMATS[args.format](many), args.out)
        return 0
    print(format_many(many, width=terminal_width(COMPARE_WIDTH, LEAST_WIDTH)))  # the warnings under the table
    return 0


def _read_many(args: argparse.Namespace) -> tuple:
    """(base report, the other runs' reports, their comparisons with the base): every file read of the runs, which
    :func:`probe.rundir.read_run` reads again where a writer replaced one meanwhile."""
    from probe import load_report

    base, comparisons, reports = load_report(args.base), [], [load_report(other_dir) for other_dir in args.other]
    for other_dir, other in zip(args.other, reports):
        try:
            comparisons.append(_compare(args, base, other_dir, other))
        except ValueError as exc:  # other classes or images: which of the runs
            raise ValueError(f"{other_dir} against {args.base}: {exc}") from None
    if args.features is not None:
        from ..predicted_near import with_near_lines

        with_near_lines(comparisons, _near_lines(args, [(args.base, base), *zip(args.other, reports)]))
    return base, reports, comparisons


def _with_warnings(comparisons: list, base, reports: list):
    """:func:`probe.compare_many.compare_many` of the comparisons with the runs' own report warnings, each run
    named as its row is."""
    from probe.compare_many import compare_many, run_warnings

    return compare_many(comparisons, run_warnings((comparisons[0].base, base),
                                                  [(c.other, report) for c, report in zip(comparisons, reports)]))


def _as_given(comparisons: list, base_dir: str, other_dirs: list[str]) -> list:
    """The comparisons with the runs named by their ids; where two folders hold runs of one id (two sweeps'
    ``erm``), by their folders as given, as the pairwise ``--format`` names them: they were two rows ``erm`` beside a
    base ``erm``."""
    folders: dict = {}
    for run_id, run_dir in zip([comparisons[0].base, *(c.other for c in comparisons)], [base_dir, *other_dirs]):
        folders.setdefault(run_id, set()).add(run_folder(run_dir))
    if all(len(found) == 1 for found in folders.values()):
        return comparisons
    return [c.model_copy(update={"base": str(base_dir), "other": str(other_dir)})
            for c, other_dir in zip(comparisons, other_dirs)]
