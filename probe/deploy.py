"""A finished run's probe, ready to apply to new features: ``RunProbe.load(run_dir)`` (``mr2probe predict``).

What a run's report describes is its first seed's head (+ adapter), ``head.safetensors`` / ``head.json``, and,
when the run applied one, that seed's post-hoc per-class logit bias (``report.posthoc.per_seed[0].bias``, also
written to ``posthoc_bias.json``), and when the run fitted one, its temperature (``report.calibration
.temperature_scaling``, also ``temperature.json``). ``ProbeTrainer.load`` restores the head alone;
:class:`RunProbe` applies the bias and the temperature too, so that on the run's own test split it predicts
exactly what ``predictions.npz`` holds for the first seed (tested), names the classes, and refuses features the
head was not trained on: another width, or another extractor (encoder, weights, preprocessing, feature kind:
``feature_cache.extractor_fingerprint``).

:func:`score_predictions` scores predictions on labelled new data the way the report scores the test split:
accuracy with its 95 % Wilson interval over the images, balanced accuracy, and per class accuracy (with its
interval), precision, recall and F1. Labels are matched to the run's classes by name (:meth:`RunProbe.label_map`);
images of a class the probe does not know are counted apart, never scored as mistakes. :func:`predicted_shares`
summarises predictions on unlabelled images: how many went to each class, and how confidently.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, Field

from .metrics import balanced_accuracy, confusion_matrix, integer_labels, precision_recall_f1, softmax
from .posthoc import PosthocLogitBias
from .report import TEMPERATURE_FILE, Calibration, FeatureSource, Num, NumList, TemperatureScaling, load_report
from .rundir import read_run
from .seen import SEEN_FILE, SeenSources
from .uncertainty import interval_or_none, intervals_or_none, precision_recall_f1_intervals, wilson_interval

__all__ = ["RunProbe", "TrueClass", "ClassScore", "Scores", "score_predictions", "PredictedShare", "predicted_shares",
           "UNKNOWN_CLASS", "PROBE_FILES"]

UNKNOWN_CLASS = -1  # label_map's index of a class name the run does not have
# The files a run's probe ships in (GET /api/runs/{id}/probe.zip): RunProbe.load needs the first three;
# posthoc_bias.json (only with a post-hoc bias) and temperature.json (only with temperature scaling) hold them for
# code that does not read the report; seen_sources.npz lets the unpacked probe warn on images it trained or selected
# on (without it, mr2probe predict on the zip's folder lost that check).
PROBE_FILES = ("report.json", "head.safetensors", "head.json", "posthoc_bias.json", TEMPERATURE_FILE, SEEN_FILE)


def shipped_posthoc(report) -> PosthocLogitBias | None:
    """The post-hoc bias a run's probe applies, its first seed's where the run applied one, or None: read from
    report.json by :class:`RunProbe` (``mr2probe predict``) and the ONNX export alike (posthoc_bias.json is its copy
    for apply_probe.py: export read it, and a hand-edited one ended in a traceback there, a graph with another bias
    than predict's, or one broadcast over every class)."""
    if report.posthoc is None or not report.posthoc.shipped_applied():
        return None
    return PosthocLogitBias.with_bias(report.posthoc.per_seed[0].bias, report.posthoc.objective)


def shipped_temperature(scaling: TemperatureScaling | None) -> float:
    """The logits' divisor before the softmax of a run's probe (its report's ``temperature_scaling``): the run's
    fitted temperature where it applied one, else 1; temperature.json is its copy for apply_probe.py."""
    return 1.0 if scaling is None else scaling.temperature


@dataclass
class TrueClass:
    """Each row's true class among a probe's (``UNKNOWN_CLASS``: one it does not have) and, once
    :meth:`RunProbe.predict_with_confidence` has filled them chunk by chunk, what the calibration reads of it
    (``probe.calibration.true_class_terms``): ``loss``, −log p(true class), and ``above``, how many classes scored
    above it (NaN / −1 on rows of unknown classes). Scores on new images had no NLL or top-k, which need more than
    the top-1 confidence (a shipping round)."""

    labels: np.ndarray
    loss: np.ndarray = None  # type: ignore[assignment]
    above: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.loss, self.above = np.full(len(self.labels), np.nan), np.full(len(self.labels), -1, dtype=np.int64)

    def fill(self, start: int, logits: np.ndarray) -> None:
        """The rows ``start ..`` of ``logits`` (a chunk)."""
        from .calibration import true_class_terms

        rows = start + np.flatnonzero(self.labels[start:start + len(logits)] != UNKNOWN_CLASS)
        if rows.size:
            self.loss[rows], self.above[rows] = true_class_terms(logits[rows - start], self.labels[rows])


@dataclass
class RunProbe:
    """A run's shipped probe: the first seed's fitted ``ProbeTrainer``, its post-hoc bias (or None), the class
    names, the features it was trained on (``None`` when the run did not record them) and the images it trained
    and selected on (:class:`probe.seen.SeenSources`; ``None`` when the run did not record them)."""

    trainer: Any
    class_names: list[str]
    posthoc: PosthocLogitBias | None = None
    features: FeatureSource | None = None
    run_id: str | None = None
    seen: SeenSources | None = None
    scaling: TemperatureScaling | None = None  # report.calibration.temperature_scaling: its T divides the logits

    @property
    def temperature(self) -> float:
        """The logits' divisor before the softmax: the run's fitted temperature where it applied one, else 1."""
        return shipped_temperature(self.scaling)

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> RunProbe:
        """Read a run directory written by ``run_probe`` / ``mr2probe train``: its files of one run, read again where
        a writer replaced the run while they were read (report.json replaced or gone by the end; a predict or export
        while a ``train --force`` to the folder ended read one run's report and the other's head).

        Raises FileNotFoundError (no report or head) or ValueError (files that do not belong together)."""
        return read_run(run_dir, lambda: cls._load_once(run_dir, device))

    @classmethod
    def _load_once(cls, run_dir: str | Path, device: str) -> RunProbe:
        from .trainer import ProbeTrainer

        report = load_report(run_dir)
        trainer = ProbeTrainer.load(Path(run_dir), device=device)
        if trainer.num_classes_ != len(report.class_names):
            raise ValueError(f"{run_dir}: the head has {trainer.num_classes_} classes, the report "
                             f"{len(report.class_names)}; the run directory mixes files of two runs.")
        names = getattr(trainer, "class_names_", None)
        if names is not None and list(names) != list(report.class_names):
            raise ValueError(f"{run_dir}: the head names other classes than the report; the run directory mixes "
                             "files of two runs.")
        return cls(trainer, list(report.class_names), shipped_posthoc(report), report.features, report.run_id,
                   SeenSources.load(run_dir), report.temperature_scaling)

    @property
    def num_features(self) -> int:
        return int(self.trainer.n_features_in_)

    def decision_function(self, features) -> np.ndarray:
        """Logits (n, K) in float64, as the run scored them: the head's, plus the post-hoc bias when it has one,
        divided by the temperature when the run fitted one (which moves no argmax). No rows of the probe's width
        give no logits, (0, K), as :meth:`predict_with_confidence` gives no predictions (the trainer refuses them:
        ``predict`` raised 'features is empty (0 rows)' where ``predict_with_confidence`` returned empty arrays)."""
        shape = tuple(features.shape) if hasattr(features, "shape") else np.shape(features)
        if shape == (0, self.num_features):
            return np.zeros((0, len(self.class_names)))
        logits = np.asarray(self.trainer.decision_function(features), dtype=np.float64)
        logits = logits if self.posthoc is None else self.posthoc.decision_function(logits)
        return logits if self.temperature == 1.0 else logits / self.temperature

    def predict_proba(self, features) -> np.ndarray:
        """Softmax of :meth:`decision_function` (n, K): the report's ``confidence`` is its row maximum."""
        return softmax(self.decision_function(features))

    def predict(self, features) -> np.ndarray:
        """Predicted class indices (n,) into :attr:`class_names`."""
        return self.decision_function(features).argmax(axis=1)

    def predict_with_confidence(self, features, probabilities: np.ndarray | None = None,
                                truth: TrueClass | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class indices (n,) and each prediction's softmax probability (n,) float32 (the report's
        ``confidence``), computed one inference chunk of the trainer at a time: a large split never holds its
        (n, K) logits, and every row meets the same products as in the run. ``probabilities``, an (n, K) array
        when given, is filled with every class's (:meth:`predict_proba`, chunk by chunk), and ``truth`` with what
        the calibration reads of each row's true class."""
        from .trainer import _chunk_rows

        n = len(features)
        predicted, confidence = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float32)
        rows = _chunk_rows(self.num_features)
        for start in range(0, n, rows):
            logits = self.decision_function(features[start:start + rows])
            predicted[start:start + rows] = logits.argmax(axis=1)
            proba = softmax(logits)
            confidence[start:start + rows] = proba.max(axis=1)
            if probabilities is not None:
                probabilities[start:start + rows] = proba
            if truth is not None:
                truth.fill(start, logits)
        return predicted, confidence

    def check_features(self, source: FeatureSource | dict | None, num_features: int) -> list[str]:
        """Whether features from ``source`` (a :class:`FeatureSource` or its dict, ``FeatureCache.provenance()``)
        with ``num_features`` columns are this probe's input.

        Returns warnings (what could not be checked). Raises ValueError naming the difference: another width,
        or another extractor (encoder, weights, preprocessing or feature kind) than the run's."""
        if isinstance(source, dict):
            source = FeatureSource.model_validate(source)
        if num_features != self.num_features:
            raise ValueError(f"the probe takes {self.num_features}-d features; these have {num_features} "
                             f"({source.encoder if source else 'unknown encoder'}).")
        mine = self.features
        if mine is None or source is None:
            return ["The run did not record its features' extractor: nothing checks that these features come from "
                    "the same encoder, weights and preprocessing."]
        if mine.extractor and source.extractor:
            # a run recorded before a weights file's path was left out of the fingerprint: its extractor as named
            if mine.extractor not in (source.extractor, source.extractor_as_named):
                # one encoder name, two extractors: other weights, or the preprocessing of another version, which
                # "extract them with the run's encoder settings" could not give (an upgrade round)
                fix = ("Extract them with the run's encoder settings." if mine.encoder != source.encoder else
                       "Extract them as the run's cache was (the same weights file and preprocessing; a cache "
                       "another version extracted may have preprocessed otherwise), or train the probe again on "
                       "features of this extractor.")
                raise ValueError(f"these features come from another extractor ({source.encoder}, extractor "
                                 f"{source.extractor[:12]}) than the run's ({mine.encoder}, extractor "
                                 f"{mine.extractor[:12]}): other weights, preprocessing or feature kind; the head "
                                 f"means nothing there. {fix}")
            return []
        if mine.encoder != source.encoder:
            raise ValueError(f"these features come from encoder {source.encoder}; the run's from {mine.encoder}.")
        return [f"Only the encoder's name ({mine.encoder}) could be checked: the run or the cache predates the "
                "extractor fingerprint, so other weights or preprocessing would go unnoticed."]

    def label_map(self, class_names: list[str]) -> np.ndarray:
        """Index into this probe's classes of each of ``class_names`` (another label set's names), or
        ``UNKNOWN_CLASS`` for a name the run does not have."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.array([index.get(str(name), UNKNOWN_CLASS) for name in class_names], dtype=np.int64)


class ClassScore(BaseModel):
    name: str
    n: int = Field(..., description="images of the class among the scored ones")
    accuracy: Num
    accuracy_ci: Optional[NumList] = Field(None, description="95 % Wilson score interval")
    precision: Num
    recall: Num
    f1: Num
    # 95 % intervals (probe.uncertainty.precision_recall_f1_intervals, as a report's per-class rows); None in answers
    # from before them and where the value is undefined
    precision_ci: Optional[NumList] = Field(None, description="95 % Wilson score interval of the precision")
    recall_ci: Optional[NumList] = Field(None, description="95 % Wilson score interval of the recall")
    f1_ci: Optional[NumList] = Field(None, description="95 % interval of F1 (at the ends of precision's and "
                                     "recall's, each at 97.5 %)")


# Scores carry their confusion matrix up to this many classes (a 1000-class one is a million counts in every answer).
SCORED_CONFUSION_CLASSES = 100


class Scores(BaseModel):
    """Predictions scored against labels: accuracy, balanced accuracy and recall over the images of classes the
    probe knows (``n``); ``unknown`` counts the other images by their class name. Each class's precision (and so
    F1) counts every image predicted as the class, those of unknown classes as wrong (a truck a probe without
    trucks calls a car is a wrong car): scikit-learn's ``precision_recall_fscore_support(y, p, labels=...)`` with
    those images' true label outside ``labels``. A number that cannot be computed is None
    (``probe.report.Num``)."""

    n: int = Field(..., description="images of classes the run has: the ones scored")
    accuracy: Num
    accuracy_ci: Optional[NumList] = Field(None, description="95 % Wilson score interval over the n images")
    balanced: Num
    balanced_ci: Optional[NumList] = Field(None, description="95 % interval of balanced accuracy over the scored "
                                           "images (probe.uncertainty.group_intervals, as a report's)")
    per_class: list[ClassScore] = Field(..., description="the run's classes, in its order")
    unknown: dict[str, int] = Field(default_factory=dict, description="images of classes the run does not have, "
                                    "by class name")
    unknown_predicted: dict[str, int] = Field(
        default_factory=dict, description="images of classes the run does not have, by the class they were "
        "predicted as: with confusion's columns, what each class's precision counts")
    confusion: Optional[list[list[int]]] = Field(
        None, description="K × K counts of the scored images, rows = the true class, in the run's class order "
        f"(scikit-learn's confusion_matrix); null past {SCORED_CONFUSION_CLASSES} classes")
    calibration: Optional[Calibration] = Field(
        None, description="the shipped head's calibration on the scored images (probe.calibration."
        "confidence_calibration: ECE with its interval, confidence against accuracy, reliability bins; NLL and "
        "top-k when the true classes' logits were read, TrueClass); null when no confidence was given")


def _class_intervals(labels: np.ndarray, predicted: np.ndarray, k: int) -> dict[str, list]:
    """Each of the ``k`` classes' ``precision_ci``, ``recall_ci`` and ``f1_ci`` (``interval_or_none`` of
    :func:`probe.uncertainty.precision_recall_f1_intervals`) of ``predicted`` on ``labels``, where label ``k`` marks
    an image of a class the probe does not have: one more true class, so each precision counts those images as
    wrong, as the point value does."""
    intervals = precision_recall_f1_intervals(labels, predicted, k + 1)
    return {f"{key}_ci": intervals_or_none(value[:k]) for key, value in intervals.items()}


def scored_calibration(confidence: np.ndarray, predicted: np.ndarray, labels: np.ndarray, num_classes: int,
                        truth: tuple[np.ndarray, np.ndarray] | None,
                        scaling: TemperatureScaling | None = None) -> Calibration:
    """The calibration of predictions on images of known classes: from the top-1 ``confidence``, and NLL and top-k
    from ``truth``, :class:`TrueClass`'s ``(loss, above)`` of the same rows, when given; ``scaling``, the run's
    temperature (its report's) the confidences include, is said with them (without the test split's figures
    without it, which are not of these images): scores said nothing of it (a review round)."""
    from .calibration import TOP_K, confidence_calibration

    out = confidence_calibration(confidence, predicted == labels, labels, num_classes)
    out["temperature_scaling"] = None if scaling is None else scaling.model_copy(update={"before": None})
    if truth is None:
        return Calibration(**out, nll=None)
    k = TOP_K if num_classes > TOP_K else None
    return Calibration(**out, nll=float(np.mean(truth[0])), top_k=k,
                       top_k_accuracy=None if k is None else float(np.mean(truth[1] < k)))


def _scored_indices(labels, predicted, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``predicted`` as int64 arrays of one shape (n,), checked against the probe's ``k`` classes: a
    label of ``k`` or more was scored as an image of an unknown class among the known ones (a library round)."""
    labels, predicted = integer_labels(labels), integer_labels(predicted, "predicted")
    if labels.ndim != 1 or predicted.shape != labels.shape:
        raise ValueError(f"labels {labels.shape} and predicted {predicted.shape} must be two (n,) arrays.")
    for name, values, low in (("labels", labels, UNKNOWN_CLASS), ("predicted", predicted, 0)):
        outside = values[(values < low) | (values >= k)]
        if outside.size:
            unknown = f" or UNKNOWN_CLASS ({UNKNOWN_CLASS}) for a class the probe does not have" if low < 0 else ""
            raise ValueError(f"{name} must be class indices in [0, {k - 1}] for the {k} classes{unknown}; got "
                             f"{int(outside[0])}.")
    return labels, predicted


