"""probe.calibration: ECE and its bins by hand, NLL and top-k against scikit-learn, the bootstrap's bin sums."""
import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import top_k_accuracy_score

from probe.calibration import (calibration_summary, confidence_bins, expected_calibration_error, log_loss,
                               reliability, top_k_accuracy)
from probe.metrics import softmax
from probe.uncertainty import Bootstrap


def test_bins_are_right_closed_equal_width():
    assert confidence_bins(np.array([0.0, 1 / 15, 1 / 15 + 1e-9, 2 / 15, 0.5, 1.0])).tolist() == [0, 0, 1, 1, 7, 14]
    assert confidence_bins(np.array([0.25, 0.2500001]), n_bins=4).tolist() == [0, 1]


def test_ece_by_hand():
    # bin 14: confidences 0.95, 0.95, one right (accuracy 0.5); bin 8: 0.55, 0.55, both right
    conf, correct = np.array([0.95, 0.95, 0.55, 0.55]), np.array([1, 0, 1, 1])
    assert expected_calibration_error(conf, correct) == pytest.approx(2 / 4 * 0.45 + 2 / 4 * 0.45)
    r = reliability(conf, correct)
    assert r["count"][14] == 2 and r["count"][8] == 2 and r["count"].sum() == 4
    assert r["confidence"][14] == pytest.approx(0.95) and r["accuracy"][14] == 0.5 and r["accuracy"][8] == 1.0
    assert np.isnan(r["accuracy"][0])
    # a perfectly calibrated bin: 0.75 confidence, 3 of 4 right
    assert expected_calibration_error(np.full(4, 0.75), np.array([1, 1, 1, 0])) == pytest.approx(0.0)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_nll_and_top_k_equal_scikit_learn():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 3, (400, 12)), rng.integers(0, 12, 400)
    assert log_loss(logits, labels) == pytest.approx(sk_log_loss(labels, softmax(logits), labels=range(12)))
    for k in (1, 3, 5, 11):
        assert top_k_accuracy(logits, labels, k) == pytest.approx(
            top_k_accuracy_score(labels, logits, k=k, labels=range(12)))
    nan_row = np.vstack([logits[:3], np.full((1, 12), np.nan)])
    assert top_k_accuracy(nan_row, labels[:4], 5) == top_k_accuracy(logits[:3], labels[:3], 5) * 3 / 4
    # logits far apart: no probability underflows into an infinite loss
    assert np.isfinite(log_loss(np.array([[0.0, 2000.0]]), np.array([0]))) and log_loss(
        np.array([[0.0, 2000.0]]), np.array([0])) == pytest.approx(2000.0)


def test_bootstrap_bin_sums_resample_the_same_images_as_the_accuracies():
    """With every image in one bin, a resample's sum of correct / n is its overall accuracy (same resamples)."""
    rng = np.random.default_rng(1)
    labels, correct = rng.integers(0, 4, 90), (rng.random(90) < 0.7).astype(float)
    boot = Bootstrap(labels, 4, n_resamples=200, seed=3)
    sums = boot.bin_sums(correct, np.zeros(90, dtype=int), 2)
    np.testing.assert_allclose(sums[:, 0] / 90, boot.summary(correct)["overall"], atol=1e-6)
    assert (sums[:, 1] == 0).all()
    with pytest.raises(ValueError, match="labels' shape"):
        boot.bin_sums(correct[:10], np.zeros(10, dtype=int), 2)


