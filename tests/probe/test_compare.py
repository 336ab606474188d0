"""compare_reports: per-group and per-class deltas on the base run's groups."""
import pytest

from probe import compare_reports, format_comparison

NAMES = ["a", "b", "c"]


def _rep(run_id, accs, groups, overall):
    return {
        "run_id": run_id, "class_names": NAMES,
        "grouping": {"groups": groups, "note": "own validation accuracy"},
        "summary": {"overall": overall, "balanced": sum(accs) / 3},
        "per_class": [{"accuracy": a} for a in accs],
    }


def test_deltas_use_base_groups():
    base = _rep("erm", [0.9, 0.7, 0.5], {"easy": [0], "medium": [1], "hard": [2]}, 0.70)
    # other's own groups differ (class 1 is its hardest) but must be ignored
    other = _rep("mr2", [0.85, 0.6, 0.65], {"easy": [0], "medium": [2], "hard": [1]}, 0.70)
    cmp = compare_reports(base, other)
    assert cmp["base"] == "erm" and cmp["other"] == "mr2"
    m = cmp["metrics"]
    assert m["hard"]["base"] == pytest.approx(0.5) and m["hard"]["other"] == pytest.approx(0.65)
    assert m["hard"]["delta"] == pytest.approx(0.15)
    assert m["easy"]["delta"] == pytest.approx(-0.05)
    assert m["worst_class"] == {"base": 0.5, "other": 0.6, "delta": pytest.approx(0.1)}
    assert m["overall"]["delta"] == pytest.approx(0.0)
    assert [r["group"] for r in cmp["per_class"]] == ["easy", "medium", "hard"]
    assert cmp["per_class"][1]["delta"] == pytest.approx(-0.1)
    assert "groups of the base run erm" in cmp["grouping"]["note"]
    text = format_comparison(cmp)
    assert "+15.00" in text and "hard" in text and "base erm vs other mr2" in text


def test_different_classes_rejected():
    base = _rep("x", [1, 1, 1], {"easy": [0], "medium": [1], "hard": [2]}, 1.0)
    other = dict(base, class_names=["a", "b", "z"])
    with pytest.raises(ValueError, match="different classes"):
        compare_reports(base, other)