def score_predictions(labels: np.ndarray, predicted: np.ndarray, class_names: list[str],
                      unknown_names: list[str] | None = None, confidence: np.ndarray | None = None,
                      truth: TrueClass | None = None, scaling: TemperatureScaling | None = None) -> Scores:
    """Score ``predicted`` (n,) class indices against ``labels`` (n,) indices into ``class_names``, where
    ``UNKNOWN_CLASS`` marks an image of a class the probe does not know; ``unknown_names`` (n,) name those
    images' classes (for :attr:`Scores.unknown`); with the top-1 ``confidence`` (n,), the calibration on the
    images of known classes (a new-user round: scores on new images had none), with NLL and top-k from ``truth``
    (filled by :meth:`RunProbe.predict_with_confidence` on the same rows) and the run's temperature ``scaling``
    (:attr:`RunProbe.scaling`) said beside them."""
    labels, predicted = _scored_indices(labels, predicted, len(class_names))
    for name, values in (("unknown_names", unknown_names), ("confidence", confidence)):
        if values is not None and len(values) != len(labels):  # a boolean mask's IndexError, later
            raise ValueError(f"{name} has {len(values)} entries for the {len(labels)} labels.")
    known = labels != UNKNOWN_CLASS
    unknown: dict[str, int] = {}
    if unknown_names is not None:
        names, counts = np.unique(np.asarray(unknown_names, dtype=str)[~known], return_counts=True)
        unknown = {str(n): int(c) for n, c in zip(names, counts)}
    k = len(class_names)
    # the unknown classes as one more true class (row k, never predicted): precision of each column counts them
    full = confusion_matrix(np.where(known, labels, k), predicted, k + 1)
    prf = {key: value[:k] for key, value in precision_recall_f1(full).items()}
    cm = full[:k, :k]
    correct, support = np.diag(cm).astype(np.float64), cm.sum(axis=1)
    ci = _class_intervals(np.where(known, labels, k), predicted, k)
    # a class's accuracy is its recall: the same value and the same interval
    per_class = [ClassScore(name=name, n=int(support[i]), accuracy=prf["recall"][i], accuracy_ci=ci["recall_ci"][i],
                            precision=prf["precision"][i], recall=prf["recall"][i], f1=prf["f1"][i],
                            **{key: v[i] for key, v in ci.items()})
                 for i, name in enumerate(class_names)]
    n = int(known.sum())
    stray = full[k]  # the unknown classes' row: where their images went (a precision the matrix alone left unexplained)
    calibration = None
    if confidence is not None and n:
        calibration = scored_calibration(np.asarray(confidence)[known], predicted[known], labels[known], k,
                                          None if truth is None else (truth.loss[known], truth.above[known]),
                                          scaling)
    balanced_ci = None
    if n:  # as a report's, from each class's images (a new-user round: predict printed it bare)
        from .uncertainty import group_intervals

        present, scored = np.unique(labels[known], return_inverse=True)  # a class without images is no draw
        interval = group_intervals((predicted == labels)[known].astype(float), scored, len(present), {})["balanced"]
        balanced_ci = [float(v) for v in interval] if all(np.isfinite(interval)) else None
    return Scores(calibration=calibration, n=n, accuracy=None if n == 0 else correct.sum() / n,
                  accuracy_ci=interval_or_none(wilson_interval(correct.sum(), n)),
                  balanced=balanced_accuracy(prf["recall"]), balanced_ci=balanced_ci, per_class=per_class,
                  unknown=unknown,
                  unknown_predicted={class_names[j]: int(c) for j, c in enumerate(stray[:k]) if c},
                  confusion=cm.tolist() if k <= SCORED_CONFUSION_CLASSES else None)