def test_calibration_summary_reads_the_first_head_and_sees_overconfidence():
    rng = np.random.default_rng(2)
    k, n = 10, 3000
    labels = rng.integers(0, k, n)
    # calibrated by construction: draw the label from the softmax of the logits
    logits = rng.normal(0, 2, (n, k))
    cum = softmax(logits).cumsum(axis=1)
    labels = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), k - 1)
    fair = calibration_summary([logits], labels, k)
    assert fair["ece"] < 0.03 and fair["ece_ci"][0] <= fair["ece"] <= fair["ece_ci"][1] + 0.01
    # the plug-in ECE reads high; less its bootstrap bias it is lower, and the interval reaches down to ~0 (the
    # percentile interval sat wholly above a calibrated head's 0; a statistics review)
    assert 0 <= fair["ece_debiased"] < fair["ece"] and fair["ece_ci"][0] < 0.005
    assert abs(fair["confidence"] - fair["accuracy"]) < 0.02
    sharp = calibration_summary([4 * logits, logits], labels, k)  # the same ranking, 4x the confidence
    assert sharp["accuracy"] == fair["accuracy"] and sharp["confidence"] > sharp["accuracy"] + 0.15
    assert sharp["ece_ci"][0] > fair["ece_ci"][1] and sharp["nll"] > fair["nll"]
    assert sharp["top_k"] == 5 and sharp["top_k_accuracy"] == pytest.approx(top_k_accuracy(logits, labels, 5))
    assert sum(b["count"] for b in sharp["bins"]) == n
    assert calibration_summary([logits[:, :4]], np.minimum(labels, 3), 4)["top_k"] is None


def test_a_head_far_from_calibrated_is_warned_of():
    """Near-uniform probabilities (weight decay 7.4) put every image under 'unsure' without a word (a new-user
    round): 20 points or more between confidence and accuracy make a warning; closer, none."""
    from probe.calibration import confidence_warning

    flat = confidence_warning({"confidence": 0.28, "accuracy": 0.72})
    assert flat.startswith("The shipped head is underconfident: mean top-1 confidence 28.0 % against its 72.0 % "
                           "accuracy on test (the first seed's, which ships) and most predictions read as unsure "
                           "(below 50 %).")
    assert flat.endswith("Weights kept small (a strong weight decay, or a fit ended early) flatten them; temperature "
                         "scaling fitted on validation (temperature_scaling: true; train --temperature-scaling) would "
                         "fix the values without changing a prediction.")
    sure = confidence_warning({"confidence": 0.95, "accuracy": 0.7})
    # no cause claimed for an overconfident head: "a strong weight decay flattens them" was said of one
    assert sure.startswith("The shipped head is overconfident") and "weight decay" not in sure
    assert sure.endswith("not probabilities to read as such. Temperature scaling fitted on validation "
                         "(temperature_scaling: true; train --temperature-scaling) would fix the values without "
                         "changing a prediction.")
    assert confidence_warning({"confidence": 0.8, "accuracy": 0.7}) is None
    assert confidence_warning({"confidence": None, "accuracy": 0.7}) is None


def test_an_all_confident_all_correct_head_reads_exactly_zero():
    """ECE 2e-14 with an interval of [4e-14, 4e-14] above it (an attack round): rounding noise is 0."""
    logits = np.array([[40.0, 0.0], [0.0, 40.0]])
    out = calibration_summary([logits], np.array([0, 1]), 2)
    assert out["ece"] == 0.0 and out["ece_debiased"] == 0.0 and out["ece_ci"] == [0.0, 0.0]


