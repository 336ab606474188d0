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
