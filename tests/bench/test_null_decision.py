"""bench/null_decision.py: a tiny setting, 2 repetitions, through the script's core and its JSON (the table takes
minutes)."""
from __future__ import annotations

import argparse
import json

import pytest

import null_decision


def test_a_tiny_run_writes_every_settings_rates_with_their_noise(tmp_path, monkeypatch):
    monkeypatch.setattr(null_decision, "POPULATION", 50)
    path = tmp_path / "null.json"
    result = null_decision.main(["--reps", "2", "--settings", "3:4", "--candidates", "1", "--json", str(path)])
    assert json.loads(path.read_text()) == result
    assert result["command"] == "python bench/null_decision.py --reps 2 --settings 3:4"
    assert result["nominal"] == 0.025 and result["population_per_class"] == 50
    (row,) = result["rows"]
    assert (row["classes"], row["per_class"], row["candidates"], row["reps"]) == (3, 4, 1, 2)
    for key in ("improved", "improved_wrong"):
        entry = row[key]
        assert entry["rate"] == entry["count"] / 2
        assert entry["se_at_nominal"] == pytest.approx((0.025 * 0.975 / 2) ** 0.5)
        lo, hi = entry["wilson_95"]
        assert 0 <= lo <= entry["rate"] <= hi <= 1 and hi - lo > 0.5  # two repetitions say little
    assert row["improved_wrong"]["count"] <= row["improved"]["count"] == len(row["true_gains_when_improved"])
    assert 0 <= row["val_discordant"] <= 1


def test_a_repetition_judges_seeds_with_the_product_and_the_population_truth(tmp_path, monkeypatch):
    monkeypatch.setattr(null_decision, "POPULATION", 50)
    calls = []
    real = null_decision.decide

    def spy(candidates, correct, reference_index, labels, class_names, **kwargs):
        calls.append((candidates, reference_index, len(labels)))
        return real(candidates, correct, reference_index, labels, class_names, **kwargs)

    monkeypatch.setattr(null_decision, "decide", spy)
    row = null_decision.repetition(3, 4, 0, 2, tmp_path)
    assert calls == [([{"seed": 0}, {"seed": 1}, {"seed": 2}], 0, 12)]  # seed 0 the reference, 4 val images a class
    assert sorted((tmp_path).iterdir()) == [tmp_path / f"s{s}" for s in range(3)]  # one product run per seed
    assert set(row) == {"improved", "improved_wrong", "true_hard_gain", "true_overall_gain", "val_discordant"}


def test_an_improved_verdict_is_wrong_when_the_population_says_the_chosen_seed_is_no_better(tmp_path, monkeypatch):
    from probe.decision import Decision

    monkeypatch.setattr(null_decision, "POPULATION", 50)
    monkeypatch.setattr(null_decision, "decide", lambda *a, **k: Decision(1, "improved", "", [], {"hard": [2]}, []))
    row = null_decision.repetition(3, 4, 0, 1, tmp_path)
    assert row["improved"] and row["true_hard_gain"] is not None and row["true_overall_gain"] is not None
    assert row["improved_wrong"] == (row["true_hard_gain"] <= 0 or row["true_overall_gain"] < 0)
    held = Decision(0, "no_safe_improvement", "", [], {"hard": [2]}, [])
    monkeypatch.setattr(null_decision, "decide", lambda *a, **k: held)
    row = null_decision.repetition(3, 4, 0, 1, tmp_path / "again")
    assert not row["improved"] and not row["improved_wrong"] and row["true_hard_gain"] is None


@pytest.mark.parametrize("text", ["5", "5:x", "1:5", "5:1"])
def test_a_malformed_setting_is_refused_by_name(text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        null_decision.parse_setting(text)