def test_the_calibration_test_rejects_a_calibrated_head_at_its_level_and_a_miscalibrated_one():
    """The ECE interval's lower end was above 0 for a calibrated head on a third to a half of small test sets (a
    statistics review): calibrated_p tests "calibrated" itself, by drawing each prediction right with its
    confidence (consistency resampling)."""
    from probe.calibration import CALIBRATION_TEST_DRAWS, calibration_p_value, expected_calibration_error
    from probe.report import Calibration

    rng = np.random.default_rng(0)
    calibrated, off = [], []
    for trial in range(60):
        confidence = np.clip(rng.beta(8, 1.2, 200), 0.1, 0.999)
        calibrated.append(calibration_p_value(confidence, rng.random(200) < confidence, seed=trial))
        off.append(calibration_p_value(confidence, rng.random(200) < confidence - 0.15, seed=trial))
    assert np.mean(np.array(calibrated) < 0.05) <= 0.12 and np.mean(np.array(off) < 0.05) >= 0.9
    # the p-value by hand: for the ECE and for the mean gap, (1 + draws at or above the observed) / (1 + draws),
    # the draws seeded; the smaller doubled
    def by_hand(confidence, correct):
        draws = np.random.default_rng([0, 7]).random((CALIBRATION_TEST_DRAWS, confidence.size)) < confidence
        ece = sum(expected_calibration_error(confidence, d) >= expected_calibration_error(confidence, correct) - 1e-12
                  for d in draws)
        gap = sum(abs(np.mean(confidence - d)) >= abs(np.mean(confidence - correct)) - 1e-12 for d in draws)
        return [(1 + e) / (1 + CALIBRATION_TEST_DRAWS) for e in (ece, gap)]

    confidence, correct = np.array([0.9, 0.8, 0.6, 0.95]), np.array([1.0, 0.0, 0.0, 1.0])
    assert calibration_p_value(confidence, correct) == pytest.approx(min(1, 2 * min(by_hand(confidence, correct))))
    # a head underconfident by 25 points on 20 images: the ECE alone read it calibrated (p = 0.27 in a new-user
    # round's case, 0.15 here); the gap does not
    confidence, correct = np.linspace(0.1, 0.8, 20), np.zeros(20)
    correct[np.random.default_rng(2).permutation(20)[:14]] = 1
    p_ece, p_gap = by_hand(confidence, correct)
    assert p_ece > 0.1 and calibration_p_value(confidence, correct) == pytest.approx(2 * p_gap) and 2 * p_gap < 0.05
    line = Calibration(ece=0.2, ece_ci=[0.05, 0.3], calibrated_p=0.012, confidence=0.9, accuracy=0.7, nll=1.0).brief()
    assert "95 % interval [5.0, 30.0] (miscalibrated beyond noise: p = 0.012 if it were calibrated)" in line
    # no draw as far off as the head: the test's floor, an upper bound of p (a new-user round read "p = 0.002")
    from probe.calibration import CALIBRATION_P_FLOOR

    floor = calibration_p_value(np.full(500, 0.99), np.zeros(500))
    assert floor == CALIBRATION_P_FLOOR
    line = Calibration(ece=0.9, ece_ci=[0.8, 1.0], calibrated_p=floor, confidence=0.99, accuracy=0.0, nll=5.0).brief()
    assert "(miscalibrated beyond noise: p ≤ 0.002 if it were calibrated)" in line
    line = Calibration(ece=0.05, ece_ci=[0.0, 0.1], calibrated_p=0.4, confidence=0.9, accuracy=0.88, nll=1.0).brief()
    assert "(not shown miscalibrated beyond noise on these images: p = 0.4)" in line
    # an interval above 0 beside it read as a contradiction (a new-user round): the sentence says what each says
    line = Calibration(ece=0.05, ece_ci=[0.01, 0.1], calibrated_p=0.4, confidence=0.9, accuracy=0.88, nll=1.0).brief()
    assert ("95 % interval [1.0, 10.0] (not shown miscalibrated beyond noise on these images: p = 0.4; the interval "
            "sizes a miscalibration that may not be there)") in line


def test_the_debiased_ece_is_never_above_the_ece():
    """A new-user round: "ECE 50.62 %, 50.64 % once the upward bias is removed": the plug-in ECE's bias is upward,
    so a resampled mean below it (a large, certain miscalibration) is noise, not a downward bias."""
    from probe.calibration import confidence_calibration

    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 4, n)
    confidence = np.full(n, 0.99)
    correct = (rng.random(n) < 0.45).astype(float)  # every image 99 % sure, right 45 % of the time
    out = confidence_calibration(confidence, correct, labels, 4)
    assert out["ece_debiased"] <= out["ece"] and out["ece"] > 0.5


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (empty reliability bins)."""
    import json

    return json.dumps(a, sort_keys=True, default=float) == json.dumps(b, sort_keys=True, default=float)


def _calibrated(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n, k) and labels drawn from their softmax: calibrated at temperature 1 by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    labels = np.minimum((rng.random(n)[:, None] > softmax(logits).cumsum(axis=1)).sum(axis=1), k - 1)
    return logits, labels


@pytest.mark.parametrize("k", [2, 10, 40])
def test_the_temperature_is_scikit_learns(k):
    """fit_temperature's T is the one scikit-learn's CalibratedClassifierCV(method="temperature") fits on the same
    logits (its inverse temperature beta_), and the NLL is lowest there."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from probe.calibration import fit_temperature, scaled_nll

    class Logits(ClassifierMixin, BaseEstimator):  # a fitted classifier whose decision function is its input
        def fit(self, x, y):
            self.classes_ = np.arange(k)
            return self

        def decision_function(self, x):  # two classes: scikit-learn's (-d, d), the same softmax as (z0, z1)
            return x if k > 2 else (x[:, 1] - x[:, 0]) / 2

        def predict(self, x):
            return x.argmax(axis=1)

    logits, labels = _calibrated(k, 800, k)
    logits = 3 * logits + 0.5  # overconfident: T near 3
    temperature, at_bound = fit_temperature(logits, labels)
    fitted = CalibratedClassifierCV(FrozenEstimator(Logits().fit(logits, labels)), method="temperature")
    beta = fitted.fit(logits, labels).calibrated_classifiers_[0].calibrators[0].beta_
    assert not at_bound and temperature == pytest.approx(1 / float(beta), rel=1e-6)
    assert 2 < temperature < 4.5
    best = scaled_nll(logits, labels, temperature)
    assert best < scaled_nll(logits, labels, temperature * 1.01) and best < scaled_nll(logits, labels, temperature / 1.01)
    assert scaled_nll(logits, labels, 1.0) == pytest.approx(sk_log_loss(labels, softmax(logits), labels=range(k)))


