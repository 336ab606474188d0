"""Exact values of the disparity and margin metrics on hand-made arrays."""
import math

import numpy as np
import pytest

from probe import (
    balanced_accuracy,
    class_margin_deg,
    ideal_class_margin_deg,
    ideal_sample_margin,
    output_margins,
    overall_accuracy,
    per_class_accuracy,
    per_class_reduce,
    per_class_std,
    sample_margins,
    worst_class,
)


def simplex(num_classes: int) -> np.ndarray:
    """Regular simplex of K unit vectors in R^K (centred one-hot basis, normalised)."""
    w = np.eye(num_classes) - 1.0 / num_classes
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def test_per_class_accuracy_counts_and_summaries():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    acc, counts = per_class_accuracy(labels, preds, 4)
    np.testing.assert_allclose(acc[:3], [0.75, 0.5, 1.0])
    assert math.isnan(acc[3])  # class without samples is nan, not 0
    assert counts.tolist() == [4, 2, 4, 0]
    assert overall_accuracy(labels, preds) == pytest.approx(0.8)
    assert balanced_accuracy(acc) == pytest.approx(0.75)
    assert worst_class(acc) == (1, 0.5)
    assert per_class_std(acc) == pytest.approx(np.std([0.75, 0.5, 1.0]))


def test_worst_class_ties_go_to_lowest_index():
    assert worst_class(np.array([0.9, 0.2, 0.2])) == (1, 0.2)


def test_label_validation_names_the_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        per_class_accuracy(np.array([0, 2]), np.array([0, 0]), 2)


def test_output_margin_exact():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]]))
    labels = np.array([0, 0])
    np.testing.assert_allclose(output_margins(logits, labels), [0.5, -0.3], atol=1e-12)


def test_class_margin_of_known_weights():
    w = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    # angles: (0,1) 90°, (0,2) 135°, (1,2) 135° → min 90°
    assert class_margin_deg(w) == pytest.approx(90.0)
    w = np.array([[1.0, 0.0], [math.cos(math.radians(30)), math.sin(math.radians(30))], [-1.0, 0.0]])
    assert class_margin_deg(w) == pytest.approx(30.0)


@pytest.mark.parametrize("num_classes", [2, 3, 5, 10])
def test_regular_simplex_reaches_ideal_margins(num_classes):
    w = simplex(num_classes)
    assert class_margin_deg(w) == pytest.approx(math.degrees(math.acos(-1 / (num_classes - 1))))
    assert class_margin_deg(w) == pytest.approx(ideal_class_margin_deg(num_classes))
    labels = np.repeat(np.arange(num_classes), 3)
    features = 5.0 * w[labels]  # features on their prototypes (scale is irrelevant: normalised)
    margins = sample_margins(features, labels, w)
    np.testing.assert_allclose(margins, num_classes / (num_classes - 1))
    assert ideal_sample_margin(num_classes) == pytest.approx(num_classes / (num_classes - 1))


