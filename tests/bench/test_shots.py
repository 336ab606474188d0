"""bench/shots.py: the per-class subsample, the harm / summary arithmetic, the resume logic, and a tiny sweep
end to end through ``python bench/disparity.py --shots``."""
from __future__ import annotations

import json

import numpy as np
import pytest

import disparity
import shots
from feature_cache import write_cache

# --- subsampling ---------------------------------------------------------------------------------------------


def _labels() -> np.ndarray:
    return np.random.default_rng(5).permutation(np.repeat(np.arange(4), [30, 12, 25, 40]))


def test_subsample_takes_exactly_n_per_class_seeded_and_nested():
    labels = _labels()
    rows = shots.subsample_per_class(labels, 10, seed=3)
    assert np.bincount(labels[rows]).tolist() == [10, 10, 10, 10]
    assert np.all(np.diff(rows) > 0)  # ascending, no repeats
    assert np.array_equal(rows, shots.subsample_per_class(labels, 10, seed=3))  # deterministic
    assert not np.array_equal(rows, shots.subsample_per_class(labels, 10, seed=4))  # the seed matters
    assert set(shots.subsample_per_class(labels, 5, seed=3)) < set(rows)  # nested in n for one seed
    assert np.bincount(labels[shots.subsample_per_class(labels, 12, seed=0)]).tolist() == [12] * 4


def test_subsample_all_keeps_every_row_and_too_few_is_an_error():
    labels = _labels()
    assert np.array_equal(shots.subsample_per_class(labels, None, seed=7), np.arange(labels.size))
    with pytest.raises(ValueError, match=r"n=13 images per class.*\[1\].*\[12\]"):
        shots.subsample_per_class(labels, 13, seed=0)


def test_long_tailed_subsamples_follow_the_exponential_profile_in_a_seeded_class_order():
    counts = shots.long_tail_counts(100, 100.0, 10, seed=0)
    assert sorted(counts.tolist(), reverse=True) == [100, 60, 36, 22, 13, 8, 5, 3, 2, 1]  # round(100 · 100^(−j/9))
    assert not np.array_equal(counts, shots.long_tail_counts(100, 100.0, 10, seed=1))  # which classes are rare
    assert shots.long_tail_counts(7, 1.0, 4, seed=0).tolist() == [7] * 4
    labels = _labels()  # 30, 12, 25, 40 rows
    rows = shots.subsample_per_class(labels, 12, seed=2, imbalance=4.0)
    want = shots.long_tail_counts(12, 4.0, 4, seed=2)
    assert np.bincount(labels[rows]).tolist() == want.tolist() and sorted(want.tolist()) == [3, 5, 8, 12]
    assert set(shots.subsample_per_class(labels, 6, seed=2, imbalance=4.0)) < set(rows)  # nested in n
    # 'all': n is the smallest class's count, so every class can give its share
    assert np.bincount(labels[shots.subsample_per_class(labels, None, seed=2, imbalance=4.0)]).tolist() == \
        shots.long_tail_counts(12, 4.0, 4, seed=2).tolist()
    assert np.array_equal(shots.subsample_per_class(labels, 10, seed=3, imbalance=1.0),
                          shots.subsample_per_class(labels, 10, seed=3))
    with pytest.raises(ValueError, match="imbalance is the ratio"):
        shots.long_tail_counts(10, 0.5, 4, seed=0)


def test_parse_n():
    assert shots.parse_n("all") is None and shots.parse_n("250") == 250
    for bad in ("0", "-3", "ten"):
        with pytest.raises(Exception, match="positive integers or 'all'"):
            shots.parse_n(bad)


# --- harm and summaries on a hand-made results file ------------------------------------------------------------


def _e(overall: float, per_class: list[float], verdict: str = "no_safe_improvement", seconds: float = 1.0) -> dict:
    return {"overall": overall, "per_class": per_class, "hard": min(per_class), "worst_class": min(per_class),
            "verdict": verdict, "seconds": seconds}


HAND = {"kind": "shots", "entries": {"10": {
    "0": {"methods": {"erm": _e(0.80, [0.9, 0.8, 0.7], "not_applicable"),
                      "mr2": _e(0.797, [0.9, 0.79, 0.72], "improved", 3.0),  # Δ overall −0.3 exactly: no harm
                      "preset": _e(0.80, [0.9, 0.82, 0.69])}},  # worst class −1.0 exactly: no harm
    "1": {"methods": {"erm": _e(0.70, [0.8, 0.7, 0.6], "not_applicable"),
                      "mr2": _e(0.71, [0.85, 0.7, 0.589], "improved", 5.0),  # worst class −1.1: harm
                      "preset": _e(0.696, [0.8, 0.7, 0.6])}},  # overall −0.4: harm
    "2": {"methods": {"mr2": _e(0.1, [0.1, 0.1, 0.1])}},  # no ERM on this subsample: not counted
}}}