def test_temperature_scaling_finds_the_temperature_an_overconfident_head_was_sharpened_by():
    """Logits 4x those of a calibrated head: T ≈ 4 from 20,000 images, and the scaled head's test ECE is the
    calibrated one's, with the figures without it beside (accuracy and top-k unchanged)."""
    from probe.calibration import temperature_fit

    logits, labels = _calibrated(5, 20_000, 10)
    val, test = slice(0, 10_000), slice(10_000, None)
    fit = temperature_fit(4 * logits[val], labels[val])
    assert fit["applied"] and fit["temperature"] == pytest.approx(4.0, rel=0.05) and fit["val_images"] == 10_000
    assert fit["val_nll_after"] < fit["val_nll_before"]
    scaled = calibration_summary([4 * logits[test]], labels[test], 10, temperature=fit)
    plain = calibration_summary([4 * logits[test]], labels[test], 10)
    exact = calibration_summary([4 * logits[test] / fit["temperature"]], labels[test], 10)
    assert scaled["ece"] == exact["ece"] and scaled["nll"] == exact["nll"] and _same(scaled["bins"], exact["bins"])
    assert scaled["ece"] < 0.02 < 0.1 < plain["ece"]
    assert scaled["accuracy"] == plain["accuracy"] and scaled["top_k_accuracy"] == plain["top_k_accuracy"]
    before = scaled["temperature_scaling"]["before"]
    shared = [key for key in before if not key.endswith(("_delta", "_delta_ci"))]
    assert {key: before[key] for key in shared} == {key: plain[key] for key in shared}
    # what T changed, with the interval of the paired difference: beyond noise on 10,000 images
    assert before["ece_delta"] == pytest.approx(scaled["ece"] - plain["ece"], abs=1e-12)
    assert before["nll_delta"] == pytest.approx(scaled["nll"] - plain["nll"], abs=1e-12)
    for key in ("ece", "nll"):
        lo, hi = before[f"{key}_delta_ci"]
        assert lo <= before[f"{key}_delta"] <= hi < 0, key


def test_the_temperatures_effect_interval_is_paired():
    """A temperature of 1 changes nothing: both differences and their intervals are exactly 0, which unpaired
    resamples of the two ECEs would not give."""
    from probe.calibration import temperature_effect

    logits, labels = _calibrated(7, 600, 5)
    same = temperature_effect(logits, logits, labels, 5)
    assert same == {"ece_delta": 0.0, "ece_delta_ci": [0.0, 0.0], "nll_delta": 0.0, "nll_delta_ci": [0.0, 0.0]}


