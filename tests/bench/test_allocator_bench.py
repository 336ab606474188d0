"""bench/allocator.py's report (the measurements themselves take minutes in fresh processes)."""
from __future__ import annotations

import allocator


def _run(setting, wall, faults):
    return {"setting": setting, "wall": wall, "user": wall, "sys": 0.5, "faults": faults, "steps": 16,
            "peak_rss_gb": 1.5}


def test_summary_gives_medians_per_setting_and_the_ratio_of_the_wall_times():
    runs = [_run("default", 7.3, 1.2e6), _run("kept", 4.7, -1e4), _run("kept", 5.1, 2e3), _run("default", 8.2, 1.3e6),
            _run("default", 7.6, 1.1e6), _run("kept", 4.8, 0.0)]
    assert allocator.summary(runs) == ["median kept: 4.80 s wall, 0.50 s system, 0 faults per epoch",
                                       "median default: 7.60 s wall, 0.50 s system, 1,200,000 faults per epoch",
                                       "default / kept, wall per epoch: 1.58×"]
    assert allocator.run_line(runs[0]) == (" default: 7.30 s wall, 7.30 s user, 0.50 s system, 1,200,000 minor faults "
                                           "per epoch of 16 steps; peak RSS 1.50 GB")
