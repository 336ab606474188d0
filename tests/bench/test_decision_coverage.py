"""bench/decision_coverage.py: its truths are the simulated classes' differences, and the product's intervals are
the percentile ones widened, on the same decisions."""
from __future__ import annotations

import numpy as np

import decision_coverage


def test_a_class_s_true_difference_is_its_fixes_less_its_breaks_and_churn_has_none():
    p = np.linspace(0.95, 0.55, 9)
    hard = np.arange(9) >= 6
    for scenario in ("few changes", "hard gain", "churn"):
        f, b = decision_coverage.rates(scenario, p, hard)
        truth = (1 - p) * f - p * b
        if scenario == "churn":
            assert np.allclose(truth, 0.0)
        elif scenario == "hard gain":
            assert truth[hard].min() > 0.05 > truth[~hard].max()


def test_a_cell_scores_both_rules_on_the_same_decisions_and_the_product_is_never_narrower():
    row = decision_coverage.cell(10, "5", "few changes", 3, np.random.default_rng(0))
    assert (row["classes"], row["per_class"], row["trials"]) == (10, "5", 3)
    for key in ("overall", "hard"):
        product, percentile = row[f"product_{key}"], row[f"percentile_{key}"]
        assert 0 <= product["coverage"] <= 1 and 0 <= percentile["coverage"] <= 1
        # zero width is left only to a candidate that changed no image (it keeps [0, 0])
        assert product["mean_width"] > percentile["mean_width"] and product["zero_width"] <= percentile["zero_width"]
    assert 0 <= row["percentile_joint"] <= row["product_joint"] <= 1
    assert row["product_joint"] <= row["product_joint_choosable"] <= 1 and 0 <= row["unchanged"] <= 1


def test_a_candidate_that_scored_as_the_reference_misses_all_bounds_but_not_the_choosable_ones():
    # few changes: true differences below 0, and a candidate unchanged on every image keeps [0, 0] (never chosen)
    truth = {"overall": -0.0025, "hard": 0.004}
    unchanged = {"val_overall_delta_ci": [0.0, 0.0], "val_hard_delta_ci": [0.0, 0.0], "truth": truth,
                 "val_overall_delta_simultaneous_lo": 0.0, "val_hard_delta_simultaneous_lo": 0.0}
    changed = {"val_overall_delta_ci": [-0.03, 0.02], "val_hard_delta_ci": [-0.1, 0.1], "truth": truth,
               "val_overall_delta_simultaneous_lo": -0.04, "val_hard_delta_simultaneous_lo": -0.12}
    assert not decision_coverage.bounds_hold([unchanged, changed])
    assert decision_coverage.bounds_hold([unchanged, changed], choosable=True)
    assert not decision_coverage.bounds_hold([changed, dict(changed, val_overall_delta_simultaneous_lo=0.0)],
                                             choosable=True)
