"""bench/extract_speed.py: the steady extraction rate leaves out the pipeline fill, and the script runs end to end."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import extract_speed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testdata import make_tree  # noqa: E402


def test_steady_rate_starts_once_every_worker_has_written_a_batch():
    # 2 workers of 64-image batches, both done at 1.5 s (start-up included), then a pair every second
    batches = [(1.5, 64), (1.5, 128), (2.5, 192), (2.5, 256), (3.5, 320), (3.5, 384)]
    assert extract_speed.steady_rate(batches, 2) == 256 / 2.0
    assert extract_speed.steady_rate(batches, 0) == 320 / 2.0  # without workers: from the first batch
    assert math.isnan(extract_speed.steady_rate(batches[:2], 2))


def test_script_end_to_end(tmp_path):
    data = make_tree(tmp_path / "data", {"ant": 6, "bee": 6}, test_counts={"ant": 3, "bee": 3})
    script = Path(extract_speed.__file__)
    command = [sys.executable, str(script), "--data", str(data), "--settings", "fp32", "--repeats", "1",
               "--batch-size", "4", "--threads", "1", "--load-rows", "60"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = [line for line in done.stdout.splitlines() if line.startswith("new fp32")]
    # workers, bare, bare xW, extract, ext/bare, ext/bxW, ext/old, steady, std/bare, std/bxW, start s, CPU, faults
    values = [float(v) for v in row.split()[len("new fp32 (+ conv fusion)".split()):]]
    assert len(values) == 13 and values[0] == 0  # 18 images: no workers
    bare, extract, steady, start = values[1], values[3], values[7], values[10]
    assert bare > 0 and extract > 0 and steady > 0 and 0 < start < 18 / extract
    # std/bare is printed to 0.01 from unrounded rates; steady and bare are printed to 0.1 (each off by ≤ 0.05), so
    # the ratio of the printed rates may differ from the printed ratio by up to 0.005 + r·(0.05/steady + 0.05/bare)
    ratio = steady / bare
    assert abs(values[8] - ratio) <= 0.005 + ratio * (0.05 / steady + 0.05 / bare) + 1e-9
