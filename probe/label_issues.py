"""Likely wrong training labels: out-of-fold probabilities of each image's own label (cleanlab's self-confidence).

A run's probe predicting the images it trained on is in-sample: it has fitted their labels, wrong ones included, so
a systematic flip (40 % of one class labelled as another) is what it learnt, and its probability of the flipped label
stays high. Here the run's chosen configuration (fixed hyper-parameters, no sweep, one seed) is fitted ``k`` times on
train + val split into stratified folds (:func:`probe.crossval.stratified_folds`), and each image is scored by the
fold model that did not train on it. The images whose out-of-fold prediction differs from their label, lowest
probability of their label first, are the likeliest wrong labels (:meth:`probe.predictions.Predictions.failures`
ranks them, as it ranks a run's test mistakes).

That listing is the method ``predicted-neq-given`` (cleanlab's ``filter_by='predicted_neq_given'``). The other,
``confident-learning``, is cleanlab's default filter (``cleanlab.filter.find_label_issues`` with
``filter_by='prune_by_noise_rate'``; Northcutt et al., "Confident Learning", JAIR 2021), on the same out-of-fold
probabilities: the confident joint counts, per pair (given label i, true label j), the images labelled i whose p(j)
reaches class j's threshold t_j (the mean p(j) over the images labelled j), calibrated to the label counts; from the
images labelled i it then lists, for each j != i, as many as that count, those of the largest margin p(j) - p(i),
less those whose prediction is their label. Both are ranked the same way, by self-confidence (p(label)), lowest
first. :func:`confident_learning_issues` equals cleanlab 2.7.1's mask (tests/probe/test_confident_learning.py, on
arrays cleanlab wrote: tests/probe/data/confident_learning.npz).

Arrays only: the caller loads the features (``app.label_issues`` reads a run and its cache).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from .config import DEFAULT_CV_FOLDS, LEAVE_OUT, MAX_CV_FOLDS, MIN_CV_FOLDS, ProbeConfig
from .crossval import stratified_folds
from .metrics import softmax
from .names import listed
from .predictions import Predictions

__all__ = ["METHODS", "DEFAULT_METHOD", "check_method", "check_folds", "resolve_folds", "out_of_fold_probabilities",
           "out_of_fold_softmax", "out_of_fold_issues",
           "label_issue_predictions", "confident_thresholds", "confident_joint", "confident_learning_issues",
           "label_issue_mask", "PLAUSIBLE_NOISE", "out_of_fold_accuracy", "weak_refit_caution"]

PREDICTED_NEQ_GIVEN, CONFIDENT_LEARNING = "predicted-neq-given", "confident-learning"
# the one list of the methods' names (CLI --method, the service's job request), each with what it lists
METHODS = {
    PREDICTED_NEQ_GIVEN: "predicted otherwise than labelled",
    CONFIDENT_LEARNING: "flagged by confident learning (cleanlab's prune_by_noise_rate: per pair of labels, as many "
                        "as the calibrated confident joint counts)",
}
DEFAULT_METHOD = PREDICTED_NEQ_GIVEN
# The most wrong labels a labelled data set plausibly holds: Northcutt, Athalye & Mueller ("Pervasive Label Errors
# in Test Sets", NeurIPS 2021) estimated 0.15 % to 10.1 % (QuickDraw) in ten benchmark test sets, 3.3 % on average.
# A refit that errs on more than twice this share of the pool out of fold errs more often on its own than on all
# the wrong labels there could be: most of what it lists as predicted otherwise than labelled is its own mistake.
PLAUSIBLE_NOISE = 0.10
_FLOAT_EPSILON = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON
_MISSING_CLASS_THRESHOLD = 2.0  # cleanlab's threshold of a class no image is labelled (never reached)
_BLOCK_ELEMENTS = 1 << 20  # probabilities copied at a time (8 MB of float64)

logger = logging.getLogger(__name__)


def check_method(method: str) -> str:
    """``method`` when it is one of :data:`METHODS`; ValueError naming them otherwise."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    return method


