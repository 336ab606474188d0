"""Disparity and margin metrics on plain arrays (numpy in, numpy / float out).

Accuracy metrics (MR², Sec. 5 "class-wise performance"): per-class top-1 accuracy with counts, overall top-1,
balanced accuracy, worst class, standard deviation of per-class accuracy. What "overall" means where validation
selects (``ProbeConfig.overall_metric``, :data:`OVERALL_METRICS`): top-1 accuracy over the samples, or balanced
accuracy, each class's accuracy weighted equally (:func:`overall_weights`, :func:`overall_score`).

Margin metrics:

* output-level margin of a sample, P(y|x) − max_{y'≠y} P(y'|x) (MR², Sec. 3, the margin the loss acts on);
* classifier-level (class) margin, m_cls = min_{i≠j} ∠(w_i, w_j) in degrees (Zhou et al., "Learning Towards
  the Largest Margins", ICLR 2022, Def. 3.1);
* sample margin γ(x, y) = w̃_yᵀz̃ − max_{j≠y} w̃_jᵀz̃ on L2-normalised prototypes w̃ and features z̃
  (Zhou et al., Def. 3.2), summarised per class (min, mean) and over the set (min);
* their ideal values for K classes in d ≥ K−1 dimensions, reached by a regular simplex of prototypes with every
  feature on its prototype: class margin arccos(−1/(K−1)), sample margin K/(K−1) (Zhou et al., Thm. 3.3 / 3.4).

Confusion metrics (what scikit-learn's ``confusion_matrix`` / ``precision_recall_fscore_support`` give, on
integer labels 0..K−1): the K×K confusion counts (rows = true class), per-class precision, recall, F1 and
support, and each class's most frequent wrong predictions.

Classes without samples get accuracy / margin ``nan`` (never 0, which would look like a failing class);
aggregates over classes ignore them.
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from .standalone import NORM_FLOOR

logger = logging.getLogger(__name__)

__all__ = [
    "check_num_classes",
    "integer_labels",
    "OVERALL_METRICS",
    "overall_weights",
    "overall_score",
    "nan_mean",
    "per_class_accuracy",
    "overall_accuracy",
    "balanced_accuracy",
    "worst_class",
    "per_class_std",
    "output_margins",
    "class_margin_deg",
    "sample_margins",
    "per_class_reduce",
    "ideal_class_margin_deg",
    "ideal_sample_margin",
    "softmax",
    "confusion_matrix",
    "precision_recall_f1",
    "top_confusions",
    "confusion_cells",
    "most_confused_classes",
    "confusion_submatrix",
]


def integer_labels(labels, name: str = "labels") -> np.ndarray:
    """``labels`` as an int64 array: integer class indices of any integer dtype, or floats that hold integers.

    Raises TypeError naming ``name`` for anything else: class names (strings), booleans, or floats such as 0.5,
    which a conversion to int64 would have truncated into another class without a word."""
    values = np.asarray(labels)
    if values.dtype == object and values.size:  # Python ints (or floats) in an object array: their own dtype
        try:
            values = np.asarray(values.tolist())
        except ValueError:  # ragged
            pass
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind == "f":
        if values.size and not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise TypeError(f"{name} must be integer class indices, got non-integer values.")
        return values.astype(np.int64)
    hint = (f"; class names are not labels: map them to indices first, e.g. names, {name.split()[-1]} = "
            f"np.unique(values, return_inverse=True)" if values.dtype.kind in "USO" else "")
    raise TypeError(f"{name} must be integer class indices, got dtype {values.dtype}{hint}.")


def _labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = integer_labels(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (n,), got shape {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
            f"got values in [{labels.min()}, {labels.max()}]."
        )
    return labels


def _same_shape(labels: np.ndarray, predictions) -> np.ndarray:
    """``predictions`` as a class index array (:func:`integer_labels`: strings, never equal to an integer label,
    scored 0 without a word) of ``labels``' shape; another shape (an (n, 1) column, a single prediction) is a
    ValueError, never broadcast against the labels into a wrong score."""
    predictions = integer_labels(predictions, "predictions")
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions shape {predictions.shape} does not match labels shape {labels.shape}.")
    return predictions


def per_class_accuracy(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class top-1 accuracy and sample counts.

    Args:
        labels: (n,) true classes in [0, K).
        predictions: (n,) predicted classes.
        num_classes: K.

    Returns:
        ``(accuracy (K,) float64, counts (K,) int64)``; accuracy is ``nan`` for classes with no sample.
    """
    labels = _labels(labels, num_classes)
    predictions = _same_shape(labels, predictions)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=(predictions == labels).astype(np.float64), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return accuracy, counts.astype(np.int64)