class PredictedShare(BaseModel):
    """One class's share of a probe's predictions on unlabelled images."""

    name: str
    n: int = Field(..., description="images predicted as the class")
    share: float = Field(..., description="n over all the images")
    mean_confidence: Num = Field(..., description="mean softmax probability of those predictions (None when n = 0)")


UNSURE_BELOW = 0.5  # a prediction less confident than this is counted as unsure (CLI predict, GET .../predicted)


def unsure_predictions(confidence: np.ndarray) -> int:
    """How many predictions (their ``confidence`` (n,)) are below :data:`UNSURE_BELOW`."""
    return int((np.asarray(confidence) < UNSURE_BELOW).sum())


def unsure_note(num_classes: int) -> str | None:
    """Why the unsure count says nothing for a probe of ``num_classes``: with 2 the top class always has at least
    50 % (a new-user round on a binary task read "0 of 10 below 50 %" with predictions at 51.8 %); else None."""
    if num_classes > 1 / UNSURE_BELOW:
        return None
    return (f"with {num_classes} classes every prediction has at least {100 / num_classes:.0f} % confidence, so none "
            f"counts as unsure (below {100 * UNSURE_BELOW:.0f} %): sort the predictions by confidence to review the "
            "least sure")


def predicted_shares(predicted: np.ndarray, confidence: np.ndarray, class_names: list[str]) -> list[PredictedShare]:
    """Each class's predictions (``predicted`` (n,) indices into ``class_names``, ``confidence`` (n,)): count,
    share and mean confidence, most predicted first (ties in class order); classes never predicted included."""
    predicted, k = np.asarray(predicted, dtype=np.int64), len(class_names)
    counts = np.bincount(predicted, minlength=k)
    sums = np.bincount(predicted, weights=np.asarray(confidence, dtype=np.float64), minlength=k)
    total = max(int(counts.sum()), 1)
    order = sorted(range(k), key=lambda i: (-counts[i], i))
    return [PredictedShare(name=class_names[i], n=int(counts[i]), share=counts[i] / total,
                           mean_confidence=sums[i] / counts[i] if counts[i] else None) for i in order]
