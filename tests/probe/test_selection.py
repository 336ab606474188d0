"""Validation-only hyper-parameter selection: criteria, ties, the ERM floor and the stated reason."""
import pytest

from probe import SELECTION_CRITERIA, select_candidate

CANDIDATES = [
    {"lr": 0.01, "weight_decay": 0.0, "val_overall": 0.90, "val_hard": 0.70},
    {"lr": 0.1, "weight_decay": 0.0, "val_overall": 0.92, "val_hard": 0.68},
    {"lr": 0.01, "weight_decay": 1e-4, "val_overall": 0.91, "val_hard": 0.75},
    {"lr": 0.1, "weight_decay": 1e-4, "val_overall": 0.88, "val_hard": 0.80},
]


def test_registry_names():
    assert set(SELECTION_CRITERIA) == {"overall", "hard"}


def test_overall_picks_highest_val_overall_and_says_why():
    index, reason = select_candidate(CANDIDATES, "overall")
    assert index == 1
    assert "lr=0.1" in reason and "92.00%" in reason and "next best 91.00%" in reason


def test_hard_respects_reference_floor():
    index, reason = select_candidate(CANDIDATES, "hard", floor=0.905)
    # feasible: 1 (0.92, hard 0.68) and 2 (0.91, hard 0.75) → 2; candidate 3 has the best hard third but is below
    assert index == 2
    assert "2 of 4" in reason and "90.50%" in reason and "75.00%" in reason


def test_hard_without_feasible_candidate_falls_back_to_overall():
    index, reason = select_candidate(CANDIDATES, "hard", floor=0.95)
    assert index == 1
    assert "no candidate reached" in reason


def test_hard_without_reference_has_no_floor():
    index, reason = select_candidate(CANDIDATES, "hard")
    assert index == 3
    assert "without a reference" in reason


def test_ties_break_on_second_score_then_grid_order():
    tied = [
        {"lr": 1.0, "val_overall": 0.9, "val_hard": 0.5},
        {"lr": 2.0, "val_overall": 0.9, "val_hard": 0.6},
        {"lr": 3.0, "val_overall": 0.9, "val_hard": 0.6},
    ]
    assert select_candidate(tied, "overall")[0] == 1


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="'best'.*overall, hard"):
        select_candidate(CANDIDATES, "best")
    with pytest.raises(KeyError, match="val_hard"):
        select_candidate([{"lr": 1.0, "val_overall": 0.5}])
