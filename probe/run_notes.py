"""What a run's report says in words: its warnings (the features, the splits, the chosen configuration's grid and
metric, calibration, the thirds' ties and the worst class), the post-hoc bias's sentence and the verdict on test,
each built from the request, the splits and the report; :func:`probe.run.run_probe` adds them to the report."""
from __future__ import annotations

from typing import Any

import numpy as np

from .calibration import confidence_and_accuracy, confidence_warning, temperature_of, temperature_warning
from .compare import beyond_noise, lost_beyond_budget
from .config import ProbeConfig
from .decision import imbalance_warning
from .evaluate import POSTHOC_MIN_PER_CLASS, SeedEvaluation
from .groups import assign_groups
from .names import listed
from .numbers import percent, signed_points
from .report import FeatureSource, Report
from .selection import format_delta, past_budget, same_score
from .splits import Splits, without_validation
from .uncertainty import p_text


def calibration_warnings(calibration: dict, first: SeedEvaluation, val_labels: np.ndarray,
                          temperature: dict | None, test_labels: np.ndarray) -> list[str]:
    """The report's warnings of the shipped head's calibration (``probe.calibration``), its confidence warning told
    the head's mean confidence and accuracy on the validation images (its post-hoc bias and temperature applied,
    as on test), also weighed as ``test_labels`` weigh the classes: what tells a head whose scale is off from
    validation and test that disagree, or that hold the classes in other proportions."""
    validation = None if first.val_logits is None else confidence_and_accuracy(
        first.val_logits / temperature_of(temperature), val_labels, test_labels)
    return [w for w in (confidence_warning(calibration, validation), temperature_warning(calibration, validation)) if w]


def feature_warnings(features: FeatureSource | None) -> list[str]:
    """What the run's features came with: the encoder's warning (random weights), then what the extraction warned of
    the data set's files (:meth:`FeatureSource.said_of_data`)."""
    if features is None:
        return []
    return [*([features.warning] if features.warning else []), *features.said_of_data()]


def posthoc_sentence(config: ProbeConfig, evaluations: list[SeedEvaluation]) -> str:
    """What the post-hoc bias did: its out-of-sample estimate on the first seed, and where it was applied."""
    fitted = (f"Then a post-hoc per-class logit bias was fitted on each seed's validation logits to maximise the "
              f"{config.posthoc_objective} accuracy, keeping val {config.overall_metric} on those images >= the "
              "unbiased probe's")
    first = evaluations[0].posthoc
    if first["folds"]:
        overall = "overall" if config.overall_metric == "accuracy" else "balanced accuracy"
        changed = first.get("oof_hard_changed")
        images = ("" if not changed else f" ({changed[0]} hard images fixed, {changed[1]} broken: sign-flip test "
                  f"{p_text(first['oof_hard_sign_p'])})")
        estimate = (f"out of sample ({first['folds']}-fold cross-fitting on val) the first seed's bias changed "
                    f"{overall} by {format_delta(first['oof_overall_delta'], first['oof_overall_ci'])} and the hard "
                    f"third by {format_delta(first['oof_hard_delta'], first['oof_hard_ci'])}{images}")
    else:
        estimate = (f"a class has fewer than {POSTHOC_MIN_PER_CLASS} val images, too few to estimate its effect out "
                    "of sample")
    if not config.posthoc_guard:
        return f"{fitted}, and applied to every seed unchecked (posthoc_guard off); {estimate}."
    applied = sum(e.posthoc["applied"] for e in evaluations)
    seeds = len(evaluations)
    where = (("not to its one seed, which keeps the unbiased logits" if seeds == 1 else
              f"to none of the {seeds} seeds, which keep the unbiased logits") if applied == 0 else
             ("to its one seed" if seeds == 1 else f"to all {seeds} seeds") if applied == seeds else
             f"to {applied} of {seeds} seeds; the others keep the unbiased logits")
    budget = f"-{config.max_overall_drop:g} pt" if config.max_overall_drop else "0"
    if not first["folds"] and applied == 0:  # never tested: "failed its check" said a check had run (a new-user round)
        return (f"{fitted}; {estimate}, so the guard could not test it: not applied "
                f"{'to its one seed' if seeds == 1 else f'to any of the {seeds} seeds'}, which keep the unbiased "
                f"logits (every class needs {POSTHOC_MIN_PER_CLASS} val images).")
    # the rule the guard applies is the decision's (a statistics review: this said "95 % paired intervals" beside
    # a bias refused on its sign test)
    return (f"{fitted}; {estimate}. It is applied only where that is safe by the disparity-aware rule (the hard-third "
            f"gain's and the overall difference's lower bounds, holding together at one-sided 97.5 %, above 0 and "
            f"not below {budget}, and the hard images it changes leaning its way, sign-flip test p ≤ 0.05): {where}.")


