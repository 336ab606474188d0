"""bench/interval_calibration.py: the simulated cases are what its docstring says, and its coverage figures are
computed from the product's own intervals."""
from __future__ import annotations

import json

import numpy as np

import interval_calibration


def test_a_null_pair_differs_on_the_discordant_fraction_and_neither_run_is_favoured():
    rng = np.random.default_rng(0)
    labels, a, b = interval_calibration.null_pair(10, 2000, 0.1, rng)
    assert labels.shape == a.shape == b.shape == (20000,) and np.bincount(labels).tolist() == [2000] * 10
    assert set(np.unique(a)) == set(np.unique(b)) == {0.0, 1.0}
    assert abs((a != b).mean() - 0.1) < 0.01
    assert abs(a.mean() - b.mean()) < 0.01 and abs(a.mean() - 0.68) < 0.01  # alike: 0.7 - 0.2 q each


def test_class_coverage_of_a_single_image_class():
    # one image: the bootstrap's interval is that image's score, [0, 0] or [1, 1], and never covers p = 0.5;
    # Wilson's (continuity-corrected under 30 images) for 0 of 1 is [0, 0.9454] and for 1 of 1 [0.0546, 1]: both
    # cover 0.5
    row = interval_calibration.class_coverage(1, 0.5, 200, np.random.default_rng(0), 100)
    assert (row["wilson_coverage"], row["bootstrap_coverage"], row["bootstrap_mean_width"]) == (1.0, 0.0, 0.0)
    assert abs(row["wilson_mean_width"] - 0.9454) < 1e-3


def test_a_run_writes_every_cell_and_case(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(interval_calibration, "CLASS_SIZES", (3, 200))
    monkeypatch.setattr(interval_calibration, "ACCURACIES", (0.8,))
    monkeypatch.setattr(interval_calibration, "PAIRED_CASES", ((6, 5, 0.2),))
    out = tmp_path / "ic.json"
    result = interval_calibration.main(["--trials", "300", "--paired-trials", "5", "--resamples", "200",
                                        "--json", str(out)])
    assert json.loads(out.read_text())["class_accuracy"] == result["class_accuracy"]
    small, large = result["class_accuracy"]
    assert (small["n"], large["n"]) == (3, 200)
    # 3 images at p = 0.8: the bootstrap covers only when 1 or 2 are right (its interval is [1, 1] at 3 of 3 and
    # [0, 0] at 0 of 3), i.e. with probability 3·0.8·0.2² + 3·0.8²·0.2 = 0.48; Wilson's (continuity-corrected under
    # 30 images) covers at 1 of 3 ([0.0177, 0.8747]), 2 of 3 ([0.1253, 0.9823]) and 3 of 3 ([0.31, 1]), not at 0 of 3
    # ([0, 0.69]): 1 − 0.2³ = 0.992
    assert abs(small["bootstrap_coverage"] - 0.48) < 0.1 and abs(small["wilson_coverage"] - 0.992) < 0.02
    assert abs(large["wilson_coverage"] - 0.95) < 0.05
    (case,) = result["paired_null"]
    assert (case["classes"], case["per_class"], case["trials"]) == (6, 5, 5)
    assert 0 <= case["claims_gain"] <= case["excludes_0_hard"] <= 1
    assert "no true difference" in capsys.readouterr().out


def test_the_paired_null_of_classes_of_one_image_holds_its_level():
    """120 classes of one image: each was itself in every resample, so the overall interval had no width and
    excluded 0 on about 9 of 10 null splits (0.882 in the bench's run); resampled together, near the nominal 5 %."""
    row = interval_calibration.paired_false_rates(120, 1, 0.1, 60, np.random.default_rng(0), 300)
    assert row["per_class"] == 1 and row["excludes_0_overall"] <= 0.15 and row["excludes_0_hard"] <= 0.15
