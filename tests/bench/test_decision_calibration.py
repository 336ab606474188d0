"""bench/decision_calibration.py: the baseline rule it scores against and one small cell (the table takes minutes)."""
from __future__ import annotations

import numpy as np

import decision_calibration as calibration


def _entry(hard_lo, overall_lo, reference=False):
    return {"reference": reference, "val_hard_delta_ci": [hard_lo, 0.1], "val_overall_delta_ci": [overall_lo, 0.1]}


def test_the_baseline_is_each_candidates_own_interval_with_a_zero_budget():
    frontier = [_entry(0.0, 0.0, reference=True), _entry(0.01, -0.001), _entry(0.002, 0.0), _entry(0.004, 0.0),
                _entry(-0.01, 0.02)]
    assert calibration.marginal_choice(frontier) == 3  # the highest hard lower end among those within budget
    assert calibration.marginal_choice(frontier[:3]) == 2
    assert calibration.marginal_choice([frontier[0], frontier[1], frontier[4]]) is None


def test_a_cell_counts_false_claims_without_a_gain_and_finds_with_one():
    rng = np.random.default_rng(0)
    null = calibration.cell(10, 30, 3, 0.0, 0.15, 4, rng)
    assert null == {"classes": 10, "per_class": 30, "candidates": 3, "gain": 0.0, "trials": 4,
                    "marginal": null["marginal"], "product": null["product"]}
    assert 0 <= null["product"] <= null["marginal"] <= 1
    # a gain no rule can miss: the real candidate gets every hard-third image right
    found = calibration.cell(10, 100, 3, 0.6, 0.15, 3, rng)
    assert found["marginal"] == found["product"] == 1.0
