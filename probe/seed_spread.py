"""How far two runs' difference moves over retraining: the spread of their seeds beside compare's test interval.

Compare's intervals resample the test images with each run's trained heads held as they are; the seeds (the head's
initialisation, its mini-batch order) are averaged, never resampled. Where each run trained several seeds, their
per-seed values measure that other noise: a difference of seed means moves over retraining by about
t_ν·√(s_a²/S_a + s_b²/S_b) (s: the standard deviation of a run's S per-seed values; Welch's interval, t at the
Welch–Satterthwaite degrees of freedom ν: with 2 or 3 seeds the normal 1.96 understated it). Runs that trained the
same seeds (the default 0, 1, 2 of every run) share each seed's initialisation and mini-batch order, so the per-seed
difference d_s = b_s − a_s is the paired quantity: t_{S−1}·sd(d)/√S, where both reports list the same seeds, one per
row of their predictions; Welch's where they differ or are unknown (:func:`seed_pairing`). Either can exceed the
test interval, so that a difference "beyond noise" over the test images may not hold when the runs are trained
again.
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

__all__ = ["SPREAD_METRICS", "SAME_SEEDS", "INDEPENDENT", "per_seed_metrics", "seed_pairing", "seed_spread",
           "paired_seed_spread", "add_seed_spreads", "pairing_words"]

# the metrics whose per-seed values are one figure of one seed's predictions; the worst class is left out: the
# lowest class of each seed is another class from seed to seed, and lower than the lowest of the seed means
SPREAD_METRICS = ("overall", "balanced", *GROUP_NAMES)

# Comparison.seed_pairing: how each seed_spread took the two runs' seeds
SAME_SEEDS, INDEPENDENT = "same seeds", "independent"
# how it took them, in brief (:func:`pairing_words`; the compare views' "over retraining" line), and in full
# (the warning's: which seeds)
_PAIRING_BRIEF = {SAME_SEEDS: "paired seed by seed", INDEPENDENT: "taken as independent (Welch)"}
_PAIRING_WORDS = {SAME_SEEDS: _PAIRING_BRIEF[SAME_SEEDS] + ": both runs trained seeds {seeds}",
                  INDEPENDENT: "the runs' seeds " + _PAIRING_BRIEF[INDEPENDENT]}


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


# per-seed values closer than this agree: they are fractions of at most ~10⁹ images, and their float differences
# (0.75 − 0.7 against 0.85 − 0.8) or mean (of three 0.8s) miss by 1e-16, a variance not 0
_AGREE = 1e-12


def _mean_variance(values: np.ndarray) -> float:
    """s²/S of per-seed values (S,): 0 where they agree (within :data:`_AGREE`)."""
    return 0.0 if np.ptp(values) <= _AGREE else float(values.var(ddof=1) / len(values))


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


def paired_seed_spread(base: np.ndarray, other: np.ndarray, level: float = DEFAULT_LEVEL) -> float | None:
    """Half-width of the ``level`` range of the mean per-seed difference d = ``other`` − ``base`` (S,) of two runs
    that trained the same seeds, paired: t_{S−1}·sd(d)/√S (sd: ddof 1); 0 where every seed moved alike; None where
    the runs have fewer than 2 seeds or a value is not finite."""
    if len(base) < 2 or not (np.isfinite(base).all() and np.isfinite(other).all()):
        return None
    variance = _mean_variance(other - base)
    return 0.0 if variance == 0 else float(student_t.ppf(0.5 + level / 2, len(base) - 1) * math.sqrt(variance))


def seed_pairing(seeds: tuple | None, base, other) -> str:
    """:data:`SAME_SEEDS` where both runs' reports list the same seeds (``seeds``: their ``report.seeds.values``) in
    the same order, one per row of their predictions ``base`` and ``other`` (``predicted``, in config.seeds order);
    :data:`INDEPENDENT` where the seeds differ or are unknown (None, or a list that does not match the rows)."""
    if seeds is None or None in seeds:
        return INDEPENDENT
    one, two = (list(values) for values in seeds)
    same = one == two and len(one) == len(base.predicted) == len(other.predicted)
    return SAME_SEEDS if same else INDEPENDENT


def add_seed_spreads(comparison, base, other, seeds: tuple | None = None) -> None:
    """Each metric's ``seed_spread`` (:func:`seed_spread` of the two runs' predictions ``base`` and ``other``, on
    the images compared) and, where it exceeds the half-width of the metric's test interval, one warning naming
    those metrics, in place. One probe against itself (:func:`probe.predictions.same_predictions`, its intervals
    pinned at 0) differs by 0 however it is retrained: each spread is 0 where its seeds have one (a run compared
    with itself had read "±16.0 pt over retraining against ±0.0 pt over the test images"). ``seeds``: the two
    reports' seed lists, paired seed by seed where they are the same (:func:`seed_pairing`, ``seed_pairing``; None
    where no spread was measured)."""
    num_classes, groups = len(comparison.per_class), comparison.grouping.groups
    a, b = (per_seed_metrics(p, num_classes, groups) for p in (base, other))
    itself, wider = same_predictions(base, other), []
    comparison.seed_pairing = seed_pairing(seeds, base, other)
    spread = paired_seed_spread if comparison.seed_pairing == SAME_SEEDS else seed_spread
    for key in SPREAD_METRICS:
        row = comparison.metrics[key]
        row.seed_spread = spread(a[key], b[key])
        if itself and row.seed_spread is not None:
            row.seed_spread = 0.0
        if row.seed_spread is not None and row.delta_ci is not None and None not in row.delta_ci \
                and row.seed_spread > (row.delta_ci[1] - row.delta_ci[0]) / 2:
            said = ", called beyond noise over the test images alone" if row.beyond_noise else ""
            wider.append(f"{key} (±{fixed(100 * row.seed_spread, 1)} pt over retraining against "
                         f"±{fixed(50 * (row.delta_ci[1] - row.delta_ci[0]), 1)} pt over the test images{said})")
    if all(comparison.metrics[key].seed_spread is None for key in SPREAD_METRICS):
        comparison.seed_pairing = None  # nothing measured (a run of one seed): no way the seeds were taken
    if wider:
        comparison.warnings.append(
            f"the runs' seeds ({len(base.predicted)} and {len(other.predicted)}) spread wider than the test interval "
            f"for {'; '.join(wider)}: the intervals hold test sampling alone, and a difference within the seeds' "
            "spread may not hold when the runs are trained again (seed_spread: the 95 % range of the difference "
            f"of seed means over retraining, {_pairing_words(comparison.seed_pairing, seeds)})")


def _pairing_words(pairing: str, seeds: tuple | None) -> str:
    """How the spread took the seeds, in the warning's words: 'paired seed by seed: both runs trained seeds 0, 1,
    2' or 'the runs' seeds taken as independent (Welch)'."""
    return _PAIRING_WORDS[pairing].format(seeds=", ".join(map(str, seeds[0])) if pairing == SAME_SEEDS else "")


def pairing_words(pairing: str | None) -> str | None:
    """How the spread took the seeds (``Comparison.seed_pairing``), in brief: 'paired seed by seed' or 'taken as
    independent (Welch)'; None where it is unknown (no spread: no stored predictions, other images)."""
    return _PAIRING_BRIEF.get(pairing)
