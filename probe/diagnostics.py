"""Failure diagnostics of a run's test predictions: confusion, precision / recall / F1, the most frequent
confusions of each class, and a 95 % interval of each class's accuracy and of the overall accuracy (Wilson score),
and of balanced accuracy and each third's (each class's Jeffreys posterior, :func:`probe.uncertainty.group_intervals`).

Counts and rates use the predictions of every seed (the confusion matrix is summed over seeds, so precision and
recall are those of the pooled predictions); the accuracy interval is that of the seed-mean accuracy the report
shows (:func:`probe.uncertainty.class_accuracy_interval`: a binomial proportion, where a bootstrap of a few images
gives zero-width intervals).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import precision_recall_f1, top_confusions
from .predictions import Predictions
from .uncertainty import own_intervals

__all__ = ["TOP_CONFUSIONS", "TestDiagnostics", "test_diagnostics"]

TOP_CONFUSIONS = 3


@dataclass
class TestDiagnostics:
    confusion: np.ndarray            # (K, K) counts summed over seeds
    rows: list[dict]                 # per class: accuracy_ci, precision, recall, f1, support, top_confusions
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
    rows = [{"accuracy_ci": intervals[k].tolist(), "precision": prf["precision"][k], "recall": prf["recall"][k],
             "f1": prf["f1"][k], "support": int(prf["support"][k]) // len(predictions.predicted),
             "top_confusions": [{"index": j, "name": class_names[j], "rate": rate} for j, rate in top[k]]}
            for k in range(num_classes)]
    return TestDiagnostics(confusion, rows, own.overall.tolist(), own.groups)
