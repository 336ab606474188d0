"""Post-hoc per-class logit bias on hand-made logits."""
import numpy as np
import pytest

from probe import PosthocLogitBias, per_class_accuracy


def _data(rows):
    logits = np.array([r[0] for r in rows], dtype=float)
    labels = np.array([r[1] for r in rows])
    return logits, labels


GROUPS = {"easy": [1], "medium": [0], "hard": [2]}


def test_bias_fixes_hard_class_without_losing_overall():
    rows = [([2, 0, 1], 0)] * 4 + [([0, 2, 0], 1)] * 4 + [([1, 0, 0.8], 2)] * 2 + [([0, 0, 1], 2)] * 2
    logits, labels = _data(rows)
    model = PosthocLogitBias("hard", GROUPS).fit(logits, labels)
    assert model.overall_before_ == pytest.approx(10 / 12)
    assert model.objective_before_ == pytest.approx(0.5)
    assert model.objective_after_ == pytest.approx(1.0)
    assert model.overall_after_ == pytest.approx(1.0)
    gap = model.bias_[2] - model.bias_[0]
    assert 0.2 < gap < 1.0  # class 2 overtakes 1 vs 0.8 but class-0 rows (2 vs 1) stay correct
    assert (model.predict(logits) == labels).all()
    # decision_function is z + b exactly
    np.testing.assert_allclose(model.decision_function(logits), logits + model.bias_)


def test_floor_forbids_trading_overall_for_hard():
    # Fixing the two class-2 rows needs b2 − b0 > 0.5, which breaks the three class-0 rows (need b2 − b0 < 0.4).
    rows = [([1, 0, 0.6], 0)] * 3 + [([0, 2, 0], 1)] * 3 + [([1, 0, 0.5], 2)] * 2 + [([0, 0, 1], 2)] * 2
    logits, labels = _data(rows)
    model = PosthocLogitBias("hard", GROUPS).fit(logits, labels)
    assert model.floor_ == pytest.approx(model.overall_before_)
    assert model.overall_after_ >= model.overall_before_
    acc, _ = per_class_accuracy(labels, model.predict(logits), 3)
    assert acc[0] == 1.0 and acc[2] == 0.5


def test_worst_objective_and_determinism():
    rows = [([2, 0, 1], 0)] * 4 + [([0, 2, 0], 1)] * 4 + [([1, 0, 0.8], 2)] * 2 + [([0, 0, 1], 2)] * 2
    logits, labels = _data(rows)
    a = PosthocLogitBias("worst").fit(logits, labels)
    b = PosthocLogitBias("worst").fit(logits, labels)
    np.testing.assert_array_equal(a.bias_, b.bias_)
    assert a.objective_before_ == pytest.approx(0.5) and a.objective_after_ == pytest.approx(1.0)


def test_no_change_when_already_perfect():
    logits, labels = _data([([3, 0, 0], 0), ([0, 3, 0], 1), ([0, 0, 3], 2)])
    model = PosthocLogitBias("hard", GROUPS).fit(logits, labels)
    np.testing.assert_array_equal(model.bias_, 0.0)  # ties → smallest |b|


def test_errors():
    logits, labels = _data([([1, 0, 0], 0)])
    with pytest.raises(ValueError, match="accepted: hard, worst"):
        PosthocLogitBias("best").fit(logits, labels)
    with pytest.raises(ValueError, match="groups"):
        PosthocLogitBias("hard").fit(logits, labels)
    with pytest.raises(RuntimeError, match="not fitted"):
        PosthocLogitBias("worst").predict(logits)


def test_a_balanced_floor_lets_a_rare_class_gain_what_two_frequent_rows_cost():
    # Fixing the rare class 2's wrong row needs b2 − b0 > 0.5, which breaks the two fragile class-0 rows
    # (b2 − b0 > 0.4) but not the ten others (margin 1): −2 + 1 rows lowers accuracy, but balanced accuracy rises
    # by (−2/12 + 1/2) / 3.
    rows = ([([2, 0, 1], 0)] * 10 + [([1, 0, 0.6], 0)] * 2 + [([0, 2, 0], 1)] * 4 + [([1, 0, 0.5], 2)]
            + [([0, 0, 1], 2)])
    logits, labels = _data(rows)
    plain = PosthocLogitBias("hard", GROUPS).fit(logits, labels)
    assert plain.objective_after_ == pytest.approx(0.5)  # the accuracy floor forbids the trade
    balanced = PosthocLogitBias("hard", GROUPS, overall="balanced").fit(logits, labels)
    acc, _ = per_class_accuracy(labels, balanced.predict(logits), 3)
    np.testing.assert_allclose(acc, [10 / 12, 1.0, 1.0])
    assert balanced.overall_before_ == pytest.approx((1 + 1 + 0.5) / 3)
    assert balanced.overall_after_ == pytest.approx((10 / 12 + 1 + 1) / 3)
    with pytest.raises(ValueError, match="Unknown overall metric 'macro'"):
        PosthocLogitBias("hard", GROUPS, overall="macro").fit(logits, labels)