def carved_test(features, splits: Splits, class_names: list[str]) -> list[str]:
    """A warning, as a list, when the cache's test split was carved out of a data set without one
    (``FeatureSource.test_carved``): the extraction said so, the run page and report did not, and every test
    figure of a 20-image-per-class upload rested on 4 images per class carved from it (a dashboard round)."""
    share = None if features is None else features.test_carved
    if not share:
        return []
    counts = np.bincount(splits.test[1], minlength=len(class_names))
    each = (f"{counts.min():,} per class" if counts.min() == counts.max()
            else f"{counts.min():,} to {counts.max():,} per class")
    return [f"The test split was carved out of the data set, which had none of its own (no test/ folder): "
            f"{share:g} of each class's images, {counts.sum():,} in all ({each}). Every test figure here is measured "
            "on them; give the data set a test/ folder to choose the images a probe is judged on."]


def imbalance(splits: Splits, class_names: list[str], overall_metric: str) -> list[str]:
    """``probe.decision.imbalance_warning`` on train + val and test, as a list."""
    counts = np.bincount(np.concatenate([splits.y_train, splits.val[1]]), minlength=splits.num_classes)
    warning = imbalance_warning(counts, np.bincount(splits.test[1], minlength=splits.num_classes), class_names,
                                overall_metric)
    return [warning] if warning else []


def choice_warnings(splits: Splits, class_names: list[str], outcome: Any, cross_validated: bool) -> list[str]:
    """What the report says of how far the chosen configuration can be trusted as the best of its grid."""
    return (_balanced_without_classes(splits, class_names, outcome.config.overall_metric, cross_validated)
            + _grid_edges(outcome.config, outcome.params))


def _balanced_without_classes(splits: Splits, class_names: list[str], overall_metric: str,
                              cross_validated: bool) -> list[str]:
    """A warning when the configuration was chosen on the balanced accuracy of the validation split and a class
    has no validation image: the mean then ran over the other classes, so that class played no part in the choice
    (a long-tailed round: 9 of 10 classes averaged without a word). Out-of-fold selection scores every class."""
    counts = np.bincount(splits.val[1], minlength=splits.num_classes)
    empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
    if overall_metric != "balanced" or cross_validated or not empty or len(empty) == len(class_names):
        return []
    return [f"The configuration was chosen on the balanced accuracy of {len(class_names) - len(empty)} of the "
            f"{len(class_names)} classes: {without_validation(empty)} (balanced accuracy averages the classes a split "
            "holds); the test figures average every class the test split holds."]


def _grid_edges(config: ProbeConfig, selected: dict[str, float]) -> list[str]:
    """A warning naming each swept value chosen at an end of its grid (:meth:`ProbeConfig.grid_edges`)."""
    edges = config.grid_edges(selected)
    if not edges:
        return []
    named = "; ".join(f"{name} {value:g}, the {side} of {field} ({grid[0]:g} to {grid[-1]:g}, {len(grid)} values)"
                      for name, field, value, side, grid in edges)
    return [f"Chosen at the end of its grid: {named}. The best value may lie beyond it: widen the grid past that end "
            "and train again to know."]


def other_features(reference: Report | None, features: FeatureSource | None) -> list[str]:
    """A warning when the reference run recorded other features than this run's (another cache: other images,
    encoder or preprocessing), whose validation accuracy then ranks this run's classes and sets its floor."""
    theirs = None if reference is None else reference.features
    if not FeatureSource.differ(theirs, features):
        return []
    return [f"The {reference.named} used other features ({theirs.describe()}) than this run "
            f"({features.describe()}): its validation accuracy ranks this run's classes into the thirds and sets "
            "the floor of the hard criterion; pass a reference trained on the same cache to compare like with like."]


def other_metric(reference: Report | None, config: ProbeConfig) -> list[str]:
    """A warning when a hard selection's reference run chose its configuration on another overall metric: this run
    falls back on that configuration when nothing qualifies (a new-user round: ``--overall-metric balanced`` on the
    preset line alone kept an ERM chosen on accuracy, 2.2 points of balanced accuracy below ERM chosen on it)."""
    theirs = None if reference is None else reference.config.get("overall_metric") or "accuracy"
    if theirs is None or config.select != "hard" or theirs == config.overall_metric:
        return []
    names = {"accuracy": "accuracy over the images", "balanced": "balanced accuracy"}
    return [f"The {reference.named} chose its configuration on {names[theirs]}; this run measures overall "
            f"as {names[config.overall_metric]}, yet compares with, and falls back on, that configuration. Train the "
            f"reference with --overall-metric {config.overall_metric} too (the launch form does) to compare like "
            "with like."]


