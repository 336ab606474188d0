"""bench/allocator.py's report and caller (the measurements themselves take minutes in fresh processes)."""
from __future__ import annotations

import threading

import pytest

import allocator


def _run(setting, wall, faults):
    return {"setting": setting, "wall": wall, "user": wall, "sys": 0.5, "faults": faults, "steps": 16,
            "peak_rss_gb": 1.5}


def test_summary_gives_medians_per_setting_and_the_ratio_of_the_wall_times():
    runs = [_run("default", 7.3, 1.2e6), _run("kept", 4.7, -1e4), _run("kept", 5.1, 2e3), _run("default", 8.2, 1.3e6),
            _run("default", 7.6, 1.1e6), _run("kept", 4.8, 0.0)]
    assert allocator.summary(runs) == ["median default: 7.60 s wall, 0.50 s system, 1,200,000 faults per epoch",
                                       "median kept: 4.80 s wall, 0.50 s system, 0 faults per epoch",
                                       "default / kept, wall per epoch: 1.58×"]
    threads = [_run("thread", 6.0, 1.3e6), _run("job", 4.0, 0.0), _run("job", 5.0, 1e3), _run("thread", 7.0, 1.1e6)]
    assert allocator.summary(threads, ("thread", "job")) == [
        "median thread: 6.50 s wall, 0.50 s system, 1,200,000 faults per epoch",
        "median job: 4.50 s wall, 0.50 s system, 500 faults per epoch", "thread / job, wall per epoch: 1.44×"]
    assert allocator.run_line(runs[0]) == (" default: 7.30 s wall, 7.30 s user, 0.50 s system, 1,200,000 minor faults "
                                           "per epoch of 16 steps; peak RSS 1.50 GB")


def test_called_from_runs_the_function_in_the_caller_it_names_and_passes_its_errors_on():
    main = threading.get_ident()
    assert allocator.called_from("main", threading.get_ident) == main
    assert allocator.called_from("job", threading.get_ident) != main
    with pytest.raises(ZeroDivisionError):
        allocator.called_from("thread", lambda: 1 / 0)
