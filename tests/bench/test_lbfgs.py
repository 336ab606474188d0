"""bench/lbfgs.py: its joint L-BFGS fits every candidate's own objective (the one scikit-learn minimises, with
C = 1 / (wd·n)), and the script runs end to end on a small cache."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import lbfgs

SCRIPT = Path(lbfgs.__file__)


def _problem(n=120, d=6, k=3):
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    x = (rng.standard_normal((n, d)) + y[:, None] * 0.7).astype(np.float32)
    return torch.as_tensor(x), torch.as_tensor(y), k


def test_the_joint_fit_gives_each_candidate_its_own_minimiser_that_of_scikit_learn():
    x, y, k = _problem()
    n = len(y)
    strengths = [0.05, 0.5]
    _, evaluations, w, b = lbfgs.lbfgs(strengths, x, y, k, max_iter=500, tol=1e-9)
    assert evaluations > 1
    for h, wd in enumerate(strengths):
        _, _, alone, _ = lbfgs.lbfgs([wd], x, y, k, max_iter=500, tol=1e-9)
        head = w[h * k:(h + 1) * k]
        np.testing.assert_allclose(head, alone, atol=1e-3)  # float32 L-BFGS stopped by its tolerances
        # scikit-learn's objective C·Σ CE + ½‖W‖² is n·C times ours (mean CE + wd/2·‖W‖²) at C = 1 / (wd·n)
        sk = LogisticRegression(C=1 / (wd * n), tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
        np.testing.assert_allclose(head, sk.coef_, atol=2e-3)
        predicted = lbfgs.accuracies(w, b, x.numpy(), y.numpy(), len(strengths), k)[h]
        assert predicted == sk.score(x.numpy(), y.numpy())


def test_script_end_to_end(tmp_path, tiny_cache):
    out = tmp_path / "lbfgs.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--features", str(tiny_cache), "--max-iter", "5", "20",
                           "--repeats", "2", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    candidates = len(results["candidates"])
    assert candidates == 6 and results["train"] == [120, 16]  # 3 classes × 40 rows, the default ERM sweep
    for name in ("ours", "lbfgs_5", "lbfgs_20"):
        assert len(results[name]) == 2 and all(len(r["test"]) == candidates for r in results[name])
    assert all(0 < short["evaluations"] <= long["evaluations"]  # a cap of 5 iterations stops no later than 20
               for short, long in zip(results["lbfgs_5"], results["lbfgs_20"]))
    assert "lbfgs_20: best" in done.stdout and "threads: torch 1" in done.stdout
