"""Fixtures for the bench/ scripts' tests: bench/ on ``sys.path``, so ``import shots`` / ``import disparity``
work as they do when a script is run (``python bench/disparity.py`` puts bench/ first on the path)."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
