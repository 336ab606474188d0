"""bench/first_call.py: its children time a first and a third call in fresh processes, and its summary."""
from __future__ import annotations

import first_call


def test_summary_lists_the_runs_then_the_medians_and_ratios():
    runs = {"whole": [{"first": 0.7, "third": 0.04}, {"first": 0.1, "third": 0.05}, {"first": 0.3, "third": 0.03}],
            "chunked": [{"first": 0.02, "third": 0.02}, {"first": 0.03, "third": 0.025}, {"first": 0.025, "third": 0.02}]}
    assert first_call.summary("bootstrap", 3000, runs) == [
        "bootstrap, 3000 samples, whole: first/third call ms 700/40, 100/50, 300/30",
        "bootstrap, 3000 samples, chunked: first/third call ms 20/20, 30/25, 25/20",
        "bootstrap, 3000 samples: median first call 300 → 25 ms (12.0×), third 40 → 20 ms (2.00×)"]


def test_each_case_runs_in_a_fresh_process_in_both_settings(tiny_cache):
    for case, size, features in (("bootstrap", 500, ""), ("evaluate", 0, str(tiny_cache))):
        for setting in ("whole", "chunked"):
            out = first_call.measure(case, setting, size, features)
            assert set(out) == {"first", "third"} and all(0 < v < 60 for v in out.values()), (case, setting, out)
