"""Uncertainty of accuracies and of paired differences: a stratified, paired, vectorised bootstrap.

Small validation sets make differences between probes noisy, so every decision and every delta the product
shows comes with an interval. One :class:`Bootstrap` draws ``n_resamples`` resamples of a split once (seeded);
every quantity — per-class accuracy, overall accuracy, hard-third accuracy, and their differences between two
runs scored on the *same* samples — is then computed on the same resamples (paired: the noise the two runs share
cancels in their difference).

Resampling is stratified by class: each resample draws, with replacement, ``n_k`` samples from the ``n_k``
samples of class k. Class counts stay fixed, so a per-class accuracy is defined in every resample and a
macro-averaged group accuracy (the hard third, :func:`probe.groups.group_accuracy`) never loses a class. The
classes of one sample are the exception: a class of one sample would be that sample in every resample, so where
there are two or more they are resampled together, as one more stratum (:class:`Bootstrap`).
Intervals are percentile intervals (2.5 % and 97.5 % for ``level=0.95``). Everything is numpy and vectorised
over resamples: no Python loop over resamples.

One class's accuracy on its own is a binomial proportion, and there the bootstrap fails where users look: a class
whose 3 test images are all right resamples to 100 % every time, an interval of [100, 100]; a class of one image
gets [0, 0] or [100, 100]. :func:`class_accuracy_interval` gives it the Wilson score interval instead, with
continuity correction under :data:`SMALL_CLASS_IMAGES` images (scipy's ``binomtest(...).proportion_ci("wilsoncc")``;
from 30 images ``"wilson"``): 3 of 3 → [31.0, 100] %, 0 of 1 → [0, 94.5] %; for large classes it and the bootstrap
agree.
A small class's own difference between two runs on the same samples likewise gets Newcombe's paired score interval
(:func:`paired_class_delta_interval`, built on the two Wilson intervals; :data:`SMALL_CLASS_IMAGES`), and a paired
difference of a mean over classes (overall, balanced, a third) has its percentile interval widened by what such
classes' few images may hide (:func:`small_class_variance`).

``correct`` vectors are per-sample scores in [0, 1] (1 = right). A mean over seeds (e.g. 2/3 when two of three
seeds got a sample right) is allowed: accuracies are then means over seeds, as in the report.
"""
from __future__ import annotations

import math
import warnings
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from .groups import GROUP_NAMES, group_accuracy
from .metrics import nan_mean, overall_score, overall_weights

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_LEVEL", "snap_zero", "row_bin_sums", "Bootstrap", "percentile_interval",
           "observed_class_accuracy", "wilson_interval", "class_accuracy_interval", "sign_test", "sign_flip_test",
           "simultaneous_lower_bounds", "delta_intervals", "group_intervals", "GROUP_DRAWS", "OwnIntervals",
           "own_intervals", "SIGN_FLIP_DRAWS", "SIGN_FLIP_FLOOR", "p_text", "class_mean",
           "paired_class_delta_interval", "small_class_variance", "stratified_variance_missed", "widen_interval",
           "SMALL_CLASS_IMAGES", "FEW_CHANGED_IMAGES", "holm", "precision_recall_f1_intervals",
           "interval_or_none", "intervals_or_none"]

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
# Resamples are seeded in blocks of this many (resample, sample) pairs, each block from its own generator (so this
# number fixes which resamples a seed gives), and drawn in chunks of at most _CHUNK_ELEMENTS pairs whose buffers
# (~1.7 MB) are reused: they stay in the cache, where a whole block's temporaries (~70 MB) were new memory to
# fault in on a process's first call, 50–800 ms for 1,000 resamples of 3,000 samples on this 2-core VM.
_BLOCK_ELEMENTS = 4_000_000
_CHUNK_ELEMENTS = 65_536


# A bound within this of 0 is 0. The bootstrap reads seed-mean scores (k / seeds) as float32, whose rounding (up
# to ~6e-8 each, ~1.2e-7 in a difference) gave a delta's lower bound of 1.5e-9 where every resample had 0: printed
# "+0.00" but not "within noise", and a decision's "lower bound > 0" could pass on it. One image moves an accuracy
# by 1/n, more than 1e-6 below a million images; a single image in more is within noise anyway.
ZERO_TOLERANCE = 1e-6