def check_folds(counts, folds: int, class_names: list[str] | None = None) -> None:
    """ValueError naming ``folds`` outside MIN_CV_FOLDS..MAX_CV_FOLDS, or above the smallest class's image count
    (``counts``: train + val images per class; each fold needs an image of every class). The one check of the CLI,
    the service's job request (checked before the job exists) and the fits."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or \
            not MIN_CV_FOLDS <= folds <= MAX_CV_FOLDS:
        raise ValueError(f"folds must be an integer in [{MIN_CV_FOLDS}, {MAX_CV_FOLDS}], got {folds!r}.")
    counts = np.asarray(counts, dtype=np.int64)
    rare = int(np.argmin(counts))
    if counts[rare] < folds:
        name = repr(class_names[rare]) if class_names is not None else str(rare)
        start = (f"folds={folds}: class {name} has {int(counts[rare])} image(s) in train + val, and each fold needs "
                 "one of every class")
        if counts[rare] >= MIN_CV_FOLDS:
            raise ValueError(f"{start}; use at most {int(counts[rare])} folds.")
        # "use at most 1 folds (or leave the class out)" offered a count the bound refuses, and no way to leave
        # a class out of label-issues (a long-tailed round: a class of one image)
        few = [repr(class_names[k]) if class_names is not None else str(k)
               for k in np.flatnonzero(counts < MIN_CV_FOLDS)]
        raise ValueError(f"{start}; no fold count ({MIN_CV_FOLDS} to {MAX_CV_FOLDS}) holds out a class of fewer than "
                         f"{MIN_CV_FOLDS} images and trains on it. Train the run without "
                         f"{'it' if len(few) == 1 else 'them'} ({listed(few, 5)}: {LEAVE_OUT}) and list the other "
                         "classes' likely wrong labels from that run.")


def resolve_folds(counts, folds: int | None, class_names: list[str] | None = None) -> tuple[int, str | None]:
    """The folds of a refit on ``counts`` (train + val images per class) and a note where they are not the default:
    ``folds`` as asked (:func:`check_folds`); None, not asked for: ``DEFAULT_CV_FOLDS``, or the smallest class's
    count where it is fewer (at least ``MIN_CV_FOLDS``; below, check_folds says how to go on). The default refused
    few-shot data it had not been asked for, where scikit-learn's StratifiedKFold warns and goes on; a count asked
    for is refused instead (its message names the class, its count and the most folds), as it would not run."""
    note = None
    if folds is None:
        counts = np.asarray(counts, dtype=np.int64)
        rare, folds = int(np.argmin(counts)), DEFAULT_CV_FOLDS
        if MIN_CV_FOLDS <= counts[rare] < DEFAULT_CV_FOLDS:
            folds = int(counts[rare])
            name = repr(class_names[rare]) if class_names is not None else str(rare)
            note = (f"{folds} folds, not the default {DEFAULT_CV_FOLDS}: class {name} has {folds} images in train + "
                    "val, and each fold needs one of every class")
    check_folds(counts, folds, class_names)
    return folds, note


def out_of_fold_softmax(features: np.ndarray, labels: np.ndarray, num_classes: int, config: ProbeConfig,
                        params: dict, *, folds: int = DEFAULT_CV_FOLDS, seed: int | None = None, device=None,
                        precision: str | None = None, loss_options: dict | None = None,
                        class_names: list[str] | None = None,
                        progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, softmax)`` chunks: every sample's out-of-fold probabilities once, a chunk of held-out rows at a
    time (:func:`out_of_fold_probabilities` describes the arguments and errors)."""
    from .trainer import ProbeTrainer, diverged

    labels = np.asarray(labels, dtype=np.int64)
    check_folds(np.bincount(labels, minlength=num_classes), folds, class_names)
    seed = config.seeds[0] if seed is None else seed
    kwargs = config.trainer_params(params, seed=seed, device=device, loss_options=loss_options)
    if precision:
        kwargs["precision"] = precision
    assignment = stratified_folds(labels, folds, seed)
    for fold in range(folds):
        held, kept = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        trainer = ProbeTrainer(**kwargs).fit(features[kept], labels[kept], num_classes=num_classes)
        failure = diverged(trainer)
        if failure is not None:
            raise ValueError(f"fold {fold + 1}/{folds} with {params} {failure}.")
        logits = trainer.decision_function(features[held])
        # a chunk of rows at a time (the same numbers: each row's softmax is its own): a fold's whole softmax was
        # another n/k × K float64 array, 400 MB of a 20,000-image 5,000-class run's two folds
        step = max(1, _SOFTMAX_CHUNK_BYTES // (8 * max(1, num_classes)))
        for start in range(0, len(held), step):
            yield held[start:start + step], softmax(logits[start:start + step])
        del logits
        logger.info("label issues: fold %d/%d fitted on %d samples", fold + 1, folds, kept.size)
        if progress is not None:
            progress(fold + 1, folds)


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, config: ProbeConfig,
                              params: dict, **options) -> np.ndarray:
    """(n, K) softmax probabilities of each sample by the fold model that did not train on it (float64: n × K × 8
    bytes, 320 MB at 20,000 images and 2,000 classes; :func:`out_of_fold_issues` keeps it only for the method
    that needs it).

    Args:
        features: (n, d) the pooled samples (train + val).
        labels: (n,) their labels in [0, K).
        num_classes: K.
        config: the run's configuration, resolved (``Report.probe_config()``: batch size and epochs as it ran).
        params: its chosen hyper-parameters (``lr``, ``weight_decay``, and ``cbar`` / ``lam`` / grid loss options
            where selected: ``report.config["selected"]``), fitted as they are, without a sweep.
        options: ``folds``: k, in MIN_CV_FOLDS..MAX_CV_FOLDS and at most the smallest class's count (default
            DEFAULT_CV_FOLDS); ``seed``: the folds' shuffle and the fits' seed (default: the configuration's first
            seed); ``device``: the resolved device (None: the configuration's); ``precision``: the fits' precision
            (None: the configuration's; a run's first seed's for its shipped head); ``loss_options``: options the
            run added to its loss (``val_error`` of ``mr2_valerr``), as ``run_probe`` did; ``class_names``: K
            names, for the errors only; ``progress``: ``progress(folds_done, folds)`` after each fold.

    Raises:
        ValueError: bad ``folds``, or a fold's fit that diverged.
    """
    probabilities = np.zeros((np.shape(labels)[0], num_classes), dtype=np.float64)
    for rows, chunk in out_of_fold_softmax(features, labels, num_classes, config, params, **options):
        probabilities[rows] = chunk
    return probabilities


