"""The hard third measured on images that did not rank it: cross-fitted thirds for the disparity-aware decision.

The decision asks whether a candidate raises the hard third. Ranked on the reference's accuracy on the very
validation images its gain is then measured on, the hard third is partly the classes whose images the reference
got wrong by chance, and any candidate whose errors differ regresses towards the mean there: a candidate with
the reference's true accuracies gained +2 to +10 points on that hard third, and with an overall budget of 5 points
it was chosen in up to 54 % of simulated trials (a statistics review; ``bench/decision_calibration.py --rtm``).

:class:`CrossFittedThirds` splits each class's images into two halves (seeded, stratified by class), ranks the
thirds on the reference's accuracy in each half and measures the hard third of one half on the other: the
hard-third score is the mean accuracy over the pseudo-classes (class k, half h) whose class is hard in the ranking
of half 1 − h. Each image is measured once, by a ranking it took no part in, so under no difference the gain has
mean 0. The paired bootstrap resamples within each (class, half), the same resamples for every candidate, the
(class, half) pairs of one image together (:class:`probe.uncertainty.Bootstrap`: a class of 3 validation images
has one, and each was that image in every resample); the overall score is computed from the same resamples (each
class's accuracy its halves weighted by their images), so the two differences stay joint for
:func:`probe.uncertainty.simultaneous_lower_bounds`.
"""
from __future__ import annotations

import warnings

import numpy as np

from .groups import assign_groups
from .metrics import overall_weights
from .uncertainty import (DEFAULT_RESAMPLES, ZERO_TOLERANCE, Bootstrap, class_mean, observed_class_accuracy,
                          stratified_variance_missed)

__all__ = ["CrossFittedThirds", "halves"]


