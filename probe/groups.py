"""Easy / medium / hard thirds of the classes, ranked by a per-class accuracy vector (MR², Sec. 5).

Rule (deterministic):

1. Rank classes from easiest to hardest by accuracy, descending. Ties keep class-index order (the lower index
   ranks as easier). Classes with ``nan`` accuracy (no sample in the ranking split) rank hardest, so a class
   that cannot be measured is never hidden in the easy group.
2. ``easy`` and ``hard`` have the same size, the integer nearest to K/3 (halves round up:
   ``floor(K/3 + 1/2)``); ``medium`` takes the rest. K=10 → 3/4/3, K=11 → 4/3/4, K=8 → 3/2/3, K=7 → 2/3/2.

When runs are compared, the ranking vector is the reference (ERM) run's validation per-class accuracy, so all
methods are scored on the same classes.
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import nan_mean

GROUP_NAMES: tuple[str, str, str] = ("easy", "medium", "hard")

__all__ = ["GROUP_NAMES", "assign_groups", "group_of", "group_accuracy"]


def assign_groups(per_class_accuracy: np.ndarray) -> dict[str, list[int]]:
    """Split classes into easy / medium / hard thirds by accuracy (rule in the module docstring).

    Args:
        per_class_accuracy: (K,) accuracies; ``nan`` allowed.

    Returns:
        ``{"easy": [...], "medium": [...], "hard": [...]}``, class indices in ranking order (easiest first).
    """
    acc = np.asarray(per_class_accuracy, dtype=np.float64)
    if acc.ndim != 1 or acc.size == 0:
        raise ValueError(f"per_class_accuracy must be a non-empty 1-D vector (K,), got shape {acc.shape}.")
    num_classes = acc.size
    key = np.where(np.isnan(acc), -np.inf, acc)
    # lexsort: last key is primary → sort by -accuracy, then by index.
    order = np.lexsort((np.arange(num_classes), -key))
    n_edge = math.floor(num_classes / 3 + 0.5)
    easy = order[:n_edge]
    hard = order[num_classes - n_edge:] if n_edge else order[:0]
    medium = order[n_edge:num_classes - n_edge]
    return {"easy": easy.tolist(), "medium": medium.tolist(), "hard": hard.tolist()}


def group_of(groups: dict[str, list[int]], num_classes: int) -> list[str]:
    """Inverse map: the group name of every class index (K,)."""
    names = [""] * num_classes
    for name in GROUP_NAMES:
        for index in groups.get(name, []):
            names[int(index)] = name
    missing = [i for i, n in enumerate(names) if not n]
    if missing:
        raise ValueError(f"groups do not cover classes {missing}; every class needs a group.")
    return names


def group_accuracy(per_class_accuracy: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float]:
    """Mean per-class accuracy inside each group (a macro average; ``nan`` for an empty group)."""
    acc = np.asarray(per_class_accuracy, dtype=np.float64)
    out: dict[str, float] = {}
    for name in GROUP_NAMES:
        members = acc[np.asarray(groups.get(name, []), dtype=np.int64)]
        out[name] = float(nan_mean(members))
    return out
