"""Fixtures for feature_cache tests (builders live in fc_testutils.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fc_testutils import CIFAR_ZIP, make_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """3 classes × 6 train / 3 test images."""
    return make_tree(tmp_path / "data", {"ant": 6, "bee": 6, "cat": 6}, test_counts={"ant": 3, "bee": 3, "cat": 3})


@pytest.fixture(scope="session")
def cifar_zip() -> Path:
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"real-data test: {CIFAR_ZIP} is absent (see /work/shared/data/README.md)")
    return CIFAR_ZIP