# Held-out rows softmaxed at a time (float64 bytes)
_SOFTMAX_CHUNK_BYTES = 1 << 24


def _row_summaries(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n,) each row's most probable class (the first of a tie, as argmax), its probability and the probability of
    the row's label: all that :func:`label_issue_predictions` and ``predicted-neq-given`` read of a row."""
    predicted = probabilities.argmax(axis=1)
    rows = np.arange(labels.shape[0])
    return predicted, probabilities[rows, predicted], probabilities[rows, labels]


def _predictions(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, label_probability: np.ndarray,
                 sources) -> Predictions:
    return Predictions(labels, predicted[None, :], np.clip(confidence, 0.0, 1.0), sources,
                       label_probability=np.clip(label_probability, 0.0, 1.0))


def label_issue_predictions(probabilities: np.ndarray, labels: np.ndarray, sources=None) -> Predictions:
    """Out-of-fold ``probabilities`` (n, K) of samples with ``labels`` (n,) as :class:`Predictions`: the
    prediction, its confidence and the probability of the own label, so that ``failures`` / ``failure_rows`` list
    the samples predicted otherwise than labelled, the lowest probability of their label first."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return _predictions(labels, *_row_summaries(probabilities, labels), sources)


def _streamed_predictions(features: np.ndarray, labels: np.ndarray, num_classes: int, config: ProbeConfig,
                          params: dict, sources=None, **options) -> Predictions:
    """``label_issue_predictions(out_of_fold_probabilities(...), labels, sources)``, the same numbers, from each
    chunk's row summaries: no (n, K) array, only a fold's logits and a chunk's softmax at a time."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.zeros(labels.shape[0], dtype=np.int64)
    confidence, label_probability = np.zeros(labels.shape[0]), np.zeros(labels.shape[0])
    for rows, chunk in out_of_fold_softmax(features, labels, num_classes, config, params, **options):
        predicted[rows], confidence[rows], label_probability[rows] = _row_summaries(chunk, labels[rows])
    return _predictions(labels, predicted, confidence, label_probability, sources)