def test_validation_all_right_by_wide_margins_sizes_no_temperature():
    """Every validation image right by a margin whose NLL underflows to 0: the NLL is flat down to the lower
    bound, no temperature is sized by them, and none is applied (T = 1)."""
    from probe.calibration import TEMPERATURE_BOUNDS, fit_temperature, temperature_fit

    logits, labels = 10 * np.eye(3)[[0, 1, 2] * 5], np.array([0, 1, 2] * 5)
    assert fit_temperature(logits, labels) == (TEMPERATURE_BOUNDS[0], True)  # the bound, not where Brent stopped
    fit = temperature_fit(logits, labels)
    assert not fit["applied"] and fit["temperature"] == 1.0 and fit["val_nll_after"] == fit["val_nll_before"]
    out = calibration_summary([logits], labels, 3, temperature=fit)
    assert out["temperature_scaling"]["before"] is None and _same(out, {**calibration_summary([logits], labels, 3),
                                                                        "temperature_scaling": {**fit, "before": None}})
    # a head that ranks the true class last: the NLL falls towards the upper bound
    assert fit_temperature(-logits, labels) == (TEMPERATURE_BOUNDS[1], True)
    with pytest.raises(ValueError, match="finite validation logits"):  # one NaN read as "applied" (a review)
        fit_temperature(np.where(np.arange(45).reshape(15, 3) == 4, np.nan, logits), labels)
    assert TEMPERATURE_BOUNDS[0] < 1 < TEMPERATURE_BOUNDS[1]
    with pytest.raises(ValueError, match="labelled images"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_the_confidence_warning_says_what_temperature_scaling_did():
    from probe.calibration import confidence_warning

    advice = confidence_warning({"confidence": 0.95, "accuracy": 0.7})
    assert "temperature_scaling: true; train --temperature-scaling" in advice
    scaled = confidence_warning({"confidence": 0.95, "accuracy": 0.7, "temperature_scaling": {
        "applied": True, "temperature": 2.5, "val_images": 300}})
    assert "Temperature scaling was applied (T = 2.5, fitted on 300 validation images) and did not close" in scaled
    # asked for, not applied: not advised again as if it had not been (a review round)
    unsized = confidence_warning({"confidence": 0.135, "accuracy": 0.718, "temperature_scaling": {
        "applied": False, "temperature": 1.0, "fitted": 0.05, "val_images": 10}})
    assert unsized.endswith("Temperature scaling was asked for and not applied: the 10 validation images' NLL was "
                            "lowest at a bound (T = 0.05: every one of them right), so they size no "
                            "temperature; more validation images would.") and "train --temperature" not in unsized


def test_a_temperature_that_made_test_worse_is_warned_of():
    """T fitted on validation logits 4x sharper than test's: on test it flattens a calibrated head, and the report
    warns with the change and its interval; a temperature that helped, or did nothing beyond noise, is not."""
    from probe.calibration import temperature_fit, temperature_warning

    logits, labels = _calibrated(11, 8_000, 10)
    val, test = slice(0, 4_000), slice(4_000, None)
    fit = temperature_fit(4 * logits[val], labels[val])
    hurt = calibration_summary([logits[test]], labels[test], 10, temperature=fit)
    before = hurt["temperature_scaling"]["before"]
    assert before["ece_delta_ci"][0] > 0 and before["nll_delta_ci"][0] > 0
    (ece_lo, ece_hi), (nll_lo, nll_hi) = before["ece_delta_ci"], before["nll_delta_ci"]
    assert temperature_warning(hurt) == (
        f"Temperature scaling made the shipped head's probabilities worse on test: ECE "
        f"+{100 * before['ece_delta']:.1f} points [+{100 * ece_lo:.1f}, +{100 * ece_hi:.1f}] and NLL "
        f"+{before['nll_delta']:.3f} [+{nll_lo:.3f}, +{nll_hi:.3f}] with T = {fit['temperature']:.3g} against "
        "without it (paired 95 % intervals). The 4000 validation images it was fitted on did not size it for test's: "
        "ship the probe without it (temperature_scaling: false; train without --temperature-scaling), or fit it on "
        "more validation images. No prediction changes either way.")
    helped = calibration_summary([4 * logits[test]], labels[test], 10, temperature=fit)
    assert temperature_warning(helped) is None
    one = {**fit, "temperature": 1.0}  # a T that changes nothing: both intervals exactly 0
    assert temperature_warning(calibration_summary([logits[test]], labels[test], 10, temperature=one)) is None
    assert temperature_warning(calibration_summary([logits[test]], labels[test], 10)) is None  # not asked for
    unsized = {**fit, "temperature": 1.0, "applied": False}
    assert temperature_warning(calibration_summary([logits[test]], labels[test], 10, temperature=unsized)) is None


def test_a_run_whose_temperature_hurt_on_test_says_so():
    """End to end: validation images unlike test's (test's labels a third noise) size a T that sharpens the head;
    the report's warnings say what it did on test."""
    from probe import ProbeConfig, run_probe

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 1.0, (4, 16))

    def split(n: int, noise: float):
        y = rng.integers(0, 4, n)
        x = (centres[y] + rng.normal(0, 1.2, (n, 16))).astype(np.float32)
        flipped = rng.random(n) < noise
        return x, np.where(flipped, rng.integers(0, 4, n), y)

    data = {"train": split(800, 0.0), "val": split(400, 0.0), "test": split(2_000, 0.5)}
    report = run_probe(data, ["a", "b", "c", "d"], ProbeConfig(seeds=[0], temperature_scaling=True, epochs=30))
    scaling = report.temperature_scaling
    assert scaling.applied and scaling.before.nll_delta_ci[0] > 0
    hurt = [w for w in report.warnings if w.startswith("Temperature scaling made the shipped head's probabilities "
                                                       "worse on test")]
    # validation and test disagree (test's labels are the noisy ones): more validation images would not help
    assert len(hurt) == 1 and "or fit it on more validation images" not in hurt[0]
    assert hurt[0].endswith("; more validation images like these would size it the same, as validation and test "
                            "disagree. No prediction changes either way.")
    sure = next(w for w in report.warnings if w.startswith("The shipped head is overconfident"))
    assert "Test labels that are wrong more often than validation's" in sure


