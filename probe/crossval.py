"""Small data: stratified k-fold cross-validation on train + val instead of a validation split that is too small.

When the validation split holds fewer than :data:`probe.decision.MIN_VAL_PER_CLASS` images in some class, its
per-class accuracies move by ≥ 2 points per image: differences between candidates and the easy / medium / hard
thirds are noise. ``run_probe`` then pools train + val, splits the pool into ``k`` stratified folds
(:func:`stratified_folds`), fits every candidate on each fold's other folds (one sweep per fold) and predicts the
held-out fold. Every pooled sample is predicted exactly once, by a model that did not train on it: the
*out-of-fold* (OOF) per-sample correctness of each candidate (:func:`out_of_fold`). It takes the place of the
validation correctness everywhere selection uses it (scores, the paired bootstrap, groups, stability), on N
pooled samples instead of the validation split's few.

:func:`plan_cross_validation` decides whether to cross-validate and with how many folds: ``k`` is lowered to the
smallest class count of the pool (a class needs a sample in every fold), and a class with fewer than 2 pooled
samples makes cross-validation impossible (the run keeps the validation split); each case adds a warning.
Pure numpy; the caller fits and predicts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .decision import MIN_VAL_PER_CLASS

__all__ = ["CVPlan", "plan_cross_validation", "stratified_folds", "out_of_fold", "within_class_rank"]

# fit_fold(fold, train_index, test_index) -> per candidate, (predicted labels of test_index, None) or (None, failure)
FoldFit = Callable[[int, np.ndarray, np.ndarray], list[tuple[np.ndarray | None, str | None]]]


@dataclass
class CVPlan:
    """Cross-validation of one run: the fold of each pooled sample (train rows first, then val), k, and why."""

    folds: np.ndarray
    k: int
    reason: str
    warnings: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(self.folds.shape[0])


def _class_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample indices sorted by class, in random order within a class (draws ``rng.random(n)``)."""
    return np.lexsort((rng.random(labels.shape[0]), labels))


def within_class_rank(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) each sample's position, 0 .. n_k − 1, in a random order of its own class: ``rank < m`` keeps m random
    samples of every class (the stratified validation carve, per-class subsampling)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = _class_order(labels, rng)
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(labels.shape[0], dtype=np.int64)
    rank[order] = np.arange(labels.shape[0]) - np.repeat(starts, counts)
    return rank


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(n,) fold index in [0, k) of each sample: each sample in exactly one fold, each class spread evenly (its
    count per fold differs by at most 1, as do the fold sizes), random within a class (seeded).

    Samples are ordered by class, randomly within a class, and dealt to the folds in turn (numpy only: scikit-learn
    is a test dependency).

    Raises:
        ValueError: k < 2, or a class with fewer than k samples.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if k < 2 or present.size == 0 or present.min() < k:
        raise ValueError(f"stratified k-fold needs k >= 2 and at least k samples in every class; got k={k} and a "
                         f"smallest class of {int(present.min()) if present.size else 0}.")
    rng = np.random.default_rng(seed)
    order = _class_order(labels, rng)
    folds = np.empty(labels.shape[0], dtype=np.int64)
    folds[order] = np.arange(labels.shape[0]) % k
    return folds


def plan_cross_validation(val_labels: np.ndarray, pool_labels: np.ndarray, class_names: list[str], cv: int,
                          seed: int, minimum: int = MIN_VAL_PER_CLASS) -> tuple[CVPlan | None, list[str]]:
    """Whether (and how) to cross-validate: ``(plan, warnings)``; ``plan`` is None to select on validation.

    Args:
        val_labels: (n_val,) labels of the validation split.
        pool_labels: (n_train + n_val,) labels of train + val, in the order the folds index.
        class_names: K names.
        cv: the requested number of folds (``ProbeConfig.cv``); 0 never cross-validates.
        seed: the folds' shuffle seed (the run's first seed).
        minimum: validation images per class below which cross-validation is used.
    """
    num_classes = len(class_names)
    val_counts = np.bincount(np.asarray(val_labels, dtype=np.int64), minlength=num_classes)
    if cv == 0 or val_counts.min() >= minimum:
        return None, []
    few = sorted((i for i in range(num_classes) if val_counts[i] < minimum), key=lambda i: (val_counts[i], i))
    n = int(val_counts[few[0]])
    # every class under the minimum, fewest first (one class named read as if the others had enough; a
    # dashboard-only round: all four had 2)
    reason = (f"val has {n} image{'' if n == 1 else 's'} in class {class_names[few[0]]!r} (< {minimum})"
              if len(few) == 1 else
              f"val has fewer than {minimum} images in {len(few)} of {num_classes} classes: "
              + ", ".join(f"{class_names[i]!r} {val_counts[i]}" for i in few[:5]) + (", …" if len(few) > 5 else ""))
    pool_counts = np.bincount(np.asarray(pool_labels, dtype=np.int64), minlength=num_classes)
    rare = int(np.argmin(pool_counts))
    if pool_counts[rare] < 2:
        return None, [f"Cross-validation is impossible: class {class_names[rare]!r} has {pool_counts[rare]} "
                      f"image(s) in train + val (a fold needs 2); selection used the small validation split."]
    k = int(min(cv, pool_counts[rare]))
    warnings = []
    if k < cv:
        warnings.append(f"Cross-validation used {k} folds instead of {cv}: class {class_names[rare]!r} has only "
                        f"{pool_counts[rare]} images in train + val (each fold needs one).")
    warnings.append(f"Small validation split ({reason}): hyper-parameters and groups were chosen by {k}-fold "
                    f"cross-validation on train + val ({len(pool_labels)} images), so the selection scores "
                    "(selection.candidates, the frontier, grouping.stability) are out-of-fold estimates, as are the "
                    "val accuracies shown (report.val: the chosen configuration's); the final models train on the "
                    "train split.")
    return CVPlan(stratified_folds(pool_labels, k, seed), k, reason), warnings


def out_of_fold(fit_fold: FoldFit, labels: np.ndarray, folds: np.ndarray, n_candidates: int
                ) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Out-of-fold per-sample correctness of every candidate: ``(correct, failures)``.

    Args:
        fit_fold: fits the candidates on ``train_index`` and predicts ``test_index`` (see ``FoldFit``).
        labels: (n,) pooled labels.
        folds: (n,) fold of each sample (:func:`stratified_folds`).
        n_candidates: how many candidates ``fit_fold`` returns results for.

    Returns:
        per candidate, (n,) float64 correctness in {0, 1} (each sample scored by the fold that held it out), or
        None with the first fold's failure (``fold f/k: diverged ...``) when a fit failed in any fold.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(folds.max()) + 1
    correct = [np.zeros(labels.shape[0], dtype=np.float64) for _ in range(n_candidates)]
    failures: list[str | None] = [None] * n_candidates
    for fold in range(k):
        test_index = np.flatnonzero(folds == fold)
        results = fit_fold(fold, np.flatnonzero(folds != fold), test_index)
        for i, (predicted, failure) in enumerate(results):
            if failure is not None:
                failures[i] = failures[i] or f"fold {fold + 1}/{k}: {failure}"
            else:
                correct[i][test_index] = predicted == labels[test_index]
    return [None if failure else vector for vector, failure in zip(correct, failures)], failures
