"""Fixtures for the bench/ scripts' tests: bench/ on ``sys.path``, so ``import shots`` / ``import disparity``
work as they do when a script is run (``python bench/disparity.py`` puts bench/ first on the path)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testdata import write_synthetic_cache

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture
def tiny_cache(tmp_path) -> Path:
    """A float16 feature cache of 3 Gaussian classes × 16-d: 40 train, 10 val and 20 test rows per class."""
    return write_synthetic_cache(tmp_path / "tiny.h5", {"train": 40, "val": 10, "test": 20}, 16,
                                 {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                  "fingerprint": "f"})
