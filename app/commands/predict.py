"""`mr2probe predict`: apply a run's probe (first seed's head, + its post-hoc bias) to a cache's split.

The run's probe is what its report describes (``probe.deploy.RunProbe``); the cache must hold features of the
same extractor. Labels are matched to the run's classes by name, and the predictions are scored against them:
on a new labelled set (another camera, another month) this is the report's test scoring, without training. On a
cache of unlabelled images (``mr2probe extract --unlabelled``) it lists the predictions and how many went to each
class, with their mean confidence.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from functools import partial
from pathlib import Path

from probe.numbers import fixed, percent

from ..shipped import CSV_COLUMNS, CachePredictions, csv_rows, predict_cache, predicted_summary, scores_summary, \
    unknown_hint
from . import add_run_argument, check_out_apart, check_out_file

# What a summary cut at --limit classes says of the rest.
_MORE = "--limit N shows more; --out writes every image's prediction"

HELP = ("apply a run's probe (first seed, with its post-hoc bias) to a feature cache's split: predictions as CSV, "
        "scored against the cache's labels (or, for unlabelled images, counted per class)")

_pct = partial(percent, digits=1)  # scores of images: one decimal, as interval_text writes their intervals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    parser.add_argument("--features", required=True, metavar="CACHE.h5",
                        help="feature cache (mr2probe extract) of the run's encoder settings; other images welcome, "
                        "unlabelled ones too (mr2probe extract --unlabelled)")
    parser.add_argument("--split", default="test", help="the cache's split to predict (default test)")
    parser.add_argument("--out", metavar="FILE.csv", default=None,
                        help=f"write one row per image: {', '.join(CSV_COLUMNS)} (true and correct are empty "
                        "for an unlabelled image, correct for an image of a class the run does not have)")
    parser.add_argument("--probabilities", action="store_true",
                        help="--out also gets a column p(<class>) per class: every class's probability, as "
                        "scikit-learn's predict_proba (needs images × classes × 4 bytes of memory)")
    parser.add_argument("--limit", type=int, default=10,
                        help="classes listed, worst first (default 10; the CSV has every image)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from probe.rundir import read_run

    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.out is not None:
        check_out_file(args.out, "predictions.csv")
        check_out_apart(args.out, runs=[args.run_dir], inputs=[args.features])
    probe, got, scored, (near, near_lines) = read_run(args.run_dir, lambda: _predicted(args))
    if args.out:
        _write_csv(Path(args.out), got, probe.class_names)
    for warning in got.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    head = {"run_id": probe.run_id, "split": args.split, "labelled": got.labelled,
            "near_train": None if near is None else near.as_dict()}
    # near_lines: how many predicted images nearly duplicate the run's own train or val images (app.predicted_near),
    # or why that was not checked: the JSON's warnings as the API's; the text says the check's outcome, none too
    said = [near.describe()] if near is not None else near_lines
    if not got.labelled:
        summary = predicted_summary(probe, got)
        summary["warnings"] += near_lines
        print(json.dumps({**head, **summary, "predicted": [s.model_dump(mode="json") for s in summary["predicted"]]},
                         indent=2) if args.json else "\n".join([_unlabelled_summary(args, probe, summary["predicted"],
                                                                                    got), *said]))
        return 0
    scores, beside = scored
    if args.json:
        print(json.dumps({**head, **scores.model_dump(mode="json"), **beside,
                          "warnings": beside["warnings"] + near_lines}, indent=2))
    else:
        print("\n".join([_summary(args, probe, scores, beside["images"], beside["matches_report"]), *said]))
    return 0


def _predicted(args: argparse.Namespace) -> tuple:
    """The run's probe, its predictions on the split, where labelled their scores (checked on the run's own test
    split against its stored predictions.npz) and the split's near-duplicates of the run's train or val images
    (``app.predicted_near.near_train``: the check or why it was not made): of one run (``probe.rundir.read_run``), as
    a train --force that moved its run in between the probe and predictions.npz gave one run's probe checked against
    the other's."""
    from feature_cache import open_cache
    from probe import load_report
    from probe.deploy import RunProbe

    from ..label_issues import run_cache
    from ..predicted_near import near_train

    probe = RunProbe.load(args.run_dir)
    if args.probabilities and not args.out:
        raise ValueError("--probabilities adds columns to the CSV of --out: give --out FILE.csv")
    (got,) = predict_cache([probe], args.features, args.split, unlabelled=True, probabilities=args.probabilities)
    scored = scores_summary(args.run_dir, probe, got, args.split) if got.labelled else None
    report = load_report(args.run_dir)
    # option=None: predict's --features is the cache scored, not where the run's own cache is given
    near = near_train(report, lambda: run_cache(report, args.run_dir, option=None), open_cache(args.features),
                      args.split)
    return probe, got, scored, near