def overall_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Top-1 accuracy over all samples, a fraction in [0, 1] (``nan`` for an empty set); ``labels`` and
    ``predictions`` of the same shape (n,), else ValueError; class indices (:func:`integer_labels`), else TypeError:
    string labels against integer predictions scored 0.0 without a word."""
    labels = integer_labels(labels)
    predictions = _same_shape(labels, predictions)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(predictions == labels))


def nan_mean(values, axis: int = 0) -> np.ndarray:
    """``np.nanmean`` along ``axis`` without its RuntimeWarning where a slice holds no number, which stays NaN: a
    class with no validation image has no validation accuracy in any seed (reported as null)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=axis)


def balanced_accuracy(per_class: np.ndarray) -> float:
    """Mean of the per-class accuracies over classes that have samples (macro recall)."""
    return float(nan_mean(per_class))


# "accuracy": top-1 over the samples, so each class counts by its share of them; "balanced": the mean of the
# per-class accuracies (scikit-learn's balanced_accuracy_score), for class-imbalanced data whose classes matter
# equally where the probe is used.
OVERALL_METRICS = ("accuracy", "balanced")


def overall_weights(counts: np.ndarray, metric: str = "accuracy") -> np.ndarray:
    """(K,) weight of each class's accuracy in the overall score of a split with ``counts`` samples per class:
    ``counts / counts.sum()`` (``"accuracy"``) or 1 / (number of classes with samples) (``"balanced"``); 0 for a
    class without samples. Σ_k weight_k · accuracy_k is then the overall score."""
    counts = np.asarray(counts, dtype=np.float64)
    if metric == "accuracy":
        return counts / max(counts.sum(), 1.0)
    if metric == "balanced":
        present = counts > 0
        return present / max(int(present.sum()), 1)
    raise ValueError(f"Unknown overall metric {metric!r}; accepted: {', '.join(OVERALL_METRICS)}.")


def overall_score(correct: np.ndarray, labels: np.ndarray, num_classes: int, metric: str = "accuracy") -> float:
    """The overall score (:data:`OVERALL_METRICS`) of per-sample scores ``correct`` in [0, 1] with ``labels``;
    ``nan`` for no samples. ``"accuracy"`` is ``correct.mean()``; ``"balanced"`` the mean over the classes present
    of their mean score (equal to scikit-learn's ``balanced_accuracy_score`` for 0/1 scores)."""
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if correct.size == 0:
        return float("nan")
    if metric == "accuracy":
        return float(correct.mean())
    counts = np.bincount(labels, minlength=num_classes)
    weights = overall_weights(counts, metric)
    return float(np.sum(correct * (weights / np.maximum(counts, 1))[labels]))


def worst_class(per_class: np.ndarray) -> tuple[int, float]:
    """``(index, accuracy)`` of the class with the lowest accuracy; ties go to the lowest index."""
    acc = np.asarray(per_class, dtype=np.float64)
    if not np.any(np.isfinite(acc)):
        raise ValueError("worst_class needs at least one class with samples; all accuracies are nan.")
    index = int(np.nanargmin(acc))
    return index, float(acc[index])


