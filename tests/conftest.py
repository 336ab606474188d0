"""Shared by every test package: the generated image builders live in ``tests/testdata.py`` (importable as
``testdata``: pytest puts this folder on ``sys.path`` for this conftest); and every test starts with torch's
intra-op thread count of the session's start (:func:`torch_threads_restored`)."""
from __future__ import annotations

import pytest
import torch

SESSION_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """torch's thread count set back after each test: tests and the bench mains they call set it (1 for
    equal-thread comparisons, 2 for an extraction), and oneDNN's choice of kernel, so the last bits of a float32
    convolution, depends on it; without this a test's result depended on which tests ran before it (a clone
    without the shared CIFAR-10 archive skipped the extraction test that set it back to 2)."""
    yield
    if torch.get_num_threads() != SESSION_THREADS:
        torch.set_num_threads(SESSION_THREADS)