def test_an_infinite_logit_leaves_the_nll_unmeasured_and_nothing_fails():
    """A head with a logit of −inf (a class it never gives) has an NLL of no number: the report's text and the
    temperature warning said "+nan" or raised (TypeError on the stored null; an attack round); they say what is
    measured."""
    import json

    from probe.calibration import temperature_warning
    from probe.report import Calibration

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    logits = np.tile([0.0, -np.inf, 0.0], (60, 1)) + rng.normal(size=(60, 3))
    scaling = {"temperature": 0.05, "applied": True, "fitted": 0.05, "val_images": 3, "val_nll_before": 1.0,
               "val_nll_after": 0.9}
    summary = calibration_summary([logits], labels, 3, temperature=scaling)
    stored = Calibration.model_validate(json.loads(json.dumps(summary, default=float).replace("NaN", "null")))
    assert stored.temperature_scaling.before.nll_delta is None
    assert "NLL not measured (a logit is not finite)" in stored.temperature_scaling.brief()
    for given in (summary, stored.model_dump()):
        said = temperature_warning(given)
        assert said.startswith("Temperature scaling made the shipped head's probabilities worse on test: ECE +")
        assert "NLL" not in said.split(" with T = ")[0]


def test_a_test_split_of_one_image_per_class_still_sizes_the_ece():
    """120 classes of one test image each (an extremes round): a bootstrap stratified by class draws each such image
    in every resample, so the ECE read '49.95 %, 95 % interval [49.9, 49.9]' and nothing of its upward bias was
    removed; the images of one-image classes are resampled together."""
    from probe.calibration import confidence_calibration, temperature_effect

    rng = np.random.default_rng(5)
    k = 120
    labels = np.arange(k)
    logits = rng.normal(0, 3, (k, k))
    summary = calibration_summary([logits], labels, k)
    lo, hi = summary["ece_ci"]
    assert hi - lo > 0.05 and summary["ece_debiased"] < summary["ece"]
    confidence, correct = softmax(logits).max(axis=1), (logits.argmax(axis=1) == labels).astype(float)
    assert confidence_calibration(confidence, correct, labels, k)["ece_ci"] == [lo, hi]
    effect = temperature_effect(logits, logits / 2, labels, k)
    assert effect["nll_delta_ci"][1] - effect["nll_delta_ci"][0] > 0.01


