"""app.threads: ``mr2probe --threads N`` and ``MR2PROBE_THREADS`` cap the process's numerical thread pools."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

import app.worker
from app.cli import build_parser, main
from app.config import Settings
from app.threads import MAX_THREADS, check_threads
from app.worker import JobRunner
from app.store import Store

from testdata import REPO_ROOT, write_synthetic_cache

CHILD_ENV = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}  # no *_NUM_THREADS inherited


def _child(script: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=CHILD_ENV,
                          timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("torch_first", [False, True])
def test_limit_threads_caps_torch_and_the_blas_loaded_before_or_after(torch_first):
    # numpy (and its OpenBLAS) is loaded before the limit, as in the CLI; torch before it or after it
    facts = _child(
        "import json, os, numpy\n"
        + ("import torch\n" if torch_first else "")
        + "from app.threads import limit_threads\nlimit_threads(1)\nimport torch\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps({'torch': torch.get_num_threads(), 'omp': os.environ['OMP_NUM_THREADS'],"
        " 'blas': sorted({p['num_threads'] for p in threadpool_info()})}))")
    assert facts == {"torch": 1, "omp": "1", "blas": [1]}


@pytest.mark.parametrize("value", [0, -1, MAX_THREADS + 1, 1.5, True, "2"])
def test_a_thread_count_out_of_bounds_is_refused(value):
    with pytest.raises(ValueError, match=rf"threads must be an integer in \[1, {MAX_THREADS}\]"):
        check_threads(value)
    assert check_threads(MAX_THREADS) == MAX_THREADS


@pytest.mark.parametrize("argv", [["--threads", "{}", "report", "run"], ["report", "--threads", "{}", "run"]])
@pytest.mark.parametrize("text,shown", [("0", "0"), ("two", "'two'"), ("2000", "2000")])
def test_the_cli_refuses_a_bad_thread_count_in_one_line_before_any_command_runs(argv, text, shown, capsys):
    """argparse printed its usage lines before the refusal; now one line naming --threads, the value and bounds."""
    assert main([part.format(text) for part in argv]) == 2
    said = f"mr2probe report: error: --threads must be an integer in [1, 1024], got {shown}\n"
    assert capsys.readouterr().err == said


def test_train_with_threads_runs_and_records_that_many(tmp_path):
    cache = write_synthetic_cache(tmp_path / "c.h5", {"train": 30, "val": 10, "test": 10}, 8,
                                  {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                   "fingerprint": "f"})
    for threads in (1, 2):
        done = subprocess.run([sys.executable, "-m", "app", "--threads", str(threads), "train", "--features",
                               str(cache), "--out", str(tmp_path / f"run{threads}"), "--seeds", "1", "--epochs",
                               "3", "--no-progress"], capture_output=True, text=True, env=CHILD_ENV, timeout=180)
        assert done.returncode == 0, done.stderr
        report = json.loads((tmp_path / f"run{threads}" / "report.json").read_text())
        assert report["timing"]["threads"] == threads


def test_settings_bound_the_services_threads(monkeypatch):
    monkeypatch.setenv("MR2PROBE_THREADS", "3")
    assert Settings().threads == 3
    monkeypatch.setenv("MR2PROBE_THREADS", "0")
    with pytest.raises(ValidationError, match="threads"):
        Settings()
    monkeypatch.delenv("MR2PROBE_THREADS")
    assert Settings().threads is None


@pytest.mark.parametrize("threads", [None, 2])
def test_the_job_worker_applies_the_services_threads_at_start(tmp_path, monkeypatch, threads):
    applied = []
    monkeypatch.setattr(app.worker, "limit_threads", applied.append)
    settings = Settings(data_dir=tmp_path, device="cpu", threads=threads)
    runner = JobRunner(Store(settings.db_path), settings, handlers={})
    runner.start()
    try:
        assert applied == ([] if threads is None else [threads])
    finally:
        runner.stop()


def test_the_cli_flag_takes_precedence_over_mr2probe_threads_for_the_service(monkeypatch, tmp_path):
    from app.commands.serve import settings_from_args

    monkeypatch.setenv("MR2PROBE_THREADS", "3")
    parser, _ = build_parser()
    assert settings_from_args(parser.parse_args(["--threads", "2", "serve", "--data-dir", str(tmp_path)])).threads == 2
    assert settings_from_args(parser.parse_args(["serve", "--data-dir", str(tmp_path)])).threads == 3
    # after the command too (it was "unrecognized arguments: --threads 1"; a new-user round); there it wins
    assert settings_from_args(parser.parse_args(["serve", "--threads", "1", "--data-dir", str(tmp_path)])).threads == 1
    args = ["--threads", "2", "train", "--features", "c.h5", "--out", "r", "--threads", "1"]
    assert parser.parse_args(args).threads == "1"
    assert parser.parse_args(["--threads", "2", "report", "run"]).threads == "2"
