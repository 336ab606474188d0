"""bench/optimizer_accuracy.py: the draws, the summary arithmetic and an end-to-end run on a small synthetic set (as
its own process: importing the bench caps the thread pools of the importing process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "optimizer_accuracy.py"


def test_summary_is_mean_std_and_paired_difference_to_sklearn():
    from optimizer_accuracy import summarise

    runs = [{"adam": {"test": a}, "adamw": {"test": w}, "sklearn": {"test": s}}
            for a, w, s in ((70.0, 60.0, 71.0), (72.0, 63.0, 72.0), (74.0, 60.0, 76.0))]
    summary = summarise(runs)
    assert summary["adam"]["mean"] == pytest.approx(72.0) and summary["adam"]["std"] == pytest.approx(2.0)
    diffs = np.array([-1.0, 0.0, -2.0])
    assert summary["adam"]["vs_sklearn"] == pytest.approx(-1.0)
    assert summary["adam"]["vs_sklearn_sem"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert summary["adamw"]["vs_sklearn"] == pytest.approx(np.mean([-11.0, -9.0, -16.0]))
    assert summary["sklearn"]["vs_sklearn"] == 0.0


def test_draw_cuts_train_and_val_per_class_and_keeps_test():
    from optimizer_accuracy import draw

    y = np.repeat(np.arange(3), [10, 10, 2])
    data = {s: (np.arange(len(y), dtype=np.float32)[:, None], y) for s in ("train", "val", "test")}
    out = draw(data, 4, 1, seed=0)
    assert np.bincount(out["train"][1]).tolist() == [4, 4, 2]  # all of a smaller class
    assert np.bincount(out["val"][1]).tolist() == [1, 1, 1]
    assert out["test"] is data["test"]
    assert np.all(np.diff(out["train"][0][:, 0]) > 0)  # original order
    again = draw(data, 4, 1, seed=0)
    assert np.array_equal(again["train"][0], out["train"][0])


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_end_to_end_writes_the_table(tmp_path, head):
    out = tmp_path / "acc.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--train-per-class", "20", "--val-per-class", "10",
                           "--draws", "2", "--dim", "16", "--test-rows", "500", "--head", head, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())["results"]
    assert len(result) == 1 and result[0]["train_per_class"] == 20 and len(result[0]["runs"]) == 2
    assert result[0]["head"] == head
    for run in result[0]["runs"]:
        assert set(run) == {"adam", "adamw", "sklearn"}
        assert all(10 < run[m]["test"] <= 100 for m in run)  # percent, above chance (10 classes)
        assert run["adamw"]["chosen"]["lr"] in (0.001, 0.01)
        if head == "linear":  # one lr and an L2 strength α / 200 (α in L2_STRENGTHS)
            assert run["adam"]["chosen"]["lr"] == 0.01
            assert round(run["adam"]["chosen"]["weight_decay"] * 200) in (0, 10, 30, 100, 300, 1000)
        else:  # the cosine head: lr selected, no weight decay
            assert run["adam"]["chosen"]["lr"] in (0.001, 0.01) and run["adam"]["chosen"]["weight_decay"] == 0
    assert "| synthetic 16-d | 20 | 2 |" in done.stdout