def out_of_fold_issues(features: np.ndarray, labels: np.ndarray, num_classes: int, config: ProbeConfig,
                       params: dict, method: str = DEFAULT_METHOD, sources=None,
                       **options) -> tuple[Predictions, np.ndarray]:
    """The pool's out-of-fold :class:`Predictions` (:func:`label_issue_predictions`) and the (n,) bool mask of the
    samples ``method`` lists (:func:`label_issue_mask`), fitted as :func:`out_of_fold_probabilities` (``options``).
    ``predicted-neq-given`` reads only each row's argmax, its probability and p(label), kept as each fold's chunks
    are scored; ``confident-learning`` reads whole columns after the thresholds of every row (mean p(k) over the
    samples labelled k), so it keeps the (n, K) float64 array (float32 would move thresholds and margins)."""
    if check_method(method) == CONFIDENT_LEARNING:
        probabilities = out_of_fold_probabilities(features, labels, num_classes, config, params, **options)
        return (label_issue_predictions(probabilities, labels, sources),
                confident_learning_issues(probabilities, labels))
    predictions = _streamed_predictions(features, labels, num_classes, config, params, sources, **options)
    return predictions, predictions.predicted[0] != predictions.labels


def _members(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """(K,) the indices of the samples labelled k, ascending: ``np.flatnonzero(labels == k)`` for every k, from one
    stable sort (a pass over n per class was O(n K): 1.2 G comparisons at ImageNet's 1.28 M images, 1,000 classes)."""
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.cumsum(np.bincount(labels, minlength=num_classes))[:-1])


def confident_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) t_j: the mean p(j) over the samples labelled j (2, never reached, for a class none is labelled),
    at least 2e-6, as cleanlab's ``count.get_confident_thresholds``."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    thresholds = [np.mean(probabilities[members, k]) if members.size else _MISSING_CLASS_THRESHOLD
                  for k, members in enumerate(_members(labels, probabilities.shape[1]))]
    return np.clip(thresholds, 2 * _FLOAT_EPSILON, None)


