"""The stratified paired bootstrap: equal to a plain loop over resamples, paired, seeded, and calibrated."""
from __future__ import annotations

import math

import numpy as np
import pytest

from probe.groups import assign_groups
from probe.uncertainty import (SMALL_CLASS_IMAGES, Bootstrap, class_accuracy_interval, group_intervals, own_intervals,
                               percentile_interval, wilson_interval)


def _data(n_per_class=(30, 50, 20, 40), seed=0, p=(0.9, 0.7, 0.5, 0.8)):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    rng.shuffle(labels)
    correct = (rng.random(labels.size) < np.asarray(p)[labels]).astype(np.float64)
    return labels, correct


def test_vectorised_class_accuracy_equals_a_loop_over_the_same_resamples():
    labels, correct = _data()
    boot = Bootstrap(labels, 5, n_resamples=300, seed=3)  # class 4 has no sample
    got = boot.class_accuracy(correct)
    sorted_correct, sorted_labels = correct[boot._order], labels[boot._order]
    expected = []
    for _, index in boot._index_blocks():
        for row in index:  # the slow reference: one resample at a time
            assert np.array_equal(sorted_labels[row], sorted_labels)  # stratified: class counts kept
            expected.append(np.bincount(sorted_labels[row], weights=sorted_correct[row], minlength=5)
                            / np.maximum(1, np.bincount(sorted_labels, minlength=5)))
    expected = np.array(expected)
    expected[:, 4] = np.nan
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.shape == (300, 5) and np.isnan(got[:, 4]).all()


@pytest.mark.parametrize("block, chunk", [(4_000_000, 65_536), (1_000, 300), (700, 700), (130, 50)])
def test_resamples_are_the_block_seeded_draws_whatever_the_chunk(monkeypatch, block, chunk):
    """Resample r of block b is row r of default_rng([seed, b]).random((rows, n), float32) scaled to its class:
    drawing a block in chunks (reused buffers) gives those same resamples, so a seed's intervals do not move."""
    import probe.uncertainty as uncertainty

    labels, correct = _data()
    monkeypatch.setattr(uncertainty, "_BLOCK_ELEMENTS", block)
    monkeypatch.setattr(uncertainty, "_CHUNK_ELEMENTS", chunk)
    boot = Bootstrap(labels, 4, n_resamples=37, seed=9)
    counts = boot.counts[np.sort(labels)]
    starts = np.concatenate([[0], np.cumsum(boot.counts)[:-1]])[np.sort(labels)]
    rows = max(1, block // labels.size)
    expected = np.concatenate([
        starts + (np.random.default_rng([9, b]).random((min(rows, 37 - lo), labels.size), dtype=np.float32)
                  * counts).astype(np.int64)
        for b, lo in enumerate(range(0, 37, rows))])
    drawn = np.concatenate([index.copy() for _, index in boot._index_blocks()])
    assert np.array_equal(drawn, expected)
    sums = np.stack([np.bincount(np.sort(labels), weights=correct[boot._order][row], minlength=4) for row in expected])
    np.testing.assert_allclose(boot.class_accuracy(correct), sums / boot.counts, rtol=1e-12)


def test_resamples_are_seeded_and_paired():
    labels, correct = _data()
    a = Bootstrap(labels, 4, n_resamples=200, seed=1).class_accuracy(correct)
    b = Bootstrap(labels, 4, n_resamples=200, seed=1).class_accuracy(correct)
    c = Bootstrap(labels, 4, n_resamples=200, seed=2).class_accuracy(correct)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # Paired: a run compared with itself differs by 0 in every resample; its interval is only what its unchanged
    # classes may hide (small_class_variance), centred on 0
    groups = assign_groups(np.arange(4.0))
    point, resampled = Bootstrap(labels, 4, n_resamples=200).paired_delta_samples(correct, correct, groups)
    delta = Bootstrap(labels, 4, n_resamples=200).paired_delta(correct, correct, groups)
    for key in ("overall", "easy", "medium", "hard"):
        assert point[key] == 0.0 and not resampled[key].any()
        assert delta[key]["delta"] == 0.0 and delta[key]["lo"] == -delta[key]["hi"] < 0


def test_paired_delta_point_and_interval():
    labels, ref = _data(n_per_class=(400, 400, 400), p=(0.9, 0.8, 0.6))
    better = ref.copy()
    wrong_in_class_2 = np.flatnonzero((labels == 2) & (ref == 0))
    better[wrong_in_class_2[:40]] = 1.0  # +40 / 400 = +10 points on class 2 only, nothing lost elsewhere
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    delta = Bootstrap(labels, 3, n_resamples=1000).paired_delta(better, ref, groups)
    assert delta["hard"]["delta"] == pytest.approx(0.10)
    assert delta["overall"]["delta"] == pytest.approx(40 / 1200)
    assert 0 < delta["hard"]["lo"] < 0.10 < delta["hard"]["hi"]
    # 400 unchanged images, no resample moves them: the easy third, that one class, gets the class's own interval
    # (Newcombe's), not [0, 0]; balanced accuracy adds that class's Agresti–Min variance (1/402)/402, weight ⅓
    from probe.uncertainty import paired_class_delta_interval

    own = paired_class_delta_interval(better, ref, labels, 3)[0]
    assert delta["easy"] == {"delta": 0.0, "lo": own[0], "hi": own[1]} and own[0] == -own[1] < 0
    # Unpaired noise would be far wider: the paired interval of +10 points is only a few points wide.
    assert delta["hard"]["hi"] - delta["hard"]["lo"] < 0.06


def test_overall_interval_matches_the_binomial_width():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 4000)
    correct = (rng.random(4000) < 0.8).astype(float)
    acc = Bootstrap(labels, 10, n_resamples=2000).summary(correct)["overall"]
    lo, hi = percentile_interval(acc)
    # Stratification removes the between-class count noise only, so the width is at most the binomial one.
    binomial = 2 * 1.96 * np.sqrt(0.8 * 0.2 / 4000)
    assert 0.8 * binomial < hi - lo < 1.1 * binomial
    assert lo < correct.mean() < hi


def _scipy_interval(hits: int, n: int, level: float = 0.95) -> list[float]:
    """scipy's interval of the product's rule: Wilson with continuity correction under SMALL_CLASS_IMAGES."""
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(level, method="wilsoncc" if n < SMALL_CLASS_IMAGES else "wilson")
    return [ci.low, ci.high]


