"""bench/epoch_curves.py: the successive-halving arithmetic, and the per-epoch curves recorded from a real run."""
from __future__ import annotations

import argparse
import json

import pytest

import epoch_curves


def _sweep(*curves: list[float]) -> list[dict]:
    return [{"lr": 0.01, "weight_decay": float(i), "cbar": 1.0, "val": list(c)} for i, c in enumerate(curves)]


def test_halving_drops_a_late_starter_that_the_full_sweep_selects():
    # candidate 2 starts worst and ends best (a strong L2 penalty at a high learning rate)
    sweep = _sweep([0.5, 0.6, 0.6, 0.6], [0.4, 0.5, 0.55, 0.55], [0.1, 0.2, 0.58, 0.7], [0.3, 0.3, 0.3, 0.3])
    h = epoch_curves.halving(sweep, (1 / 2,))
    assert h["rungs"] == [2]
    assert (h["kept_best"], h["val_kept"], h["val_best"]) == (False, 0.6, 0.7)
    assert (h["head_epochs"], h["head_epochs_full"]) == (2 * 4 + 2 * 2, 16)  # two stop after epoch 2
    late = epoch_curves.halving(sweep, (3 / 4,))  # at epoch 3 candidate 2 is second: it survives
    assert (late["kept_best"], late["head_epochs"]) == (True, 2 * 4 + 2 * 3)


def test_halving_counts_a_fit_stopped_by_tol_at_its_own_epochs_and_halves_again():
    sweep = _sweep([0.5] * 10, [0.6] * 4, [0.7] * 10, [0.2] * 10, [0.3] * 10)  # candidate 1 met tol after 4
    h = epoch_curves.halving(sweep, (1 / 5, 1 / 2))  # rungs at 2 and 5: 5 → 3 → 2 candidates
    assert h["rungs"] == [2, 5]
    # after 2: keep 2, 1, 0 (0.7, 0.6, 0.5); after 5: keep 2 and 1 (1 scored at its last epoch, 4)
    assert h["kept_best"] and h["val_kept"] == 0.7
    assert h["head_epochs"] == 10 + 4 + 5 + 2 + 2
    assert h["head_epochs_full"] == 44


def test_a_run_records_every_candidates_validation_accuracy_per_epoch(tiny_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(epoch_curves, "RESULTS", tmp_path)
    args = argparse.Namespace(synthetic=None, features=str(tiny_cache), loss="ce", threads=1, lr=None)
    result = epoch_curves.run(args, 5)
    written = json.loads((tmp_path / "epoch_curves_tiny_ce_e5.json").read_text())
    assert written["sweep"] == result["sweep"]
    assert len(result["sweep"]) == 6  # the default L2 grid, one lr
    assert all(1 <= len(c["val"]) <= 5 for c in result["sweep"])
    assert all(0.0 <= v <= 1.0 for c in result["sweep"] for v in c["val"])
    # the selected candidate's last recorded accuracy is its validation score in the report's sweep
    chosen = next(c for c in result["sweep"] if c["weight_decay"] == pytest.approx(result["selected"]["weight_decay"]))
    assert chosen["val"][-1] == max(c["val"][-1] for c in result["sweep"])
    import probe.trainer

    assert probe.trainer._Run.end_epoch.__name__ == "end_epoch"
    assert probe.trainer._Run.end_epoch.__qualname__ == "_Run.end_epoch"  # restored after the run
