"""Failure diagnostics of a run's test predictions: confusion, precision / recall / F1, the most frequent
confusions of each class, and a 95 % interval of each class's accuracy and of the overall accuracy (Wilson score),
and of balanced accuracy and each third's (each class's Jeffreys posterior, :func:`probe.uncertainty.group_intervals`).

Counts and rates use the predictions of every seed (the confusion matrix is summed over seeds, so precision and
recall are those of the pooled predictions, with intervals that count a test image once,
:func:`probe.uncertainty.precision_recall_f1_intervals`); the accuracy interval is that of the seed-mean accuracy
the report shows (:func:`probe.uncertainty.class_accuracy_interval`: a binomial proportion, where a bootstrap of a
few images gives zero-width intervals).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import precision_recall_f1, top_confusions
from .predictions import Predictions
from .uncertainty import interval_or_none, own_intervals, precision_recall_f1_intervals

__all__ = ["TOP_CONFUSIONS", "TestDiagnostics", "test_diagnostics", "split_disagreement_warning", "SPLIT_GAP_POINTS",
           "SPLIT_GAP_ALPHA"]

TOP_CONFUSIONS = 3


@dataclass
class TestDiagnostics:
    confusion: np.ndarray            # (K, K) counts summed over seeds
    rows: list[dict]                 # per class: accuracy_ci, precision, recall, f1 (each with its _ci), support,
                                     # top_confusions
    overall_ci: list[float]          # the overall accuracy's Wilson interval over the test images
    group_ci: dict[str, list[float]] | None = None  # balanced and each third: 95 % intervals (group_intervals)


def test_diagnostics(predictions: Predictions, class_names: list[str],
                     groups: dict[str, list[int]] | None = None) -> TestDiagnostics:
    """Per-class diagnostics of ``predictions`` (see the module docstring); with ``groups``, the 95 % intervals
    of balanced accuracy and of each third's accuracy (macro means of per-class accuracies, so no proportion:
    ``probe.uncertainty.group_intervals``, from each class's Jeffreys posterior)."""
    num_classes = len(class_names)
    confusion = predictions.confusion(num_classes)
    prf = precision_recall_f1(confusion)
    own = own_intervals(predictions.correct, predictions.labels, num_classes, groups)
    intervals = own.classes
    top = top_confusions(confusion, TOP_CONFUSIONS)
    prf_ci = precision_recall_f1_intervals(predictions.labels, predictions.predicted, num_classes)
    rows = [{"accuracy_ci": intervals[k].tolist(), "precision": prf["precision"][k], "recall": prf["recall"][k],
             "f1": prf["f1"][k], "support": int(prf["support"][k]) // len(predictions.predicted),
             **{f"{name}_ci": interval_or_none(prf_ci[name][k]) for name in prf_ci},
             "top_confusions": [{"index": j, "name": class_names[j], "rate": rate} for j, rate in top[k]]}
            for k in range(num_classes)]
    return TestDiagnostics(confusion, rows, own.overall.tolist(), own.groups)


# A class whose validation and test accuracies lie at least this many points apart, beyond chance (Fisher's exact
# test of the two, Holm-adjusted over the classes, at SPLIT_GAP_ALPHA), is named (split_disagreement_warning). It
# named the classes whose labels a noisy-label round had flipped (Fashion-MNIST: T-shirt/top where 40 % of the
# Shirts' train and val labels read T-shirt, 74.3 % on validation and 90.1 % on test; the T-shirts where 30 % of the
# test Shirts did, 87.7 % and 67.8 %), none in its clean runs, and a class in 6 of 125 other runs on this machine
# (11 at 0.05, where one run in 20 whose splits do not differ would name one): two whose post-hoc bias is in test's
# accuracies alone, one trained at lr 0.1, three of unusual configurations (bench/split_disagreement.py).
SPLIT_GAP_POINTS = 10.0
SPLIT_GAP_ALPHA = 0.01


def split_disagreement_warning(rows: list, posthoc: bool = False, out_of_fold: bool = False) -> str | None:
    """Why a class's test accuracy may not be what validation said, or None: the classes (``rows``, the report's
    per-class rows with ``n_train``, ``n_val``, ``val_accuracy``, ``n_test``, ``accuracy``) whose validation and test
    accuracies disagree beyond chance and by :data:`SPLIT_GAP_POINTS` or more: wrong labels in one split, another
    source of images, or a post-hoc bias (``posthoc``: fitted on validation; beside out-of-fold accuracies, in test's
    alone). ``out_of_fold``: the
    validation accuracies are out of fold on train + val (the report's under cross-validation), so each rests on
    ``n_train + n_val`` images, not ``n_val`` (tested on ``n_val``, a CIFAR-10 run of 30 % wrong labels named 1 of its
    10 classes, as "56.0 % of 31", where its 167 of 298 named all 10). Seed means count as the nearest whole number
    of images right. The report called such a class hard, or easy, with nothing said of its labels (a noisy-label
    round)."""
    from scipy.stats import fisher_exact

    from .numbers import percent
    from .uncertainty import holm

    def validated(row) -> int:  # the images behind the row's validation accuracy
        return (row.n_train + row.n_val) if out_of_fold else row.n_val

    tested = [row for row in rows if validated(row) and row.n_test and row.val_accuracy is not None
              and row.accuracy is not None]
    p_values = []
    for row in tested:
        n_val = validated(row)
        val, test = round(row.val_accuracy * n_val), round(row.accuracy * row.n_test)
        p_values.append(float(fisher_exact([[val, n_val - val], [test, row.n_test - test]])[1]))
    named = sorted(((row, p) for row, p in zip(tested, holm(p_values))
                    if p <= SPLIT_GAP_ALPHA and 100 * abs(row.accuracy - row.val_accuracy) >= SPLIT_GAP_POINTS),
                   key=lambda pair: -abs(pair[0].accuracy - pair[0].val_accuracy))
    if not named:
        return None
    where = "out of fold on train + val" if out_of_fold else "on validation"
    classes = "; ".join(f"{row.name} {percent(row.val_accuracy, 1)} % of {validated(row):,} {where}, "
                        f"{percent(row.accuracy, 1)} % of {row.n_test:,} on test (p = {p:.2g})" for row, p in named)
    # a post-hoc bias: fitted on the validation split, or, beside out-of-fold accuracies (the configuration's
    # without it), in test's figures and not in theirs
    fitted = "" if not posthoc else (", or this run's post-hoc bias, in test's accuracies and not in the out-of-fold "
                                     "ones" if out_of_fold else ", or validation fitted to (this run's post-hoc bias "
                                     "was)")
    return (f"validation and test disagree on {len(named)} class{'es' * (len(named) != 1)} beyond chance and by "
            f"{SPLIT_GAP_POINTS:g} points or more (Fisher's exact test of each class's two accuracies, Holm-adjusted "
            f"over {len(tested)} classes): {classes}. Such a class's images or labels differ between the splits: "
            f"wrong labels in one of them (train and validation labels partly another class's read low on "
            f"validation), images from another source{fitted}; its test accuracy is what the probe does on images "
            "like the test split's.")