def _write_csv(path: Path, got: CachePredictions, class_names: list[str]) -> None:
    """The predictions, one row per image, written whole or not at all (``probe.files.write_output``: a
    temporary file renamed over ``path``; a ``path`` that is not a regular file, a FIFO or /dev/stdout, written
    through, as report and compare do: the rename made /dev/full and a FIFO regular files, an attack round)."""
    from probe.files import write_output

    def write(name: str) -> None:
        with open(name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(csv_rows(got, class_names))

    write_output(path, write)


def _title(args: argparse.Namespace, probe, images: str) -> str:
    bias = "with its post-hoc bias" if probe.posthoc is not None else "no post-hoc bias applied"
    bias += f", temperature {probe.temperature:.3g}" if probe.temperature != 1.0 else ""
    return (f"Run {probe.run_id or args.run_dir} (first seed's head, {bias}) on {args.features}, split "
            f"{args.split}: {images}.")


def _unlabelled_summary(args: argparse.Namespace, probe, shares, got: CachePredictions) -> str:
    """How many unlabelled images (or images of none of the run's classes) each predicted class got, most first (at
    most ``--limit`` classes), with the mean confidence; the classes never predicted; how many predictions are unsure
    (below 50 %)."""
    confidence = got.confidence
    predicted = [s for s in shares if s.n]
    from probe.report_text import name_cell, name_width

    width = name_width([s.name for s in predicted[:args.limit]], len("predicted class"))
    what = "images of none of the run's classes" if any(got.names) else "unlabelled images"
    lines = [_title(args, probe, f"{len(confidence):,} {what}, nothing to score them against"),
             f"{'predicted class':<{width}} {'images':>7} {'share %':>8} {'mean confidence %':>18}"]
    lines += [f"{name_cell(s.name, width)} {s.n:>7,} {_pct(s.share):>8} {_pct(s.mean_confidence):>18}"
              for s in predicted[:args.limit]]
    if len(predicted) > args.limit:
        lines.append(f"… {len(predicted) - args.limit} more classes ({_MORE}).")
    never = [s.name for s in shares if not s.n]
    if never:
        lines.append(f"Never predicted: {', '.join(never[:10])}{' …' if len(never) > 10 else ''} ({len(never)} of "
                     f"{len(shares)} classes).")
    from probe.deploy import UNSURE_BELOW, unsure_note, unsure_predictions

    note = unsure_note(len(shares))
    lines.append(f"{unsure_predictions(confidence):,} of {len(confidence):,} predictions below "
                 f"{100 * UNSURE_BELOW:.0f} % confidence" + (f" ({note})." if note else "."))
    if args.out:
        lines.append(f"Predictions written to {args.out}")
    return "\n".join(lines)


def _unknown_line(scores, class_names: list[str]) -> str:
    """The images of classes the run does not have: how many of each, left out of accuracy but counted wrong in the
    precision of the class each was predicted as (the line said "not scored" while cat's precision fell to 46 % on
    frogs called cat; a data-set-iteration round), and a hint where a label may be one of the run's renamed."""
    unknown = sum(scores.unknown.values())
    line = (f"{unknown:,} image{'' if unknown == 1 else 's'} of classes the run does not have, not scored: "
            + ", ".join(f"{n} ({c:,})" for n, c in scores.unknown.items()) + ".")
    if scores.unknown_predicted:
        line += (" Each counts as a wrong prediction in the precision of the class it was predicted as: "
                 + ", ".join(f"{n} ({c:,})" for n, c in scores.unknown_predicted.items()) + ".")
    hint = unknown_hint(scores, class_names)
    return line + (f" {hint}" if hint else "")


def _predicted_absent(scores) -> list[str]:
    """A line naming the classes without an image here that images were predicted as, with how many where the
    confusion matrix is given: the table lists the classes with images, so those mistakes went nowhere it showed
    (an extremes round: 93.3 % over 30 val images, every precision listed 100 %, 2 images called a class absent
    from val). A class predicted at least once has a precision; without images of its own, every one is wrong."""
    from probe.names import listed

    names = [c.name for c in scores.per_class]
    absent = [c.name for c in scores.per_class if not c.n and c.precision is not None]
    if not absent:
        return []

    def count(name: str) -> str:
        if scores.confusion is None:
            return ""
        j = names.index(name)
        return f" ({sum(row[j] for row in scores.confusion) + scores.unknown_predicted.get(name, 0):,})"

    return [f"Images predicted as {'classes' if len(absent) > 1 else 'a class'} without images here (every one wrong, "
            f"precision 0 %): "
            + listed([name + count(name) for name in absent], 10) + "."]


def _with_ci(text: str, ci: list | None) -> str:
    """``text`` (a value in per cent) and its 95 % interval (``interval_text``), alone without one."""
    from probe.report import interval_text

    return f"{text} {interval_text(ci)}" if ci else text


def _summary(args: argparse.Namespace, probe, scores, images: int, check: dict | None) -> str:
    from probe.report import interval_text
    from probe.report_text import with_interval

    lines = [_title(args, probe, f"{images:,} images")]
    if scores.unknown:
        lines.append(_unknown_line(scores, list(probe.class_names)))
    lines.append(f"Accuracy {_pct(scores.accuracy)} % {interval_text(scores.accuracy_ci)} over {scores.n:,} images; "
                 f"balanced accuracy {_pct(scores.balanced)} %"
                 + (f" {interval_text(scores.balanced_ci)}." if scores.balanced_ci else "."))
    if scores.calibration is not None:
        lines.append(f"Calibration on these images: {scores.calibration.brief()}.")
    present = sorted((c for c in scores.per_class if c.n), key=lambda c: (c.accuracy, c.name))
    shown = present[:args.limit]
    from probe.report_text import name_cell, name_width

    width = name_width([c.name for c in shown], 20)
    # precision and F1 each with its 95 % interval as the report's table gives them (they were bare; F1 a fraction,
    # as mr2probe report shows it: it was in percent here)
    lines.append(f"{'class':<{width}} {'images':>7} {'accuracy %':>10} {'95 % interval':>14} "
                 f"{'precision % [95 %]':>19} {'F1 [95 %]':>18}")
    lines += [f"{name_cell(c.name, width)} {c.n:>7,} {_pct(c.accuracy):>10} {interval_text(c.accuracy_ci):>14} "
              f"{_with_ci(_pct(c.precision), c.precision_ci):>19} {with_interval(c.f1, c.f1_ci, fraction=True):>18}"
              for c in shown]
    if len(present) > len(shown):
        lines.append(f"… {len(present) - len(shown)} more classes ({_MORE}).")
    lines += _predicted_absent(scores)
    if check is not None:
        same = check["equal"] == check["images"]
        lines.append(f"This is the run's own test split: the predictions equal the report's first seed on "
                     f"{check['equal']:,} of {check['images']:,} images" + ("." if same else
                     " — the head or the cache changed since the run."))
    if args.out:
        lines.append(f"Predictions written to {args.out}")
    return "\n".join(lines)