def test_class_accuracy_interval_is_scipys_wilson_interval():
    from scipy.stats import binomtest

    labels = np.array([0] * 3 + [1] * 1 + [2] * 40 + [3] * 7)
    correct = np.concatenate([np.ones(3), np.zeros(1), (np.arange(40) < 31).astype(float), np.zeros(7)])
    correct[-1] = 1.0  # class 3: 1 of 7
    ci = class_accuracy_interval(correct, labels, 5)
    for k, (hits, n) in enumerate([(3, 3), (0, 1), (31, 40), (1, 7)]):
        np.testing.assert_allclose(ci[k], _scipy_interval(hits, n), atol=1e-12)
    # where a bootstrap of the class's images gives [1, 1] and [0, 0]: 3 of 3 → [31.00, 100] %, 0 of 1 → [0, 94.54] %
    np.testing.assert_allclose(ci[0], [0.30999, 1.0], atol=5e-5)
    np.testing.assert_allclose(ci[1], [0.0, 0.94538], atol=5e-5)
    assert np.isnan(ci[4]).all()  # no samples
    # a seed mean (2 of 3 seeds right on each of 10 images) is p̂ = 2/3 over n = 10
    np.testing.assert_allclose(class_accuracy_interval(np.full(10, 2 / 3), np.zeros(10, int), 1)[0],
                               wilson_interval(20 / 3, 10))
    np.testing.assert_allclose(wilson_interval(8, 10, 0.9), _scipy_interval(8, 10, 0.9), atol=1e-12)
    plain = binomtest(8, 10).proportion_ci(0.95, "wilson")
    np.testing.assert_allclose(wilson_interval(8, 10, corrected=False), [plain.low, plain.high], atol=1e-12)
    with pytest.raises(ValueError, match="level must lie in"):
        wilson_interval(1, 2, 1.0)


def test_corrected_interval_of_fractional_successes_is_the_continuity_corrected_score_set():
    """Seed means give fractional successes: within half an image of none or all right, the corrected interval
    reaches 0 or 1 (9 of 10 seeds right on one image read [3.6, 94.2] %, below its plain interval's 99.8 %)."""
    from statistics import NormalDist

    grid = np.linspace(0.0, 1.0, 200_001)
    for level in (0.5, 0.95):
        z = NormalDist().inv_cdf(0.5 + level / 2)
        for n in (0.3, 1.0, 3.0, 7.5):
            for k in np.linspace(0.0, n, 21):
                p = k / n  # every π with max(|p̂ − π| − 1/(2n), 0) ≤ z·√(π(1 − π)/n), by brute force
                held = grid[np.maximum(np.abs(p - grid) - 0.5 / n, 0.0) ** 2 <= z * z * grid * (1 - grid) / n]
                np.testing.assert_allclose(wilson_interval(k, n, level), [min(held[0], p), max(held[-1], p)],
                                           atol=1e-4, err_msg=f"{k} of {n} at {level}")
    assert wilson_interval(0.9, 1)[1] == 1.0 and wilson_interval(0.1, 1)[0] == 0.0


def test_own_intervals_are_scipys_wilson_per_class_and_overall_and_the_group_draws():
    from scipy.stats import binomtest

    labels = np.array([0] * 3 + [1] * 1 + [2] * 40 + [3] * 7)
    correct = np.concatenate([np.ones(3), np.zeros(1), (np.arange(40) < 31).astype(float), np.zeros(7)])
    correct[-1] = 1.0  # 35 of 51 right
    groups = {"easy": [0], "medium": [2], "hard": [1, 3, 4]}
    own = own_intervals(correct.astype(np.float32), labels, 5, groups)
    expected = binomtest(35, 51).proportion_ci(confidence_level=0.95, method="wilson")
    np.testing.assert_allclose(own.overall, [expected.low, expected.high], atol=1e-12)
    np.testing.assert_array_equal(own.classes, class_accuracy_interval(correct, labels, 5))
    assert own.groups == group_intervals(correct, labels, 5, groups)
    assert own.groups["easy"] == pytest.approx([0.30999, 1.0], abs=5e-5)  # a third of one class: its interval
    assert own_intervals(correct, labels, 5).groups is None  # no thirds without a grouping


def test_percentile_interval():
    samples = np.random.default_rng(0).normal(size=(1000, 3))
    np.testing.assert_allclose(percentile_interval(samples, 0.9), np.percentile(samples, [5, 95], axis=0))
    with pytest.raises(ValueError, match="level must lie in"):
        percentile_interval(samples, 1.5)
    # float32 rounding of seed-mean scores (float32(2/3) + float32(1/3) - 1 = 3e-8) is no difference: an interval
    # whose resamples are all "equal" is exactly [0, 0], "within noise"; one image in a million is kept
    rounding = np.float64(np.float32(2 / 3)) + np.float64(np.float32(1 / 3)) - 1.0
    assert rounding != 0.0
    np.testing.assert_array_equal(percentile_interval(np.full((100, 1), rounding / 2)), [[0.0], [0.0]])
    np.testing.assert_array_equal(percentile_interval(np.full((100, 1), 2e-6)), [[2e-6], [2e-6]])


def test_group_stability():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 200)
    # Thirds of 6 classes are 2/2/2. Classes 1 and 2 are near-equal and straddle the easy/medium edge: they
    # swap thirds from resample to resample; the well separated classes keep theirs.
    p = np.array([0.99, 0.85, 0.84, 0.60, 0.40, 0.20])
    correct = (rng.random(labels.size) < p[labels]).astype(float)
    per_class = np.bincount(labels, weights=correct) / 200
    groups = assign_groups(per_class)
    stability = Bootstrap(labels, 6, n_resamples=500).group_stability(correct, groups)
    assert stability[[0, 3, 4, 5]].min() > 0.95
    assert 0.2 < stability[1] < 0.8 and 0.2 < stability[2] < 0.8


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels must lie in"):
        Bootstrap(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="n_resamples must be >= 1"):
        Bootstrap(np.array([0, 1]), 2, n_resamples=0)
    with pytest.raises(ValueError, match="correct must have the labels' shape"):
        Bootstrap(np.array([0, 1]), 2).class_accuracy(np.ones(3))


def test_balanced_overall_weighs_every_class_alike_in_every_resample():
    from sklearn.metrics import balanced_accuracy_score

    labels, ref = _data(n_per_class=(900, 90, 10), p=(0.9, 0.6, 0.3))
    boot = Bootstrap(labels, 4, n_resamples=500, seed=2, overall="balanced")  # class 3 has no sample
    summary = boot.summary(ref)
    np.testing.assert_allclose(summary["overall"], np.nanmean(summary["per_class"], axis=1), rtol=1e-12)
    # raising the rare class by 5 of its 10 images: +16.7 balanced points, +0.5 accuracy points
    better = ref.copy()
    better[np.flatnonzero((labels == 2) & (ref == 0))[:5]] = 1.0
    delta = boot.paired_delta(better, ref)["overall"]
    predicted = lambda correct: np.where(correct == 1, labels, (labels + 1) % 3)  # noqa: E731
    expected = balanced_accuracy_score(labels, predicted(better)) - balanced_accuracy_score(labels, predicted(ref))
    assert delta["delta"] == pytest.approx(expected) == pytest.approx(5 / 10 / 3)
    assert 0 < delta["lo"] <= delta["hi"]
    plain = Bootstrap(labels, 4, n_resamples=500, seed=2).paired_delta(better, ref)
    assert plain["overall"]["delta"] == pytest.approx(5 / 1000)
    assert plain["balanced"] == delta  # balanced accuracy comes with every paired delta, on the same resamples
    with pytest.raises(ValueError, match="Unknown overall metric"):
        Bootstrap(labels, 4, overall="macro")