def _round_preserving_sum(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to integers of the same (rounded) sum, the largest remainders adjusted first (cleanlab's
    ``internal.util.round_preserving_sum``, step for step, so that ties fall alike)."""
    floats = np.asarray(values, dtype=float)
    ints = floats.round()
    total, int_sum = np.sum(floats).round(), np.sum(ints).round()
    while abs(int_sum - total) > _FLOAT_EPSILON:
        diff = np.round(total - int_sum)
        increment = -1 if int(diff < 0.0) else 1
        changes = min(int(abs(diff)), len(values))
        for i in np.argsort(floats - ints)[::-increment][:changes]:
            ints[i] = ints[i] + increment
        int_sum = np.sum(ints).round()
    return ints.astype(int)


def confident_joint(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, K) integer counts, row = given label i, column = true label j: the samples labelled i confidently of
    class j (p(j) >= t_j - 1e-6, :func:`confident_thresholds`; of several such classes, the most probable), at
    least 1 on the diagonal, then calibrated: each row scaled to its label's count, the whole to n, rounded keeping
    the rows' totals. cleanlab's ``count.compute_confident_joint(labels, pred_probs)`` (calibrate=True)."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    k = probabilities.shape[1]
    confident = probabilities >= confident_thresholds(probabilities, labels) - _FLOAT_EPSILON
    bins = confident.sum(axis=1)
    guess = np.where(bins > 1, probabilities.argmax(axis=1), confident.argmax(axis=1))
    some = bins > 0
    # transposed (true, given) counts, as cleanlab's confusion_matrix(...).T: np.sum of the calibrated joint then
    # adds in its order, and rounding ties fall as its fall
    joint = np.bincount(guess[some] * k + labels[some], minlength=k * k).reshape(k, k).T
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    counts = np.bincount(labels, minlength=k)
    calibrated = (joint.T / np.clip(joint.sum(axis=1), 1e-100, None) * counts).T
    calibrated = calibrated / np.clip(np.sum(calibrated), 1e-100, None) * sum(counts)
    return np.apply_along_axis(_round_preserving_sum, 1, calibrated).astype(int)


def _prune_counts(joint: np.ndarray) -> np.ndarray:
    """The transposed confident joint with every diagonal count at least 1, what it took spread over the column's
    other non-zero counts (cleanlab's ``filter._keep_at_least_n_per_class``, n=1, frac_noise=1)."""
    counts = joint.T.astype(float)
    diagonal = np.diagonal(counts)
    kept = np.maximum(diagonal, 1)
    spread = np.maximum(np.count_nonzero(counts, axis=0) - 1.0, 1.0)
    counts = counts - (kept - diagonal) / spread
    counts[counts < 0] = 0
    np.fill_diagonal(counts, kept)
    return np.apply_along_axis(_round_preserving_sum, 1, counts.astype(int)).astype(int)


def confident_learning_issues(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) bool: cleanlab's ``filter.find_label_issues(labels, pred_probs)`` (``filter_by='prune_by_noise_rate'``,
    min_examples_per_class=1, frac_noise=1): among the samples labelled i (more than one), for each class j != i,
    the C[i, j] of largest p(j) - p(i) (C: :func:`confident_joint`), less every sample whose prediction, its own
    label's probability raised by 1e-6, is its label."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    prune = _prune_counts(confident_joint(probabilities, labels))
    issues = np.zeros(labels.shape[0], dtype=bool)
    for given, members in enumerate(_members(labels, probabilities.shape[1])):
        if members.size <= 1:
            continue
        of_class = probabilities[members]
        mask = np.zeros(members.size, dtype=bool)
        for true in np.flatnonzero(prune[:, given]):  # the pairs to prune only: a loop over K² was 1 M steps
            if true != given and prune[true, given] > 0:
                order = np.argsort(-(of_class[:, true] - of_class[:, given]))
                mask[order[:prune[true, given]]] = True
        issues[members] = mask
    issues[_predicted_as_labelled(probabilities, labels)] = False
    return issues


def _predicted_as_labelled(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) bool: the samples whose most probable class, their own label's probability raised by 1e-6, is their
    label; a block of rows at a time (a raised copy of the whole (n, K) array doubled its memory: 10 GB more at
    1.28 M images and 1,000 classes)."""
    step = max(1, _BLOCK_ELEMENTS // max(1, probabilities.shape[1]))
    agrees = np.zeros(labels.shape[0], dtype=bool)
    for start in range(0, labels.shape[0], step):
        raised = probabilities[start:start + step].copy()
        given = labels[start:start + step]
        raised[np.arange(given.shape[0]), given] += _FLOAT_EPSILON
        agrees[start:start + step] = raised.argmax(axis=1) == given
        del raised  # before the next block's copy: one block in memory, not two
    return agrees


def label_issue_mask(probabilities: np.ndarray, labels: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
    """(n,) bool: the samples ``method`` (of :data:`METHODS`) lists, from out-of-fold ``probabilities``."""
    if check_method(method) == CONFIDENT_LEARNING:
        return confident_learning_issues(probabilities, labels)
    return np.asarray(probabilities).argmax(axis=1) != np.asarray(labels)


def out_of_fold_accuracy(predictions) -> float:
    """The share of the pool's images (``probe.Predictions`` of :func:`label_issue_predictions`) whose out-of-fold
    prediction is their label."""
    return float(np.mean(predictions.predicted[0] == predictions.labels)) if len(predictions.labels) else float("nan")


def weak_refit_caution(accuracy: float | None) -> str | None:
    """Why a listing found by a refit right on only ``accuracy`` of its pool out of fold is mostly the refit's own
    errors, not wrong labels (its errors past twice :data:`PLAUSIBLE_NOISE`); None above that bar or unknown (a
    result stored before the accuracy was)."""
    from .numbers import is_missing, percent

    if is_missing(accuracy) or 1 - accuracy <= 2 * PLAUSIBLE_NOISE:
        return None
    return (f"The refit is right on only {percent(accuracy, 1)} % of these images out of fold: it errs on "
            f"{percent(1 - accuracy, 1)} %, past twice the {percent(PLAUSIBLE_NOISE, 0)} % of wrong labels a data set "
            "plausibly holds, so the images listed are more likely the probe's own errors than wrong labels; a "
            "stronger probe (another encoder, more images per class) lists them more reliably.")
