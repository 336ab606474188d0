"""The demo flow behind ``mr2probe demo``: the main job on the embedded default, through the job machinery.

Register the data set, submit one ``pipeline`` job (extraction → ERM probe → the recommended disparity-aware
probe, ``probe.PRESETS["disparity"]``, with ERM as reference), wait for it, and return the two runs; the command then prints the comparison and serves the
dashboard. Everything goes through the same store and worker as the API.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from feature_cache.defaults import DEFAULT_ENCODER
from probe.numbers import percent
from probe.uncertainty import p_text

from .datasets import register_dataset
from .status import ACTIVE, JobStatus
from .schemas import PipelineJob
from .validation import validate_job

logger = logging.getLogger(__name__)

DEFAULT_PER_CLASS = 100
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_SHARED_ZIP = Path("shared") / "data" / "cifar10-jpeg.zip"


def default_data_candidates() -> list[Path]:
    """Where the demo looks for data, in order: the shared CIFAR-10 zip (``../shared/data`` from the repo root
    or the working directory), then the Debian Fashion-MNIST idx files."""
    repo_root = Path(__file__).resolve().parents[1]
    return [repo_root.parent / _SHARED_ZIP, Path.cwd().resolve().parent / _SHARED_ZIP, FASHION_MNIST_DIR]


def find_demo_data(explicit: Path | None = None) -> Path:
    """The data set the demo runs on.

    Raises:
        FileNotFoundError: ``explicit`` does not exist, or none of the default places has data.
    """
    if explicit is not None:
        if not Path(explicit).exists():
            raise FileNotFoundError(f"--data {str(explicit)!r} does not exist")
        return Path(explicit).resolve()
    for candidate in default_data_candidates():
        if candidate.is_file() or (candidate.is_dir() and any(candidate.glob("*idx*"))):
            return candidate.resolve()
    raise FileNotFoundError(
        "no demo data found: expected ../shared/data/cifar10-jpeg.zip next to the repository, or Fashion-MNIST in "
        f"{FASHION_MNIST_DIR} (sudo apt-get install dataset-fashion-mnist); or pass --data PATH, any data set "
        "`mr2probe extract --data` takes (not only class folders: a CSV manifest or an idx folder too)")


def demo_probes(head: str | None = None, epochs: int | None = None, seeds: int = 3) -> list[dict[str, Any]]:
    """ERM (cross-entropy), then the recommended disparity-aware method (``probe.PRESETS["disparity"]``) on the
    same head, with ERM as the reference run.

    The preset selects on validation with the ``hard`` criterion: the best accuracy on the ERM run's hard classes
    among candidates whose overall validation accuracy is not below ERM's.
    """
    common: dict[str, Any] = {"seeds": list(range(seeds))}
    if head is not None:
        common["head"] = head
    if epochs is not None:
        common["epochs"] = epochs
    return [dict(common, loss="ce"), dict(common, preset="disparity")]


@dataclass
class DemoResult:
    dataset: dict[str, Any]
    job: dict[str, Any]
    base_run: str
    other_run: str


def run_demo_job(app: FastAPI, data: Path, *, max_per_class: int | None, probes: list[dict[str, Any]],
                 encoder: str = DEFAULT_ENCODER, batch_size: int | None = None,
                 on_progress: Callable[[dict[str, Any]], None] | None = None, poll: float = 1.0) -> DemoResult:
    """Register ``data``, run the pipeline job on ``app``'s worker and wait for it.

    The worker is started for the job and stopped afterwards, so the app can be served next.

    Raises:
        RuntimeError: the job did not succeed (its error is in the message).
    """
    store, runner = app.state.store, app.state.runner
    # the data directory held first: a server running its jobs is refused before its database gets the data set
    # (registered from outside that server's data root; an operator round)
    runner.start()
    try:
        dataset, _ = register_dataset(store, data, name=None, source="path")
        request = PipelineJob(kind="pipeline", dataset_id=dataset["id"], encoder=encoder,
                              options={"max_per_class": max_per_class, "batch_size": batch_size}, probes=probes)
        job = runner.submit("pipeline", validate_job(request, store, app.state.settings.data_root))
        last = None
        while True:
            job = store.get_job(job["id"])
            state = (job["status"], round(job["progress"], 3), job["stage"])
            if on_progress is not None and state != last:
                on_progress(job)
                last = state
            if JobStatus(job["status"]) not in ACTIVE:
                break
            time.sleep(poll)
    finally:
        runner.stop()
    if job["status"] != JobStatus.succeeded.value:
        raise RuntimeError(f"demo job {job['id']} {job['status']}: {job['error'] or job['stage']}")
    base, other = job["result"]["run_ids"][:2]
    return DemoResult(dataset=dataset, job=job, base_run=base, other_run=other)


def comparison_table(app: FastAPI, base_run: str, other_run: str) -> str:
    """The terminal comparison of two runs (probe.format_comparison of probe.compare_reports, with the paired
    test intervals), preceded by the disparity-aware run's own verdict."""
    from probe import compare_reports, format_comparison, load_report
    from probe.predictions import load_pair

    store = app.state.store
    paths = [store.get_run(run_id)["path"] for run_id in (base_run, other_run)]
    reports = []
    for run_id, path in zip((base_run, other_run), paths):
        report = load_report(path)
        report.run_id = report.run_id or run_id
        reports.append(report)
    selection = reports[1].selection
    if selection.verdict == "no_safe_improvement":  # the two runs are the same: say what was found instead
        return kept_reference_summary(*reports)
    verdict = (f"{other_run} ({selection.verdict.replace('_', ' ')}): {selection.verdict_text}\n"
               if selection.verdict_text else "")
    pair = load_pair(*paths, tuple(len(r.class_names) for r in reports))
    return verdict + format_comparison(compare_reports(*reports, pair))