def test_a_head_calibrated_on_validation_is_not_told_its_scale_is_off():
    """A head trained on 30 % wrong labels is as confident on validation (whose labels are as wrong) as it is right
    there, and underconfident on clean test labels: the warning blamed small weights and promised that temperature
    scaling on validation would fix it (T came out 1.01, nothing changed; a noisy-labels round). Calibrated on
    validation, it says validation and test disagree; flattened on validation too, the old advice stands."""
    from probe.calibration import confidence_warning

    noisy = confidence_warning({"confidence": 0.555, "accuracy": 0.853}, validation=(0.562, 0.612, 2000))
    assert "Weights kept small" not in noisy and "would fix" not in noisy
    assert noisy.endswith("On its 2,000 validation images it is about as confident as it is right (56.2 % against "
                          "61.2 %), 24.1 points below its test accuracy: validation and test disagree, not the head's "
                          "scale. Training and validation labels that are wrong more often than test's make this (a "
                          "head learns how often a label is right); a temperature fitted on validation does not "
                          "close it.")
    flat = confidence_warning({"confidence": 0.28, "accuracy": 0.72}, validation=(0.29, 0.71, 500))
    assert "Weights kept small (a strong weight decay, or a fit ended early) flatten them" in flat
    wrong_test = confidence_warning({"confidence": 0.95, "accuracy": 0.7}, validation=(0.95, 0.94, 300))
    assert "24.0 points above its test accuracy" in wrong_test and "Test labels that are wrong more often" in wrong_test
    # test accuracy on the other side of validation's than the lean: no disagreement claimed
    assert "disagree" not in confidence_warning({"confidence": 0.5, "accuracy": 0.8}, validation=(0.88, 0.9, 300))


def test_a_run_on_wrong_training_labels_says_validation_and_test_disagree():
    """End to end: 40 % of the training and validation labels flipped, test labels right. The shipped head is
    underconfident on test and its warning names the disagreement of validation and test, not weight decay."""
    from probe import ProbeConfig, run_probe
    from testdata import gaussian_splits

    data = gaussian_splits(4, {"train": 150, "val": 100, "test": 100}, spread=4.0, dim=8)
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        x, y = data[split]
        data[split] = (x, np.where(rng.random(len(y)) < 0.4, (y + rng.integers(1, 4, len(y))) % 4, y))
    report = run_probe(data, list("abcd"), ProbeConfig(epochs=40, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0))
    warning = next(w for w in report.warnings if w.startswith("The shipped head is underconfident"))
    assert "validation and test disagree" in warning and "Weights kept small" not in warning


def test_a_split_every_resample_of_which_is_the_split_has_a_zero_width_ece_interval():
    """Two classes whose images are each alike (class 0: confidence 0.9, right; class 1: confidence 0.6, wrong):
    every stratified resample is the split itself, so each resampled ECE is the ECE, Σ_b |Σ gaps| / n =
    (30·0.1 + 10·0.6) / 40, and the basic interval and the debiased ECE are that value exactly."""
    from probe.calibration import confidence_calibration

    labels = np.repeat([0, 1], [30, 10])
    confidence = np.repeat([0.9, 0.6], [30, 10])
    correct = np.repeat([1.0, 0.0], [30, 10])
    out = confidence_calibration(confidence, correct, labels, 2)
    ece = (30 * 0.1 + 10 * 0.6) / 40
    assert out["ece"] == pytest.approx(ece, abs=1e-12)
    assert out["ece_ci"] == pytest.approx([ece, ece], abs=1e-12)
    assert out["ece_debiased"] == pytest.approx(ece, abs=1e-12)


def test_top_k_counts_the_logits_strictly_above_the_labels():
    """top_k_accuracy: a row is a hit when fewer than k logits lie strictly above its label's (the rule its
    docstring gives); a logit tied with the label's is not above it."""
    logits = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0], [0.0, 3.0, 1.0], [0.5, 0.5, 1.0]])
    labels = np.array([0, 2, 0, 1])
    # logits above the label's: 0, 0, 2, 1
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(2 / 4)
    assert top_k_accuracy(logits, labels, 2) == pytest.approx(3 / 4)
    assert top_k_accuracy(logits, labels, 3) == pytest.approx(1.0)


