"""Fixtures for feature_cache tests (builders live in fc_testutils.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fc_testutils import make_tree, shared_cifar_zip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """3 classes × 6 train / 3 test images."""
    return make_tree(tmp_path / "data", {"ant": 6, "bee": 6, "cat": 6}, test_counts={"ant": 3, "bee": 3, "cat": 3})


@pytest.fixture(scope="session")
def cifar_zip() -> Path:
    path = shared_cifar_zip()
    if path is None:
        pytest.skip("real-data test: ../shared/data/cifar10-jpeg.zip is absent or hidden (MR2PROBE_TEST_NO_SHARED=1)")
    return path
