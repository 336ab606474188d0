"""Per-class precision, recall and F1 with their 95 % intervals (probe.uncertainty.precision_recall_f1_intervals):
every view showed the three values bare while accuracy had its Wilson interval."""
import csv
import io

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from probe.diagnostics import test_diagnostics as diagnose
from probe.metrics import confusion_matrix, precision_recall_f1
from probe.predictions import Predictions
from probe.report import PerClassRow, report_csv
from probe.uncertainty import class_accuracy_interval, precision_recall_f1_intervals, wilson_interval


def _predictions(rng, n=300, k=4, seeds=3, right=0.7):
    labels = rng.integers(0, k, n)
    predicted = np.where(rng.random((seeds, n)) < right, labels, rng.integers(0, k, (seeds, n)))
    return labels, predicted


def test_points_match_scikit_learn_and_intervals_hold_them():
    labels, predicted = _predictions(np.random.default_rng(1))
    seeds = len(predicted)
    pooled = precision_recall_f1(sum(confusion_matrix(labels, p, 4) for p in predicted))
    sk = precision_recall_fscore_support(np.tile(labels, seeds), predicted.ravel(), labels=range(4), zero_division=0)
    for ours, theirs in zip(("precision", "recall", "f1"), sk):
        np.testing.assert_allclose(pooled[ours], theirs)
    ci = precision_recall_f1_intervals(labels, predicted, 4)
    for name in ("precision", "recall", "f1"):
        assert np.all((ci[name][:, 0] <= pooled[name]) & (pooled[name] <= ci[name][:, 1])), name
        assert np.all(ci[name][:, 1] - ci[name][:, 0] > 0.01), name
    # recall is the class's accuracy: the same Wilson interval as accuracy_ci
    assert np.array_equal(ci["recall"], class_accuracy_interval((predicted == labels).mean(0), labels, 4))


def test_an_image_seen_by_several_seeds_counts_once():
    """Three seeds that agree are one probe's evidence: the intervals are the one seed's, not √3 narrower."""
    labels, predicted = _predictions(np.random.default_rng(2), seeds=1)
    one = precision_recall_f1_intervals(labels, predicted, 4)
    three = precision_recall_f1_intervals(labels, np.repeat(predicted, 3, axis=0), 4)
    for name in ("precision", "recall", "f1"):
        np.testing.assert_allclose(three[name], one[name])
    tp = np.bincount(labels[predicted[0] == labels], minlength=4)
    np.testing.assert_allclose(one["precision"], wilson_interval(tp, np.bincount(predicted[0], minlength=4)))


def test_undefined_values_have_no_interval():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([[0, 1, 1, 1, 0, 0]])  # class 2 never predicted; class 3 neither present nor predicted
    ci = precision_recall_f1_intervals(labels, predicted, 4)
    assert np.isnan(ci["precision"][2]).all() and np.isnan(ci["f1"][3]).all() and np.isnan(ci["recall"][3]).all()
    assert np.isfinite(ci["f1"][2]).all() and ci["f1"][2][0] == 0.0  # F1 of 0, defined


def test_a_small_class_all_right_gets_an_f1_interval_of_some_width():
    """Three images all right, the class never predicted elsewhere: F1 1.0, whose interval a percentile bootstrap
    over test images read [1, 1] (every resample alike). F1 at the ends of the precision and recall intervals at
    97.5 % each (Bonferroni) is below 1 there, as the Wilson intervals of 3 of 3 are."""
    labels = np.array([0, 0, 0] + [1] * 20)
    predicted = np.array([[0, 0, 0] + [1] * 20])
    ci = precision_recall_f1_intervals(labels, predicted, 2)
    end = wilson_interval(3, 3, 0.975)[0]  # precision and recall alike: 3 of 3
    assert ci["f1"][0] == pytest.approx([end, 1.0])  # 2PR / (P + R) at P = R: that value
    assert ci["f1"][0][0] < 0.6


def test_the_intervals_cover_the_true_values_in_a_seeded_simulation():
    """300 test sets of 3 classes (60 images each) from one fixed classifier: each 95 % interval holds the
    population's precision, recall and F1 in at least 88 % of them (a loose bound on 300 draws)."""
    rng = np.random.default_rng(7)
    k, per_class = 3, 60
    rates = np.array([[0.8, 0.15, 0.05], [0.2, 0.7, 0.1], [0.05, 0.05, 0.9]])  # p(predicted | true)
    called = rates.sum(axis=0) * per_class
    truth = {"precision": np.diag(rates) * per_class / called, "recall": np.diag(rates),
             "f1": 2 * np.diag(rates) * per_class / (called + per_class)}
    labels = np.repeat(np.arange(k), per_class)
    held = {name: np.zeros(k) for name in truth}
    draws = 300
    for _ in range(draws):
        predicted = np.array([rng.choice(k, p=rates[y]) for y in labels])[None, :]
        ci = precision_recall_f1_intervals(labels, predicted, k)
        for name, value in truth.items():
            held[name] += (ci[name][:, 0] <= value) & (value <= ci[name][:, 1])
    for name in truth:
        assert np.all(held[name] / draws >= 0.88), (name, held[name] / draws)


