"""Extraction's DataLoader workers end with the process that made them: a server killed with SIGKILL mid-extraction
left its forked workers alive, holding its listening socket and the data directory's job lock, and no server could
start again until they were killed by hand (an operator round)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")

_PARENT = textwrap.dedent("""
    import functools, os, sys, time
    import numpy as np
    from torch.utils.data import DataLoader, Dataset
    from feature_cache.extract import _worker_start

    class Encoded(Dataset):  # what a CPU worker sends back: a batch's features as a numpy array, through a pipe
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            return os.getpid(), np.zeros(1 << 20, np.uint8)  # a full pipe blocked the workers' exit for good

    loader = DataLoader(Encoded(), batch_size=None, num_workers=2, collate_fn=lambda item: item,
                        worker_init_fn=functools.partial(_worker_start, parent=os.getpid(), tune_allocator=False),
                        multiprocessing_context="fork")  # as run_plan's, whatever the default start method
    pids, batches = set(), iter(loader)  # the iterator kept: its workers live while it does
    while len(pids) < 2:
        pids.add(next(batches)[0])
    with open(sys.argv[1], "w") as f:
        f.write(" ".join(map(str, sorted(pids))))
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's reaping is left


def test_dataloader_workers_end_when_their_parent_is_killed(tmp_path):
    written = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(written)], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 120
        while not (written.exists() and written.read_text()) and time.monotonic() < deadline:
            assert parent.poll() is None, "the parent process failed"
            time.sleep(0.1)
        workers = [int(pid) for pid in written.read_text().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for pid in (locals().get("workers") or []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_extraction_forks_its_workers_whatever_the_default_start_method(tmp_path, monkeypatch):
    """Python 3.14 makes forkserver Linux's default: its workers' parent is the fork server, and the parent check
    ended every one of them (a review). The extraction's DataLoader asks for fork, whatever the default."""
    import importlib

    from fc_testutils import make_tree, tiny_encoder

    module = importlib.import_module("feature_cache.extract")  # the package's `extract` is the function
    real, contexts = module.DataLoader, []

    def recording(*args, **kwargs):
        contexts.append(kwargs.get("multiprocessing_context"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "DataLoader", recording)
    data = make_tree(tmp_path / "data", {"a": 3, "b": 3})
    result = module.extract(data, tiny_encoder(), None, out=tmp_path / "c.h5", workers=2, batch_size=2,
                            show_progress=False)
    assert contexts == ["fork"] and result.encoded == 12


def test_a_worker_whose_parent_is_gone_before_it_starts_exits(monkeypatch):
    from feature_cache.extract import _worker_start

    ended = []
    monkeypatch.setattr(os, "_exit", lambda code: ended.append(code))
    monkeypatch.setattr("ctypes.CDLL", lambda *a, **k: type("libc", (), {"prctl": staticmethod(lambda *a: 0)})())
    _worker_start(0, parent=-1, tune_allocator=False)  # os.getppid() is never -1
    assert ended == [1]
    _worker_start(0, parent=os.getppid(), tune_allocator=False)
    assert ended == [1]
