"""bench/probe_speed.py --train-per-class: the end-to-end comparison at each training-set size (as its own process:
importing the bench caps the thread pools of the importing process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "probe_speed.py"


def test_size_sweep_cuts_train_per_class_and_compares_end_to_end(tmp_path):
    out = tmp_path / "sizes.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--skip-in-process", "--train-per-class", "20", "3",
                           "--repeats", "1", "--sk-c", "0.1", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = json.loads(out.read_text())["sizes"]
    assert [(s["train_per_class"], s["n_train"]) for s in sizes] == [(20, 200), (3, 30)]  # 10 balanced classes
    for line in sizes:
        assert line["ours_s"] > 0 and line["sklearn_s"] > 0 and len(line["ratios"]) == 1
        assert 0.1 < line["ours_test"] <= 1 and 0.1 < line["sklearn_test"] <= 1  # above chance (10 classes)
    assert "train 20 per class (200 rows), end to end: ours" in done.stdout
