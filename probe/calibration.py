"""Can a probe's probabilities be read as probabilities? Calibration of the shipped head on the test split.

``predict --probabilities``, the service's probability columns and the "unsure" flag
(:data:`probe.deploy.UNSURE_BELOW`) all read the shipped head's softmax: the first seed's head, with its post-hoc
bias where one was applied. A loss that moves the logits (MR²'s per-class temperatures, focal loss, a logit
adjustment, the post-hoc bias) can change how far those numbers can be trusted without changing the accuracy, so a
run reports, on its test split:

* the **expected calibration error** (ECE; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): the
  top-1 confidences in :data:`CALIBRATION_BINS` equal-width bins over [0, 1] (bin b holds (b/B, (b+1)/B], a
  confidence of 0 the first), ECE = Σ_b (n_b / n)·|accuracy_b − confidence_b|, as other tools compute it. That
  plug-in value is biased upward (each bin's |gap| adds its noise), more so with few images per bin: a perfectly
  calibrated head read 6 % on 200 images. So the report adds the bootstrap's bias correction and interval, from
  the stratified bootstrap over test images every other interval uses (:meth:`probe.uncertainty.Bootstrap.bin_sums`;
  the images of classes of one test image resampled together, as there: 120 classes of one test image each gave
  the ECE an interval of zero width, [49.9, 49.9], and no bias correction; an extremes round):
  ``ece_debiased`` = 2·ECE − mean of the resampled ECEs (at most the ECE), and ``ece_ci`` the basic bootstrap
  interval [2·ECE − q97.5, 2·ECE − q2.5], both clipped at 0. The percentile interval of the resampled ECEs, which adds the
  bias once more, covered the true ECE of a calibrated head 0 % of the time (a statistics review); this one covers
  a true ECE of 3 to 8 points 83–93 % of the time on 200 to 5,000 images (the percentile interval 0–97 %), and an
  ECE of 0 (the boundary, where no interval of a positive estimate can centre) 48–57 %, on 30 to 60 images 26–83 %
  (``python bench/ece_calibration.py``, bench/README.md "ECE calibration");
* whether the head is miscalibrated beyond noise: ``calibrated_p`` (:func:`calibration_p_value`), the p-value of
  "calibrated" by consistency resampling of the ECE and of the mean confidence gap (Bonferroni over the two); the
  interval's lower end above 0 said so of a calibrated head in 43–74 % of the same splits (the test's rates:
  bench/README.md, "ECE calibration");
* the **reliability diagram**: per bin, its images, their mean confidence and their accuracy;
* the mean top-1 confidence beside the accuracy (above it: overconfident);
* the mean **negative log-likelihood** of the true class (natural log: scikit-learn's ``log_loss``);
* the **top-k accuracy** (k = :data:`TOP_K` when the run has more classes than that; the mean over seeds): the
  fraction of images whose class is among the k highest logits (scikit-learn's ``top_k_accuracy_score`` where no
  two logits of an image tie; on a tie this counts the class in).

**Temperature scaling** (``ProbeConfig.temperature_scaling``, opt-in; Guo et al. 2017): the shipped head's logits
z (with its post-hoc bias) are divided by one temperature T > 0 before the softmax, T minimising the mean NLL of
the validation images (:func:`fit_temperature`; scikit-learn's ``CalibratedClassifierCV(method="temperature")``
fits the same T, tested). Dividing by T > 0 changes no argmax, so no prediction and no accuracy moves: only the
confidences. T is searched in :data:`TEMPERATURE_BOUNDS`; where the optimum is at a bound (every validation image
right: the NLL falls without end as T → 0), no finite T is sized by them and none is applied.
The report then gives the calibration with T and, beside it, the test figures without it.
"""
from __future__ import annotations

import numpy as np

from .metrics import softmax
from .numbers import percent, signed_points
from .uncertainty import DEFAULT_LEVEL, Bootstrap, percentile_interval, row_bin_sums, snap_zero