def test_harm_thresholds_are_strict():
    erm = _e(0.80, [0.9, 0.8, 0.7])
    assert not shots.harms(_e(0.797, [0.9, 0.8, 0.7]), erm)  # −0.3 points
    assert shots.harms(_e(0.7969, [0.9, 0.8, 0.7]), erm)  # −0.31
    assert not shots.harms(_e(0.80, [0.9, 0.8, 0.69]), erm)  # worst −1.0
    assert shots.harms(_e(0.81, [0.9, 0.8, 0.689]), erm)  # worst −1.1, overall up


def test_summary_arithmetic():
    summary = shots.summarize(HAND)
    assert list(summary) == ["10"] and list(summary["10"]) == ["erm", "mr2", "preset"]
    mr2 = summary["10"]["mr2"]
    assert mr2["subsamples"] == 2
    assert mr2["d_hard"] == pytest.approx(0.45) and mr2["d_hard_std"] == pytest.approx(3.1 / np.sqrt(2))
    assert mr2["d_overall"] == pytest.approx(0.35)
    assert mr2["worst_class_delta"] == pytest.approx(-1.1)
    assert mr2["harm_fraction"] == 0.5 and mr2["hard_beats_2std"] is False
    assert mr2["verdicts"] == {"improved": 2} and mr2["seconds"] == 4.0
    assert mr2["overall"] == pytest.approx(75.35) and mr2["hard"] == pytest.approx(65.45)
    preset = summary["10"]["preset"]
    assert preset["harm_fraction"] == 0.5 and preset["worst_class_delta"] == pytest.approx(-1.0)
    assert preset["d_hard"] == pytest.approx(-0.5) and preset["d_overall"] == pytest.approx(-0.2)
    erm = summary["10"]["erm"]
    assert erm["d_hard"] == 0 and erm["harm_fraction"] == 0 and erm["worst_class"] == pytest.approx(65.0)


def test_hard_beats_2std_needs_a_consistent_gain():
    erm = _e(0.8, [0.9, 0.8, 0.7])
    steady = [(_e(0.8, [0.9, 0.8, 0.7 + g]), erm) for g in (0.02, 0.021, 0.019)]
    assert shots.method_summary(steady)["hard_beats_2std"] is True
    assert shots.method_summary(steady[:1])["hard_beats_2std"] is False  # one subsample has no spread


def _row(d_hard: float, d_overall: float, harm: float = 0.0, beats: bool = False) -> dict:
    return {"d_hard": d_hard, "d_overall": d_overall, "harm_fraction": harm, "hard_beats_2std": beats}


def test_target_checks():
    summary = {
        "10": {"erm": _row(0, 0), "group_dro_eta": _row(2.0, 0.1), "preset": _row(1.6, 0.0)},
        "25": {"erm": _row(0, 0), "mr2": _row(3.0, -0.1, beats=True), "group_dro_eta": _row(1.5, 0.0),
               "preset": _row(1.0, 0.2, harm=0.2)},
        "all": {"erm": _row(0, 0), "mr2": _row(0.5, 0.3), "preset": _row(0.0, 0.0)},
    }
    assert shots.target_checks(summary) == [
        "- preset `disparity` harm ≤ 5 % at every n (10, 25, all): no, n = 25 (20 %)",
        "- n = 10: best gain group DRO, η selected +2.00 hard; preset +1.60 → ≥ 80 %: **yes**",
        "- n = 25: best gain group DRO, η selected +1.50 hard; preset +1.00 → ≥ 80 %: no",
        "- n = all: no method reaches ≥ +1.0 hard at Δ overall ≥ 0 (target void)",
        "- MR² mean Δ hard > 2·std over subsamples at n = 25",
    ]


# --- resume -------------------------------------------------------------------------------------------------