def _check_level(level: float) -> None:
    """An interval's coverage: strictly between 0 and 1 (NaN refused too)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}.")


def snap_zero(value):
    """``value`` (a number or array) with what lies within ``ZERO_TOLERANCE`` of 0 made exactly 0."""
    return np.where(np.abs(value) < ZERO_TOLERANCE, 0.0, value)


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Percentile interval over axis 0: ``[lo, hi]`` of shape ``(2, *samples.shape[1:])``; a bound within
    ``ZERO_TOLERANCE`` of 0 is exactly 0.

    Resamples whose value is ``nan`` (e.g. a class absent from a split) are ignored; all-``nan`` gives ``nan``.
    """
    _check_level(level)
    tail = 100.0 * (1.0 - level) / 2.0
    samples = np.asarray(samples, dtype=np.float64)
    missing = np.isnan(samples)
    if samples.shape[0] == 0 or np.all(missing):
        return np.full((2, *samples.shape[1:]), np.nan)
    if not missing.any():
        # np.nanpercentile's values without nan, at once: it takes each column's in a Python loop (0.1 s of a
        # comparison of 1,000 classes)
        return snap_zero(np.percentile(samples, [tail, 100.0 - tail], axis=0))
    # np.nanpercentile only on the columns that hold a nan (a class absent from a few resamples of 5,000: 0.37 s)
    columns, holes = samples.reshape(len(samples), -1), missing.reshape(len(samples), -1).any(axis=0)
    interval = np.empty((2, columns.shape[1]))
    interval[:, ~holes] = np.percentile(columns[:, ~holes], [tail, 100.0 - tail], axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # a column all nan (a class without images): nan
        warnings.simplefilter("ignore", RuntimeWarning)
        interval[:, holes] = np.nanpercentile(columns[:, holes], [tail, 100.0 - tail], axis=0)
    return snap_zero(interval.reshape((2, *samples.shape[1:])))


def row_bin_sums(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """(R, n_bins): each row of ``values`` (R, n) summed over the columns of each bin (``bins``, (R, n) or (n,) for
    every row alike, in 0..n_bins − 1), in one bincount (key = row · n_bins + bin): the per-bin gaps of resampled or
    redrawn calibration errors (:meth:`Bootstrap.bin_sums`, ``probe.calibration.calibration_p_value``)."""
    rows = len(values)
    keys = (np.arange(rows)[:, None] * n_bins + np.broadcast_to(bins, values.shape)).ravel()
    return np.bincount(keys, np.asarray(values, dtype=np.float64).ravel(), rows * n_bins).reshape(rows, n_bins)


# A class's group stability needs this many resampled images: one image's accuracy is the same in every resample.
MIN_STABILITY_IMAGES = 2

# A class of fewer samples gets Newcombe's interval of its paired difference (paired_class_delta_interval) instead of
# the bootstrap's percentile interval. Where the true difference was not 0, the percentile intervals held it in
# 17-89 % of simulated classes of 2-10 images (a class of 2 lost on both read -100 [-100, -100]), 94-97 % of classes
# of 30; Newcombe's held it in 97-100 % from 2 images (bench/interval_calibration.py). From 30 up the bootstrap
# stays: it reads seed means as they are, where Newcombe's expected counts of them widen a large class's interval.
SMALL_CLASS_IMAGES = 30
# ... and so does a class of any size on which the two runs score differently on fewer images than this: the
# percentile bootstrap sees no variation the sample did not show, so 0 of 60 images changed read +0.00 [+0.00, +0.00]
# and a class of 60 images with a true difference of -0.44 pt held it in 46 % of real long-tailed subsamples
# (-1.33 pt: 80 %, -3.22 pt: 87 %; Newcombe's 99.5-100 %; a decision round). 6 is the fewest changed images whose
# exact sign test can reach p <= 0.05 (5 of 5: 0.0625), so below it no class difference can read beyond noise and
# the wider interval changes no verdict.
FEW_CHANGED_IMAGES = 6


class Bootstrap:
    """Stratified resamples of one labelled split, shared by every quantity computed on that split.

    Each class of two or more samples is a stratum: each resample draws n_k of its samples. The classes of one
    sample are pooled, where there are two or more of them, as one stratum: each resample draws as many samples as
    it has classes from all of their samples. On its own, such a class is its one sample in every resample and
    adds no variance: 120 classes of one test image gave a comparison's overall difference the interval
    [+1.39, +1.39] (an extremes round). A pooled class is then in a resample as many times as its sample was drawn
    (:meth:`multiplicity`; its accuracy that sample's, nan where not drawn); every weighted mean over classes
    counts it as many times. The draws of the other classes' samples are the same with or without the pool, so
    are their resampled accuracies. A small class's own difference gets Newcombe's paired score interval
    (:meth:`paired_intervals`).

    Args:
        labels: (n,) class index of each sample of the split.
        num_classes: K. Classes without samples get ``nan`` accuracies.
        n_resamples: B, at least 1 (1,000 or more for a 95 % interval).
        seed: the resamples depend only on it (and on ``labels``).
        overall: what ``overall`` is (``probe.metrics.OVERALL_METRICS``): accuracy over the samples, or balanced
            accuracy; class counts are fixed in every resample (the pool's in all), so each class keeps its weight
            (a pooled class: its weight times its multiplicity). ``balanced`` is also given on its own either way.
    """

    def __init__(self, labels: np.ndarray, num_classes: int, *, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0, overall: str = "accuracy"):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D (n,), got shape {labels.shape}.")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes - 1}], got [{labels.min()}, {labels.max()}].")
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
        self.labels, self.num_classes, self.n_resamples, self.seed = labels, num_classes, n_resamples, seed
        self.counts = np.bincount(labels, minlength=num_classes)
        self.overall = overall  # overall_weights checks the name
        self._weights = {metric: overall_weights(self.counts, metric) for metric in (overall, "balanced")}
        # Samples sorted by class: class k occupies positions starts[k] .. starts[k] + counts[k] - 1.
        self._order = np.argsort(labels, kind="stable")
        self._starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self._sorted_labels = labels[self._order]
        # The classes of one sample, where there are two or more, are one stratum (the class docstring)
        single = np.flatnonzero(self.counts == 1)
        self.pooled = single if single.size >= 2 else single[:0]
        # Resamples are drawn block by block (bounded memory), each block from its own seeded generator, so
        # every call sees exactly the same resamples: differences between two runs are paired.
        self._block = max(1, _BLOCK_ELEMENTS // max(1, labels.size))
        self._ref_key, self._ref_summary, self._pool_counts = None, None, None

    def _index_blocks(self):
        """Yield ``(first resample, (b, n) positions)`` chunk by chunk: resample r, position i (of class k) is a
        uniform draw among the n_k positions of class k, or, for a pooled class, among the positions of the pooled
        classes (the other positions' draws are those of a split without them). The positions are a reused buffer,
        valid until the next chunk is drawn."""
        n = self.labels.size
        counts, base = self.counts[self._sorted_labels], self._starts[self._sorted_labels]
        pool = self._starts[self.pooled]  # the sorted positions of the pooled classes' samples
        counts[pool], base[pool] = pool.size, n  # drawn as n + j, then the j-th pooled position (lookup)
        lookup = np.concatenate([np.arange(n), pool]) if pool.size else None
        scale, last = counts.astype(np.float64), counts - 1
        rows = max(1, _CHUNK_ELEMENTS // max(1, n))
        draws, scaled = np.empty((rows, n), dtype=np.float32), np.empty((rows, n))
        positions, drawn = np.empty((rows, n), dtype=np.int64), np.empty((rows, n), dtype=np.int64)
        for block, lo in enumerate(range(0, self.n_resamples, self._block)):
            rng = np.random.default_rng([self.seed, block])
            end = min(lo + self._block, self.n_resamples)
            for first in range(lo, end, rows):  # consecutive draws of one generator: the block's own stream
                size = min(rows, end - first)
                index = positions[:size]
                np.multiply(rng.random(dtype=np.float32, out=draws[:size]), scale, out=scaled[:size])
                np.copyto(index, scaled[:size], casting="unsafe")  # truncation: floor of a value >= 0
                np.add(np.minimum(index, last, out=index), base, out=index)
                yield first, (index if lookup is None else np.take(lookup, index, out=drawn[:size]))

    def _check(self, correct: np.ndarray) -> np.ndarray:
        correct = np.asarray(correct, dtype=np.float32)
        if correct.shape != self.labels.shape:
            raise ValueError(f"correct must have the labels' shape {self.labels.shape}, got {correct.shape}.")
        return correct[self._order]

    def class_accuracy(self, correct: np.ndarray) -> np.ndarray:
        """Per-class accuracy in every resample → (B, K); ``nan`` for classes without samples."""
        values = self._check(correct)
        present = self.counts > 0
        out = np.full((self.n_resamples, self.num_classes), np.nan)
        if not present.any():
            return out
        starts, values = self._starts[present], values.astype(np.float64)  # float32 scores, float64 sums
        buffer = np.empty((0, 0))
        for lo, index in self._index_blocks():  # chunks bound memory; each chunk is vectorised
            buffer = buffer if len(buffer) >= len(index) else np.empty(index.shape)
            sums = np.add.reduceat(np.take(values, index, out=buffer[:len(index)]), starts, axis=1)
            out[lo:lo + len(index), present] = sums / self.counts[present]
        if self.pooled.size:  # a pooled class's position holds any pooled sample: its own sample's score, if drawn
            drawn = self._pool_draws() > 0
            out[:, self.pooled] = np.where(drawn, values[self._starts[self.pooled]][None, :], np.nan)
        return out

    def _pool_draws(self) -> np.ndarray:
        """(B, m): how many of each resample's draws from the pool fell on each pooled class's sample (1 on
        average), computed once."""
        if self._pool_counts is None:
            m, positions = self.pooled.size, self._starts[self.pooled]
            slot = np.zeros(self.labels.size, dtype=np.int64)  # sorted position -> its place among the pooled
            slot[positions] = np.arange(m)
            self._pool_counts = np.empty((self.n_resamples, m))
            for lo, index in self._index_blocks():
                rows = len(index)
                keys = (np.arange(rows)[:, None] * m + slot[index[:, positions]]).ravel()
                self._pool_counts[lo:lo + rows] = np.bincount(keys, minlength=rows * m).reshape(rows, m)
        return self._pool_counts

    def multiplicity(self) -> np.ndarray | None:
        """(B, K): how many times each class is in each resample, as a class: 1 for a class of two or more
        samples (its n_k draws), 0 for a class without samples, and for a pooled class the number of the pool's
        draws that fell on its sample (0, 1, 2, ...; 1 on average). None where no class is pooled: every class
        with samples once in every resample, as its fixed count."""
        if not self.pooled.size:
            return None
        out = np.repeat((self.counts > 0).astype(np.float64)[None, :], self.n_resamples, axis=0)
        out[:, self.pooled] = self._pool_draws()
        return out

    def bin_sums(self, values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
        """(B, n_bins): in every resample, the sum of ``values`` (n,) over the samples drawn into each bin (``bins``
        (n,) in 0..n_bins − 1), e.g. a calibration error's per-bin gaps (``probe.calibration``)."""
        values = np.asarray(values, dtype=np.float64)
        bins = np.asarray(bins, dtype=np.int64)
        if values.shape != self.labels.shape or bins.shape != self.labels.shape:
            raise ValueError(f"values and bins must have the labels' shape {self.labels.shape}, got {values.shape} "
                             f"and {bins.shape}.")
        values, bins = values[self._order], bins[self._order]
        out = np.zeros((self.n_resamples, n_bins))
        for lo, index in self._index_blocks():  # one bincount per chunk
            out[lo:lo + len(index)] = row_bin_sums(values[index], bins[index], n_bins)
        return out

    def summary(self, correct: np.ndarray, groups: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
        """Per-resample ``overall`` (B,), ``balanced`` (B,), ``worst_class`` (B,: the lowest class accuracy,
        whichever class it is), per-class ``per_class`` (B, K) and, with groups, each group's (B,)."""
        per_class, times = self.class_accuracy(correct), self.multiplicity()
        # a pooled class weighs as often as it was drawn: the pool's draws keep its classes' total weight
        weights = {key: w if times is None else w * times for key, w in self._weights.items()}
        out = {"per_class": per_class, "overall": np.nansum(per_class * weights[self.overall], axis=1),
               "balanced": np.nansum(per_class * weights["balanced"], axis=1),
               "worst_class": _worst(per_class)}
        return {**out, **(_group_means(per_class, groups, times) if groups else {})}

    def _reference_summary(self, reference: np.ndarray, groups: dict[str, list[int]] | None) -> dict:
        """:meth:`summary` of the reference, kept for the next call: a sweep compares every candidate with the
        same reference, whose resampled accuracies are then computed once."""
        key = (np.asarray(reference, dtype=np.float32).tobytes(), repr(groups))
        if self._ref_key != key:
            self._ref_key, self._ref_summary = key, self.summary(reference, groups)
        return self._ref_summary

    def paired_delta(self, correct: np.ndarray, reference: np.ndarray, groups: dict[str, list[int]] | None = None,
                     level: float = DEFAULT_LEVEL) -> dict[str, dict[str, float]]:
        """Differences ``correct − reference`` scored on the same resamples, with intervals.

        Returns:
            ``{"overall": {"delta", "lo", "hi"}, "balanced": ..., "worst_class": ...}`` (the worst class's accuracy,
            whichever class is worst in each resample) and, with groups, the same for ``easy``, ``medium``,
            ``hard`` (macro averages over the group's classes). ``delta`` is the difference on the split itself.
            The interval of each mean over classes is the percentile interval widened by what its small classes add
            beyond the bootstrap (:meth:`_widened`, :func:`small_class_variance`).
        """
        point, resampled = self.paired_delta_samples(correct, reference, groups)
        return self._widened(delta_intervals(point, resampled, level), correct, reference, groups, level)

    def paired_delta_samples(self, correct: np.ndarray, reference: np.ndarray,
                             groups: dict[str, list[int]] | None = None
                             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """The differences ``correct − reference`` of :meth:`paired_delta`, before any interval: on the split
        itself (``{key: float}``) and in every resample (``{key: (B,)}``), for intervals over several candidates
        at once (:func:`simultaneous_lower_bounds`)."""
        return self._paired_samples(self.summary(correct, groups), correct, reference, groups)

    def paired_intervals(self, correct: np.ndarray, reference: np.ndarray, groups: dict[str, list[int]] | None = None,
                         level: float = DEFAULT_LEVEL) -> tuple[dict[str, dict[str, float]], np.ndarray]:
        """:meth:`paired_delta` and the (K, 2) interval of each class's difference at once, from one resampling of
        each run's class accuracies (a comparison shows both): the percentile interval of the class's resampled
        difference, but for a class of fewer than :data:`SMALL_CLASS_IMAGES` samples, or of fewer than
        :data:`FEW_CHANGED_IMAGES` samples the two score differently, Newcombe's paired score interval
        (:func:`paired_class_delta_interval`); the means over classes widened as :meth:`paired_delta`'s."""
        summary = self.summary(correct, groups)
        point, resampled = self._paired_samples(summary, correct, reference, groups)
        classes = summary["per_class"] - self._reference_summary(reference, groups)["per_class"]
        small = np.flatnonzero(_newcombe_classes(correct, reference, self.labels, self.num_classes))
        classes[:, small] = 0.0  # (in place) not nan where undrawn: one percentile call, not a column loop
        intervals = percentile_interval(classes, level).T
        intervals[small] = paired_class_delta_interval(correct, reference, self.labels, self.num_classes, level)[small]
        return self._widened(delta_intervals(point, resampled, level), correct, reference, groups, level), intervals

    def _widened(self, deltas: dict[str, dict[str, float]], correct: np.ndarray, reference: np.ndarray,
                 groups: dict[str, list[int]] | None, level: float) -> dict[str, dict[str, float]]:
        """``deltas`` with the interval of each mean over classes (overall, balanced, each group) widened by what
        its small classes' differences add beyond the bootstrap (:func:`small_class_variance`): each side's
        half-width h becomes √(h² + z² Σ_k w_k² v_k), w_k the class's weight in the mean, clipped to [−1, 1]. A
        group of one such class gets that class's own interval, Newcombe's (:meth:`paired_intervals`' row)."""
        extra = small_class_variance(correct, reference, self.labels, self.num_classes)
        if not extra.any():
            return deltas
        present = self.counts > 0
        weights = {"overall": self._weights[self.overall], "balanced": self._weights["balanced"]}
        for name in (groups or {}):
            members = np.zeros(self.num_classes, dtype=bool)
            members[np.asarray(groups[name], dtype=np.int64)] = True
            members &= present
            weights[name] = members / max(int(members.sum()), 1)
        z, own = NormalDist().inv_cdf(0.5 + level / 2.0), None
        for key, w in weights.items():
            entry, add = deltas.get(key), float(np.sum(w * w * extra))
            if entry is None or not np.isfinite(entry["delta"]) or add == 0.0:
                continue
            if key in GROUP_NAMES and np.count_nonzero(w) == 1:  # a third of one class: that class's row
                if own is None:  # once for the thirds of one class (3 of them at K = 3)
                    own = paired_class_delta_interval(correct, reference, self.labels, self.num_classes, level)
                entry["lo"], entry["hi"] = (float(v) for v in snap_zero(own[int(np.flatnonzero(w)[0])]))
                continue
            entry["lo"], entry["hi"] = widen_interval(entry["delta"], entry["lo"], entry["hi"], z * math.sqrt(add))
        return deltas

    def _paired_samples(self, summary: dict[str, np.ndarray], correct: np.ndarray, reference: np.ndarray,
                        groups: dict[str, list[int]] | None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """:meth:`paired_delta_samples` of ``correct`` whose :meth:`summary` is ``summary`` (computed by the caller,
        which may want its per-class accuracies too)."""
        a, b = summary, self._reference_summary(reference, groups)
        point_a = _point_summary(np.asarray(correct, dtype=np.float64), self.labels, self.num_classes, groups,
                                 self.overall)
        point_b = _point_summary(np.asarray(reference, dtype=np.float64), self.labels, self.num_classes, groups,
                                 self.overall)
        return ({key: float(point_a[key] - point_b[key]) for key in point_a},
                {key: a[key] - b[key] for key in point_a})

    def group_stability(self, correct: np.ndarray, groups: dict[str, list[int]]) -> np.ndarray:
        """(K,): the fraction of resamples in which each class falls in the group ``groups`` gives it; ``nan`` for
        a class of fewer than :data:`MIN_STABILITY_IMAGES` images, whose accuracy no resample can move (one
        validation image read "100 % stable"; a new-user round).

        Each resample's per-class accuracy is ranked into thirds by :func:`probe.groups.assign_groups`' rule
        (descending accuracy, ties by class index, ``nan`` hardest), vectorised over resamples.
        """
        per_class = self.class_accuracy(correct)
        # a pooled class ranks by its one sample in every resample, drawn or not (its own stability is nan): the
        # other classes' ranks are those of a split without pooling
        per_class[:, self.pooled] = self._check(correct)[self._starts[self.pooled]]
        key = np.where(np.isnan(per_class), -np.inf, per_class)
        order = np.argsort(-key, axis=1, kind="stable")  # easiest first; stable keeps index order on ties
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(self.num_classes)[None, :].repeat(len(order), 0), axis=1)
        n_edge = int(np.floor(self.num_classes / 3 + 0.5))
        group_index = np.where(rank < n_edge, 0, np.where(rank >= self.num_classes - n_edge, 2, 1))
        given = np.full(self.num_classes, -1)
        for g, name in enumerate(GROUP_NAMES):
            given[np.asarray(groups.get(name, []), dtype=np.int64)] = g
        kept = (group_index == given[None, :]).mean(axis=0)
        return np.where(self.counts < MIN_STABILITY_IMAGES, np.nan, kept)


def delta_intervals(point: dict[str, float], resampled: dict[str, np.ndarray], level: float = DEFAULT_LEVEL
                    ) -> dict[str, dict[str, float]]:
    """``{key: {"delta", "lo", "hi"}}``: each difference on the split with its percentile interval over the
    resamples (what :meth:`Bootstrap.paired_delta` returns, from :meth:`Bootstrap.paired_delta_samples`)."""
    out: dict[str, dict[str, float]] = {}
    for key, delta in point.items():
        lo, hi = percentile_interval(resampled[key], level)
        out[key] = {"delta": delta, "lo": float(lo), "hi": float(hi)}
    return out


def widen_interval(delta: float, lo: float, hi: float, spread: float) -> tuple[float, float]:
    """``[lo, hi]`` around ``delta`` with each side's half-width h made √(h² + ``spread``²), clipped to [−1, 1], a
    bound within ``ZERO_TOLERANCE`` of 0 made 0: a bootstrap interval of a mean over classes widened by what its
    small classes add beyond the bootstrap (``spread`` = z √(Σ_k w_k² v_k), v_k :func:`small_class_variance`)."""
    return (float(snap_zero(max(delta - math.hypot(delta - lo, spread), -1.0))),
            float(snap_zero(min(delta + math.hypot(hi - delta, spread), 1.0))))


def independent_delta_interval(base: float | None, base_ci, other: float | None, other_ci) -> list[float] | None:
    """The interval of ``other − base``, two estimates of independent samples with their own intervals ``base_ci``
    and ``other_ci`` ([lo, hi]): each side's half-width the square-and-add of the two intervals' near sides,
    [Δ − √((o − o_lo)² + (b_hi − b)²), Δ + √((o_hi − o)² + (b − b_lo)²)], clipped to [−1, 1] (Newcombe 1998,
    method 10, for two proportions' Wilson intervals; Zou & Donner's MOVER for other estimates); None where an
    estimate or an interval is missing or not finite."""
    if base is None or other is None or base_ci is None or other_ci is None:
        return None
    (b_lo, b_hi), (o_lo, o_hi) = base_ci, other_ci
    if not np.isfinite([base, other, b_lo, b_hi, o_lo, o_hi]).all():
        return None
    delta = other - base
    return [float(snap_zero(max(delta - math.hypot(other - o_lo, b_hi - base), -1.0))),
            float(snap_zero(min(delta + math.hypot(o_hi - other, base - b_lo), 1.0)))]


def simultaneous_lower_bounds(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, float]:
    """Lower bounds of several bootstrapped quantities at once, each as low as the lower end of its own ``level``
    percentile interval or lower, so that together they hold with the one-sided confidence of one such bound.

    A choice among m candidates that each need a lower bound above a threshold is a choice among m chances to be
    lucky: with 24 candidates equal to the reference, one lower bound at the 2.5 % percentile cleared 0 in about 18 %
    of simulated trials, not 2.5 %. These bounds are Mandel & Betensky's percentile-bootstrap simultaneous
    intervals (2008), one-sided: every row's bound is its own percentile at one common tail t, the largest t up to
    ``(1 − level) / 2`` at which no more than that fraction of the resamples falls below the bound of some row
    (the rows' correlation counts: near-copies of one candidate cost little, independent ones Šidák-like).
    With one row, t is ``(1 − level) / 2`` and the bound is :func:`percentile_interval`'s lower end.

    Args:
        samples: (m, B): each row one quantity in the same B resamples (paired: e.g. each candidate's difference
            to the reference). A row without spread (a candidate scoring as the reference on every resample) keeps
            its value as its bound and costs nothing.
        level: as :func:`percentile_interval`'s.

    Returns:
        ``(bounds (m,), t)``; a bound within ``ZERO_TOLERANCE`` of 0 is exactly 0.
    """
    _check_level(level)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(f"samples must be (m, B) with B >= 1, got shape {samples.shape}.")
    tail = (1.0 - level) / 2.0
    with warnings.catch_warnings():  # a row of nan (no sample of its group) has a nan bound: never above anything
        warnings.simplefilter("ignore", RuntimeWarning)

        def bounds_at(t: float) -> np.ndarray:
            return np.nanquantile(samples, t, axis=1)

        def holds(t: float) -> bool:  # no more than the tail of the resamples below some row's bound
            return (samples < bounds_at(t)[:, None]).any(axis=0).mean() <= tail + 1e-12

        # the largest t in {0, 1/B, 2/B, ...} ∪ {tail} that holds: the fraction below is monotone in t, and at
        # t = 0 (each row's minimum) none is below
        steps = [k / samples.shape[1] for k in range(int(np.ceil(tail * samples.shape[1])))] + [tail]
        lo, hi = 0, len(steps) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if holds(steps[mid]) else (lo, mid - 1)
        bounds = bounds_at(steps[lo])
    return snap_zero(bounds), float(steps[lo])


def wilson_interval(successes: np.ndarray, trials: np.ndarray, level: float = DEFAULT_LEVEL,
                    corrected: bool = True) -> np.ndarray:
    """(..., 2): the Wilson score interval ``[lo, hi]`` of the proportion successes / trials, elementwise, with
    Yates' continuity correction (Newcombe 1998, method 4; scipy's ``proportion_ci("wilsoncc")``) where there are
    fewer than :data:`SMALL_CLASS_IMAGES` trials (``corrected``; False: the plain score interval everywhere).

    The plain interval's exact binomial coverage dips to 79-84 % at every size where the true proportion lies
    within about 0.2/n of 0 or 1 (3 images at a true 93.9 %: only 3 of 3 right covers it, 2 of 3 reaching 93.85 %),
    which few images per class make common (a class of 3 to 10 test images at 90-99 %); corrected, at least 94.6 %
    from 1 to 29 images (``bench/proportion_coverage.py``, bench/README.md "Interval calibration"). From 30 trials
    the plain interval stays (every figure of 30 images or more is as before): its dips then lie past 99.3 % or
    under 0.7 %.

    ``successes`` may be fractional (a mean over seeds of per-sample scores): the formula takes p̂ and n as they
    are. ``nan`` where ``trials`` is 0. The interval always holds p̂, as the formula's does: at p̂ = 0 or 1 its
    rounding had put the ends a hair past it (lo 1.7e-18 for 0 of 209, hi 1 − 1.1e-16 for 13 of 13), so a value
    of 100 % lay outside its own interval.
    """
    _check_level(level)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    z2 = z * z
    successes, trials = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    with np.errstate(all="ignore"):
        p = successes / trials
        centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
        half = np.sqrt(z2 * p * (1 - p) / trials + z2 * z2 / (4 * trials * trials)) / (1 + z2 / trials)
        lo, hi = centre - half, centre + half
        if corrected:
            n, q = trials, 1 - p
            root_lo = np.sqrt(np.maximum(z2 - 2 - 1 / n + 4 * p * (n * q + 1), 0.0))
            root_hi = np.sqrt(np.maximum(z2 + 2 - 1 / n + 4 * p * (n * q - 1), 0.0))
            small = n < SMALL_CLASS_IMAGES
            # the corrected p̂ ∓ 1/(2n) past 0 or 1 (fractional successes within half an image of none or all):
            # the end is 0 or 1, where the closed form's root belongs to the other side
            lo = np.where(small, np.where(successes > 0.5, (2 * n * p + z2 - 1 - z * root_lo) / (2 * (n + z2)), 0.0),
                          lo)
            hi = np.where(small, np.where(n - successes > 0.5, (2 * n * p + z2 + 1 + z * root_hi) / (2 * (n + z2)),
                                          1.0), hi)
        ends = [np.minimum(lo, p), np.maximum(hi, p)]  # nan stays nan
    return np.clip(np.stack(ends, axis=-1), 0.0, 1.0)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values of a family (None: a member without a test, left out of the family):
    the i-th smallest of m becomes max over j ≤ i of min(1, (m − j + 1) p_(j))."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def sign_test(up: int, down: int) -> float:
    """Two-sided exact sign test of ``up`` against ``down`` (McNemar's exact test when they count the images only
    one of two runs gets right): the probability, with no true difference, of a split at least this uneven, i.e.
    ``min(1, 2 · P(X ≤ min(up, down)))`` for X ~ Binomial(up + down, 1/2); 1 when both are 0 (scipy's
    ``binomtest(up, up + down).pvalue``). The binomial terms are summed in log space, vectorised: 10⁵ images
    take a millisecond."""
    if up < 0 or down < 0:
        raise ValueError(f"counts must be >= 0, got {up} and {down}.")
    n, low = up + down, min(up, down)
    if n == 0 or up == down:
        return 1.0
    log_terms = _log_binomial_half(n, low)
    top = log_terms.max()
    return min(1.0, 2.0 * math.exp(top + math.log(np.exp(log_terms - top).sum())))


def _log_binomial_half(n: int, upto: int) -> np.ndarray:
    """log P(X = i), i = 0 .. ``upto``, for X ~ Binomial(n, 1/2): C(n, i + 1) = C(n, i) · (n − i) / (i + 1), in log
    space (no overflow at 10⁵)."""
    i = np.arange(upto, dtype=np.float64)
    return np.concatenate([[0.0], np.cumsum(np.log(n - i) - np.log(i + 1))]) - n * math.log(2.0)


def _binomial_half(n: int) -> np.ndarray:
    """P(X = i), i = 0 .. n, for X ~ Binomial(n, 1/2)."""
    return np.exp(_log_binomial_half(n, n))


# Differing images up to which a sign-flip test of unequally weighted differences enumerates every sign pattern
# (2¹⁶ patterns); beyond, SIGN_FLIP_DRAWS seeded draws of the patterns (a permutation test: its p-value
# (1 + hits) / (1 + draws) holds its level; the normal approximation it replaced read 0.039 for an exact 0.064)
SIGN_FLIP_ENUMERATED = 16
SIGN_FLIP_DRAWS = 20_000
# The least p the draws can give, (1 + 0) / (1 + draws): a bound, not a value. No exact path reaches it: those give
# multiples of 1/2^c (c differing images, enumerated or convolved), 1/20,001 being none (20,001 is odd), or a
# normal approximation's continuous value: either would have to land on this one float to its last bit.
SIGN_FLIP_FLOOR = 1 / (1 + SIGN_FLIP_DRAWS)


def sign_flip_test(diff: np.ndarray, seeds: int = 1, weights: np.ndarray | None = None, seed: int = 0) -> float:
    """Two-sided paired sign-flip (permutation) test of a mean of per-image differences ``diff`` (the other run's
    seed-mean score of each image less the base run's: multiples of 1/``seeds``, the least common multiple of the
    two runs' seed counts): the probability, with no true difference (each image's difference as likely of either
    sign), of a weighted sum Σ wᵢdᵢ at least as far from 0 as the observed one. With one seed and equal weights the
    differences are 0 or ±1 and this is :func:`sign_test` (McNemar's exact test). It tests the mean an interval
    estimates: counting each image's sign tests the median, and with 3 seeds 200 images a third of a seed better
    and 100 a whole seed worse read "other better, p = 8e-09" beside an interval of −11 points (a statistics
    review). ``weights``: per image, finite and ≥ 0, e.g. 1/n of its class for a macro mean over classes (a third's
    accuracy, where a 5-image class weighs as much as a 200-image one; a review); None: equal.

    Equal weights: exact, from the distribution of the sum (each magnitude m over c images adds m·(2B − c),
    B ~ Binomial(c, ½)), by convolution or, for long lattices (19 seeds against 20: a grid of 1/380), by the
    product of the magnitudes' characteristic functions in one FFT; past 10⁸ terms of that product, by the normal
    approximation with a continuity correction (tens of thousands of differing images). Unequal weights: exact up to
    :data:`SIGN_FLIP_ENUMERATED` differing images, beyond by :data:`SIGN_FLIP_DRAWS` seeded draws. Raises
    ValueError for differences off the 1/seeds grid or malformed weights."""
    diff = np.asarray(diff, dtype=np.float64)
    scaled = diff * seeds
    if not np.allclose(scaled, np.rint(scaled), atol=1e-6):  # 2 seeds against 3 differ by sixths (a review)
        raise ValueError(f"differences are not multiples of 1/{seeds}: give the least common multiple of the runs' "
                         "seed counts")
    scaled = np.rint(scaled)
    moved = scaled != 0
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != diff.shape or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite, >= 0 and one per difference")
        terms = (scaled * w)[moved]
        if not terms.any():
            return 1.0
        if np.ptp(w[moved]) > 1e-12 * w[moved].max():  # unequal weights among the images that differ
            return _weighted_sign_flip(terms, seed)
    return _lattice_sign_flip(scaled.astype(np.int64))


def _lattice_sign_flip(scaled: np.ndarray) -> float:
    """:func:`sign_flip_test` of integer differences: exact (to the FFT's rounding on long lattices)."""
    observed = abs(int(scaled.sum()))
    if observed == 0:
        return 1.0
    magnitudes, counts = np.unique(np.abs(scaled[scaled != 0]), return_counts=True)
    span = int((magnitudes * counts).sum())  # the sum lies in [-span, span]
    if magnitudes.size > 8 and span * magnitudes.size > 25_000_000:
        # past ~10⁸ cosines (50,000 images of 19 seeds against 20): the normal approximation of a sum of that many
        # terms, with the lattice's continuity correction (its support steps by 2)
        z = (observed - 1) / math.sqrt(float((magnitudes.astype(np.float64) ** 2 * counts).sum()))
        return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))
    if magnitudes.size > 8 and span > 20_000:
        dist = _characteristic_fft(magnitudes, counts, span)
    else:
        dist = np.ones(1)  # P(sum = -span_so_far + j) at dist[j]
        for m, c in zip(magnitudes.tolist(), counts.tolist()):
            spread = np.zeros(2 * m * c + 1)
            spread[::2 * m] = _binomial_half(c)  # m·(2B − c) for B = 0 .. c, from −m·c
            dist = _convolve(dist, spread)
    values = np.arange(dist.size) - span
    # 12 digits: the convolution's rounding read 0.125 as 0.12500000000000003, printed "0.13" for 4 of 4 one way
    return float(f"{min(1.0, dist[np.abs(values) >= observed].sum()):.12g}")


def _characteristic_fft(magnitudes: np.ndarray, counts: np.ndarray, span: int) -> np.ndarray:
    """P(sum = v), v = −span .. span, of Σ over magnitudes m of m·(2B − c): the inverse FFT of the product of
    cos(m·t)^c over N ≥ 2·span + 1 points (one transform, where 380 convolutions took 44 s; a review); rounding
    (~10⁻¹⁶ of the largest term) clipped at 0."""
    n = 1 << int(np.ceil(np.log2(2 * span + 1)))
    t = 2 * np.pi * np.arange(n) / n
    phi = np.ones(n)
    for m, c in zip(magnitudes.tolist(), counts.tolist()):
        phi *= np.cos(m * t) ** c
    dist = np.clip(np.fft.ifft(phi).real, 0.0, None)  # P(sum ≡ j mod n) at j
    return np.concatenate([dist[n - span:], dist[:span + 1]])


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.convolve``, by FFT past 10⁷ products (50,000 differing images of 5 seeds took 5.8 s; a review); the
    FFT's rounding, ~10⁻¹⁶ of the largest term, is clipped at 0."""
    if a.size * b.size <= 10_000_000:
        return np.convolve(a, b)
    from scipy.signal import fftconvolve

    return np.clip(fftconvolve(a, b), 0.0, None)


def _weighted_sign_flip(terms: np.ndarray, seed: int) -> float:
    """:func:`sign_flip_test` of the nonzero weighted differences ``terms``: every sign pattern up to
    :data:`SIGN_FLIP_ENUMERATED` of them, else :data:`SIGN_FLIP_DRAWS` seeded draws of them (images of one weight
    and magnitude drawn together as a binomial count)."""
    observed = abs(float(terms.sum())) * (1 - 1e-9)
    if terms.size <= SIGN_FLIP_ENUMERATED:
        signs = 1 - 2 * ((np.arange(1 << terms.size)[:, None] >> np.arange(terms.size)) & 1)
        return float(np.mean(np.abs(signs @ terms) >= observed))
    values, counts = np.unique(np.abs(terms), return_counts=True)
    rng = np.random.default_rng([seed, 11])
    hits = 0
    for start in range(0, SIGN_FLIP_DRAWS, 2_000):
        up = rng.binomial(counts, 0.5, size=(min(2_000, SIGN_FLIP_DRAWS - start), counts.size))
        hits += int((np.abs((2 * up - counts) @ values) >= observed).sum())
    return (1 + hits) / (1 + SIGN_FLIP_DRAWS)


def p_text(p: float, tests: int = 1, floor: float = SIGN_FLIP_FLOOR) -> str:
    """A Monte Carlo p-value as every view writes it: "p = 0.047", or "p ≤ 5e-05" at the floor of its test
    (``floor``, the sign-flip test's :data:`SIGN_FLIP_FLOOR` unless given; ``tests`` times it after a Bonferroni
    adjustment over ``tests``), which no draw beat, so the true p may be far smaller (a weighted test read
    "p = 5e-05" as if exact; a new-user round). The dashboard's ``Dash.pSay`` is the same rule."""
    at_floor = tests * floor
    return f"p ≤ {p:.2g}" if p == at_floor and at_floor < 1 else f"p = {p:.2g}"


# Draws of each class's accuracy behind the interval of a macro mean (group_intervals): 4,000 move a percentile
# bound by well under 0.1 point from one seed to another at the sizes users bring.
GROUP_DRAWS = 4000


def _SPREAD(n: np.ndarray) -> np.ndarray:
    """How much wider than the Jeffreys posterior each class's draws are: √((n + 1) / (n − 1)), 2 for one image.
    The posterior's variance, about p̂(1 − p̂)/(n + 2), falls short of the binomial p(1 − p)/n (E p̂(1 − p̂) =
    p(1 − p)(n − 1)/n): at 3 to 10 images per class the macro means' intervals covered 79–92 % (a statistics
    review). √((n + 2)/(n − 1)), that ratio's inverse, over-covered (97–100 % at 3 images: the posterior is wider
    than p̂(1 − p̂)/(n + 2) near 0 and 1); this one: ``bench/group_interval_calibration.py``, bench/README.md."""
    return np.where(n >= 2, np.sqrt((n + 1.0) / np.maximum(n - 1.0, 1.0)), 2.0)


def group_intervals(correct: np.ndarray, labels: np.ndarray, num_classes: int, groups: dict[str, list[int]],
                    level: float = DEFAULT_LEVEL, seed: int = 0) -> dict[str, list[float]]:
    """95 % intervals of balanced accuracy and of each group's accuracy (macro means of per-class accuracies):
    ``{"balanced": [lo, hi], "easy": ..., "medium": ..., "hard": ...}``; ``[nan, nan]`` for an empty group.

    Each class's accuracy is drawn ``GROUP_DRAWS`` times from its Jeffreys posterior Beta(s + ½, n − s + ½)
    (s right of n images; a seed mean's fractional s as it is) and each draw's macro means give the percentile
    interval. A stratified bootstrap cannot move a class whose images are all right or all wrong, so a third of
    such classes got a zero-width interval ([50, 50] for 0 of 3 and 3 of 3 images); these draws, widened to a
    binomial proportion's spread (:func:`_SPREAD`), give each class the uncertainty of its few images, and agree
    with the bootstrap on large classes. A group (or the balanced mean) of
    one class with images gets that class's Wilson interval (:func:`class_accuracy_interval`), the one its table
    row shows: new labelled images of some classes leave the others empty, and a third of cat alone, 4 of 6 right,
    read 66.7 % [26.3, 100.0] beside cat's own [30.0, 90.3] (a long-tailed round). A mean over classes of one
    image each is the proportion of those images right, a sum of Bernoulli trials whose variance is at most the
    binomial's: the Wilson interval of the pooled count, the overall accuracy's where every class has one test
    image. The draws gave each such class the largest variance, ¼, whatever it scored: a third of 20 one-image
    classes, 4 right, read 20.0 % [0.0, 42.4] (Wilson: [8.1, 41.6]) and balanced accuracy, equal to overall
    accuracy there, [13.5, 38.9] beside overall's [17.1, 39.0] (a few-shot round).

    The draws are centred on the observed accuracies: each class's by its observed accuracy less its posterior
    mean (s + ½)/(n + 1), which pulls toward 50 % by (½ − s/n)/(n + 1). That pull does not shrink as classes are
    added while the interval narrows like 1/√K: at 300 classes of 10 test images the draws left out the observed
    balanced accuracy (a scale round), and a third of classes all right read 100 % [87.3, 99.9] (a new-user
    round). The draws keep each class's binomial spread; the interval is clipped to [0, 1].
    """
    labels = np.asarray(labels, dtype=np.int64)
    successes = np.bincount(labels, weights=np.asarray(correct, dtype=np.float64), minlength=num_classes)
    trials = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = trials > 0
    means = _group_draw_means(successes, trials, groups, seed)
    intervals = {key: np.clip(percentile_interval(value, level), 0.0, 1.0).tolist() for key, value in means.items()}
    # a mean over one class with images, or over classes of one image each, is the proportion of its images right
    for key, members in {"balanced": range(num_classes), **groups}.items():
        scored = [k for k in members if present[k]]
        if len(scored) == 1 or (scored and all(trials[k] == 1 for k in scored)):
            intervals[key] = wilson_interval(successes[scored].sum(), trials[scored].sum(), level).tolist()
    return intervals


# Draws of group_intervals made at a time: the whole (GROUP_DRAWS, K) array and its temporaries (32 MB each at
# 1,000 classes) were new memory to fault in on every call, a quarter of a comparison's two calls; a block of rows
# stays in the cache. One generator draws them in row order, so they are the same draws whatever the block.
_GROUP_DRAW_ROWS = 256


def _group_draw_means(successes: np.ndarray, trials: np.ndarray, groups: dict[str, list[int]], seed: int
                      ) -> dict[str, np.ndarray]:
    """Balanced accuracy and each group's macro mean (``GROUP_DRAWS``,) in each draw of :func:`group_intervals`:
    every class with images drawn from its widened, centred Jeffreys posterior, block by block."""
    present = trials > 0
    s, n = successes[present], trials[present]
    alpha, beta, centre, spread, observed = s + 0.5, n - s + 0.5, (s + 0.5) / (n + 1.0), _SPREAD(n), s / n
    rng = np.random.default_rng(seed)
    draws = np.full((_GROUP_DRAW_ROWS, trials.size), np.nan)  # a class without images stays nan
    means = {key: np.empty(GROUP_DRAWS) for key in ("balanced", *GROUP_NAMES)}
    for lo in range(0, GROUP_DRAWS, _GROUP_DRAW_ROWS):
        rows = min(_GROUP_DRAW_ROWS, GROUP_DRAWS - lo)
        posterior = rng.beta(alpha, beta, size=(rows, s.size))
        # observed + spread · (posterior − centre), in place: the same operations on the same numbers
        posterior -= centre
        posterior *= spread
        posterior += observed
        draws[:rows, present] = posterior
        block = {"balanced": nan_mean(draws[:rows], axis=1), **_group_means(draws[:rows], groups)}
        for key, value in block.items():
            means[key][lo:lo + rows] = value
    return means


def small_class_variance(correct: np.ndarray, reference: np.ndarray, labels: np.ndarray, num_classes: int
                         ) -> np.ndarray:
    """(K,): the variance of each class's paired accuracy difference ``correct − reference`` that a mean over
    classes (overall, balanced, a third) adds to its bootstrap interval (:meth:`Bootstrap.paired_delta`), for a
    class of fewer than :data:`SMALL_CLASS_IMAGES` images or of fewer than :data:`FEW_CHANGED_IMAGES` the two score
    differently (the classes whose own interval is Newcombe's); 0 for the other classes.

    It is Agresti & Min's (2005) variance of a paired difference, half an image added to each cell of the class's
    2 × 2 table, less the plug-in variance the bootstrap resamples: with per-image differences dᵢ (seed means as
    they are: Σdᵢ² stands for the discordant count b + c, Σdᵢ for b − c) of n images,
    ((Σdᵢ² + 1)/(n + 2) − (Σdᵢ/(n + 2))²)/(n + 2) − (Σdᵢ²/n − (Σdᵢ/n)²)/n, never below 0. The bootstrap sees
    no variation a small class's few images did not show: a class of 10 images none of which changed adds nothing,
    and on real long-tailed test subsamples (classes of 6 to 300 images) the thirds' intervals held the population
    difference in 87–92 % of subsamples, 50 % for an easy third of 10 images a class (bench/README.md, "Group
    difference coverage"); widened, 95–98 %."""
    labels = np.asarray(labels, dtype=np.int64)
    d = np.asarray(correct, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    adjusted, plain = _paired_variances(*(np.bincount(labels, weights=w, minlength=num_classes) for w in (d, d * d)), n)
    small = (n > 0) & _newcombe_classes(correct, reference, labels, num_classes)
    return np.where(small, np.maximum(adjusted - plain, 0.0), 0.0)


def _paired_variances(s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(adjusted, plain)``: Agresti & Min's (2005) variance of the mean of n paired differences dᵢ (half an image
    added to each cell of their 2 × 2 table), ((Σdᵢ² + 1)/(n + 2) − (Σdᵢ/(n + 2))²)/(n + 2), and the plug-in one
    (Σdᵢ²/n − (Σdᵢ/n)²)/n (0 where n is 0), from ``s1`` = Σdᵢ and ``s2`` = Σdᵢ² (arrays; n may be an effective
    count)."""
    with np.errstate(all="ignore"):
        plain = np.where(n > 0, (s2 / n - (s1 / n) ** 2) / n, 0.0)
    return ((s2 + 1.0) / (n + 2.0) - (s1 / (n + 2.0)) ** 2) / (n + 2.0), plain


def stratified_variance_missed(correct: np.ndarray, reference: np.ndarray, strata: np.ndarray,
                               weights: np.ndarray) -> float:
    """The variance of a weighted mean over strata of paired differences ``correct − reference``, Σ_s w_s d̄_s
    (``weights`` (S,), w_s ≥ 0 summing to 1; ``strata`` (n,) each image's stratum), that its stratified percentile
    bootstrap misses (the disparity-aware decision's scores over class halves, ``probe.crossfit``); the sum of:

    - Σ_s w_s² v̂_s / (n_s − 1) over strata of two images or more, v̂_s the plug-in variance of d̄_s the bootstrap
      resamples: it has (n_s − 1)/n_s of the variance (the rescaling bootstrap's correction), and a class of 5
      validation images has halves of 2 and 3;
    - Agresti & Min's variance of the mean beyond its plug-in one (:func:`_paired_variances`, never below 0), on the
      images it reads pooled, at Kish's effective size 1/Σᵢuᵢ² of the image weights uᵢ = w_s/n_s: a mean whose
      images were all unchanged read [+0.00, +0.00] whatever the true difference, and half an image a cell for each
      class half (:func:`small_class_variance`) more than doubled the intervals (bench/decision_coverage.py).
    """
    strata = np.asarray(strata, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    d = np.asarray(correct, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    n = np.bincount(strata, minlength=weights.size).astype(np.float64)
    _, plain = _paired_variances(*(np.bincount(strata, weights=w, minlength=weights.size) for w in (d, d * d)), n)
    with np.errstate(all="ignore"):
        rescaled = float(np.sum(np.where(n > 1, weights ** 2 * plain / (n - 1.0), 0.0)))
        u = (weights / np.maximum(n, 1.0))[strata]
    if not u.any():
        return rescaled
    size = 1.0 / float(np.sum(u * u))
    adjusted, pooled = _paired_variances(size * np.sum(u * d), size * np.sum(u * d * d), np.float64(size))
    return rescaled + max(float(adjusted - pooled), 0.0)


def _newcombe_classes(correct: np.ndarray, reference: np.ndarray, labels: np.ndarray, num_classes: int
                      ) -> np.ndarray:
    """(K,) bool: the classes whose own paired difference gets Newcombe's interval: fewer than
    :data:`SMALL_CLASS_IMAGES` images, or fewer than :data:`FEW_CHANGED_IMAGES` the two score differently."""
    labels = np.asarray(labels, dtype=np.int64)
    changed = np.bincount(labels, weights=np.asarray(correct, dtype=np.float64)
                          != np.asarray(reference, dtype=np.float64), minlength=num_classes)
    return (np.bincount(labels, minlength=num_classes) < SMALL_CLASS_IMAGES) | (changed < FEW_CHANGED_IMAGES)


def paired_class_delta_interval(correct: np.ndarray, reference: np.ndarray, labels: np.ndarray, num_classes: int,
                                level: float = DEFAULT_LEVEL) -> np.ndarray:
    """(K, 2): each class's interval of its accuracy difference ``correct − reference`` on the same samples
    (per-sample scores in [0, 1], seed means allowed), Newcombe's score interval for paired proportions (1998,
    method 10): the square-and-add of each accuracy's Wilson interval (:func:`wilson_interval`) less the
    correlation of the two scorings, φ from the class's 2 × 2 table (both right a, only ``correct`` b, only
    ``reference`` c, both wrong d; with seed means, their expected counts) with Newcombe's n/2 step: φ is
    (ad − bc − n/2)/√(marginals) above n/2, 0 from 0 to n/2, (ad − bc)/√(marginals) below 0, and 0 where a marginal
    is 0 (a class of one sample: the plain square-and-add, −100 [−100, +12.2] lost on its image). ``nan`` for a
    class without samples.

    A percentile bootstrap cannot widen what few images say: a class of 2 images lost on both read −100 [−100,
    −100], and where the true difference was not 0 its intervals held it in 17–89 % of simulated classes of 2–10
    images; these hold it in 97–100 % (bench/interval_calibration.py). With seed means, the expected counts
    treat each sample's mean as one Bernoulli score: wider than the bootstrap's interval of a large class."""
    labels = np.asarray(labels, dtype=np.int64)
    x, y = np.asarray(correct, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    a, b = (np.bincount(labels, weights=w, minlength=num_classes) for w in (x * y, x * (1.0 - y)))
    c, d = (np.bincount(labels, weights=w, minlength=num_classes) for w in ((1.0 - x) * y, (1.0 - x) * (1.0 - y)))
    w1, w2 = (wilson_interval(s, n, level, corrected=False) for s in (a + b, a + c))
    with np.errstate(all="ignore"):
        p1, p2 = (a + b) / n, (a + c) / n
        cross, margins = a * d - b * c, (a + b) * (c + d) * (a + c) * (b + d)
        stepped = np.where(cross > n / 2, cross - n / 2, np.where(cross < 0, cross, 0.0))
        phi = np.where(margins > 0, stepped / np.sqrt(margins), 0.0)
    below1, above1, below2, above2 = p1 - w1[..., 0], w1[..., 1] - p1, p2 - w2[..., 0], w2[..., 1] - p2
    lo = p1 - p2 - np.sqrt(np.maximum(below1 ** 2 + above2 ** 2 - 2 * phi * below1 * above2, 0.0))
    hi = p1 - p2 + np.sqrt(np.maximum(above1 ** 2 + below2 ** 2 - 2 * phi * above1 * below2, 0.0))
    return np.clip(np.stack([lo, hi], axis=-1), -1.0, 1.0)


def class_accuracy_interval(correct: np.ndarray, labels: np.ndarray, num_classes: int,
                            level: float = DEFAULT_LEVEL) -> np.ndarray:
    """(K, 2): the Wilson score interval of each class's accuracy (module docstring); ``nan`` for a class
    without samples."""
    labels = np.asarray(labels, dtype=np.int64)
    successes = np.bincount(labels, weights=np.asarray(correct, dtype=np.float64), minlength=num_classes)
    return wilson_interval(successes, np.bincount(labels, minlength=num_classes), level)


def interval_or_none(values) -> list[float] | None:
    """``[lo, hi]`` as floats, or None for none or one not defined (a class without images, an empty third, a value
    undefined): how a report stores an interval."""
    return None if values is None else intervals_or_none(np.reshape(values, (1, -1)))[0]


def intervals_or_none(values) -> list[list[float] | None]:
    """Each row of ``values`` (K, 2) as :func:`interval_or_none` gives it, in one pass: row by row, 5,000 classes'
    took 46 ms, a sixth of reading their report (which derives each row's ``shipped_accuracy_ci``). No rows (``[]``)
    give ``[]``, and one row given flat (``[lo, hi]``) is that one row."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 2:  # [] raised TypeError: its all() over the last axis was one bool, not a row's each
        values = values.reshape(1, -1) if values.size else values.reshape(0, 2)
    finite = np.isfinite(values).all(axis=-1).tolist()
    return [ends if ok else None for ends, ok in zip(values.tolist(), finite)]


def precision_recall_f1_intervals(labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                                  level: float = DEFAULT_LEVEL) -> dict[str, np.ndarray]:
    """(K, 2) intervals of each class's ``precision``, ``recall`` and ``f1`` of ``predicted`` (S, n) on ``labels``
    (n,), the values ``probe.metrics.precision_recall_f1`` gives on the confusion summed over the S seeds; ``nan``
    where the value is undefined. The unit is a test image, not an image of one seed: an image seen by S seeds counts
    once, with the share of seeds that predicted each class (seed means, as the accuracy's interval reads them).

    Precision TP/(TP+FP) and recall TP/(TP+FN) are proportions: Wilson score intervals (:func:`wilson_interval`) of
    TP/S successes in (TP+FP)/S and (TP+FN)/S trials (recall's is the class's accuracy interval). F1 = 2PR/(P+R) is
    no proportion but grows with each of P and R: its interval is F1 at the lower ends and at the upper ends of their
    Wilson intervals at level 1 − (1 − ``level``)/2 each, which hold together with at least ``level`` (Bonferroni),
    whatever ties P to R; a precision or recall undefined (the class never predicted, or without test images) counts
    as [0, 1] there. A percentile bootstrap over test images had read [1, 1] for a class whose few images were all
    right and never predicted elsewhere (a review), and a class predicted but without test images read F1 0 [0, 0],
    as if its recall were known (a review)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.int64))
    hit = (predicted == labels[None, :]).mean(axis=0)
    tp = np.bincount(labels, weights=hit, minlength=num_classes)
    support = np.bincount(labels, minlength=num_classes)
    called = np.bincount(predicted.ravel(), minlength=num_classes) / len(predicted)
    both = 1.0 - (1.0 - level) / 2  # each of the two intervals F1's is made of
    precision, recall = wilson_interval(tp, called, both), class_accuracy_interval(hit, labels, num_classes, both)
    precision, recall = (np.where(np.isnan(ends), [0.0, 1.0], ends) for ends in (precision, recall))  # undefined: any
    with np.errstate(all="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))  # 0 where both ends are 0
    f1[(support == 0) & (called == 0)] = np.nan  # neither present nor predicted: F1 undefined
    # recall is the class's accuracy: its interval is the accuracy's, one definition
    return {"precision": wilson_interval(tp, called, level),
            "recall": class_accuracy_interval(hit, labels, num_classes, level), "f1": f1}


class OwnIntervals(NamedTuple):
    """The 95 % intervals of a run's own accuracies on one split (:func:`own_intervals`)."""
    classes: np.ndarray                        # (K, 2): each class's Wilson interval, nan without images
    overall: np.ndarray                        # (2,): the Wilson interval over every image
    groups: dict[str, list[float]] | None      # balanced and each third (group_intervals); None without groups


def own_intervals(correct: np.ndarray, labels: np.ndarray, num_classes: int,
                  groups: dict[str, list[int]] | None = None, level: float = DEFAULT_LEVEL) -> OwnIntervals:
    """The intervals a report gives a run's accuracies (``probe.diagnostics.test_diagnostics``) and a comparison
    gives each of its two runs (``probe.compare``): one definition, so the two pages agree on every interval.
    Each class's and overall accuracy are proportions (Wilson, :func:`class_accuracy_interval`); balanced accuracy
    and the thirds are macro means (:func:`group_intervals`), given only with ``groups``."""
    correct = np.asarray(correct, dtype=np.float64)
    return OwnIntervals(class_accuracy_interval(correct, labels, num_classes, level),
                        wilson_interval(correct.sum(), correct.size, level),
                        None if groups is None else group_intervals(correct, labels, num_classes, groups, level))


def observed_class_accuracy(correct: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,) per-class accuracy of per-sample scores ``correct`` on the split itself; ``nan`` for a class without
    samples (as ``probe.metrics`` gives)."""
    counts = np.bincount(labels, minlength=num_classes)
    with np.errstate(all="ignore"):
        return np.bincount(labels, weights=correct, minlength=num_classes) / counts


def _point_summary(correct: np.ndarray, labels: np.ndarray, num_classes: int,
                   groups: dict[str, list[int]] | None, overall: str = "accuracy") -> dict[str, float]:
    """Overall (``probe.metrics.overall_score``), balanced and group (macro, :func:`probe.groups.group_accuracy`)
    accuracy of the split itself."""
    per_class = observed_class_accuracy(correct, labels, num_classes)
    out = {"overall": overall_score(correct, labels, num_classes, overall),
           "balanced": overall_score(correct, labels, num_classes, "balanced"),
           "worst_class": float(_worst(per_class[None, :])[0])}
    if groups:
        out.update(group_accuracy(per_class, groups))
    return out


def _group_means(per_class: np.ndarray, groups: dict[str, list[int]], times: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """Each group's accuracy in each row of (B, K) per-class accuracies: :func:`class_mean` over its classes;
    nan in every row for an empty group."""
    return {name: class_mean(per_class, np.asarray(groups.get(name, []), dtype=np.int64), times)
            for name in GROUP_NAMES}


def class_mean(per_class: np.ndarray, columns: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """(B,): the mean of each row of (B, K) per-class accuracies over ``columns``, classes without samples (nan)
    left out, each class counted as many times as ``times`` (B, K) says it is in that resample
    (:meth:`Bootstrap.multiplicity`; None: once); nan for a row without any."""
    values = per_class[:, columns]
    if times is None:
        return nan_mean(values, axis=1)
    weight = np.where(np.isnan(values), 0.0, times[:, columns])
    with np.errstate(all="ignore"):
        return np.nansum(values * weight, axis=1) / weight.sum(axis=1)


def _worst(per_class: np.ndarray) -> np.ndarray:
    """The lowest class accuracy of each row of (B, K), classes without samples (nan) left out; nan for a row
    without any."""
    filled = np.where(np.isnan(per_class), np.inf, per_class)
    worst = filled.min(axis=1) if filled.shape[1] else np.full(len(filled), np.inf)
    return np.where(np.isinf(worst), np.nan, worst)
