"""Fixtures for the bench/ scripts' tests: bench/ on ``sys.path``, so ``import shots`` / ``import disparity``
work as they do when a script is run (``python bench/disparity.py`` puts bench/ first on the path)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture
def tiny_cache(tmp_path) -> Path:
    """A float32 feature cache of 3 Gaussian classes × 16-d: 40 train, 10 val and 20 test rows per class."""
    from feature_cache import write_cache

    rng = np.random.default_rng(0)

    def split(per_class):
        y = np.repeat(np.arange(3), per_class)
        return (rng.normal(0, 1, (len(y), 16)) + y[:, None]).astype(np.float32), y, [f"{i}.png" for i in range(len(y))]

    return write_cache(tmp_path / "tiny.h5", {"train": split(40), "val": split(10), "test": split(20)},
                       ["a", "b", "c"], {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                         "fingerprint": "f"})