class _FakeReports:
    """Stands in for run_probe: records (loss or preset, reference given?) and returns a minimal report."""

    def __init__(self, erm_accuracy: float = 0.5) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.erm_accuracy = erm_accuracy

    def __call__(self, data, class_names, config, reference=None, tune_allocator=False):
        assert tune_allocator  # the bench is a process of its own: the measured allocator setting
        self.calls.append((config.preset or config.loss, reference is not None))
        acc = self.erm_accuracy if config.loss == "ce" and not config.posthoc_bias else 0.6
        report = {"per_class": [{"accuracy": acc, "n_train": 3}, {"accuracy": acc - 0.1, "n_train": 3},
                                {"accuracy": acc - 0.2, "n_train": 3}],
                  "seeds": {"metrics": {"overall": {"mean": acc}}},
                  "selection": {"verdict": "not_applicable"}, "val": {"source": "carved"}, "warnings": [],
                  "config": {"loss": config.loss, "selected": {"lr": 0.01, "cbar": None}}}
        return type("R", (), {"model_dump": lambda self, mode: report})()


def _args(**kw):
    import argparse

    base = dict(methods=list(shots.DEFAULT_METHODS), device="cpu", epochs=None, lr_grid=None, wd_grid=None)
    return argparse.Namespace(**{**base, **kw})


def test_resume_runs_only_missing_entries(monkeypatch):
    fake = _FakeReports()
    monkeypatch.setattr(shots, "run_probe", fake)
    result, saves = {"entries": {}}, []
    shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(), result, lambda: saves.append(1))
    assert fake.calls == [("ce", False), ("mr2", True), ("group_dro", True), ("ce", True), ("disparity", False)]
    assert len(saves) == 5 and result["entries"]["10"]["0"]["groups"] == {"easy": [0], "medium": [1], "hard": [2]}
    entry = result["entries"]["10"]["0"]["methods"]["mr2"]
    assert entry["selected"] == {"lr": 0.01} and entry["hard"] == pytest.approx(0.4) and entry["n_train"] == 9

    fake.calls.clear()  # everything present: nothing runs, nothing is saved
    shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(), result, lambda: saves.append(1))
    assert fake.calls == [] and len(saves) == 5

    del result["entries"]["10"]["0"]["methods"]["preset"]  # the preset needs no reference: ERM is not re-run
    shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(), result, lambda: saves.append(1))
    assert fake.calls == [("disparity", False)] and len(saves) == 6

    fake.calls.clear()  # a disparity method needs ERM's report: ERM re-runs and is not stored again
    del result["entries"]["10"]["0"]["methods"]["mr2"]
    shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(), result, lambda: saves.append(1))
    assert fake.calls == [("ce", False), ("mr2", True)] and len(saves) == 7


def test_resume_refuses_an_erm_that_no_longer_reproduces(monkeypatch):
    result = {"entries": {}}
    monkeypatch.setattr(shots, "run_probe", _FakeReports(0.5))
    shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(methods=["erm"]), result, lambda: None)
    monkeypatch.setattr(shots, "run_probe", _FakeReports(0.55))
    with pytest.raises(SystemExit, match="ERM no longer reproduces"):
        shots.run_subsample({}, ["a", "b", "c"], "linear", "10", 0, _args(), result, lambda: None)


def test_load_or_new_refuses_another_cache(tmp_path):
    path = tmp_path / "r.json"
    setting = {"fingerprint": "f1", "head": "linear", "encoder": "e", "commands": ["one"]}
    path.write_text(json.dumps(shots.load_or_new(path, setting)))
    again = shots.load_or_new(path, {**setting, "commands": ["two"]})
    assert again["setting"]["commands"] == ["one", "two"] and again["entries"] == {}
    with pytest.raises(SystemExit, match="fingerprint='f1', this run 'f2'"):
        shots.load_or_new(path, {**setting, "fingerprint": "f2"})


# --- end to end -------------------------------------------------------------------------------------------------