def test_validation_weighed_as_test_weighs_the_classes():
    """confidence_and_accuracy(..., like=test labels): each validation image weighs its class's share of test over
    its class's validation images. Class 0: 8 images, right at 0.9; class 1: 2 images, wrong at 0.8; test holds
    the two equally, so the weighed figures are the classes' means averaged: confidence 0.85, accuracy 0.5. A
    class of test without validation images is left out and counted."""
    from probe.calibration import confidence_and_accuracy

    def logits_for(labels, predicted, confidence):  # two classes: softmax max = confidence
        margin = np.log(confidence / (1 - confidence))
        out = np.zeros((len(labels), 3))
        out[np.arange(len(labels)), predicted] = margin
        out[:, 2] = -50.0
        return out

    labels = np.repeat([0, 1], [8, 2])
    logits = logits_for(labels, np.repeat([0, 0], [8, 2]), np.repeat([0.9, 0.8], [8, 2]))
    plain = confidence_and_accuracy(logits, labels)
    assert plain == pytest.approx((0.88, 0.8, 10))
    confidence, right, n, mixed = confidence_and_accuracy(logits, labels, np.repeat([0, 1], [50, 50]))
    assert (confidence, right, n) == pytest.approx(plain)
    assert mixed == pytest.approx((0.85, 0.5, 2, 2))
    *_, mixed = confidence_and_accuracy(logits, labels, np.repeat([0, 1, 2], [50, 50, 50]))
    assert mixed == pytest.approx((0.85, 0.5, 2, 3))


def test_a_long_tailed_validation_is_not_told_test_labels_are_wrong():
    """A head calibrated on its validation images, which hold the rare classes as rarely as training does, is
    overconfident on a class-balanced test split: weighed as test weighs the classes, validation is overconfident
    too. The warning blamed test labels or test images ("validation and test disagree, not the head's scale"; a
    long-tailed round: CIFAR-10, whose test labels are clean); it names the class mix."""
    from probe.calibration import confidence_warning

    mixed = confidence_warning({"confidence": 0.793, "accuracy": 0.507},
                               validation=(0.929, 0.891, 202, (0.806, 0.536, 10, 10)))
    assert "Test labels that are wrong" not in mixed and "not the head's scale" not in mixed
    assert mixed.endswith("On its 202 validation images it is about as confident as it is right (92.9 % against "
                          "89.1 %), 38.4 points above its test accuracy, but they hold the classes in other "
                          "proportions than test: weighed as test weighs the classes, they give 80.6 % confidence "
                          "against 53.6 % accuracy, overconfident as on test. The head is overconfident on the "
                          "classes test holds more of than validation (the rare ones of an imbalanced training set); "
                          "a temperature fitted on validation, which weighs the classes as validation holds them, "
                          "does not close it.")
    # weighed as test, validation is calibrated too: the splits' images or labels disagree, as before
    same_mix = confidence_warning({"confidence": 0.95, "accuracy": 0.7}, validation=(0.95, 0.94, 300,
                                                                                      (0.95, 0.93, 4, 4)))
    assert "Test labels that are wrong more often" in same_mix and "other proportions" not in same_mix


def test_a_long_tailed_run_names_the_class_mix_in_its_confidence_warning():
    """End to end: 600 training images of two classes, 6 of two others, validation carved alike, a balanced test
    split; overlapping clusters, so the rare classes are lost to the frequent ones on test."""
    from probe import ProbeConfig, run_probe
    from testdata import gaussian_splits

    data = gaussian_splits(4, {"train": 600, "val": 150, "test": 150}, spread=1.0, dim=8)
    for split, counts in {"train": [600, 600, 6, 6], "val": [150, 150, 2, 2]}.items():
        x, y = data[split]
        rows = np.concatenate([np.flatnonzero(y == k)[:n] for k, n in enumerate(counts)])
        data[split] = (x[rows], y[rows])
    report = run_probe(data, list("abcd"), ProbeConfig(epochs=40, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0))
    warning = next(w for w in report.warnings if w.startswith("The shipped head is overconfident"))
    assert "in other proportions than test" in warning and "Test labels that are wrong" not in warning
