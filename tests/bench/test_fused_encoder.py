"""bench/fused_encoder.py end to end on a tiny image tree (effnet-lite0, every variant this CPU runs)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import fused_encoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testdata import make_tree  # noqa: E402


def test_cosines_are_row_wise():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(fused_encoder.cosines(a, b), [1.0, 0.0], atol=1e-12)


def test_script_end_to_end(tmp_path):
    counts = {"ant": 8, "bee": 8, "cat": 8}
    data = make_tree(tmp_path / "data", counts, test_counts={"ant": 3, "bee": 3, "cat": 3})
    script = Path(fused_encoder.__file__)
    command = [sys.executable, str(script), "--data", str(data), "--cache-dir", str(tmp_path / "caches"),
               "--seeds", "0", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    names = [name for name, _, _ in fused_encoder.variants("cpu")]
    rows = {line[:16].strip(): line[16:].split() for line in done.stdout.splitlines() if line[:16].strip() in names}
    assert list(rows) == names
    assert rows["fp32 unfused"][:3] == ["1.00000"] * 3 and rows["fp32 unfused"][-1] == "+0.00"
    assert float(rows["fp32 fused"][2]) >= 0.99999  # fusion in fp32 only reorders sums
    assert len(list((tmp_path / "caches").glob("*.h5"))) == len(names)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=script.parents[1])
    assert "extracted" not in again.stdout  # the caches are found again