def test_the_report_rows_and_csv_carry_the_intervals_and_old_rows_read_without():
    labels, predicted = _predictions(np.random.default_rng(3))
    rows = diagnose(Predictions(labels, predicted, np.full(len(labels), 0.5, np.float32)), list("abcd")).rows
    assert all(len(row[f"{name}_ci"]) == 2 for row in rows for name in ("precision", "recall", "f1"))
    base = dict(index=0, name="a", group="easy", n_train=1, n_test=1, accuracy=1.0, accuracy_std=0.0,
                accuracy_per_seed=[1.0], val_accuracy=1.0, r2=None, r=None, spread=None, gamma=None,
                output_margin=None, sample_margin_min=None, sample_margin_mean=None)
    old = PerClassRow.model_validate({**base, "precision": 0.5})  # a report.json from before the intervals
    assert old.precision_ci is None and old.f1_ci is None
    new = PerClassRow.model_validate({**base, "precision": 0.5, "precision_ci": [0.25, 0.75]})
    assert new.precision_ci == [0.25, 0.75]
    report = type("R", (), {"per_class": [old, new], "grouping": type("G", (), {"stability": None})()})()
    written = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert written[0]["precision_ci_lo"] == "" and float(written[1]["precision_ci_hi"]) == pytest.approx(0.75)


def test_a_class_predicted_but_without_test_images_has_an_f1_interval_of_some_width():
    """Class 2 has no test image but was predicted 4 times: its F1 is 0 on this test set, but its recall is unknown
    (any value in [0, 1]), so its F1 interval is F1 at its precision's upper end and recall 1, not [0, 0]."""
    labels = np.array([0] * 10 + [1] * 10)
    predicted = np.array([[0] * 8 + [2] * 2 + [1] * 8 + [2] * 2])
    ci = precision_recall_f1_intervals(labels, predicted, 3)
    upper = wilson_interval(0, 4, 0.975)[1]
    assert ci["f1"][2] == pytest.approx([0.0, 2 * upper / (upper + 1)])
    assert ci["f1"][2][1] > 0.5


def test_a_wilson_interval_holds_its_proportion_at_0_and_1_too():
    """The formula's ends at p̂ = 0 and 1 are exactly 0 and 1; rounding had put them a hair inside (lo 1.7e-18 for
    0 of 209, hi 1 − 1.1e-16 for 13 of 13), so 100 % lay outside its own interval."""
    n = np.arange(1, 3000)
    for level in (0.95, 0.975):
        assert np.all(wilson_interval(np.zeros_like(n), n, level)[:, 0] == 0.0), level
        assert np.all(wilson_interval(n, n, level)[:, 1] == 1.0), level
    assert np.isnan(wilson_interval(0, 0)).all()


def test_every_point_lies_in_its_interval_on_random_confusions_with_classes_never_predicted():
    """Precision, recall and F1 (the pooled point values) inside their intervals, undefined exactly where the point
    is (precision of a class never predicted, recall of a class without images, F1 of one neither)."""
    rng = np.random.default_rng(11)
    for _ in range(500):
        k, n, seeds = int(rng.integers(1, 7)), int(rng.integers(1, 40)), int(rng.integers(1, 4))
        labels = rng.integers(0, k, n)
        predicted = rng.integers(0, int(rng.integers(1, k + 1)), (seeds, n))  # the top classes never predicted
        if rng.random() < 0.3:
            predicted[:] = labels  # every value 1 (or undefined)
        points = precision_recall_f1(sum(confusion_matrix(labels, p, k) for p in predicted))
        ci = precision_recall_f1_intervals(labels, predicted, k)
        for name in ("precision", "recall", "f1"):
            value, lo, hi = points[name], ci[name][:, 0], ci[name][:, 1]
            assert np.array_equal(np.isnan(value), np.isnan(lo)) and np.array_equal(np.isnan(lo), np.isnan(hi))
            defined = ~np.isnan(value)
            assert np.all((lo[defined] <= value[defined]) & (value[defined] <= hi[defined])), (name, value, lo, hi)
