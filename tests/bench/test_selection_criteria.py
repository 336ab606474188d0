"""bench/selection_criteria.py: its smoothing, its summary and one real subsample end to end."""
from __future__ import annotations

import json

import numpy as np

import selection_criteria as sc


def test_smoothed_averages_each_strength_with_its_neighbours():
    np.testing.assert_allclose(sc.smoothed(np.array([1.0, 4.0, 1.0, 4.0])), [2.5, 2.0, 3.0, 2.5])
    np.testing.assert_allclose(sc.smoothed(np.array([3.0, 1.0]), width=0), [3.0, 1.0])


def test_summary_gives_each_criterion_against_the_accuracy_pick():
    def row(seed, test):
        return {"n": 10, "seed": seed, "test": test, "picks": {"accuracy": 0, "log-loss": 1, "smoothed": 0,
                                                                "oracle": 2}}
    lines = sc.summary([row(0, [0.5, 0.4, 0.6]), row(1, [0.7, 0.8, 0.8])])
    assert lines == ["| 10 | 2 | 60.00 | +0.00 ± 14.14 | +0.00 ± 0.00 | +10.00 ± 0.00 |"]


def test_one_synthetic_subsample_scores_every_candidate_and_the_oracle_is_the_test_best(tmp_path):
    out = tmp_path / "sc.json"
    results = sc.main(["--features", "synthetic", "--shots", "10", "--subsample-seeds", "0", "--threads", "1",
                       "--out", str(out)])
    (row,) = results["data"]["synthetic"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert len(row["candidates"]) == len(row["cv_accuracy"]) == len(row["cv_log_loss"]) == len(row["test"]) == 6
    assert row["picks"]["oracle"] == int(np.argmax(row["test"]))
    assert row["picks"]["accuracy"] == int(np.argmax(row["cv_accuracy"]))
    assert row["picks"]["log-loss"] == int(np.argmin(row["cv_log_loss"]))
    assert all(0.0 < a <= 1.0 for a in row["cv_accuracy"]) and min(row["cv_log_loss"]) > 0.0
    # 10 per class of the noisy synthetic set: the strongest penalty (α = 1000) is the best on test, but its
    # probabilities are nearly uniform, so held-out log-loss ranks it far from first (what the README reports)
    assert row["picks"]["oracle"] == 5 and row["picks"]["log-loss"] != 5
    assert row["cv_log_loss"][5] > min(row["cv_log_loss"]) + 0.3 and row["cv_log_loss"][5] < np.log(10)