def per_class_std(per_class: np.ndarray) -> float:
    """Population standard deviation (ddof=0) of the per-class accuracies, ignoring empty classes."""
    return float(np.nanstd(per_class)) if np.any(np.isfinite(per_class)) else float("nan")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits, computed stably in float64, in one new (n, K) array (the caller's logits
    untouched): a widened copy and the shifted one were two, 1.6 GB of a 20,000 × 5,000 label-issues fold."""
    z = np.array(logits, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _top_other(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """max_{j≠y} scores[i, j] for each row i (n,)."""
    masked = scores.copy()
    masked[np.arange(len(labels)), labels] = -np.inf
    return masked.max(axis=1)


def output_margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Output-level margin P(y|x) − max_{y'≠y} P(y'|x) per sample (n,), in [−1, 1].

    Positive exactly when the sample is classified correctly (up to ties).
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (n, K), got shape {logits.shape}.")
    labels = _labels(labels, logits.shape[1])
    if logits.shape[1] < 2:
        raise ValueError(f"output margins need at least 2 classes, got K={logits.shape[1]}.")
    prob = softmax(logits)
    return prob[np.arange(len(labels)), labels] - _top_other(prob, labels)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, NORM_FLOOR)


def class_margin_deg(weights: np.ndarray) -> float:
    """Classifier-level margin m_cls = min_{i≠j} ∠(w_i, w_j) in degrees (Zhou et al. 2022, Def. 3.1).

    Args:
        weights: (K, d) class weights / prototypes, K ≥ 2.
    """
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[0] < 2:
        raise ValueError(f"weights must be (K, d) with K >= 2, got shape {w.shape}.")
    w = _normalise(w)
    cos = np.clip(w @ w.T, -1.0, 1.0)
    np.fill_diagonal(cos, -np.inf)
    # The smallest angle is the largest cosine; arccos after the max keeps the computation exact for ties.
    return float(np.degrees(np.arccos(cos.max())))


def sample_margins(features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sample margin γ(x, y) = w̃_yᵀz̃ − max_{j≠y} w̃_jᵀz̃ per sample (n,), in [−2, 2] (Zhou et al. 2022, Def. 3.2).

    Args:
        features: (n, d) features the head sees (z); normalised here.
        labels: (n,) true classes.
        weights: (K, d) class weights (w); normalised here.
    """
    w = np.asarray(weights)
    z = np.asarray(features)
    if w.ndim != 2 or z.ndim != 2 or w.shape[1] != z.shape[1]:
        raise ValueError(f"features (n, d) and weights (K, d) must share d, got {z.shape} and {w.shape}.")
    labels = _labels(labels, w.shape[0])
    # cosines as (z · w̃ᵀ) / ‖z‖ in z's precision: no normalised (n, d) copy of the features
    dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float64
    norms = np.maximum(np.linalg.norm(z, axis=1), NORM_FLOOR)
    cos = ((z @ _normalise(w).T.astype(dtype)) / norms[:, None]).astype(np.float64)
    return cos[np.arange(len(labels)), labels] - _top_other(cos, labels)


