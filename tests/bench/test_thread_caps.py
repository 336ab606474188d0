"""bench/thread_caps.py: the thread caps every timing script shares."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import thread_caps

BENCH = Path(__file__).resolve().parents[2] / "bench"
REPO = BENCH.parent


@pytest.mark.parametrize("argv, expected", [
    (["x.py", "--threads", "3"], 3),
    (["x.py", "--features", "a.h5", "--threads=4", "--repeats", "2"], 4),
    (["x.py", "--repeats", "2"], 7),
    (["x.py", "--threads"], 7),  # no value: argparse reports it later
])
def test_threads_from_argv(argv, expected):
    assert thread_caps.threads_from_argv(argv, default=7) == expected


def test_capped_environment_is_a_copy_with_every_pool_capped():
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "8"}
    env = thread_caps.capped_environment(2, base)
    assert env == {"PATH": "/bin", **{var: "2" for var in thread_caps.THREAD_VARS}}
    assert base == {"PATH": "/bin", "OMP_NUM_THREADS": "8"}
    assert set(thread_caps.THREAD_VARS) >= {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


def test_child_environment_puts_the_repository_first_and_caps_every_pool(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = thread_caps.child_environment(3)
    assert env["PYTHONPATH"] == os.pathsep.join([str(REPO), "/elsewhere"])
    assert all(env[var] == "3" for var in thread_caps.THREAD_VARS) and env["PATH"] == os.environ["PATH"]


def _fresh(code: str, threads: str = "2") -> dict:
    """Run ``code`` in a fresh interpreter with bench/ importable and the pools at ``threads``; its last line is
    JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)]),
           **{var: threads for var in thread_caps.THREAD_VARS}}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cap_environment_then_cap_pools_caps_numpy_and_torch():
    out = _fresh("import json, thread_caps\nthread_caps.cap_environment(1)\nimport numpy, torch\n"
                 "info = thread_caps.cap_pools(1)\n"
                 "print(json.dumps({'pools': [p['num_threads'] for p in info], 'torch': torch.get_num_threads(),"
                 " 'line': thread_caps.describe_pools(info)}))")
    assert out["pools"] and set(out["pools"]) == {1}
    assert out["torch"] == 1
    assert out["line"].count(";") == len(out["pools"]) - 1 and out["line"].endswith(" 1")


def test_cap_pools_does_not_import_torch():
    out = _fresh("import json, sys, thread_caps\nimport numpy\nthread_caps.cap_pools(1)\n"
                 "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert out == {"torch": False}


def test_importing_a_timing_script_leaves_the_environment_alone():
    """The scripts cap the environment only when run as programs: a test that imports one keeps its pools."""
    out = _fresh("import json, os, sys\nsys.argv = ['pytest', '--threads', '1']\n"
                 "import sklearn_baseline, lbfgs, precision, probe_speed\n"
                 "print(json.dumps({v: os.environ[v] for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}))", threads="2")
    assert out == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def test_machine_names_this_cpu():
    facts = thread_caps.machine()
    assert set(facts) == {"cpu", "cores", "avx512_bf16", "amx_bf16"}
    assert facts["cores"] == len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert facts["cpu"] in cpuinfo
    flags = next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split()
    assert facts["amx_bf16"] == ("amx_bf16" in flags) and facts["avx512_bf16"] == ("avx512_bf16" in flags)