def halves(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) 0 or 1: each class's samples in a seeded random order, the first ⌈n_k / 2⌉ in half 0."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 2])
    out = np.zeros(labels.size, dtype=np.int64)
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        out[members[(len(members) + 1) // 2:]] = 1
    return out


def _hard_present(accuracy: np.ndarray) -> list[int]:
    """The hard third of the classes with images in a half (``accuracy`` nan elsewhere): a class absent from the
    half ranked hardest there (``assign_groups`` puts nan last), and a class of one validation image filled the hard
    set of the half it is not in, however easy (a review)."""
    present = np.flatnonzero(~np.isnan(accuracy))
    if present.size == 0:  # a half without images (one validation image per class, --cv 0): no hard third there
        return []
    return [int(present[i]) for i in assign_groups(accuracy[present])["hard"]]


class CrossFittedThirds:
    """Paired differences to ``reference`` of the overall score and of the cross-fitted hard third.

    Args:
        labels: (n,) class of each validation (or out-of-fold) sample.
        num_classes: K.
        reference: (n,) the reference configuration's per-sample correctness, which ranks the thirds.
        seed, n_resamples: the halves and the bootstrap's resamples.
        overall_metric: what overall is (``probe.metrics.OVERALL_METRICS``).
    """

    def __init__(self, labels: np.ndarray, num_classes: int, reference: np.ndarray, *, seed: int = 0,
                 n_resamples: int = DEFAULT_RESAMPLES, overall_metric: str = "accuracy"):
        labels = np.asarray(labels, dtype=np.int64)
        self.num_classes, self.reference, self.seed = num_classes, np.asarray(reference, dtype=np.float64), seed
        half = halves(labels, seed)
        self.strata = 2 * labels + half  # pseudo-class 2k + h: class k's samples in half h
        self.counts = np.bincount(self.strata, minlength=2 * num_classes).reshape(num_classes, 2)
        self.weights = overall_weights(self.counts.sum(axis=1), overall_metric)
        self.boot = Bootstrap(self.strata, 2 * num_classes, n_resamples=n_resamples, seed=seed)
        hard = [_hard_present(observed_class_accuracy(self.reference[half == h], labels[half == h], num_classes))
                for h in (0, 1)]
        # the hard third ranked on half h is measured on half 1 − h
        self.hard = np.array(sorted([2 * k + 1 for k in hard[0]] + [2 * k for k in hard[1]]), dtype=np.int64)
        self.hard_samples = np.isin(self.strata, self.hard)  # the images the hard score reads
        self._reference_scores = self._scores(self.reference)

    def _scores(self, correct: np.ndarray, resample: bool = True) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """``(on the split, in every resample)``: overall score and cross-fitted hard-third accuracy (without
        ``resample``, the second is empty)."""
        point = observed_class_accuracy(correct, self.strata, 2 * self.num_classes)[None, :]
        scored = self._rows(point, None)
        resampled = self._rows(self.boot.class_accuracy(correct), self.boot.multiplicity()) if resample else {}
        return {k: float(v[0]) for k, v in scored.items()}, resampled

    def _rows(self, acc: np.ndarray, times: np.ndarray | None) -> dict[str, np.ndarray]:
        """Overall score and hard-third accuracy of each row of (R, 2K) pseudo-class accuracies, each pseudo-class
        in each row as many times as ``times`` (R, 2K) says (a pooled one of one image:
        :meth:`probe.uncertainty.Bootstrap.multiplicity`; None: once)."""
        halves_acc = acc.reshape(len(acc), self.num_classes, 2)
        counts = self.counts if times is None else self.counts * times.reshape(halves_acc.shape)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():  # a class without samples: nan, weight 0
            warnings.simplefilter("ignore", RuntimeWarning)  # a hard set without samples: nan, never above 0
            per_class = np.nansum(halves_acc * counts, axis=2) / counts.sum(axis=-1)
            hard = class_mean(acc, self.hard, times) if self.hard.size else np.full(len(acc), np.nan)
            if times is None:
                overall = np.nansum(np.nan_to_num(per_class) * self.weights, axis=1)
            else:  # each class weighs by the share of its images the row holds, and the weights are renormalised
                weights = self.weights * np.nan_to_num(counts.sum(axis=-1) / self.counts.sum(axis=1))
                overall = np.nansum(np.nan_to_num(per_class) * weights, axis=1) / weights.sum(axis=1)
        return {"overall": overall, "hard": hard}

    def scores(self, correct: np.ndarray) -> dict[str, float]:
        """The overall score and the cross-fitted hard-third accuracy of ``correct`` on the split (no resamples:
        it reran the bootstrap, 0.7 s a candidate at 5,000 classes; a review)."""
        return self._scores(np.asarray(correct, dtype=np.float64), resample=False)[0]

    def paired_delta_samples(self, correct: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """``correct − reference`` of ``overall`` and ``hard``: on the split (floats) and in every resample ((B,))."""
        (point, resampled), (ref_point, ref_resampled) = self._scores(np.asarray(correct, dtype=np.float64)), \
            self._reference_scores
        return ({k: point[k] - ref_point[k] for k in point}, {k: resampled[k] - ref_resampled[k] for k in resampled})

    def added_variance(self, correct: np.ndarray) -> dict[str, float]:
        """``{"overall", "hard"}``: the variance of each difference its stratified bootstrap over the class halves
        misses (:func:`probe.uncertainty.stratified_variance_missed`, each half weighing as in the score); both 0
        for a candidate that scores as the reference on every image (its [0, 0] says it changed nothing:
        ``probe.selection.scores_as_reference``)."""
        correct = np.asarray(correct, dtype=np.float64)
        if np.array_equal(correct, self.reference):
            return {"overall": 0.0, "hard": 0.0}
        share = self.counts / np.maximum(self.counts.sum(axis=1, keepdims=True), 1)
        hard = np.zeros(2 * self.num_classes)
        hard[self.hard] = 1.0 / max(self.hard.size, 1)
        weights = {"overall": (self.weights[:, None] * share).reshape(-1), "hard": hard}  # a class's split by halves
        return {key: stratified_variance_missed(correct, self.reference, self.strata, w) for key, w in weights.items()}

    def hard_changes(self, correct: np.ndarray) -> tuple[list[int], float]:
        """``([fixed, broken], p)``: the images the hard score reads that ``correct`` (0 or 1 each) scores higher /
        lower than the reference, and the two-sided paired sign-flip test of their differences, each image weighing
        1/n of its pseudo-class (:func:`probe.uncertainty.sign_flip_test`): the hard score is the macro mean of
        those pseudo-classes, so the test weighs the images as the score does and as compare's thirds do. Counted
        equally, 4 images all fixed in a pseudo-class of 4 (+100 points) against 6 broken in one of 40 (−15) vetoed a
        +42.5-point gain as leaning the other way (a review); with equal pseudo-classes this is the exact sign test."""
        from .uncertainty import sign_flip_test

        hard = self.hard_samples
        diff = np.asarray(correct, dtype=np.float64)[hard] - self.reference[hard]
        weights = 1.0 / self.counts.reshape(-1)[self.strata[hard]]
        changed = [int((diff > ZERO_TOLERANCE).sum()), int((diff < -ZERO_TOLERANCE).sum())]
        return changed, sign_flip_test(diff, 1, weights, seed=self.seed)
