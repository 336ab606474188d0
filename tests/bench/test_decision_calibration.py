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


def test_the_counted_baseline_is_the_sign_test_of_the_counts_as_before_stop_57():
    """--imbalanced scores the image test as it was (exact sign test of the counts, leaning when more fixed) beside
    the product's weighted one, on the same decisions."""
    from probe.decision import decide
    from probe.uncertainty import sign_test

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), [60, 60, 40, 30, 12, 12])
    reference = (rng.random(labels.size) < np.linspace(0.95, 0.5, 6)[labels]).astype(float)
    better = reference.copy()
    better[labels >= 4] = 1.0  # the two small hard classes all right: a gain either test sees
    d = decide([{"lr": 0}, {"lr": 1}], [reference, better], 0, labels, [str(c) for c in range(6)], seed=0)
    fixed, broken = d.frontier[1]["val_hard_changed"]
    assert broken == 0 and sign_test(fixed, 0) < 0.05
    assert calibration.counted_choice(d, 1) == d.index == 1
    # more broken than fixed: the counted test holds it back whatever its bound
    d.frontier[1]["val_hard_changed"] = [fixed, fixed + 1]
    assert calibration.counted_choice(d, 1) == 0


def test_imbalanced_rows_give_both_rates_for_each_case(monkeypatch):
    monkeypatch.setattr(calibration, "IMBALANCED_CASES", ((6, 200, 80, 1),))
    rows = calibration.imbalanced_rows(2, 0.45, 0.15, 0)  # a gain no rule can miss, on large hard classes
    assert [(r["classes"], r["per_class"], r["candidates"], r["gain"], r["trials"]) for r in rows] == [
        (6, [200, 80], 1, 0.0, 2), (6, [200, 80], 1, 0.45, 2)]
    assert rows[1]["counted"] == rows[1]["weighted"] == 1.0  # found, by both tests
    assert rows[0]["counted"] <= 0.5 and rows[0]["weighted"] <= 0.5