__all__ = ["CALIBRATION_BINS", "CALIBRATION_P_FLOOR", "TOP_K", "CONFIDENCE_GAP", "TEMPERATURE_BOUNDS", "fit_temperature", "scaled_nll",
           "temperature_fit", "temperature_effect", "confidence_bins", "expected_calibration_error", "reliability",
           "calibration_p_value", "true_class_terms", "log_loss", "top_k_accuracy", "calibration_summary",
           "confidence_calibration", "confidence_and_accuracy", "confidence_warning",
           "temperature_warning"]

CALIBRATION_BINS = 15  # Guo et al.'s choice, and torchmetrics' CalibrationError default
TOP_K = 5
# Mean top-1 confidence this far from the accuracy (a fraction) makes the report warn that the probabilities
# cannot be read as such (a new-user round: an ERM head chosen with weight decay 7.4 gave near-uniform
# probabilities, every image "unsure", ECE 46 %, without a word).
CONFIDENCE_GAP = 0.2


def confidence_bins(confidence: np.ndarray, n_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The bin of each confidence in [0, 1]: b such that b/B < confidence ≤ (b+1)/B (0 for a confidence of 0)."""
    return np.clip(np.ceil(np.asarray(confidence, dtype=np.float64) * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS
                ) -> dict[str, np.ndarray]:
    """Per bin (n_bins,): ``count``, mean ``confidence`` and ``accuracy`` of its samples (nan where empty)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    bins = confidence_bins(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "confidence": np.bincount(bins, confidence, n_bins) / count,
                "accuracy": np.bincount(bins, correct, n_bins) / count}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float:
    """Σ_b (n_b / n)·|accuracy_b − confidence_b| = Σ_b |Σ_{i in b} (confidence_i − correct_i)| / n."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    gap = np.bincount(confidence_bins(confidence, n_bins), confidence - correct, n_bins)
    return float(np.abs(gap).sum() / confidence.size)


def true_class_terms(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, what :func:`log_loss` and :func:`top_k_accuracy` read of its label: ``(loss, above)``, −log
    softmax(logits)_y (natural log, from the logits: no probability rounds to 0 and gives inf) and how many logits
    are above the label's (a label whose own logit is not finite counts every class above it: NaN compared with
    nothing, and it was counted as a hit; a statistics review). Row by row, so that scoring a split one inference
    chunk at a time gives what the whole split does."""
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    top = z.max(axis=1)
    lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    own = z[np.arange(len(labels)), labels]
    above = np.where(np.isfinite(own), (z > own[:, None]).sum(axis=1), z.shape[1])
    return lse - own, above


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log softmax(logits)_y (natural log; :func:`true_class_terms`)."""
    return float(np.mean(true_class_terms(logits, labels)[0]))


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The fraction of rows whose label's logit has fewer than ``k`` logits above it (:func:`true_class_terms`)."""
    return float(np.mean(true_class_terms(logits, labels)[1] < k))


TEMPERATURE_BOUNDS = (0.05, 20.0)  # T searched in [lo, hi]: 20× sharper to 20× flatter than the head's logits
_NLL_CHUNK = 1 << 22  # logits per chunk of scaled_nll (no (n, K) float64 temporaries of a large split)


def scaled_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean −log softmax(logits / temperature)_y (natural log), one chunk of rows at a time."""
    logits, labels = np.asarray(logits), np.asarray(labels, dtype=np.int64)
    rows = max(1, _NLL_CHUNK // max(logits.shape[1], 1))
    total = 0.0
    for start in range(0, len(labels), rows):
        z = np.asarray(logits[start:start + rows], dtype=np.float64) / temperature
        total += float(true_class_terms(z, labels[start:start + rows])[0].sum())
    return total / max(len(labels), 1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
                    ) -> tuple[float, bool]:
    """The temperature T in ``bounds`` minimising :func:`scaled_nll` of ``logits`` (n, K) against ``labels`` (n,),
    and whether it lies on a bound (then no T inside them fits these images, and the bound is returned: the lower
    where every image is right, the NLL falling as T → 0; the upper where the head ranks the true classes low).
    The NLL is convex in 1/T, so it has one minimum over log T, which bounded Brent search finds (to 1e-10 in
    log T). Raises ValueError on logits that are not all finite (a diverged head: no temperature means anything)."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits), np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(labels) != len(logits) or len(labels) == 0:
        raise ValueError(f"temperature scaling needs (n, K) logits of n ≥ 1 labelled images; got {logits.shape} "
                         f"logits and {len(labels)} labels.")
    if not np.isfinite(logits).all():  # one NaN made every comparison below false: "applied", T arbitrary (a review)
        raise ValueError("temperature scaling needs finite validation logits; the head gave NaN or infinite ones.")
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    found = minimize_scalar(lambda t: scaled_nll(logits, labels, float(np.exp(t))), bounds=(lo, hi),
                            method="bounded", options={"xatol": 1e-10})
    best = float(found.fun)
    # on a bound, or no better than one: an NLL that underflows to 0 (every image right) is flat near the lower
    # bound, where Brent stops anywhere (it reported T = 0.206 "at a bound" of [0.05, 20]; a review)
    for bound in bounds:
        if scaled_nll(logits, labels, bound) <= best + 1e-12 * max(1.0, best):
            return float(bound), True
    return float(np.exp(found.x)), False


def temperature_fit(val_logits: np.ndarray, val_labels: np.ndarray) -> dict:
    """The report's ``calibration.temperature_scaling`` less ``before`` (``probe.report.TemperatureScaling``): the
    temperature fitted on the shipped head's validation logits (:func:`fit_temperature`), applied unless it lies
    on a bound (then ``temperature`` 1), with the validation NLL without and with it."""
    fitted, at_bound = fit_temperature(val_logits, val_labels)
    temperature = 1.0 if at_bound else fitted
    return {"temperature": temperature, "fitted": fitted, "applied": not at_bound, "val_images": len(val_labels),
            "val_nll_before": scaled_nll(val_logits, val_labels, 1.0),
            "val_nll_after": scaled_nll(val_logits, val_labels, temperature)}


def temperature_of(temperature: dict | None) -> float:
    """The divisor of the logits that a :func:`temperature_fit` result stands for (1 without one)."""
    return 1.0 if temperature is None else float(temperature["temperature"])


def calibration_summary(test_logits: list[np.ndarray], labels: np.ndarray, num_classes: int, *, seed: int = 0,
                        n_bins: int = CALIBRATION_BINS, level: float = DEFAULT_LEVEL,
                        temperature: dict | None = None) -> dict:
    """The report's ``calibration`` (``probe.report.Calibration``) of a run whose seeds gave ``test_logits`` (each
    (n, K), the first the shipped head's) on test images of classes ``labels``: ECE with its interval, reliability
    bins, confidence, accuracy and NLL of the first seed's head, divided by ``temperature["temperature"]`` when
    given (:func:`temperature_fit`; then also the test figures without it, ``temperature_scaling.before``, and
    what it changed, :func:`temperature_effect`); the top-k accuracy as a mean over seeds (no temperature moves
    it)."""
    labels = np.asarray(labels, dtype=np.int64)
    first = np.asarray(test_logits[0], dtype=np.float64)
    scale = temperature_of(temperature)
    boot = Bootstrap(labels, num_classes, seed=seed)  # one set of resamples: with T and without pair on them
    after = _logit_parts(first / scale, labels, boot, n_bins)
    out = _head_calibration(after, seed=seed, n_bins=n_bins, level=level)
    k = TOP_K if num_classes > TOP_K else None
    top = None if k is None else float(np.mean([top_k_accuracy(z, labels, k) for z in test_logits]))
    if temperature is not None:
        out["temperature_scaling"] = {**temperature, "before": None}
        if temperature["applied"]:  # the figures without it, and the change, from the parts both share
            before = _logit_parts(first, labels, boot, n_bins)
            unscaled = _head_calibration(before, seed=seed, n_bins=n_bins, level=level)
            out["temperature_scaling"]["before"] = {
                **{key: unscaled[key] for key in ("ece", "ece_debiased", "ece_ci", "calibrated_p", "confidence", "nll")},
                **_effect(before, after, boot, level)}
    return {**out, "top_k": k, "top_k_accuracy": top}


def temperature_effect(before: np.ndarray, after: np.ndarray, labels: np.ndarray, num_classes: int, *,
                       seed: int = 0, n_bins: int = CALIBRATION_BINS, level: float = DEFAULT_LEVEL) -> dict:
    """What a temperature did on test, with its uncertainty: ECE and mean NLL of the logits ``after`` (divided by
    it) minus those of ``before`` (each (n, K), the same images of classes ``labels``), each with the basic
    bootstrap interval of the difference over the stratified resamples both figures share (paired): the report
    gave the two ECEs, each with its own interval, and no interval of what T changed."""
    labels = np.asarray(labels, dtype=np.int64)
    boot = Bootstrap(labels, num_classes, seed=seed)
    return _effect(*(_logit_parts(np.asarray(z, dtype=np.float64), labels, boot, n_bins) for z in (before, after)),
                   boot, level)


def _logit_parts(logits: np.ndarray, labels: np.ndarray, boot: Bootstrap, n_bins: int) -> dict:
    """What the calibration of logits (n, K) and a temperature's effect read of them: top-1 ``confidence``,
    ``correct`` (0/1), the ``ece``, the ECE of each of ``boot``'s stratified resamples of the images
    (``resampled``; two logits' parts of one ``boot`` pair) and each image's NLL (``terms``)."""
    confidence = softmax(logits).max(axis=1)
    correct = (logits.argmax(axis=1) == labels).astype(np.float64)
    return {"confidence": confidence, "correct": correct,
            "ece": expected_calibration_error(confidence, correct, n_bins),
            "resampled": _resampled_ece(boot, confidence, correct, n_bins),
            "terms": true_class_terms(logits, labels)[0]}


def _effect(before: dict, after: dict, boot: Bootstrap, level: float) -> dict:
    """``after`` minus ``before`` (:func:`_logit_parts` of the same images) in ECE and mean NLL, each with the basic
    bootstrap interval of the paired difference over ``boot``'s resamples, the parts' own
    (:func:`temperature_effect`)."""

    def nll(parts: dict) -> tuple[float, np.ndarray]:
        terms = parts["terms"]
        return float(terms.mean()), boot.bin_sums(terms, np.zeros(terms.size, dtype=np.int64), 1)[:, 0] / max(
            terms.size, 1)

    out = {}
    for name, ((was, was_r), (now, now_r)) in (("ece", ((before["ece"], before["resampled"]),
                                                          (after["ece"], after["resampled"]))),
                                                 ("nll", (nll(before), nll(after)))):
        with np.errstate(invalid="ignore"):  # an infinite logit's NLL: inf − inf is no number, and says so (NaN)
            delta, resampled = now - was, now_r - was_r
        lo, hi = _basic_interval(delta, resampled, level)
        out[f"{name}_delta"], out[f"{name}_delta_ci"] = float(snap_zero(delta)), [float(lo), float(hi)]
    return out


def _head_calibration(parts: dict, **options) -> dict:
    """:func:`confidence_calibration` of :func:`_logit_parts`, with the logits' NLL."""
    figures = _calibration_figures(parts["confidence"], parts["correct"], parts["ece"], parts["resampled"], **options)
    return {**figures, "nll": float(np.mean(parts["terms"]))}


def _resampled_ece(boot: Bootstrap, confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """(B,): the ECE of each of ``boot``'s resamples of the images."""
    sums = boot.bin_sums(confidence - correct, confidence_bins(confidence, n_bins), n_bins)
    return np.abs(sums).sum(axis=1) / max(confidence.size, 1)


def _basic_interval(estimate: float, resampled: np.ndarray, level: float) -> np.ndarray:
    """The basic bootstrap interval [2θ − q_hi, 2θ − q_lo] of an estimate θ from its resampled values; rounding
    noise (1e-14 on an all-confident, all-correct run) is 0 (an attack round)."""
    return snap_zero(2 * estimate - percentile_interval(resampled, level)[::-1])


CALIBRATION_TEST_DRAWS = 1000  # label draws of the consistency-resampling test (calibration_p_value)
# its smallest p-value, no draw as far from calibrated as the head (Bonferroni over its two statistics): "p ≤" there
CALIBRATION_P_FLOOR = 2 / (1 + CALIBRATION_TEST_DRAWS)
CALIBRATION_TEST_IMAGES = 200_000  # predictions the test reads, a seeded sample beyond (1.5 s; 200 k took 3.9 s
#                                    with the report's other figures, growing with the test split: a review)


def calibration_p_value(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS, *,
                        draws: int = CALIBRATION_TEST_DRAWS, seed: int = 0) -> float:
    """How often a perfectly calibrated head with these top-1 confidences would look at least as miscalibrated as
    observed: each draw makes every prediction right with probability its confidence (consistency resampling,
    Bröcker & Smith 2007) and takes two statistics, the ECE (any shape of miscalibration) and the mean gap
    |mean confidence − accuracy| (a head over- or underconfident throughout, which the ECE's bins dilute on few
    images: a gap of 25.7 points on 20 images read p = 0.27 by the ECE alone, 0.02 by the gap; a new-user round);
    each p = (1 + #draws ≥ observed) / (1 + draws), and the test's p-value is the smaller of the two, doubled
    (Bonferroni). Past :data:`CALIBRATION_TEST_IMAGES` predictions, on a seeded sample of them. The bootstrap
    interval of the ECE cannot answer "is this head miscalibrated": on a calibrated head's 30 to 5,000 test images
    its lower end was above 0 in 43–74 % of splits (``python bench/ece_calibration.py``)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    rng = np.random.default_rng([seed, 7])
    if confidence.size > CALIBRATION_TEST_IMAGES:  # the test on a sample: its p-value stays valid, work bounded
        kept = rng.choice(confidence.size, CALIBRATION_TEST_IMAGES, replace=False)
        confidence, correct = confidence[kept], correct[kept]
    n = confidence.size
    observed = expected_calibration_error(confidence, correct, n_bins), abs(float(np.mean(confidence - correct)))
    bins = confidence_bins(confidence, n_bins)
    exceed, chunk = np.zeros(2, dtype=np.int64), max(1, 4_000_000 // n)  # at most ~4M draws of a prediction at a time
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        gap = confidence[None, :] - (rng.random((size, n)) < confidence[None, :])
        ece = np.abs(row_bin_sums(gap, bins, n_bins)).sum(axis=1) / n
        exceed += [int((ece >= observed[0] - 1e-12).sum()),
                   int((np.abs(gap.mean(axis=1)) >= observed[1] - 1e-12).sum())]
    return float(min(1.0, 2 * (1 + exceed.min()) / (1 + draws)))


def confidence_calibration(confidence: np.ndarray, correct: np.ndarray, labels: np.ndarray, num_classes: int, *,
                           seed: int = 0, n_bins: int = CALIBRATION_BINS, level: float = DEFAULT_LEVEL) -> dict:
    """What top-1 ``confidence`` (n,) and ``correct`` (n,) alone give of a calibration (``probe.report
    .Calibration`` without NLL and top-k, which need every class's probability): ECE, ``ece_debiased`` and the
    basic bootstrap ``ece_ci`` (stratified by ``labels``, :class:`probe.uncertainty.Bootstrap`), confidence, accuracy, the reliability bins. Scored
    images of another cache have these (a new-user round)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    resampled = _resampled_ece(Bootstrap(labels, num_classes, seed=seed), confidence, correct, n_bins)
    return _calibration_figures(confidence, correct, expected_calibration_error(confidence, correct, n_bins),
                                resampled, seed=seed, n_bins=n_bins, level=level)


def _calibration_figures(confidence: np.ndarray, correct: np.ndarray, ece: float, resampled: np.ndarray, *,
                         seed: int = 0, n_bins: int = CALIBRATION_BINS, level: float = DEFAULT_LEVEL) -> dict:
    """:func:`confidence_calibration` of images whose ECE and resampled ECEs (:func:`_resampled_ece`) are known."""
    bins = reliability(confidence, correct, n_bins)
    lo, hi = np.clip(_basic_interval(ece, resampled, level), 0.0, 1.0)
    ece = float(snap_zero(ece))
    return {
        # at most the ECE itself: its bias is upward, so a resampled mean below it is noise, and "50.64 % once the
        # upward bias is removed" beside an ECE of 50.62 % contradicted itself (a new-user round)
        "ece": ece, "ece_debiased": float(min(ece, max(0.0, snap_zero(2 * ece - resampled.mean())))),
        "calibrated_p": calibration_p_value(confidence, correct, n_bins, seed=seed),
        "ece_ci": [float(lo), float(hi)], "confidence": float(confidence.mean()), "accuracy": float(correct.mean()),
        "bins": [{"upper": (b + 1) / n_bins, "count": int(bins["count"][b]), "confidence": bins["confidence"][b],
                  "accuracy": bins["accuracy"][b]} for b in range(n_bins)],
    }


def confidence_and_accuracy(logits: np.ndarray, labels: np.ndarray, like: np.ndarray | None = None
                            ) -> tuple | None:
    """Mean top-1 confidence, accuracy and count of a head's ``logits`` (n, K) on images of classes ``labels``; None
    without an image. :func:`confidence_warning`'s ``validation``. With ``like`` (the test labels), a fourth item:
    the same two figures with each image weighed so that its class counts as much as in ``like`` (over the classes
    both hold), and how many of ``like``'s classes that covers and of how many: validation carved from a long-tailed
    training set holds the rare classes rarely, a class-balanced test split often, and the plain figures compare
    other mixes of classes (None where no class is in both)."""
    if len(labels) == 0:
        return None
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    confidence, correct = softmax(logits).max(axis=1), logits.argmax(axis=1) == labels
    plain = (float(confidence.mean()), float(correct.mean()), len(labels))
    if like is None:
        return plain
    val_counts = np.bincount(labels, minlength=logits.shape[1]).astype(np.float64)
    test_counts = np.bincount(np.asarray(like, dtype=np.int64), minlength=logits.shape[1]).astype(np.float64)
    both = (val_counts > 0) & (test_counts > 0)
    if not both.any():
        return (*plain, None)
    weight = np.where(both, test_counts, 0.0) / test_counts[both].sum()  # the class's share of test
    weight = (weight / np.maximum(val_counts, 1))[labels]  # spread over its validation images
    return (*plain, (float(weight @ confidence), float(weight @ correct), int(both.sum()),
                     int((test_counts > 0).sum())))


def confidence_warning(summary: dict, validation: tuple[float, float, int] | None = None) -> str | None:
    """A report warning when the shipped head's mean confidence is :data:`CONFIDENCE_GAP` or more from its accuracy
    (``summary``: :func:`calibration_summary`'s); else None. ``validation``: the shipped head's
    :func:`confidence_and_accuracy` on the validation images, which tell a head whose scale is off from validation
    and test that disagree (:func:`_validation_disagrees`)."""
    confidence, accuracy = summary.get("confidence"), summary.get("accuracy")
    if confidence is None or accuracy is None or abs(confidence - accuracy) < CONFIDENCE_GAP:
        return None
    lean = "under" if confidence < accuracy else "over"
    unsure = (" and most predictions read as unsure (below 50 %)" if lean == "under" and confidence < 0.5 else "")
    disagree = _validation_disagrees(validation, accuracy, lean)
    # "its (the first seed's) accuracy": beside the seeds' mean accuracy another figure read as a contradiction
    # (a new-user round)
    scaling = summary.get("temperature_scaling")
    if scaling is not None and scaling["applied"]:  # validation and test disagree: no temperature fixes that
        fix = (f"Temperature scaling was applied (T = {scaling['temperature']:.3g}, fitted on {scaling['val_images']} "
               "validation images) and did not close the gap on test: validation's images do not behave like test's."
               + ("" if disagree is None else " " + disagree))
    elif scaling is not None:  # asked for and not applied: advising it again read as if it had not been (a review)
        why = ("every one of them right" if scaling["fitted"] <= 1 else "the head ranks their true classes low")
        fix = (f"Temperature scaling was asked for and not applied: the {scaling['val_images']} validation images' NLL "
               f"was lowest at a bound (T = {scaling['fitted']:.3g}: {why}), so they size no temperature"
               + ("; more validation images would." if scaling["fitted"] <= 1 else "."))
    elif disagree is not None:  # "weights kept small flatten them; temperature scaling would fix" was said of a head
        fix = disagree          # trained on 30 % wrong labels, calibrated on validation (a noisy-labels round)
    else:
        # the cause only where it is one: "a strong weight decay flattens them" was said of a head chosen with none,
        # flat because its fit ended before it settled (a new-user round), and of overconfident heads
        scaling = ("temperature scaling fitted on validation (temperature_scaling: true; train --temperature-scaling) "
                   "would fix the values without changing a prediction.")
        fix = ("Weights kept small (a strong weight decay, or a fit ended early) flatten them; " + scaling
               if lean == "under" else "Temperature scaling" + scaling.removeprefix("temperature scaling"))
    return (f"The shipped head is {lean}confident: mean top-1 confidence {percent(confidence, 1)} % against its "
            f"{percent(accuracy, 1)} % accuracy on test (the first seed's, which ships){unsure}. Its ranking of the "
            "classes is what its accuracy says; its probabilities (predict --probabilities, the unsure flag) are not "
            f"probabilities to read as such. {fix}")


def _validation_disagrees(validation: tuple[float, float, int] | None, accuracy: float, lean: str) -> str | None:
    """Where the head is about as confident as it is right on its validation images (within half
    :data:`CONFIDENCE_GAP`: the 17 points of a CIFAR-10 head trained on 30 % wrong labels is no "about") and
    its test accuracy lies beyond its confidence the way it leans, the sentence saying that validation and test
    disagree, not the head's scale: labels wrong more often on one side than the other (the head learns how often a
    label is right), or other images; a temperature fitted on validation cannot close that. Else None."""
    if validation is None:
        return None
    confidence, right, n = validation[:3]
    if abs(confidence - right) >= CONFIDENCE_GAP / 2 or (accuracy > right) != (lean == "under"):
        return None
    gap, side = abs(accuracy - right), "below" if accuracy > right else "above"
    mixed = validation[3] if len(validation) > 3 else None
    if mixed is not None and abs(mixed[0] - mixed[1]) >= CONFIDENCE_GAP / 2 and (mixed[0] < mixed[1]) == (
            lean == "under"):  # weighed as test weighs the classes, validation leans as test does: the class mix
        return _class_mix_sentence(confidence, right, n, gap, side, mixed, lean)
    cause = ("Training and validation labels that are wrong more often than test's make this (a head learns how "
             "often a label is right)" if side == "below" else "Test labels that are wrong more often than "
             "validation's, or test images unlike the training images, make this")
    return (f"On its {n:,} validation images it is about as confident as it is right ({percent(confidence, 1)} % "
            f"against {percent(right, 1)} %), {percent(gap, 1)} points {side} its test accuracy: validation and test "
            f"disagree, not the head's scale. {cause}; a temperature fitted on validation does not close it.")


def _class_mix_sentence(confidence: float, right: float, n: int, gap: float, side: str, mixed: tuple,
                        lean: str) -> str:
    """:func:`_validation_disagrees`'s sentence where the validation images, weighed as test weighs the classes
    (``mixed``: :func:`confidence_and_accuracy`'s fourth item), lean as test does: the splits hold the classes in
    other proportions (a long-tailed training set's validation, a balanced test split), and the head is off on
    the classes test holds more of. Test labels or images were blamed (a long-tailed round: CIFAR-10's clean test
    labels, 202 validation images 92.9 % confident and 89.1 % right, 80.6 % and 53.6 % weighed as test)."""
    covered = "" if mixed[2] == mixed[3] else f" (its {mixed[2]} of test's {mixed[3]} classes with validation images)"
    return (f"On its {n:,} validation images it is about as confident as it is right ({percent(confidence, 1)} % "
            f"against {percent(right, 1)} %), {percent(gap, 1)} points {side} its test accuracy, but they hold the "
            f"classes in other proportions than test: weighed as test weighs the classes{covered}, they give "
            f"{percent(mixed[0], 1)} % confidence against {percent(mixed[1], 1)} % accuracy, {lean}confident as on "
            f"test. The head is {lean}confident on the classes test holds more of than validation (the rare ones of "
            "an imbalanced training set); a temperature fitted on validation, which weighs the classes as validation "
            "holds them, does not close it.")


def temperature_warning(summary: dict, validation: tuple[float, float, int] | None = None) -> str | None:
    """A report warning when the applied temperature made the shipped head's test ECE or NLL worse beyond noise (the
    lower end of the paired interval of the change above 0; ``summary``: :func:`calibration_summary`'s), else None.
    Where validation and test disagree (:func:`_validation_disagrees` of ``validation``, as in
    :func:`confidence_warning`), more validation images are not advised: more of them size T the same.
    T is sized by the validation images alone, and few of them can size it wrong: on Fashion-MNIST features one
    validation image per class gave T = 0.49 and a test NLL 0.75 higher than without it. No rule on validation alone
    told those apart from the temperatures that helped (a held-out check by folds of the validation images missed
    that one and declined three that helped; ``bench/temperature_scaling.py --heldout``), so the report says so
    from test, where the change and its interval are measured."""
    scaling = summary.get("temperature_scaling") or {}
    before = scaling.get("before")
    if not scaling.get("applied") or not before or before.get("ece_delta_ci") is None:
        return None
    worse = []
    for name, say, unit in (("ece", signed_points, " points"), ("nll", lambda v: f"{v:+.3f}", "")):
        delta, ci = before.get(f"{name}_delta"), before.get(f"{name}_delta_ci") or [None, None]
        # an infinite logit leaves no number (NaN, or null once stored; an attack round): nothing to say of it
        if all(isinstance(v, (int, float)) and np.isfinite(v) for v in (delta, *ci)) and ci[0] > 0:
            worse.append(f"{name.upper()} {say(delta)}{unit} [{say(ci[0])}, {say(ci[1])}]")
    if not worse:
        return None
    confidence, accuracy = summary.get("confidence"), summary.get("accuracy")
    disagree = None if None in (confidence, accuracy) else _validation_disagrees(
        validation, accuracy, "under" if confidence < accuracy else "over")
    more = ("; more validation images like these would size it the same, as validation and test disagree"
            if disagree else ", or fit it on more validation images")
    return (f"Temperature scaling made the shipped head's probabilities worse on test: {' and '.join(worse)} with "
            f"T = {scaling['temperature']:.3g} against without it (paired 95 % intervals). The "
            f"{scaling['val_images']} validation images it was fitted on did not size it for test's: ship the probe "
            f"without it (temperature_scaling: false; train without --temperature-scaling){more}. No prediction "
            "changes either way.")