def _cache(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 3

    def split(n_per_class: int, name: str):
        y = np.repeat(np.arange(3), n_per_class)
        return centres[y] + rng.normal(size=(y.size, 8)), y, [f"{name}/{i}.png" for i in range(y.size)]

    splits = {"train": split(20, "train"), "val": split(4, "val"), "test": split(15, "test")}
    return write_cache(tmp_path / "tiny.h5", splits, ["a", "b", "c"], {"encoder": "tiny", "fingerprint": "fp"},
                       dtype="float32")


def test_sweep_end_to_end_resumes_and_prints(tmp_path, monkeypatch, capsys):
    argv = ["--shots", "4", "all", "--subsample-seeds", "0", "1", "--features", str(_cache(tmp_path)), "--name",
            "tiny", "--heads", "linear", "--epochs", "2", "--lr-grid", "0.01", "--wd-grid", "0", "--threads", "1",
            "--out-dir", str(tmp_path / "out")]
    assert disparity.main(argv) == 0
    path = tmp_path / "out" / "shots_tiny_tiny_linear.json"
    result = json.loads(path.read_text())
    assert result["kind"] == "shots" and result["setting"]["n_pool"] == 72 and result["setting"]["n_test"] == 45
    assert sorted(result["entries"]) == ["4", "all"] and sorted(result["entries"]["4"]) == ["0", "1"]
    for n, n_train in (("4", 3 * 3), ("all", 3 * 22)):  # 1 of 4 and 2 of 24 per class carved as validation
        for slot in result["entries"][n].values():
            assert list(slot["methods"]) == list(shots.DEFAULT_METHODS)
            assert {e["n_train"] for e in slot["methods"].values()} == {n_train}
            assert all(len(e["per_class"]) == 3 and e["verdict"] for e in slot["methods"].values())
    assert set(result["timing"]["per_n_wall_seconds"]) == {"4", "all"}
    assert result["setting"]["methods"]["preset"] == {"preset": "disparity"}
    assert "| 4 | preset `disparity` | 2 |" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed sweep with every entry present must not train")

    monkeypatch.setattr(shots, "run_probe", no_training)
    assert disparity.main(argv) == 0
    assert json.loads(path.read_text())["entries"] == result["entries"]
    assert disparity.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| all | MR² (paper) | 2 |" in out and "- preset `disparity` harm ≤ 5 % at every n (4, all)" in out


def test_merge_sweeps_unites_methods_run_side_by_side_and_refuses_a_disagreeing_erm(tmp_path, capsys):
    def sweep(methods: dict, wall: float, command: str) -> dict:
        return {"kind": "shots", "setting": {"fingerprint": "fp", "head": "linear", "encoder": "e", "imbalance": 10.0,
                                             "n_pool": 9, "n_test": 3, "name": "x", "commands": [command],
                                             "methods": {m: {} for m in methods}},
                "entries": {"4": {"0": {"groups": {"hard": [2]}, "methods": methods}}},
                "timing": {"per_n_wall_seconds": {"4": wall}, "total_wall_seconds": wall}}

    erm = {"per_class": [0.5, 0.4, 0.3], "overall": 0.4, "hard": 0.3, "worst_class": 0.3, "verdict": "not_applicable",
           "seconds": 1}
    other = {**erm, "per_class": [0.5, 0.4, 0.6], "verdict": "improved"}
    a, b = sweep({"erm": erm, "mr2": erm}, 10.0, "a"), sweep({"erm": erm, "preset_balanced": other}, 5.0, "b")
    merged = shots.merge_sweeps([a, b])
    assert list(merged["entries"]["4"]["0"]["methods"]) == ["erm", "mr2", "preset_balanced"]
    assert merged["setting"]["commands"] == ["a", "b"] and merged["timing"]["total_wall_seconds"] == 15.0
    assert a["setting"]["commands"] == ["a"]  # the inputs are left as they were
    with pytest.raises(ValueError, match="n=4 seed=0: erm differs between the sweeps"):
        shots.merge_sweeps([a, sweep({"erm": other}, 1.0, "c")])
    with pytest.raises(ValueError, match="the sweeps differ in imbalance: 10.0 and 100.0"):
        shots.merge_sweeps([a, {**b, "setting": {**b["setting"], "imbalance": 100.0}}])
    for name, result in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    out = tmp_path / "m.json"
    assert disparity.main(["--merge-shots", str(out), str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert json.loads(out.read_text()) == merged and f"written {out}" in capsys.readouterr().out


def test_long_tail_summary_puts_each_methods_delta_and_harm_side_by_side():
    def entry(per_class):
        return {"per_class": per_class, "overall": float(np.mean(per_class)), "hard": min(per_class),
                "worst_class": min(per_class), "verdict": "improved", "seconds": 1.0}

    erm = [entry([0.9, 0.5, 0.1]), entry([0.8, 0.6, 0.1])]
    better = [entry([0.9, 0.6, 0.3]), entry([0.6, 0.6, 0.15])]  # +10 and −5 overall points: the second harms
    slots = {str(s): {"groups": {}, "methods": {"erm": erm[s], "preset_balanced": better[s]}} for s in (0, 1)}
    result = {"setting": {"name": "toy-lt", "imbalance": 10.0}, "entries": {"25": slots}}
    table = shots.long_tail_summary([result]).splitlines()
    assert table[0].startswith("| data | imbalance | n (largest class) | subsamples | ERM overall | preset `disparity` |")
    assert table[2] == "| toy-lt | 10 | 25 | 2 | 50.00 | — | +2.50 ± 10.61 (50 %) | — | — | — |"
