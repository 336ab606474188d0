"""Easy / medium / hard thirds on hand-made per-class accuracy vectors."""
import math

import numpy as np
import pytest

from probe import assign_groups, group_accuracy, group_of


def test_ten_classes_three_four_three():
    acc = np.array([0.90, 0.50, 0.70, 0.95, 0.60, 0.80, 0.40, 0.85, 0.65, 0.75])
    groups = assign_groups(acc)
    assert groups == {"easy": [3, 0, 7], "medium": [5, 9, 2, 8], "hard": [4, 1, 6]}
    names = group_of(groups, 10)
    assert names[3] == "easy" and names[6] == "hard" and names[2] == "medium"
    means = group_accuracy(acc, groups)
    assert means["easy"] == pytest.approx((0.95 + 0.90 + 0.85) / 3)
    assert means["hard"] == pytest.approx(0.50)


@pytest.mark.parametrize(
    "num_classes, sizes",
    [(3, (1, 1, 1)), (4, (1, 2, 1)), (5, (2, 1, 2)), (7, (2, 3, 2)), (8, (3, 2, 3)), (11, (4, 3, 4)), (2, (1, 0, 1))],
)
def test_group_sizes_rule(num_classes, sizes):
    groups = assign_groups(np.linspace(1.0, 0.0, num_classes))
    assert tuple(len(groups[g]) for g in ("easy", "medium", "hard")) == sizes
    assert sorted(sum(groups.values(), [])) == list(range(num_classes))


def test_ties_break_by_class_index_and_nan_ranks_hardest():
    acc = np.array([0.5, 0.5, 0.5, float("nan"), 0.5, 0.5])
    groups = assign_groups(acc)
    assert groups == {"easy": [0, 1], "medium": [2, 4], "hard": [5, 3]}
    assert math.isnan(group_accuracy(acc, groups)["hard"]) is False  # nan ignored inside a group


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        assign_groups(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="cover"):
        group_of({"easy": [0], "medium": [], "hard": []}, 2)
