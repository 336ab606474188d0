"""bench/temperature_scaling.py: the held-out check it records (--heldout) and its counts against the test effect."""
from __future__ import annotations

import numpy as np

import temperature_scaling as bench


def test_folds_are_stratified_and_balanced():
    labels = np.repeat(np.arange(4), [7, 1, 1, 11])
    fold = bench.stratified_folds(labels, 5, seed=0)
    assert np.ptp(np.bincount(fold, minlength=5)) <= 1  # one-image classes do not all land in fold 0
    for k in range(4):
        assert np.ptp(np.bincount(fold[labels == k], minlength=5)) <= 1


def test_the_heldout_change_is_each_folds_temperature_on_images_it_did_not_see():
    """Logits 3x those of a calibrated head: every fold's T (≈ 3, fitted on the others) lowers the held-out NLL, and
    the figure is the mean of exactly those per-image changes."""
    from probe.calibration import fit_temperature, true_class_terms
    from probe.metrics import softmax

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (600, 6))
    labels = np.minimum((rng.random(600)[:, None] > softmax(logits).cumsum(axis=1)).sum(axis=1), 5)
    logits = 3 * logits
    out = bench.heldout_temperature_effect(logits, labels, 6)
    fold = bench.stratified_folds(labels, 5, seed=0)
    by_hand = np.zeros(600)
    for f in range(5):
        held = fold == f
        t, _ = fit_temperature(logits[~held], labels[~held])
        by_hand[held] = true_class_terms(logits[held] / t, labels[held])[0] - true_class_terms(logits[held],
                                                                                                labels[held])[0]
    assert out["folds"] == 5 and out["cv_nll_delta"] == np.float64(by_hand.mean())
    lo, hi = out["cv_nll_delta_ci"]
    assert lo <= out["cv_nll_delta"] <= hi < 0


def test_heldout_counts_score_the_rule_against_the_test_effect():
    def run(cv, ece, nll):
        return {"cv_nll_delta": cv, "ece_delta_ci": ece, "nll_delta_ci": nll}

    runs = [run(-0.1, [0.01, 0.02], [-0.1, 0.1]),    # kept, worse on test
            run(0.01, [-0.02, -0.01], [-0.1, 0.1]),  # declined, better on test
            run(0.02, [-0.01, 0.01], [-0.1, 0.1]),   # declined, within noise
            run(-0.2, [-0.3, -0.1], [-0.3, -0.1]),   # kept, better
            {"cv_nll_delta": -0.1, "ece_delta_ci": None, "nll_delta_ci": None}]  # not applied: not counted
    assert bench.heldout_counts(runs) == ("held-out rule: keeps 2 of 4 applied, 1 of them worse on test beyond noise; "
                                          "declines 2, 1 of them better on test beyond noise (of 1 worse and 2 "
                                          "better in all)")