def test_a_third_or_balanced_mean_with_one_class_of_images_gets_that_class_s_wilson_interval():
    """A long-tailed round: new labelled images of two classes (cat 4 of 6 right, truck 0 of 3) scored by a probe of
    13: cat alone has images in its third, which read 66.7 % [26.3, 100.0] beside cat's own row [30.0, 90.3] (the
    rule "a third of one class is that class" counted the third's classes, not those with images); and images of
    one class gave its balanced accuracy, the same number as its overall accuracy, another interval."""
    from scipy.stats import binomtest

    labels = np.array([1] * 6 + [3] * 3)
    correct = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    groups = {"easy": [0, 4], "medium": [1, 2], "hard": [3, 5]}
    got = group_intervals(correct, labels, 6, groups)
    cat, truck = _scipy_interval(4, 6), _scipy_interval(0, 3)
    assert got["medium"] == pytest.approx(cat, abs=1e-9)
    assert got["hard"] == pytest.approx(truck, abs=1e-9)
    assert all(np.isnan(got["easy"]))
    assert got["balanced"] != pytest.approx(cat)  # two classes with images: the draws' interval
    alone = group_intervals(correct[:6], labels[:6], 6, groups)
    assert alone["balanced"] == pytest.approx(cat, abs=1e-9)


def test_means_over_classes_of_one_test_image_each_are_the_wilson_interval_of_their_images():
    """A few-shot round (60 classes, one test image each): balanced accuracy, the same number as overall accuracy
    there, read 26.7 % [13.5, 38.9] beside overall's [17.1, 39.0], and a third of 20 classes, 4 right, 20.0 % [0.0,
    42.4]: the draws gave every one-image class the largest variance whatever it scored. A mean over such classes is
    the proportion of their images right (a sum of Bernoulli trials): Wilson's interval of the pooled count."""
    from scipy.stats import binomtest

    labels = np.arange(20)
    correct = np.zeros(20)
    correct[[0, 3, 5, 7, 12]] = 1.0
    groups = {"easy": list(range(10)), "medium": [], "hard": list(range(10, 20))}
    own = own_intervals(correct, labels, 20, groups)
    assert own.groups["easy"] == pytest.approx(_scipy_interval(4, 10), abs=1e-9) and own.groups["easy"][0] > 0
    assert own.groups["balanced"] == pytest.approx(own.overall, abs=1e-12)
    # seed means (a fraction of the seeds right) pool the same way; a class of two images keeps the draws
    halves = correct.copy()
    halves[1] = 0.5
    assert group_intervals(halves, labels, 20, groups)["easy"][0] > 0
    two = np.r_[labels, 0]
    assert group_intervals(np.r_[correct, 1.0], two, 20, groups)["easy"] != pytest.approx(
        wilson_interval(5.0, 11.0).tolist())


def test_group_intervals_of_a_run_match_the_normal_approximation():
    """test_diagnostics' interval of a third's accuracy (a macro mean of per-class accuracies): two hard classes
    of 400 test images at 50 % and 70 % make 60 % with standard error ½·√(.25/400 + .21/400) = 1.70 points, so a
    95 % interval of about ±3.3 points; a third of one class whose 400 images are all right gets that class's
    interval, Wilson's of 400 of 400 as its table row ([99.05, 100]), not the stratified bootstrap's [100, 100]
    nor a second interval of the same accuracy (the Jeffreys draws' [99.4, 100])."""
    from scipy.stats import binomtest

    from probe.diagnostics import test_diagnostics
    from probe.predictions import Predictions

    labels = np.repeat([0, 1, 2], 400)
    right = np.concatenate([np.arange(400) < 200, np.arange(400) < 280, np.ones(400, dtype=bool)])
    predicted = np.where(right, labels, (labels + 1) % 3)
    groups = {"easy": [2], "medium": [], "hard": [0, 1]}
    d = test_diagnostics(Predictions(labels, predicted[None, :], np.ones(1200)), ["a", "b", "c"], groups)
    half = 1.96 * 0.5 * np.sqrt(0.25 / 400 + 0.21 / 400)
    assert d.group_ci["hard"] == pytest.approx([0.6 - half, 0.6 + half], abs=0.006)
    wilson = binomtest(400, 400).proportion_ci(method="wilson")
    assert d.group_ci["easy"] == pytest.approx([wilson.low, wilson.high], abs=1e-9)
    assert d.group_ci["easy"] == pytest.approx(d.rows[2]["accuracy_ci"], abs=1e-12)
    assert all(np.isnan(d.group_ci["medium"]))  # an empty third has no interval
    balanced = (0.5 + 0.7 + 1.0) / 3
    assert d.group_ci["balanced"][0] < balanced < d.group_ci["balanced"][1]
    assert test_diagnostics(Predictions(labels, predicted[None, :], np.ones(1200)), ["a", "b", "c"]).group_ci is None


def test_worst_class_is_the_lowest_class_accuracy_of_each_resample():
    """Whichever class is worst in a resample (it can change from one to the next); a class absent from a
    resample does not count."""
    labels = np.repeat(np.arange(3), [40, 40, 3])
    correct = np.r_[np.full(40, 1.0), (np.arange(40) % 2).astype(float), np.ones(3)]
    boot = Bootstrap(labels, 3, n_resamples=200, seed=0)
    summary = boot.summary(correct)
    np.testing.assert_array_equal(summary["worst_class"], np.nanmin(summary["per_class"], axis=1))
    delta = boot.paired_delta(correct, np.r_[np.zeros(40), correct[40:]])
    assert delta["worst_class"]["delta"] == pytest.approx(0.5)  # class 1 (0.5) against class 0 (0.0)
    assert delta["worst_class"]["lo"] > 0


