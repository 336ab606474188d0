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

__all__ = ["SplitScores", "SeedEvaluation", "score_logits", "evaluate_split", "evaluate_seed", "apply_posthoc"]


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
    val_logits: np.ndarray | None = None  # (n_val, K), kept for the post-hoc bias
    test_logits: np.ndarray | None = None  # (n_test, K)
    posthoc: dict[str, Any] | None = None


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
        val_logits=v.logits, test_logits=t.logits,
    )


def apply_posthoc(ev: SeedEvaluation, val_labels: np.ndarray, test_labels: np.ndarray,
                  groups: dict[str, list[int]], objective: str, num_classes: int, overall: str = "accuracy") -> None:
    """Fit the per-class logit bias on this seed's val logits, its floor on ``overall`` (accuracy or balanced);
    re-score val and test with it (in place)."""
    model = PosthocLogitBias(objective, groups, overall=overall).fit(ev.val_logits, val_labels)
    v = score_logits(model.decision_function(ev.val_logits), val_labels, num_classes)
    t = score_logits(model.decision_function(ev.test_logits), test_labels, num_classes)
    ev.val_per_class, ev.val_overall = v.per_class, v.overall
    ev.test_per_class, ev.test_overall = t.per_class, t.overall
    ev.val_logits, ev.test_logits = v.logits, t.logits  # the stored predictions are those of the biased probe
    _, ev.output_margin_mean = per_class_reduce(output_margins(t.logits, test_labels), test_labels, num_classes)
    ev.posthoc = {"bias": model.bias_.tolist(), "scale": model.scale_, "val_overall_before": model.overall_before_,
                  "val_overall_after": model.overall_after_, "val_objective_before": model.objective_before_,
                  "val_objective_after": model.objective_after_}