def per_class_reduce(values: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(min (K,), mean (K,))`` of per-sample values; ``nan`` for classes with no sample."""
    labels = _labels(labels, num_classes)
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.bincount(labels, weights=values, minlength=num_classes)
    mins = np.full(num_classes, np.inf)
    np.minimum.at(mins, labels, values)
    empty = counts == 0
    mins[empty] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(empty, np.nan, sums / np.maximum(counts, 1))
    return mins, means


def check_num_classes(num_classes: int) -> None:
    """Raise ValueError unless ``num_classes`` is at least 2 (a head, a margin and a simplex need two classes)."""
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")


def ideal_class_margin_deg(num_classes: int, dim: int | None = None) -> float | None:
    """Largest possible class margin of K class vectors in ``dim`` = d dimensions (None: d ≥ K−1), in degrees:
    arccos(−1/(K−1)) (the simplex) for d ≥ K−1; 90° for K/2 ≤ d < K−1 (Rankin: of more than d+1 unit vectors two are
    at most 90° apart, and the 2d vectors ±e_i reach it); None for d < K/2, where it is below 90° with no closed form
    (999 classes in 128 dimensions read "ideal 90.06°"; a 1,000-class round)."""
    check_num_classes(num_classes)
    if dim is None or dim >= num_classes - 1:
        return math.degrees(math.acos(-1.0 / (num_classes - 1)))
    return 90.0 if 2 * dim >= num_classes else None


def ideal_sample_margin(num_classes: int, dim: int | None = None) -> float | None:
    """Largest possible minimal sample margin of K classes in ``dim`` = d dimensions (None: d ≥ K−1): K/(K−1), the
    simplex's, for d ≥ K−1; None below, where the simplex does not fit (no closed form is used)."""
    check_num_classes(num_classes)
    return num_classes / (num_classes - 1) if dim is None or dim >= num_classes - 1 else None


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: ``[i, j]`` = samples of true class i predicted as j (rows = true class)."""
    labels = _labels(labels, num_classes)
    predictions = _labels(_same_shape(labels, predictions), num_classes)
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def precision_recall_f1(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (K,) float64 and ``support`` (K,) int64 from confusion counts.

    precision_k = C[k,k] / Σ_i C[i,k], recall_k = C[k,k] / Σ_j C[k,j], F1_k = 2·TP / (2·TP + FP + FN) (= 2PR /
    (P + R) where both are defined). An undefined value (precision of a class never predicted, recall of a class
    without samples, F1 of a class neither present nor predicted) is ``nan``, as scikit-learn gives with
    ``zero_division=np.nan``.
    """
    c = np.asarray(confusion, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {c.shape}.")
    tp = np.diag(c)
    predicted, support = c.sum(axis=0), c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(predicted + support > 0, 2 * tp / (predicted + support), np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def confusion_cells(confusion: np.ndarray) -> np.ndarray:
    """(m, 3) int64: the non-zero cells ``[true, predicted, count]`` of a (K, K) count matrix, row by row."""
    c = np.asarray(confusion, dtype=np.int64)
    true, predicted = np.nonzero(c)
    return np.stack([true, predicted, c[true, predicted]], axis=1)


def most_confused_classes(cells: np.ndarray, num_classes: int, limit: int) -> np.ndarray:
    """The ≤ ``limit`` classes in the most confusions, most first, from the matrix's cells (m, 3) ``[true,
    predicted, count]`` (:func:`confusion_cells`; a 5,000-class matrix is 25 M counts, its cells a few): e_k =
    Σ_{j≠k} C[k,j] + Σ_{i≠k} C[i,k] (its images predicted as another class plus other classes' images predicted as
    it); ties go to the lower index and classes without any confusion are left out. Returns their indices (n,)."""
    true, predicted, count = np.asarray(cells, dtype=np.int64).reshape(-1, 3).T
    off = true != predicted
    errors = (np.bincount(true[off], count[off], minlength=num_classes)
              + np.bincount(predicted[off], count[off], minlength=num_classes))
    order = np.argsort(-errors, kind="stable")[:limit]
    return order[errors[order] > 0].astype(np.int64)


def confusion_submatrix(cells: np.ndarray, num_classes: int, classes: np.ndarray) -> np.ndarray:
    """(n + 1, n + 1) int64 from the matrix's cells (m, 3): the rows and columns of ``classes`` (n,), in their
    order, plus a last row and column "other classes", so that each row sums to its class's images, as in the full
    matrix: ``[i, n]`` = images of classes[i] predicted as a class outside ``classes``, ``[n, j]`` = images of those
    classes predicted as classes[j], ``[n, n]`` = those classes' images predicted among themselves."""
    true, predicted, count = np.asarray(cells, dtype=np.int64).reshape(-1, 3).T
    slot = np.full(num_classes, len(classes), dtype=np.int64)
    slot[np.asarray(classes, dtype=np.int64)] = np.arange(len(classes))
    out = np.zeros((len(classes) + 1, len(classes) + 1), dtype=np.int64)
    np.add.at(out, (slot[true], slot[predicted]), count)
    return out


def top_confusions(confusion: np.ndarray, k: int = 3) -> list[list[tuple[int, float]]]:
    """For each true class, the ≤ k classes it is most often predicted as (never itself, never a zero count).

    Returns:
        per class a list of ``(predicted class, rate)``, rate = count / samples of the true class, highest
        first; ties go to the lower class index.

    Raises:
        ValueError: ``k`` is not a count (a negative ``k`` sliced off the last classes instead: k=-1 gave a class
            every confusion but the one of lowest count).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a count of classes (an integer ≥ 0), got {k!r}.")
    c = np.asarray(confusion, dtype=np.int64)
    off = c.copy()
    np.fill_diagonal(off, 0)
    support = np.maximum(c.sum(axis=1), 1)
    # Sort each row by (count descending, index ascending): a stable argsort of the negated counts.
    order = np.argsort(-off, axis=1, kind="stable")[:, :k]
    return [[(int(j), float(off[i, j] / support[i])) for j in order[i] if off[i, j] > 0]
            for i in range(c.shape[0])]
