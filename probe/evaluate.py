"""Per-seed evaluation of a fitted probe on val and test (``probe.metrics`` on its logits), and the post-hoc bias.

What ``run_probe`` keeps of one trained seed is a :class:`SeedEvaluation`; the report aggregates them over seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import (
    class_margin_deg,
    output_margins,
    overall_accuracy,
    per_class_accuracy,
    per_class_reduce,
    sample_margins,
)
from .posthoc import PosthocLogitBias

__all__ = ["SplitScores", "SeedEvaluation", "score_logits", "evaluate_split", "evaluate_seed", "apply_posthoc",
           "posthoc_check", "POSTHOC_FOLDS", "POSTHOC_MIN_PER_CLASS"]


@dataclass
class SplitScores:
    """Scores of one split: logits (n, K), per-class accuracy and counts (K,), overall accuracy."""

    logits: np.ndarray
    per_class: np.ndarray
    counts: np.ndarray
    overall: float


@dataclass
class SeedEvaluation:
    """Everything the report needs from one trained seed (arrays are (K,) unless noted)."""

    seed: int
    val_per_class: np.ndarray
    val_overall: float
    test_per_class: np.ndarray
    test_overall: float
    output_margin_mean: np.ndarray     # mean P(y|x) − max_{y'≠y} P(y'|x) per class, test
    test_counts: np.ndarray
    sample_margin_min: np.ndarray      # per class, test
    sample_margin_mean: np.ndarray
    class_margin_deg: float
    weight_dim: int | None = None  # d of the class vectors: the ideal margins hold for d ≥ K−1
    val_logits: np.ndarray | None = None  # (n_val, K), kept for the post-hoc bias
    test_logits: np.ndarray | None = None  # (n_test, K)
    posthoc: dict[str, Any] | None = None
    precision: str | None = None  # what the seed's fit ran at (fp32, bf16): report.environment


def score_logits(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> SplitScores:
    """Per-class and overall top-1 accuracy of ``logits`` (n, K) against ``labels`` (n,)."""
    predictions = logits.argmax(axis=1)
    per_class, counts = per_class_accuracy(labels, predictions, num_classes)
    return SplitScores(logits, per_class, counts, overall_accuracy(labels, predictions))


def evaluate_split(trainer, features: np.ndarray, labels: np.ndarray, num_classes: int) -> SplitScores:
    """Scores of a fitted trainer on one split (logits in float64)."""
    logits = np.asarray(trainer.decision_function(features), dtype=np.float64)
    return score_logits(logits, labels, num_classes)


def evaluate_seed(trainer, seed: int, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                  num_classes: int) -> SeedEvaluation:
    """Val and test accuracy, output margins, sample margins and the class margin of one fitted seed."""
    v = evaluate_split(trainer, *val, num_classes)
    t = evaluate_split(trainer, *test, num_classes)
    x_test, y_test = test
    _, out_margin = per_class_reduce(output_margins(t.logits, y_test), y_test, num_classes)
    weights = np.asarray(trainer.class_weights())
    margins, start = [], 0
    for seen in trainer.transform_chunks(x_test):  # no (n, d) float32 copy of the test split
        margins.append(sample_margins(seen, y_test[start:start + len(seen)], weights))
        start += len(seen)
    sm_min, sm_mean = per_class_reduce(np.concatenate(margins), y_test, num_classes)
    return SeedEvaluation(
        seed=seed, val_per_class=v.per_class, val_overall=v.overall, test_per_class=t.per_class,
        test_overall=t.overall, output_margin_mean=out_margin, test_counts=t.counts,
        sample_margin_min=sm_min, sample_margin_mean=sm_mean, class_margin_deg=class_margin_deg(weights),
        weight_dim=weights.shape[1], val_logits=v.logits, test_logits=t.logits,
    )


POSTHOC_FOLDS = 5  # stratified cross-fitting folds on val that estimate a post-hoc bias's out-of-sample effect
# ... and the val images every class needs for that estimate: two of each class in every held-out fold (with
# fewer, a fold's per-class accuracy moves in steps of 50 points or more; the paired bootstrap is liberal there).
POSTHOC_MIN_PER_CLASS = 2 * POSTHOC_FOLDS


def apply_posthoc(ev: SeedEvaluation, val_labels: np.ndarray, test_labels: np.ndarray,
                  groups: dict[str, list[int]], objective: str, num_classes: int, overall: str = "accuracy", *,
                  guard: bool = True, max_overall_drop: float = 0.0, seed: int = 0) -> None:
    """Fit the per-class logit bias on this seed's val logits, its floor on ``overall`` (accuracy or balanced),
    and estimate its effect out of sample (:func:`posthoc_check`); with ``guard`` (``ProbeConfig.posthoc_guard``),
    re-score val and test with it (in place) only when that estimate passes the disparity rule, else keep the
    unbiased logits (bias 0); without, always."""
    model = PosthocLogitBias(objective, groups, overall=overall).fit(ev.val_logits, val_labels)
    check = posthoc_check(model, ev.val_logits, val_labels, num_classes, max_overall_drop, seed)
    applied = check["safe"] or not guard
    ev.posthoc = {"bias": model.bias_.tolist() if applied else [0.0] * num_classes, "scale": model.scale_,
                  "val_overall_before": model.overall_before_, "val_overall_after": model.overall_after_,
                  "val_objective_before": model.objective_before_, "val_objective_after": model.objective_after_,
                  "applied": applied, **{k: v for k, v in check.items() if k != "safe"}}
    if not applied:
        return
    v = score_logits(model.decision_function(ev.val_logits), val_labels, num_classes)
    t = score_logits(model.decision_function(ev.test_logits), test_labels, num_classes)
    ev.val_per_class, ev.val_overall = v.per_class, v.overall
    ev.test_per_class, ev.test_overall = t.per_class, t.overall
    ev.val_logits, ev.test_logits = v.logits, t.logits  # the stored predictions are those of the biased probe
    _, ev.output_margin_mean = per_class_reduce(output_margins(t.logits, test_labels), test_labels, num_classes)


def posthoc_check(model: PosthocLogitBias, val_logits: np.ndarray, val_labels: np.ndarray, num_classes: int,
                  max_overall_drop: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """The out-of-sample effect of a bias with ``model``'s settings: stratified cross-fitting on val
    (``POSTHOC_FOLDS`` folds; :meth:`PosthocLogitBias.cross_fit`), its
    out-of-fold predictions against the unbiased ones scored by the disparity decision (``probe.decision.decide``:
    safe when the hard-third gain's lower bound is > 0 and the overall difference's ≥ −``max_overall_drop``
    (bounds holding together at one-sided 97.5 %)
    points, and the hard images it changes lean its way, sign-flip test p ≤ 0.05). The bias fitted on all of val and checked on those same images
    always keeps its floor; this estimate is what it does on images it was not fitted on.

    Returns ``{"safe", "folds", "oof_overall_delta", "oof_overall_ci", "oof_hard_delta", "oof_hard_ci",
    "oof_hard_changed", "oof_hard_sign_p", "oof_hard_joint_lo", "oof_overall_joint_lo"}`` (the decision's rule:
    simultaneous one-sided 97.5 % bounds of both differences, the joint ones, and the sign-flip test of the hard
    images it changes)
    (``folds`` 0 and no deltas when a class has fewer than ``POSTHOC_MIN_PER_CLASS`` val images: too few to
    estimate, not safe)."""
    from .crossval import stratified_folds
    from .decision import decide

    val_labels = np.asarray(val_labels, dtype=np.int64)
    counts = np.bincount(val_labels, minlength=num_classes)
    if counts[counts > 0].min() < POSTHOC_MIN_PER_CLASS:
        return {"safe": False, "folds": 0}
    predicted = model.cross_fit(val_logits, val_labels, stratified_folds(val_labels, POSTHOC_FOLDS, seed))
    plain = (np.asarray(val_logits).argmax(axis=1) == val_labels).astype(np.float64)
    decision = decide([{"posthoc_bias": False}, {"posthoc_bias": True}],
                      [plain, (predicted == val_labels).astype(np.float64)], 0, val_labels,
                      [str(c) for c in range(num_classes)], groups=model.groups,
                      max_overall_drop=max_overall_drop, seed=seed, overall_metric=model.overall)
    entry = decision.frontier[1]
    return {"safe": decision.verdict == "improved", "folds": POSTHOC_FOLDS,
            "oof_overall_delta": entry["val_overall_delta"], "oof_overall_ci": entry["val_overall_delta_ci"],
            "oof_hard_delta": entry["val_hard_delta"], "oof_hard_ci": entry["val_hard_delta_ci"],
            "oof_hard_changed": entry.get("val_hard_changed"), "oof_hard_sign_p": entry.get("val_hard_sign_p"),
            "oof_hard_joint_lo": entry.get("val_hard_delta_simultaneous_lo"),
            "oof_overall_joint_lo": entry.get("val_overall_delta_simultaneous_lo")}
