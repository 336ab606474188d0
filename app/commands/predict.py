"""`mr2probe predict`: apply a run's probe (first seed's head, + its post-hoc bias) to a cache's split.

The run's probe is what its report describes (``probe.deploy.RunProbe``); the cache must hold features of the
same extractor. Labels are matched to the run's classes by name, and the predictions are scored against them:
on a new labelled set (another camera, another month) this is the report's test scoring, without training.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NAME = "predict"
HELP = ("apply a run's probe (first seed, with its post-hoc bias) to a feature cache's split: predictions as CSV, "
        "scored against the cache's labels")
CSV_COLUMNS = ("index", "source", "true", "predicted", "confidence", "correct")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by mr2probe train")
    parser.add_argument("--features", required=True, metavar="CACHE.h5",
                        help="feature cache (mr2probe extract) of the run's encoder settings; other images welcome")
    parser.add_argument("--split", default="test", help="the cache's split to predict (default test)")
    parser.add_argument("--out", metavar="FILE.csv", default=None,
                        help=f"write one row per image: {', '.join(CSV_COLUMNS)} (correct is empty for an image of "
                        "a class the run does not have)")
    parser.add_argument("--limit", type=int, default=10,
                        help="classes listed, worst first (default 10; the CSV has every image)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")


@dataclass
class CachePredictions:
    """A run's probe applied to a cache's split: ``labels`` (n,) indices into the run's classes (``UNKNOWN_CLASS``
    for a class it does not have), ``names`` (n,) each image's class name in the cache, the predictions, their
    confidence, the images' sources and what could not be checked (``warnings``)."""

    source: Any  # probe.report.FeatureSource of the cache
    labels: Any  # numpy arrays (this module does not import numpy when the CLI builds its parser)
    names: list[str]
    predicted: Any
    confidence: Any
    sources: list[str]
    warnings: list[str]


def predict_cache(probes: list, path: str, split: str) -> list[CachePredictions]:
    """Each of ``probes`` (``probe.deploy.RunProbe``) on ``split`` of the cache at ``path`` (its features read
    once), after the checks: the split exists, the features are each probe's (width, extractor), a class in
    common. Raises ValueError naming what failed."""
    from feature_cache import open_cache
    from probe.deploy import UNKNOWN_CLASS
    from probe.report import FeatureSource

    cache = open_cache(path)
    if split not in cache.splits:
        raise ValueError(f"{path} has no split {split!r}; it has {', '.join(cache.splits)}.")
    source = FeatureSource.model_validate(cache.provenance(str(path)))
    checked = []
    for probe in probes:
        warnings = probe.check_features(source, cache.num_features)
        mapping = probe.label_map(cache.class_names)
        if (mapping == UNKNOWN_CLASS).all():
            raise ValueError(f"none of the cache's classes ({_names(cache.class_names)}) is one of the run's "
                             f"({_names(probe.class_names)}).")
        checked.append((warnings, mapping))
    features, labels = cache.load(split, dtype=None)
    names, sources = [cache.class_names[i] for i in labels], cache.sources(split)
    return [CachePredictions(source, mapping[labels], names, *probe.predict_with_confidence(features), sources,
                             warnings) for probe, (warnings, mapping) in zip(probes, checked)]


def run(args: argparse.Namespace) -> int:
    from probe.deploy import RunProbe, score_predictions

    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    probe = RunProbe.load(args.run_dir)
    (got,) = predict_cache([probe], args.features, args.split)
    scores = score_predictions(got.labels, got.predicted, probe.class_names, got.names)
    if args.out:
        _write_csv(Path(args.out), got, probe.class_names)
    check = _reproduces(args, probe, got.source, got.predicted)
    for warning in got.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run_id": probe.run_id, "split": args.split, "images": len(got.labels), **asdict(scores),
                          "matches_report": check}, indent=2))
    else:
        print(_summary(args, probe, scores, len(got.labels), check))
    return 0


def _names(names: list[str], at_most: int = 5) -> str:
    shown = ", ".join(names[:at_most])
    return shown + (f", … ({len(names)} in all)" if len(names) > at_most else "")


def _write_csv(path: Path, got: CachePredictions, class_names: list[str]) -> None:
    """The predictions, one row per image, written to a temporary file renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for i, (src, name, t, p, c) in enumerate(zip(got.sources, got.names, got.labels, got.predicted,
                                                     got.confidence)):
            writer.writerow([i, src, name, class_names[p], f"{c:.6f}", "" if t < 0 else int(t == p)])
    os.replace(tmp, path)


def _reproduces(args: argparse.Namespace, probe, source, predicted) -> dict | None:
    """On the run's own test split: on how many images these predictions equal the report's first seed
    (``predictions.npz``); None elsewhere, or when the run stored no predictions."""
    from probe.predictions import Predictions

    mine = probe.features
    if args.split != "test" or mine is None or mine.fingerprint != source.fingerprint:
        return None
    try:
        stored = Predictions.load(args.run_dir)
    except FileNotFoundError:
        return None
    if stored.predicted.shape[1] != len(predicted):
        return {"equal": 0, "images": len(predicted)}
    return {"equal": int((stored.predicted[0] == predicted).sum()), "images": len(predicted)}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _summary(args: argparse.Namespace, probe, scores, images: int, check: dict | None) -> str:
    from probe.report import interval_text

    bias = "with its post-hoc bias" if probe.posthoc is not None else "no post-hoc bias applied"
    lines = [f"Run {probe.run_id or args.run_dir} (first seed's head, {bias}) on {args.features}, split "
             f"{args.split}: {images:,} images."]
    if scores.unknown:
        lines.append(f"{sum(scores.unknown.values()):,} images of classes the run does not have, not scored: "
                     + ", ".join(f"{n} ({c:,})" for n, c in scores.unknown.items()) + ".")
    lines.append(f"Accuracy {_pct(scores.accuracy)} % {interval_text(scores.accuracy_ci)} over {scores.n:,} images; "
                 f"balanced accuracy {_pct(scores.balanced)} %.")
    present = sorted((c for c in scores.per_class if c.n), key=lambda c: (c.accuracy, c.name))
    shown = present[:args.limit]
    lines.append(f"{'class':<20} {'images':>7} {'accuracy %':>10} {'95 % interval':>14} {'precision':>9} "
                 f"{'F1':>6}")
    lines += [f"{c.name[:20]:<20} {c.n:>7,} {_pct(c.accuracy):>10} {interval_text(c.accuracy_ci):>14} "
              f"{_pct(c.precision):>9} {_pct(c.f1):>6}" for c in shown]
    if len(present) > len(shown):
        lines.append(f"… {len(present) - len(shown)} more classes (--limit, or --out for every image).")
    if check is not None:
        same = check["equal"] == check["images"]
        lines.append(f"This is the run's own test split: the predictions equal the report's first seed on "
                     f"{check['equal']:,} of {check['images']:,} images" + ("." if same else
                     " — the head or the cache changed since the run."))
    if args.out:
        lines.append(f"Predictions written to {args.out}")
    return "\n".join(lines)