def tie_note(report: Report, reference: Report | None, groups: dict[str, list[int]]) -> None:
    """The notes on how the thirds were ranked, on the accuracies that ranked them (:func:`_ranking`): tied
    accuracies split between thirds (:func:`probe.decision.tied_across_thirds`; the first seed's validation
    accuracies named ties the ranking had told apart, a review), and a worst test class outside the hard third
    (:func:`_worst_outside_hard`). Where neither run's accuracies ranked them (a hard selection ranking its own
    reference configuration), the decision said it."""
    from .decision import tied_across_thirds, unranked_note

    ranked = _ranking(report, reference, groups)
    if ranked is None:
        return
    split = "out-of-fold" if report.grouping.split == "cv" else "validation"
    note = None if any(w.startswith("Tied ") for w in report.warnings) else tied_across_thirds(ranked, groups, split)
    report.warnings += [text for text in (unranked_note(ranked, groups, split), note,
                                          _worst_outside_hard(report, ranked, split)) if text]


def _ranking(report: Report, reference: Report | None, groups: dict[str, list[int]]) -> np.ndarray | None:
    """The per-class accuracies that ranked ``groups``: the reference run's validation ones, or this run's (the
    seeds' mean, or out of fold); None when neither gives these thirds."""
    for ranked in ([] if reference is None else [reference.val.per_class]) + [report.val.per_class]:
        vector = np.array([np.nan if v is None else v for v in ranked], dtype=float)
        if len(vector) == len(report.class_names) and assign_groups(vector) == groups:
            return vector
    return None


def _worst_outside_hard(report: Report, ranked: np.ndarray, split: str) -> str | None:
    """A note when the worst class on test is not in the hard third: a hard selection aims at the third, and its
    verdict says nothing of that class (a new-user round: the worst test class, 53 % on 15 images, sat in the easy
    third at 83 % out of fold, and "no safe improvement" read as if about it)."""
    from .report import interval_text

    name = report.summary.worst_class.name
    row = next((r for r in report.per_class if r.name == name), None)
    if row is None or row.group == "hard" or len(report.class_names) < 3 or np.isnan(ranked[row.index]):
        return None
    if any(r.group == "hard" and same_score(r.accuracy, row.accuracy) for r in report.per_class):
        return None  # a hard class as bad on test: "the worst class is in the easy third" read with all at 100 %
    kept = (report.grouping.stability or [None] * len(report.class_names))[row.index]
    held = "" if kept is None else f" (it kept its third in {percent(kept, 1)} % of bootstrap resamples)"
    third_of = {int(i): name for name, members in report.grouping.groups.items() for i in members}
    if any(i != row.index and third_of.get(i) != row.group and same_score(ranked[i], ranked[row.index])
           for i in range(len(ranked))):  # its stability is the tie's, which the tie note says (a new-user round)
        held = " (tied there with a class of another third: the class index decided its third)"
    return (f"{name}, the worst class on test ({percent(row.accuracy, 1)} % {interval_text(row.accuracy_ci)}), is in "
            f"the {row.group} third: the thirds are ranked by {split} accuracy, where it scored "
            f"{percent(ranked[row.index], 1)} %{held}. A hard selection aims at the hard third, and its verdict says "
            "nothing of this class; with few images per class the ranks move between splits.")


def verdict_on_test(interval: list[float], p_value: float, total: float,
                    overall: tuple[list[float], float, float] | None = None, budget: float = 0.0) -> str:
    """Whether a validation improvement held on test, by compare's ``beyond_noise`` rule for the hard third: its
    paired test interval ``[lo, hi]`` and the sign-flip test of its images (``p_value``, their class-weighted
    difference ``total``; ``probe.compare.evidence``): ``holds`` (above 0, the images leaning that way beyond
    chance), ``reversed`` (below, likewise), else ``within_noise`` (3 hard test images fixed were "holds" beside a
    verdict saying p = 0.25; a statistics review). ``overall``, the overall metric's (interval, p, total) on test:
    where it lies wholly below ``-budget`` (a fraction) beyond noise (``probe.compare.lost_beyond_budget``) the
    check is ``overall_lost`` unless the hard third reversed (a hard gain that held read "held on test" beside an
    overall loss of 3.0 [1.7, 4.4] points on a budget of 0; a consistency round)."""
    hard = beyond_noise(interval, p_value, total)
    if hard and interval[0] < 0:
        return "reversed"
    if overall is not None and lost_beyond_budget(*overall, budget):
        return "overall_lost"
    return "holds" if hard else "within_noise"


def past_budget_sentence(lost: bool, delta: float, budget: float, metric: str) -> str:
    """What a verdict adds where the overall ``delta`` on test (a fraction, by ``metric``) is past the ``budget``
    (points) without being beyond noise of it (``lost``: ``probe.compare.lost_beyond_budget``; -3.02 points on a
    budget of 3 read "held on test" bare; a consistency round), else ""."""
    if lost or not past_budget(delta, budget / 100):
        return ""
    return (f" The {'balanced accuracy' if metric == 'balanced' else 'overall'} difference on test, "
            f"{signed_points(delta)} pt, is past the {budget:g}-point budget, but not beyond noise of it.")