def test_simultaneous_lower_bounds_reduce_to_the_percentile_bound_and_widen_with_independent_rows():
    from probe.uncertainty import percentile_interval, simultaneous_lower_bounds

    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 1000))
    bounds, tail = simultaneous_lower_bounds(one)
    assert tail == pytest.approx(0.025) and bounds[0] == percentile_interval(one[0])[0]
    # 24 independent rows: the common tail is Šidák's 1 − 0.975^(1/24) = 0.00105, on the 1/B grid 0.001
    many = rng.standard_normal((24, 1000))
    bounds, tail = simultaneous_lower_bounds(many)
    assert tail == pytest.approx(0.001)
    assert np.array_equal(bounds, np.quantile(many, 0.001, axis=1))
    below_some = (many < bounds[:, None]).any(axis=0).mean()
    assert below_some <= 0.025 and (many < percentile_interval(many.T)[0][:, None]).any(axis=0).mean() > 0.3
    # copies of one row are one chance, not 24; a row without spread (a candidate equal to the reference) costs
    # nothing; a row of nan (no sample in its group) has a nan bound
    copies = np.repeat(one, 24, axis=0)
    assert simultaneous_lower_bounds(copies)[1] == pytest.approx(0.025)
    mixed = np.vstack([one, np.zeros((1, 1000)), np.full((1, 1000), np.nan)])
    bounds, tail = simultaneous_lower_bounds(mixed)
    assert tail == pytest.approx(0.025) and bounds[1] == 0 and np.isnan(bounds[2])
    with pytest.raises(ValueError, match=r"samples must be \(m, B\) with B >= 1, got shape \(3,\)"):
        simultaneous_lower_bounds(np.zeros(3))
    with pytest.raises(ValueError, match="level must lie in"):
        simultaneous_lower_bounds(one, level=1.0)


def test_a_third_of_classes_all_right_or_all_wrong_still_has_an_interval():
    """The hard third of 2 classes, one with 0 of 3 test images right and one with 3 of 3: 50 %, and not [50, 50]
    (what a stratified bootstrap gives: it cannot move either class); the draws are seeded."""
    from probe.uncertainty import GROUP_DRAWS, group_intervals

    labels, correct = np.repeat([0, 1], 3), np.array([0, 0, 0, 1, 1, 1], dtype=float)
    groups = {"easy": [], "medium": [], "hard": [0, 1]}
    got = group_intervals(correct, labels, 2, groups)
    lo, hi = got["hard"]
    assert 0.1 < lo < 0.3 and 0.7 < hi < 0.9 and got["hard"] == group_intervals(correct, labels, 2, groups)["hard"]
    assert got["balanced"] == got["hard"] and all(np.isnan(got["easy"]))
    # the same from the draws by hand: each class's Jeffreys posterior Beta(s + ½, n − s + ½), centred on its
    # observed accuracy and widened by √((n + 1)/(n − 1)) = √2 at 3 images (a statistics review: the macro means'
    # intervals covered 79–92 % at 3 to 10 images per class)
    rng = np.random.default_rng(0)
    posterior = rng.beta(np.array([0.5, 3.5]), np.array([3.5, 0.5]), size=(GROUP_DRAWS, 2))
    draws = (np.array([0.0, 1.0]) + np.sqrt(2) * (posterior - np.array([0.5, 3.5]) / 4)).mean(axis=1)
    assert got["hard"] == pytest.approx(np.percentile(draws, [2.5, 97.5]).tolist())


