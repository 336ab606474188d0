"""Likely wrong training labels: out-of-fold probabilities of each image's own label (cleanlab's self-confidence).

A run's probe predicting the images it trained on is in-sample: it has fitted their labels, wrong ones included, so
a systematic flip (40 % of one class labelled as another) is what it learnt, and its probability of the flipped label
stays high. Here the run's chosen configuration (fixed hyper-parameters, no sweep, one seed) is fitted ``k`` times on
train + val split into stratified folds (:func:`probe.crossval.stratified_folds`), and each image is scored by the
fold model that did not train on it. The images whose out-of-fold prediction differs from their label, lowest
probability of their label first, are the likeliest wrong labels (:meth:`probe.predictions.Predictions.failures`
ranks them, as it ranks a run's test mistakes).

Arrays only: the caller loads the features (``app.label_issues`` reads a run and its cache).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .config import DEFAULT_CV_FOLDS, MAX_CV_FOLDS, MIN_CV_FOLDS, ProbeConfig
from .crossval import stratified_folds
from .metrics import softmax
from .names import listed
from .predictions import Predictions

__all__ = ["check_folds", "out_of_fold_probabilities", "label_issue_predictions"]

logger = logging.getLogger(__name__)


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
                         f"{'it' if len(few) == 1 else 'them'} ({listed(few, 5)}: mr2probe train --drop-class NAME, "
                         "the API's drop_classes) and list the other classes' likely wrong labels from that run.")


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, config: ProbeConfig,
                              params: dict, *, folds: int = DEFAULT_CV_FOLDS, seed: int | None = None,
                              device=None, precision: str | None = None, loss_options: dict | None = None,
                              class_names: list[str] | None = None,
                              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(n, K) softmax probabilities of each sample by the fold model that did not train on it.

    Args:
        features: (n, d) the pooled samples (train + val).
        labels: (n,) their labels in [0, K).
        num_classes: K.
        config: the run's configuration, resolved (``Report.probe_config()``: batch size and epochs as it ran).
        params: its chosen hyper-parameters (``lr``, ``weight_decay``, and ``cbar`` / ``lam`` / grid loss options
            where selected: ``report.config["selected"]``), fitted as they are, without a sweep.
        folds: k, in MIN_CV_FOLDS..MAX_CV_FOLDS and at most the smallest class's count.
        seed: the folds' shuffle and the fits' seed (default: the configuration's first seed).
        device: the resolved device (None: the configuration's).
        precision: the fits' precision (None: the configuration's; a run's first seed's for its shipped head).
        loss_options: options the run added to its loss (``val_error`` of ``mr2_valerr``), as ``run_probe`` did.
        class_names: K names, for the errors only.
        progress: ``progress(folds_done, folds)`` after each fold.

    Raises:
        ValueError: bad ``folds``, or a fold's fit that diverged.
    """
    from .trainer import ProbeTrainer, diverged

    labels = np.asarray(labels, dtype=np.int64)
    check_folds(np.bincount(labels, minlength=num_classes), folds, class_names)
    seed = config.seeds[0] if seed is None else seed
    kwargs = config.trainer_params(params, seed=seed, device=device, loss_options=loss_options)
    if precision:
        kwargs["precision"] = precision
    assignment = stratified_folds(labels, folds, seed)
    probabilities = np.zeros((labels.shape[0], num_classes), dtype=np.float64)
    for fold in range(folds):
        held, kept = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        trainer = ProbeTrainer(**kwargs).fit(features[kept], labels[kept], num_classes=num_classes)
        failure = diverged(trainer)
        if failure is not None:
            raise ValueError(f"fold {fold + 1}/{folds} with {params} {failure}.")
        probabilities[held] = softmax(trainer.decision_function(features[held]))
        logger.info("label issues: fold %d/%d fitted on %d samples", fold + 1, folds, kept.size)
        if progress is not None:
            progress(fold + 1, folds)
    return probabilities


def label_issue_predictions(probabilities: np.ndarray, labels: np.ndarray, sources=None) -> Predictions:
    """Out-of-fold ``probabilities`` (n, K) of samples with ``labels`` (n,) as :class:`Predictions`: the
    prediction, its confidence and the probability of the own label, so that ``failures`` / ``failure_rows`` list
    the samples predicted otherwise than labelled, the lowest probability of their label first."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    rows = np.arange(labels.shape[0])
    return Predictions(labels, predicted[None, :], np.clip(probabilities[rows, predicted], 0.0, 1.0), sources,
                       label_probability=np.clip(probabilities[rows, labels], 0.0, 1.0))