def _closest_setting(other) -> list[str]:
    """Lines on the tried setting nearest to being chosen: the highest lower bound of the hard-third gain among
    those that score differently from the reference (and the budget that would let it through). A setting that
    scores exactly as the reference (e.g. group DRO with a tiny η) would always be "closest", with nothing to say
    about a fix: such settings are counted, not shown."""
    from probe.numbers import signed_points
    from probe.report import FrontierPoint
    from probe.selection import (SIGN_TEST_ALPHA, closest_candidate, describe_params, format_delta, hard_gain_holds,
                                 scores_as_reference, sign_p_alone)

    tried = [p.model_dump() for p in other.selection.frontier
             if not p.reference and not p.failed and p.val_hard_delta_ci]
    same = sum(map(scores_as_reference, tried))
    samples = "train + val sample (out of fold)" if other.selection.cv is not None else "validation sample"
    closest = closest_candidate(tried)
    if closest is None:
        return [f"All {same} settings tried scored exactly as the reference on every {samples}."] if same else []
    best = FrontierPoint.model_validate(closest)
    lines = [f"Closest of {len(tried)} settings tried: {describe_params(best.params)}: val hard third "
             f"{format_delta(best.val_hard_delta, best.val_hard_delta_ci)}, overall "
             f"{format_delta(best.val_overall_delta, best.val_overall_delta_ci)}."
             + (f" ({same} of them scored exactly as the reference on every {samples}.)" if same else "")]
    if best.val_hard_delta_simultaneous_lo is None:  # a report from before the simultaneous bounds
        return lines + _budget_line(best.val_hard_delta_ci[0] > 0, best.val_overall_delta_ci[0])
    if hard_gain_holds(best.model_dump()):
        return lines + _budget_line(True, best.val_overall_delta_simultaneous_lo)
    if best.val_hard_delta_ci[0] <= 0:
        return lines
    fixed, broken = best.val_hard_changed  # beyond noise on its own, not once every setting tried is counted
    family = best.val_hard_sign_family or len(tried)
    return lines + [f"Its gain is not evidence: over the {len(tried)} settings tried its hard-third gain's lower "
                    f"bound is {signed_points(best.val_hard_delta_simultaneous_lo)} pt, and its hard-class images "
                    f"changed {fixed} fixed / {broken} broken, weighed by class (sign-flip test "
                    f"{p_text(sign_p_alone(best.model_dump()))} alone, {p_text(best.val_hard_sign_p, family)} after Bonferroni over {family} "
                    f"distinct; {SIGN_TEST_ALPHA:g} needed)."]


def _budget_line(holds: bool, overall_lo: float) -> list[str]:
    """The budget that lets the closest setting through: its drop rounded up to a tenth of a point (rounded to the
    nearest, 1.234 points read "1.2", which would not; a review), and an exact tenth left as it is."""
    budget = max(0.0, math.ceil(round(-1000 * overall_lo, 6)) / 10)  # points
    return [f"It would be chosen with --max-overall-drop {budget:.1f} (points of overall accuracy you "
            "accept to risk)."] if holds else []


def _failing_classes(erm) -> list[str]:
    """The classes the ERM run misclassifies test images of, worst first, each with its interval and confusions,
    then those it scores 100 % on, named: they were listed under "fails on" among the others (a new-user round:
    five classes at 100.0 % there, the name column cut by "Stripes Horizontal")."""
    from probe.names import listed, listed_name
    from probe.report import interval_text

    rows = sorted(erm.per_class, key=lambda r: -1.0 if r.accuracy is None else r.accuracy)
    failing = [row for row in rows if row.accuracy is None or row.accuracy < 1.0]
    perfect = [row.name for row in rows if row not in failing]
    lines = [f"Classes the probe ({erm.run_id}) fails on, test accuracy (seed mean, 95 % interval), worst first:"
             if failing else f"The probe ({erm.run_id}) classifies every test image right."]
    width = max([16] + [len(row.name) for row in failing])
    for row in failing:
        interval = f" {interval_text(row.accuracy_ci)}" if row.accuracy_ci else ""
        confused = ", ".join(f"{listed_name(c.name)} {percent(c.rate, 0)} %" for c in row.top_confusions[:2])
        accuracy = "n/a" if row.accuracy is None else f"{percent(row.accuracy, 1)} %"
        lines.append(f"  {row.name:<{width}} {row.group:<7} {accuracy}{interval}"
                     + (f"   confused with {confused}" if confused else ""))
    if failing and perfect:
        lines.append(f"  100 % on test: {listed([listed_name(n) for n in perfect], 10)}")
    return lines


def kept_reference_summary(erm, other) -> str:
    """What a user learns when the disparity-aware run kept the ERM configuration: the verdict, the closest
    setting with its intervals (and the budget that would let it through), and the classes ERM fails on."""
    from probe.report import interval_text

    lines = [f"{other.run_id} (no safe improvement): {other.selection.verdict_text}", *_closest_setting(other)]
    if erm.summary.overall_ci is not None:
        # "(seed mean)": beside a warning about the shipped head (the first seed's) another figure read as a
        # contradiction (a new-user round)
        lines.append(f"The probe ({erm.run_id}): overall test accuracy (seed mean) {percent(erm.summary.overall, 1)} % "
                     f"{interval_text(erm.summary.overall_ci)} over {sum(r.n_test for r in erm.per_class):,} test "
                     "images (95 % interval).")
    lines += _failing_classes(erm)
    lines += [f"warning: {text}" for text in erm.warnings]
    return "\n".join(lines)