def test_sample_margin_exact_and_per_class_reduce():
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    z = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    s = 1 / math.sqrt(2)
    expected = np.array([1.0, s - s, 1.0, -1.0])
    np.testing.assert_allclose(sample_margins(z, labels, w), expected, atol=1e-12)
    mins, means = per_class_reduce(expected, labels, 3)
    np.testing.assert_allclose(mins[:2], [0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(means[:2], [0.5, 0.0], atol=1e-12)
    assert math.isnan(mins[2]) and math.isnan(means[2])


def test_the_ideal_margins_hold_only_where_the_simplex_fits():
    """999 classes in 128 dimensions read "ideal 90.06°", the simplex's, which needs d ≥ K−1 (a 1,000-class round):
    90° for K/2 ≤ d < K−1, which the 2d vectors ±e_i reach (Rankin: no more than d+1 unit vectors are all over 90°
    apart), and none below."""
    assert ideal_class_margin_deg(10, 9) == pytest.approx(math.degrees(math.acos(-1 / 9)))
    assert ideal_class_margin_deg(10, 500) == ideal_class_margin_deg(10)
    assert ideal_class_margin_deg(10, 8) == ideal_class_margin_deg(10, 5) == 90.0
    assert ideal_class_margin_deg(10, 4) is None and ideal_class_margin_deg(999, 128) is None
    cross = np.vstack([np.eye(5), -np.eye(5)])  # K = 10 in d = 5: the 90° is reached
    assert class_margin_deg(cross) == pytest.approx(90.0)
    assert ideal_sample_margin(10, 9) == pytest.approx(10 / 9) and ideal_sample_margin(10, 8) is None


def test_ideal_values_reject_single_class():
    with pytest.raises(ValueError, match="num_classes"):
        ideal_class_margin_deg(1)


def test_confusion_precision_recall_f1_equal_scikit_learn():
    from sklearn.metrics import confusion_matrix as sk_confusion
    from sklearn.metrics import precision_recall_fscore_support

    from probe.metrics import confusion_matrix, precision_recall_f1

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    predictions = np.where(rng.random(400) < 0.6, labels, rng.integers(0, 5, 400))
    predictions[predictions == 4] = 3  # class 4 is never predicted: its precision is undefined
    labels[labels == 2] = 1            # class 2 has no sample: its recall is undefined
    c = confusion_matrix(labels, predictions, 5)
    np.testing.assert_array_equal(c, sk_confusion(labels, predictions, labels=range(5)))
    got = precision_recall_f1(c)
    p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=range(5), zero_division=np.nan)
    np.testing.assert_allclose(got["precision"], p, equal_nan=True)
    np.testing.assert_allclose(got["recall"], r, equal_nan=True)
    np.testing.assert_allclose(got["f1"], f, equal_nan=True)
    np.testing.assert_array_equal(got["support"], s)
    assert np.isnan(got["precision"][4]) and np.isnan(got["recall"][2]) and c.sum() == 400


def test_top_confusions():
    from probe.metrics import top_confusions

    c = np.array([[8, 1, 1, 0],
                  [5, 5, 0, 0],
                  [0, 0, 10, 0],
                  [2, 3, 3, 2]])
    top = top_confusions(c, k=3)
    assert top[0] == [(1, 0.1), (2, 0.1)]        # ties by class index; zero counts left out
    assert top[1] == [(0, 0.5)]
    assert top[2] == []                           # never confused
    assert top[3] == [(1, 0.3), (2, 0.3), (0, 0.2)]
    assert top_confusions(c, k=1)[3] == [(1, 0.3)]


def test_overall_score_is_accuracy_or_scikit_learns_balanced_accuracy():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from probe.metrics import overall_score, overall_weights

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 3], [300, 30, 3])  # class 2 has no sample: it carries no weight
    predictions = np.where(rng.random(labels.size) < 0.7, labels, rng.choice([0, 1, 3], labels.size))
    correct = (predictions == labels).astype(float)
    assert overall_score(correct, labels, 4) == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    assert overall_score(correct, labels, 4, "balanced") == pytest.approx(
        balanced_accuracy_score(labels, predictions), abs=1e-12)
    np.testing.assert_allclose(overall_weights(np.array([300, 30, 0, 3]), "balanced"), [1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(overall_weights(np.array([300, 30, 0, 3]), "accuracy"), [300 / 333, 30 / 333, 0,
                                                                                      3 / 333])
    # seed means (2/3 right) are scores too: balanced is the mean over classes of their mean score
    assert overall_score(np.array([2 / 3, 1.0, 0.0]), np.array([0, 0, 1]), 2, "balanced") == pytest.approx(5 / 12)
    assert math.isnan(overall_score(np.array([]), np.array([], dtype=int), 2, "balanced"))
    with pytest.raises(ValueError, match="Unknown overall metric 'macro'; accepted: accuracy, balanced"):
        overall_weights(np.array([1, 2]), "macro")


@pytest.mark.parametrize("predictions", [np.array([[0], [1], [1], [1], [0]]), np.array([0]), np.array([0, 1, 1])])
def test_overall_accuracy_refuses_predictions_of_another_shape(predictions):
    """An (n, 1) column of predictions, or a single one, was broadcast against the labels: 0.4 for predictions that
    are 60 % right, with no error (a library round); another length raised numpy's broadcast error."""
    labels = np.array([0, 0, 1, 1, 2])
    assert overall_accuracy(labels, np.array([0, 1, 1, 1, 0])) == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"predictions shape .* does not match labels shape \(5,\)"):
        overall_accuracy(labels, predictions)


def test_labels_that_are_not_class_indices_are_refused():
    """Labels 0.5 and 1.7 were truncated to classes 0 and 1 and scored; class names raised numpy's "ufunc 'minimum'
    did not contain a loop" (a library round). Integer indices of any dtype, and floats holding integers, are
    taken."""
    with pytest.raises(TypeError, match="labels must be integer class indices, got non-integer values"):
        per_class_accuracy(np.array([0.5, 1.7]), np.array([0, 1]), 3)
    with pytest.raises(TypeError, match="got dtype <U3; class names are not labels: map them to indices first"):
        per_class_accuracy(np.array(["cat", "dog"]), np.array([0, 0]), 2)
    for labels in (np.array([0, 2], dtype=np.uint8), np.array([0.0, 2.0]), [0, 2], np.array([0, 2], dtype=object)):
        acc, counts = per_class_accuracy(labels, np.array([0, 1]), 3)
        assert counts.tolist() == [1, 0, 1] and acc[0] == 1.0 and acc[2] == 0.0


def test_overall_accuracy_refuses_class_names_for_labels():
    """ProbeTrainer.score(X, ['0', '1', ...]) compared integer predictions with strings: 0.0 for a probe right on
    every sample, without a word (a library round)."""
    with pytest.raises(TypeError, match="labels must be integer class indices, got dtype <U1; class names are not"):
        overall_accuracy(np.array(["0", "1", "2"]), np.array([0, 1, 2]))
    assert overall_accuracy([0, 1, 2], np.array([0, 1, 1], dtype=np.uint8)) == pytest.approx(2 / 3)


def test_per_class_accuracy_refuses_class_names_for_predictions():
    """String predictions against integer labels gave every class accuracy 0 without a word (a library round)."""
    with pytest.raises(TypeError, match="predictions must be integer class indices, got dtype <U1"):
        per_class_accuracy(np.array([0, 1, 2]), np.array(["0", "1", "2"]), 3)


def test_top_confusions_takes_a_count_of_classes():
    """top_confusions(k=-1) sliced [:, :-1]: every confusion of a class but its rarest one, as if a count."""
    from probe.metrics import top_confusions

    confusion = np.array([[5, 3, 1], [2, 6, 0], [0, 4, 4]])
    assert top_confusions(confusion, 0) == [[], [], []]
    assert top_confusions(confusion, 2) == [[(1, 3 / 9), (2, 1 / 9)], [(0, 2 / 8)], [(1, 4 / 8)]]
    for k in (-1, 1.5, True):
        with pytest.raises(ValueError, match=rf"^k must be a count of classes \(an integer ≥ 0\), got {k!r}\.$"):
            top_confusions(confusion, k)


def _plain_submatrix(c: np.ndarray, limit: int) -> tuple[list[int], np.ndarray]:
    """The most confused classes and their sub-matrix, one class and one cell at a time."""
    k = len(c)
    errors = [sum(c[i, j] + c[j, i] for j in range(k) if j != i) for i in range(k)]
    classes = sorted((i for i in range(k) if errors[i] > 0), key=lambda i: (-errors[i], i))[:limit]
    slot = {cls: n for n, cls in enumerate(classes)}
    out = np.zeros((len(classes) + 1, len(classes) + 1), dtype=np.int64)
    for i in range(k):
        for j in range(k):
            out[slot.get(i, len(classes)), slot.get(j, len(classes))] += c[i, j]
    return classes, out


def test_the_most_confused_classes_sub_matrix_matches_a_plain_computation():
    """Beyond 60 classes the dashboard drew no confusion matrix at all (a many-classes round): it draws the
    sub-matrix of the classes in the most confusions, with an "other classes" row and column that keep each row's
    sum the class's image count."""
    from probe.metrics import confusion_cells, confusion_submatrix, most_confused_classes

    rng = np.random.default_rng(3)
    for k, limit in ((300, 60), (80, 60), (12, 5), (5, 60)):
        c = np.zeros((k, k), dtype=np.int64)
        np.add.at(c, (rng.integers(0, k, 4 * k), rng.integers(0, k, 4 * k)), 1)
        c[np.arange(k), np.arange(k)] += rng.integers(0, 6, k)
        c[0] = 0  # a class without images
        cells = confusion_cells(c)
        assert len(cells) == np.count_nonzero(c) and all(c[t, p] == n for t, p, n in cells)
        classes = most_confused_classes(cells, k, limit)
        expected_classes, expected = _plain_submatrix(c, limit)
        assert classes.tolist() == expected_classes
        sub = confusion_submatrix(cells, k, classes)
        assert np.array_equal(sub, expected)
        assert sub[:-1].sum(axis=1).tolist() == c[classes].sum(axis=1).tolist() and sub.sum() == c.sum()
    diagonal = confusion_cells(np.diag([3, 4, 5]))
    assert most_confused_classes(diagonal, 3, 60).tolist() == []  # no confusion: no class to show
    assert confusion_submatrix(diagonal, 3, np.array([], dtype=np.int64)).tolist() == [[12]]


@pytest.mark.parametrize("ideal", [ideal_class_margin_deg, ideal_sample_margin])
def test_the_ideal_margins_need_two_classes(ideal):
    """One class has no margin: the same message as a head's (probe.metrics.check_num_classes)."""
    with pytest.raises(ValueError, match=r"^num_classes must be >= 2, got 1\.$"):
        ideal(1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_equals_scipy_leaves_the_logits_and_makes_one_array(dtype):
    """probe.metrics.softmax is scipy's, the caller's logits untouched, and it allocates one (n, K) float64 array:
    a widened copy and a shifted one were two (1.6 GB of a 20,000 × 5,000 label-issues fold)."""
    import tracemalloc

    from scipy.special import softmax as scipy_softmax

    from probe.metrics import softmax

    logits = np.random.default_rng(0).normal(0, 30, (2000, 500)).astype(dtype)
    before = logits.copy()
    np.testing.assert_allclose(softmax(logits), scipy_softmax(logits.astype(np.float64), axis=1), rtol=1e-12, atol=0)
    assert np.array_equal(logits, before)
    tracemalloc.start()
    try:
        softmax(logits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one = logits.size * 8
    assert one <= peak < 1.5 * one