def test_percentile_interval_of_a_class_without_images_is_nan_without_a_warning():
    """A class absent from the images compared has nan in every resample: its interval is nan, and no numpy
    "All-NaN slice" warning reaches the user's terminal (it did, from mr2probe compare --features)."""
    import warnings

    from probe.uncertainty import percentile_interval

    samples = np.column_stack([np.linspace(0, 1, 101), np.full(101, np.nan)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = percentile_interval(samples, 0.9)
    assert lo[0] == pytest.approx(0.05) and hi[0] == pytest.approx(0.95) and np.isnan(lo[1]) and np.isnan(hi[1])


def test_a_third_of_classes_all_right_has_an_interval_reaching_100():
    """Three classes of 3, 3 and 4 test images all right: the third is 100 %, and its interval ends at 100 (the
    Jeffreys draws gave [87.3, 99.9] beside 100 %, leaving the observed value out; a new-user round): each class's
    draws are centred on its observed accuracy, the interval clipped to [0, 1]; all wrong: it starts at 0."""
    from probe.uncertainty import GROUP_DRAWS, group_intervals, percentile_interval

    labels = np.repeat([0, 1, 2], [3, 3, 4])
    groups = {"easy": [0, 1, 2], "medium": [], "hard": []}
    s, n = np.array([3.0, 3.0, 4.0]), np.array([3.0, 3.0, 4.0])
    posterior = np.random.default_rng(0).beta(s + 0.5, n - s + 0.5, size=(GROUP_DRAWS, 3))
    draws = s / n + np.sqrt((n + 1) / (n - 1)) * (posterior - (s + 0.5) / (n + 1))  # widened: group_intervals
    lo, hi = percentile_interval(draws.mean(axis=1))
    assert hi > 1.0  # centred on 100 %: clipped
    got = group_intervals(np.ones(10), labels, 3, groups)
    assert got["easy"] == [pytest.approx(lo), 1.0] and got["balanced"] == got["easy"] and 0.7 < lo < 0.85
    wrong = group_intervals(np.zeros(10), labels, 3, groups)
    assert wrong["easy"][0] == 0.0 and wrong["easy"][1] == pytest.approx(1 - lo, abs=0.02)


def test_group_intervals_of_many_small_classes_sit_around_the_observed_accuracy():
    """300 classes of 10 test images at 67.5 %: the uncentred Jeffreys draws pulled every class toward 50 % by
    (½ − p)/(n + 1), a bias that does not shrink with the class count while the interval narrows like 1/√K, so
    the interval left out the observed balanced accuracy ([64.8, 67.0] beside 67.5; a scale round). Centred, it
    holds it near its middle, about as wide as the normal approximation of a mean of 300 binomial proportions."""
    from probe.uncertainty import group_intervals

    rng = np.random.default_rng(0)
    k, n = 300, 10
    p = np.clip(rng.beta(2.0, 1.0, k), 0, 1)
    labels = np.repeat(np.arange(k), n)
    correct = (rng.random(k * n) < p[labels]).astype(float)
    acc = np.bincount(labels, weights=correct) / n
    groups = {"easy": [], "medium": [], "hard": list(range(k))}
    lo, hi = group_intervals(correct, labels, k, groups)["balanced"]
    half = 1.96 * np.sqrt(np.sum(np.clip(acc * (1 - acc), 1 / (4 * n), None) / n)) / k
    observed = acc.mean()
    assert lo < observed < hi
    assert abs((lo + hi) / 2 - observed) < 0.25 * (hi - lo)
    assert hi - lo == pytest.approx(2 * half, rel=0.3)


def test_the_sign_flip_test_is_the_sign_test_with_one_seed_and_exact_with_several():
    """probe.uncertainty.sign_flip_test: the exact paired permutation test of a mean of per-image differences; with
    ±1 differences it is the exact sign test, and with 3 seeds it equals the enumeration of every sign pattern."""
    import itertools

    from probe.uncertainty import sign_flip_test, sign_test

    rng = np.random.default_rng(0)
    for up, down in [(0, 4), (3, 0), (7, 2), (20, 21), (0, 0), (5, 5)]:
        diff = np.r_[np.ones(up), -np.ones(down), np.zeros(3)]
        assert sign_flip_test(diff) == pytest.approx(sign_test(up, down), abs=1e-12)
    for _ in range(20):
        diff = rng.integers(-3, 4, int(rng.integers(1, 10))) / 3
        patterns = np.array(list(itertools.product([-1, 1], repeat=diff.size)))
        exact = np.mean(np.abs(patterns @ diff) >= abs(diff.sum()) - 1e-9)
        assert sign_flip_test(diff, seeds=3) == pytest.approx(exact, abs=1e-12)
    assert sign_flip_test(np.r_[[-1.0] * 3, [-1 / 3]], seeds=3) == 0.125  # 4 of 4 one way, printed 0.12 not 0.13


def test_the_sign_flip_test_of_unequal_weights_and_of_long_lattices():
    """A second review: unequal weights past 16 images took a normal approximation (0.045 where the test is 0.076),
    all-zero weights fell through to the unweighted test, and a lattice of 1/380 (19 seeds against 20) took 44 s."""
    from probe.uncertainty import sign_flip_test

    labels = np.r_[np.zeros(4, int), np.ones(1000, int)]
    diff = np.zeros(1004)
    diff[:4], diff[4:11], diff[11:18] = -1, 1, -1
    weights = 1.0 / np.bincount(labels)[labels]
    assert sign_flip_test(diff, 1, weights) == pytest.approx(0.0757, abs=0.006)  # 400k draws of the patterns: 0.0757
    assert sign_flip_test(np.ones(10), 1, np.zeros(10)) == 1.0
    with pytest.raises(ValueError, match="weights must be finite"):
        sign_flip_test(np.ones(3), 1, np.array([1.0, -1.0, 1.0]))
    # a long lattice: the normal approximation of its many terms, close to the characteristic-function FFT's exact
    rng = np.random.default_rng(0)
    diff = rng.integers(0, 19, 3_000) / 19 - rng.integers(0, 20, 3_000) / 20 + 0.004
    diff = np.rint(diff * 380) / 380
    from probe import uncertainty

    scaled = np.rint(diff * 380).astype(np.int64)
    magnitudes, counts = np.unique(np.abs(scaled[scaled != 0]), return_counts=True)
    span = int((magnitudes * counts).sum())
    exact = uncertainty._characteristic_fft(magnitudes, counts, span)
    values = np.arange(exact.size) - span
    assert sign_flip_test(diff, 380) == pytest.approx(exact[np.abs(values) >= abs(scaled.sum())].sum(), abs=0.005)


def test_a_p_value_at_the_floor_of_the_monte_carlo_test_reads_at_most():
    """A new-user round: a weighted sign-flip test printed "p = 5e-05", the least (1 + 0) / (1 + 20,000) its draws
    can give, as if exact; the exact paths keep "=", even below the floor."""
    from probe.uncertainty import SIGN_FLIP_FLOOR, p_text, sign_flip_test

    labels = np.r_[np.zeros(5, int), np.ones(60, int)]
    weights = 1.0 / np.bincount(labels)[labels]
    drawn = sign_flip_test(np.ones(65), 1, weights)  # 65 images, unequal weights: the draws, none as far out
    assert drawn == SIGN_FLIP_FLOOR == 1 / 20_001
    assert p_text(drawn) == "p ≤ 5e-05"
    assert p_text(min(1.0, 24 * drawn), tests=24) == "p ≤ 0.0012"  # Bonferroni over 24: 24 times the floor
    exact = sign_flip_test(np.ones(65))  # equal weights: exact, 2 · 2⁻⁶⁵
    assert exact == pytest.approx(2.0 ** -64) and p_text(exact) == "p = 5.4e-20"
    assert p_text(sign_flip_test(np.ones(14), 1, weights[:14])) == "p = 0.00012"  # unequal, enumerated: 2 · 2⁻¹⁴
    assert p_text(0.047) == "p = 0.047" and p_text(1.0, tests=30_000) == "p = 1"


def _one_image_classes(k=120, differing=8, seed=0):
    """``k`` classes of one sample each: a reference right on about 60 % of them, a candidate that differs on
    ``differing`` of them (with these seeds, 6 gained and 2 lost of 8)."""
    rng = np.random.default_rng(seed)
    reference = (rng.random(k) < 0.6).astype(np.float64)
    candidate = reference.copy()
    flipped = rng.choice(k, differing, replace=False)
    candidate[flipped] = 1 - candidate[flipped]
    return np.arange(k), reference, candidate, flipped


def test_classes_of_one_sample_are_resampled_together():
    """120 classes of one test image each: a class was its one image in every resample, so a comparison read overall
    +1.39 [+1.39, +1.39] (an extremes round). Pooled, each resample draws 120 of their images."""
    labels, reference, candidate, _ = _one_image_classes()
    boot = Bootstrap(labels, 120, n_resamples=400, seed=2)
    assert np.array_equal(boot.pooled, np.arange(120))
    times = boot.multiplicity()
    assert times.shape == (400, 120) and np.all(times.sum(axis=1) == 120) and 0.9 < times.mean(axis=0).mean() < 1.1
    accuracy = boot.class_accuracy(candidate)  # a class's own sample where drawn, nan where not
    assert np.array_equal(np.isnan(accuracy), times == 0)
    assert np.array_equal(np.where(times > 0, accuracy, 0), np.where(times > 0, candidate[None, :], 0))
    # the overall and balanced accuracy of each resample: the mean over its 120 drawn images
    summary = boot.summary(candidate)
    expected = (times * candidate).sum(axis=1) / 120
    assert np.allclose(summary["overall"], expected, atol=1e-12) and np.allclose(summary["balanced"], expected)
    delta = boot.paired_delta(candidate, reference)["overall"]
    assert delta["delta"] == pytest.approx((candidate - reference).mean())
    assert delta["delta"] == pytest.approx(4 / 120)  # 6 images gained, 2 lost
    assert delta["hi"] - delta["lo"] > 0.05 and delta["lo"] < 0 < delta["hi"]  # was [+3.33, +3.33]


def test_a_group_mean_counts_each_pooled_class_as_often_as_it_was_drawn():
    labels, reference, _, _ = _one_image_classes(k=30)
    groups = {"easy": list(range(10)), "medium": list(range(10, 20)), "hard": list(range(20, 30))}
    boot = Bootstrap(labels, 30, n_resamples=200, seed=1)
    times, hard = boot.multiplicity(), np.arange(20, 30)
    got = boot.summary(reference, groups)["hard"]
    with np.errstate(all="ignore"):
        expected = (times[:, hard] * reference[hard]).sum(axis=1) / times[:, hard].sum(axis=1)
    assert np.allclose(got, expected, equal_nan=True) and np.nanstd(got) > 0


def test_pooling_leaves_the_other_classes_draws_as_they_were():
    """Classes 0 and 1 of one sample each are pooled; the classes of two or more draw what they drew without a
    pool (here: class 1's sample relabelled to class 0, which then has two and no pool is made)."""
    labels = np.concatenate([[0, 1], np.repeat(np.arange(2, 6), [3, 7, 2, 5])])
    correct = np.random.default_rng(4).random(labels.size).round()
    pooled, plain = Bootstrap(labels, 6, n_resamples=300, seed=7), Bootstrap(np.where(labels == 1, 0, labels), 6,
                                                                            n_resamples=300, seed=7)
    assert pooled.pooled.tolist() == [0, 1] and plain.pooled.size == 0 and plain.multiplicity() is None
    assert np.array_equal(pooled.class_accuracy(correct)[:, 2:], plain.class_accuracy(correct)[:, 2:])
    assert Bootstrap(np.array([0, 1, 1, 2, 2]), 3).pooled.size == 0  # one class of one sample: nothing to pool


def test_a_class_of_one_sample_gets_the_square_and_add_interval_of_its_difference():
    """No resample moves a one-image class's difference: it read -100 [-100, -100]. Newcombe's square-and-add of
    the two Wilson intervals (n = 1, where a marginal is 0 and φ with it): lost on its image [-100, +12.2], right
    in both [-79.3, +79.3]."""
    from probe.uncertainty import paired_class_delta_interval

    z2 = 1.959963984540054 ** 2
    reach = z2 / (1 + z2)  # the Wilson interval of 1 of 1 is [1 − reach, 1], of 0 of 1 [0, reach]
    got = paired_class_delta_interval(np.array([0.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
                                      np.arange(4), 4)
    assert np.allclose(got, [[-1, -1 + np.sqrt(2) * reach], [1 - np.sqrt(2) * reach, 1], [-reach, reach],
                             [-reach, reach]], atol=1e-12)
    assert reach == pytest.approx(0.79345, abs=1e-5)
    labels, reference, candidate, flipped = _one_image_classes()
    _, classes = Bootstrap(labels, 120, n_resamples=200, seed=0).paired_intervals(candidate, reference)
    assert np.array_equal(classes, paired_class_delta_interval(candidate, reference, labels, 120))
    assert np.all(classes[flipped, 0] < 0) and np.all(classes[flipped, 1] > 0)  # one image: never beyond noise


def _paired_table(both: int, first: int, second: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """The two scorings of a 2 × 2 table's samples: right in both, only the first, only the second, in neither."""
    sizes = [both, first, second, neither]
    return np.repeat([1.0, 1.0, 0.0, 0.0], sizes), np.repeat([1.0, 0.0, 1.0, 0.0], sizes)


@pytest.mark.parametrize("table", [(1, 1, 7, 12), (59, 6, 16, 80), (30, 2, 1, 3), (5, 0, 3, 0)])
def test_a_class_difference_is_newcombes_paired_score_interval(table):
    """Newcombe (1998, method 10), step by step from scipy's Wilson intervals of the two accuracies: φ from the
    table, less n/2 when ad − bc > n/2, 0 from 0 to n/2, as it is below 0; square-and-add less 2φ times the two
    arms. The tables: Bentur et al. (2009) and Cavo et al. (2012), the examples of Fagerland, Lydersen & Laake's
    paired 2 × 2 chapter; one with ad − bc > n/2, one with a marginal 0."""
    from scipy.stats import binomtest

    from probe.uncertainty import paired_class_delta_interval

    a, b, c, d = table
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = (tuple(binomtest(k, n).proportion_ci(0.95, method="wilson")) for k in (a + b, a + c))
    cross, margins = a * d - b * c, (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0 if margins == 0 else (cross - n / 2 if cross > n / 2 else min(cross, 0)) / math.sqrt(margins)
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    hi = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2))
    first, second = _paired_table(*table)
    # the class among others, its samples shuffled: counted by label, not by position
    order = np.random.default_rng(0).permutation(n + 3)
    labels = np.concatenate([np.full(n, 1), [0, 0, 2]])[order]
    x, y = np.concatenate([first, [1, 0, 1]])[order], np.concatenate([second, [1, 1, 1]])[order]
    got = paired_class_delta_interval(x, y, labels, 4)
    assert got[1] == pytest.approx([max(lo, -1.0), min(hi, 1.0)], abs=1e-12)
    assert np.isnan(got[3]).all()  # a class without samples
    if table == (1, 1, 7, 12):  # -28.6 [-50.7, -2.6]
        assert got[1] == pytest.approx([-0.50692, -0.02556], abs=1e-5)


def test_a_class_of_two_images_lost_on_both_is_not_certain():
    """The percentile bootstrap resampled 2 images lost on both to -100 every time: [-100, -100]. Newcombe's
    interval reads -100 [-100, -7.0]; one lost of two reaches past 0; at 300 images it agrees with the bootstrap's
    percentile interval of that class's difference to a point."""
    from probe.uncertainty import paired_class_delta_interval

    labels = np.repeat([0, 1], [2, 2])
    got = paired_class_delta_interval(np.array([0.0, 0.0, 0.0, 1.0]), np.ones(4), labels, 2)
    assert got[0] == pytest.approx([-1.0, -0.0700], abs=1e-4) and got[1, 0] < 0 < got[1, 1]
    _, classes = Bootstrap(labels, 2, n_resamples=200, seed=0).paired_intervals(np.array([0.0, 0.0, 0.0, 1.0]),
                                                                                 np.ones(4))
    assert np.array_equal(classes, got)  # what a comparison shows
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 300)
    y = (rng.random(600) < 0.7).astype(float)
    x = np.where(rng.random(600) < 0.15, 1.0 - y, y)
    newcombe = paired_class_delta_interval(x, y, labels, 2)
    boot = Bootstrap(labels, 2, n_resamples=2000, seed=3)
    resampled = boot.class_accuracy(x) - boot.class_accuracy(y)
    assert np.abs(newcombe - percentile_interval(resampled).T).max() < 0.01


def test_a_class_the_runs_score_differently_on_few_images_gets_newcombes_interval_at_any_size():
    """A decision round: on real long-tailed Fashion-MNIST predictions a class of 60 test images whose two runs
    differ on an image or two read -1.67 [-5.00, +0.00] or +0.00 [+0.00, +0.00], the percentile bootstrap seeing no
    variation the images did not show: it held the class's difference in 46-87 % of subsamples. Fewer than
    FEW_CHANGED_IMAGES changed images (where the sign test cannot pass either): Newcombe's interval, as for a class
    of few images; from there on the bootstrap's percentile interval, as before."""
    from probe.uncertainty import FEW_CHANGED_IMAGES, paired_class_delta_interval

    labels = np.repeat([0, 1, 2], 60)
    reference = np.ones(180)
    candidate = reference.copy()
    candidate[:1] = 0.0                                # class 0: one image lost
    candidate[60:60 + FEW_CHANGED_IMAGES] = 0.0        # class 1: as many lost as the sign test needs to pass
    boot = Bootstrap(labels, 3, n_resamples=500, seed=0)
    _, classes = boot.paired_intervals(candidate, reference)
    newcombe = paired_class_delta_interval(candidate, reference, labels, 3)
    assert np.array_equal(classes[0], newcombe[0]) and classes[0, 0] < -0.05 and classes[0, 1] > 0
    assert np.array_equal(classes[2], newcombe[2]) and classes[2, 0] < 0 < classes[2, 1]  # none changed: not [0, 0]
    resampled = boot.class_accuracy(candidate) - boot.class_accuracy(reference)
    assert classes[1] == pytest.approx(percentile_interval(resampled[:, 1]), abs=1e-12)


def test_the_normal_approximation_of_a_long_lattice_is_two_sided_with_its_continuity_correction():
    """Past 10⁸ terms the sign-flip test of equal weights is the normal approximation of the sum's distribution:
    two-sided, with the lattice's continuity correction, p = 2·Φ̄((|S| − 1)/σ), σ² = Σ m²; checked against
    scipy's normal tail and, on a difference near 0 (a p far from 0), against the exact characteristic-function
    distribution. A one-sided tail (half of it) or a missing correction passed the test with a p near 0."""
    from scipy.stats import norm

    from probe import uncertainty
    from probe.uncertainty import sign_flip_test

    rng = np.random.default_rng(2)
    diff = np.rint((rng.integers(0, 19, 3_000) / 19 - rng.integers(0, 20, 3_000) / 20) * 380) / 380
    scaled = np.rint(diff * 380).astype(np.int64)
    magnitudes, counts = np.unique(np.abs(scaled[scaled != 0]), return_counts=True)
    span = int((magnitudes * counts).sum())
    assert magnitudes.size > 8 and span * magnitudes.size > 25_000_000  # the branch under test
    observed = abs(int(scaled.sum()))
    sigma = math.sqrt(float((magnitudes.astype(np.float64) ** 2 * counts).sum()))
    p = sign_flip_test(diff, 380)
    assert 0.05 < p < 0.95  # a p that a one-sided tail would halve
    assert p == pytest.approx(2 * norm.sf((observed - 1) / sigma), rel=1e-9)
    exact = uncertainty._characteristic_fft(magnitudes, counts, span)
    values = np.arange(exact.size) - span
    assert p == pytest.approx(exact[np.abs(values) >= observed].sum(), abs=0.002)


@pytest.mark.parametrize("num_classes", [5, 8])
def test_group_stability_is_the_share_of_resamples_whose_thirds_keep_each_class(num_classes):
    """Each class's stability is the fraction of resamples in which probe.groups.assign_groups, applied to that
    resample's class accuracies, puts it in its given third: checked resample by resample, at class counts whose
    thirds round up (5 → 2/1/2, 8 → 3/2/3), where a floor of K/3 for the edge thirds passed the other tests."""
    rng = np.random.default_rng(num_classes)
    labels = np.repeat(np.arange(num_classes), 30)
    p = np.linspace(0.95, 0.45, num_classes)
    correct = (rng.random(labels.size) < p[labels]).astype(float)
    groups = assign_groups(np.bincount(labels, weights=correct) / 30)
    boot = Bootstrap(labels, num_classes, n_resamples=300, seed=1)
    stability = boot.group_stability(correct, groups)
    given = {k: name for name, members in groups.items() for k in members}
    kept = np.zeros(num_classes)
    for per_class in boot.class_accuracy(correct):
        resampled = assign_groups(per_class)
        for name, members in resampled.items():
            kept[[k for k in members if given[k] == name]] += 1
    np.testing.assert_allclose(stability, kept / 300, rtol=0, atol=1e-12)


def test_the_worst_class_leaves_out_a_class_without_images():
    """A class without images in the split (nan accuracy) is not the worst class: in every resample and on the split
    itself the worst is the lowest accuracy among the classes present."""
    labels = np.repeat([0, 1, 3], [20, 20, 20])  # class 2: no image
    correct = np.r_[np.ones(20), (np.arange(20) < 15).astype(float), (np.arange(20) < 12).astype(float)]
    boot = Bootstrap(labels, 4, n_resamples=200, seed=0)
    summary = boot.summary(correct)
    assert np.isnan(summary["per_class"][:, 2]).all()
    np.testing.assert_array_equal(summary["worst_class"], np.nanmin(summary["per_class"], axis=1))
    assert summary["worst_class"].min() > 0
    better = correct.copy()
    better[40:60] = 1.0  # class 3: 12 → 20 of 20 right; the worst becomes class 1 at 15 of 20
    delta = boot.paired_delta(better, correct)["worst_class"]
    assert delta["delta"] == pytest.approx(15 / 20 - 12 / 20)


def test_every_pooled_class_is_drawn_about_once_per_resample():
    """Each of a resample's draws from the pool is uniform over all the pooled samples: every pooled class is drawn
    1 time per resample on average (Binomial(m, 1/m)), the last one included. Drawing among all but the last kept
    the resample sizes and the overall mean and passed the pooling tests."""
    labels, _, _, _ = _one_image_classes(k=40)
    boot = Bootstrap(labels, 40, n_resamples=1000, seed=5)
    per_class = boot.multiplicity().mean(axis=0)
    assert per_class.min() > 0.8 and per_class.max() < 1.2, per_class


def test_a_class_of_two_images_has_a_group_stability_and_a_class_of_one_has_none():
    """MIN_STABILITY_IMAGES = 2: two images can move a class's accuracy, so it gets a stability; one cannot (nan)."""
    from probe.uncertainty import MIN_STABILITY_IMAGES

    labels = np.repeat(np.arange(4), [1, 2, 30, 30])
    correct = np.r_[1.0, 1.0, 0.0, (np.arange(30) < 20).astype(float), (np.arange(30) < 10).astype(float)]
    groups = assign_groups(np.bincount(labels, weights=correct) / np.bincount(labels))
    stability = Bootstrap(labels, 4, n_resamples=300, seed=0).group_stability(correct, groups)
    assert MIN_STABILITY_IMAGES == 2
    assert np.isnan(stability[0]) and np.isfinite(stability[1:]).all()


def test_small_class_variance_is_agresti_min_less_the_plug_in_for_small_or_little_changed_classes_only():
    """Per class: ((Σd² + 1)/(n + 2) − (Σd/(n + 2))²)/(n + 2) − (Σd²/n − (Σd/n)²)/n, at least 0, for a class of
    fewer than SMALL_CLASS_IMAGES images or FEW_CHANGED_IMAGES changed ones; 0 for the others and for no images."""
    from probe.uncertainty import small_class_variance

    labels = np.concatenate([np.zeros(4), np.ones(4), np.full(3, 2), np.full(30, 3)]).astype(int)
    reference = np.ones(labels.size)
    correct = reference.copy()
    correct[0] = 1 / 3                       # class 0: one image of d = −2/3 (seed means)
    correct[8] = 0.0                         # class 2: one image of d = −1 of 3
    correct[11:17] = 0.0                     # class 3: 30 images, 6 changed: the bootstrap's alone
    got = small_class_variance(correct, reference, labels, 5)
    # class 0: Agresti–Min ((4/9 + 1)/6 − (2/3/6)²)/6 = 37/972 less the plug-in (1/9 − 1/36)/4 = 1/48: 67/3888
    # class 1: unchanged, (1/6)/6 − 0 = 1/36; class 2: 0.072 − 2/27 < 0, so 0; class 4: no images
    assert got == pytest.approx([67 / 3888, 1 / 36, 0.0, 0.0, 0.0], abs=1e-15)


def test_a_third_whose_few_images_none_changed_gets_a_width_beyond_the_bootstraps_zero():
    """Two runs equal on every image of three classes of 4 images: every resample's difference is 0, and the
    bootstrap read each third and balanced accuracy +0.00 [+0.00, +0.00], though 4 images say little (real
    long-tailed test subsamples held a third's population difference in 87–92 %, an easy third of 10 images a class
    in 50 %). Each class adds Agresti–Min's variance 1/36: the hard third of two classes (weights ½) ±z/√72,
    balanced and overall accuracy (weights ⅓) ±z/√108; the easy third of one class is that class's own row."""
    labels = np.repeat([0, 1, 2], 4)
    correct = np.array([1.0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0])
    groups = {"easy": [2], "medium": [], "hard": [0, 1]}
    z = 1.959963984540054
    (widened, rows), plain = (Bootstrap(labels, 3, seed=1).paired_intervals(correct, correct, groups),
                              Bootstrap(labels, 3, seed=1).paired_delta(correct, correct, groups))
    for delta in (widened, plain):
        for key, half in (("hard", z / math.sqrt(72)), ("balanced", z / math.sqrt(108)),
                          ("overall", z / math.sqrt(108))):
            assert delta[key]["delta"] == 0.0
            assert (delta[key]["lo"], delta[key]["hi"]) == pytest.approx((-half, half), abs=1e-12)
        assert [delta["easy"]["lo"], delta["easy"]["hi"]] == rows[2].tolist() and rows[2][0] < 0 < rows[2][1]
        assert math.isnan(delta["medium"]["delta"]) and delta["worst_class"]["lo"] == 0.0


def test_groups_of_large_classes_with_enough_changed_images_keep_the_bootstraps_interval():
    """Classes of 30 images or more, each with 6 changed or more: no widening, the percentile interval itself."""
    from probe.uncertainty import delta_intervals

    labels, reference = _data((40, 50, 60))
    correct = reference.copy()
    for k in range(3):
        correct[np.flatnonzero(labels == k)[:8]] = 1.0 - reference[np.flatnonzero(labels == k)[:8]]
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    boot = Bootstrap(labels, 3, n_resamples=300, seed=2)
    assert boot.paired_delta(correct, reference, groups) == delta_intervals(
        *boot.paired_delta_samples(correct, reference, groups))


def test_stratified_variance_missed_is_agresti_min_for_an_unchanged_mean_and_the_rescaling_for_tiny_strata():
    """An unchanged class of 5 images: Agresti & Min's half image in each cell of its 2 × 2 table, b' = c' = ½ of
    n' = 7, so (1/7)/7 = 1/49 (the bootstrap's own is 0). Strata of 3 and 2 images with one change each: each plug-in
    variance over n_s − 1 (⅓·⅔/3/2 = 1/27, ½·½/2/1 = 1/8), weighted ¼ each; their pooled Agresti–Min variance (Kish
    size 1/(3/36 + 2/16) = 4.8) is below the plug-in one and adds nothing."""
    from probe.uncertainty import stratified_variance_missed

    same = np.ones(5)
    assert stratified_variance_missed(same, same.copy(), np.zeros(5, dtype=int), np.ones(1)) == pytest.approx(1 / 49)
    reference = np.array([0.0, 1, 1, 1, 0])
    correct = np.array([1.0, 1, 1, 0, 0])  # stratum 0 (3 images): +1, 0, 0; stratum 1 (2 images): −1, 0
    got = stratified_variance_missed(correct, reference, np.array([0, 0, 0, 1, 1]), np.array([0.5, 0.5]))
    assert got == pytest.approx(0.25 / 27 + 0.25 / 8)


def test_a_proportion_s_interval_holds_its_level_at_few_images_near_0_and_1():
    """The plain Wilson interval's exact binomial coverage dipped to 82.7 % at 3 images (true accuracy 93.9 %: only
    3 of 3 right holds it, 2 of 3 reaching 93.85 %) and under 84 % at every size near 0 and 1, where a class of a
    few test images at 90-99 % often is; with continuity correction under 30 images it holds 94.6 % or more."""
    from scipy.stats import binom

    grid = np.linspace(0.0005, 0.9995, 1999)
    for n in (1, 2, 3, 5, 10, 29):
        x = np.arange(n + 1, dtype=float)
        ci = wilson_interval(x, np.full(n + 1, float(n)))
        held = (ci[None, :, 0] <= grid[:, None] + 1e-12) & (grid[:, None] <= ci[None, :, 1] + 1e-12)
        coverage = (binom.pmf(x[None, :], n, grid[:, None]) * held).sum(axis=1)
        assert coverage.min() >= 0.945, (n, coverage.min(), grid[coverage.argmin()])
    # 2 of 3 now reaches past 93.9 %, and the plain score interval is still there for Newcombe's paired interval
    assert wilson_interval(2, 3)[1] > 0.98 and wilson_interval(2, 3, corrected=False)[1] == pytest.approx(0.93851,
                                                                                                         abs=5e-5)


def test_intervals_or_none_reads_each_row_as_interval_or_none_does():
    """The report's per-class intervals in one pass (a 5,000-class report's read spent a sixth of it row by row):
    each finite row as floats, a row with a nan or an inf as None, as interval_or_none reads one."""
    from probe.uncertainty import interval_or_none, intervals_or_none

    rows = np.array([[0.1, 0.9], [np.nan, 0.5], [0.0, np.inf], [0.25, 1.0]])
    said = intervals_or_none(rows)
    assert said == [interval_or_none(row) for row in rows] == [[0.1, 0.9], None, None, [0.25, 1.0]]
    assert all(type(v) is float for v in said[0]) and intervals_or_none(np.empty((0, 2))) == []
    # no rows in any form (a report of no class; a list built empty): none, as an empty (0, 2) array gives (an empty
    # list raised TypeError)
    assert intervals_or_none([]) == intervals_or_none(()) == intervals_or_none(np.empty(0)) == []
    assert intervals_or_none([0.5, 0.75]) == [[0.5, 0.75]] and intervals_or_none([np.nan, 0.5]) == [None]
