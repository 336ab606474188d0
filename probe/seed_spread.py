"""How far two runs' difference moves over retraining: the spread of their seeds beside compare's test interval.

Compare's intervals resample the test images with each run's trained heads held as they are; the seeds (the head's
initialisation, its mini-batch order) are averaged, never resampled. Where each run trained several seeds, their
per-seed values measure that other noise: a difference of seed means moves over retraining by about
t_ν·√(s_a²/S_a + s_b²/S_b) (s: the standard deviation of a run's S per-seed values; Welch's interval, t at the
Welch–Satterthwaite degrees of freedom ν: with 2 or 3 seeds the normal 1.96 understated it), which
can exceed the test interval, so that a difference "beyond noise" over the test images may not hold when the runs
are trained again.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as student_t

from .groups import GROUP_NAMES, group_accuracy
from .metrics import nan_mean
from .numbers import fixed
from .predictions import same_predictions
from .uncertainty import DEFAULT_LEVEL, observed_class_accuracy

__all__ = ["SPREAD_METRICS", "per_seed_metrics", "seed_spread", "add_seed_spreads"]

# the metrics whose per-seed values are one figure of one seed's predictions; the worst class is left out: the
# lowest class of each seed is another class from seed to seed, and lower than the lowest of the seed means
SPREAD_METRICS = ("overall", "balanced", *GROUP_NAMES)


def per_seed_metrics(predictions, num_classes: int, groups: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Each of :data:`SPREAD_METRICS` of each seed, (S,), of a run's test :class:`probe.predictions.Predictions`
    (a comparison's: the images it compares)."""
    labels, rows = predictions.labels, []
    for predicted in predictions.predicted:
        correct = (predicted == labels).astype(np.float64)
        per_class = observed_class_accuracy(correct, labels, num_classes)
        rows.append({"overall": float(correct.mean()), "balanced": nan_mean(per_class),
                     **group_accuracy(per_class, groups)})
    return {key: np.array([row[key] for row in rows], dtype=np.float64) for key in SPREAD_METRICS}


def _mean_variance(values: np.ndarray) -> float:
    """s²/S of per-seed values (S,): 0 where they agree (their float mean can miss them by 1e-16, a variance not 0)."""
    return 0.0 if (values == values[0]).all() else float(values.var(ddof=1) / len(values))


def seed_spread(base: np.ndarray, other: np.ndarray, level: float = DEFAULT_LEVEL) -> float | None:
    """Half-width of the ``level`` range of the difference of two runs' seed means over retraining, Welch's interval
    of two independent samples: t_ν·√(v_a + v_b), v = s²/S (s the sample standard deviation, ddof 1, of each run's S
    per-seed values ``base`` and ``other``), ν = (v_a + v_b)² / (v_a²/(S_a − 1) + v_b²/(S_b − 1)) (Welch–
    Satterthwaite: S − 1 of the other run where one run's seeds agree; 0 where both runs' do); None where a run has
    fewer than 2 seeds or a value is not finite (a third without test images)."""
    if min(len(base), len(other)) < 2 or not (np.isfinite(base).all() and np.isfinite(other).all()):
        return None
    v_a, v_b = (_mean_variance(x) for x in (base, other))
    if v_a + v_b == 0:
        return 0.0
    dof = (v_a + v_b) ** 2 / (v_a ** 2 / (len(base) - 1) + v_b ** 2 / (len(other) - 1))
    return float(student_t.ppf(0.5 + level / 2, dof) * math.sqrt(v_a + v_b))


def add_seed_spreads(comparison, base, other) -> None:
    """Each metric's ``seed_spread`` (:func:`seed_spread` of the two runs' predictions ``base`` and ``other``, on
    the images compared) and, where it exceeds the half-width of the metric's test interval, one warning naming
    those metrics, in place. One probe against itself (:func:`probe.predictions.same_predictions`, its intervals
    pinned at 0) differs by 0 however it is retrained: each spread is 0 where its seeds have one (a run compared
    with itself had read "±16.0 pt over retraining against ±0.0 pt over the test images")."""
    num_classes, groups = len(comparison.per_class), comparison.grouping.groups
    a, b = (per_seed_metrics(p, num_classes, groups) for p in (base, other))
    itself, wider = same_predictions(base, other), []
    for key in SPREAD_METRICS:
        row = comparison.metrics[key]
        row.seed_spread = seed_spread(a[key], b[key])
        if itself and row.seed_spread is not None:
            row.seed_spread = 0.0
        if row.seed_spread is not None and row.delta_ci is not None and None not in row.delta_ci \
                and row.seed_spread > (row.delta_ci[1] - row.delta_ci[0]) / 2:
            said = ", called beyond noise over the test images alone" if row.beyond_noise else ""
            wider.append(f"{key} (±{fixed(100 * row.seed_spread, 1)} pt over retraining against "
                         f"±{fixed(50 * (row.delta_ci[1] - row.delta_ci[0]), 1)} pt over the test images{said})")
    if wider:
        comparison.warnings.append(
            f"the runs' seeds ({len(base.predicted)} and {len(other.predicted)}) spread wider than the test interval "
            f"for {'; '.join(wider)}: the intervals hold test sampling alone, and a difference within the seeds' "
            "spread may not hold when the runs are trained again (seed_spread: the 95 % range of the difference "
            "of seed means over retraining)")
