"""Builders shared by the app tests: a tiny real image archive and fast probe configs."""
from __future__ import annotations

import io
import socket
import time
import zipfile
from pathlib import Path

import pytest

from app.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CIFAR_ZIP = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
CLASSES = ("airplane", "cat", "ship")

# Few epochs, one seed, fixed hyper-parameters: a probe fits in well under a second on CPU.
FAST_PROBE = {"epochs": 5, "seeds": [0], "lr_grid": [1e-2], "wd_grid": [0.0]}
ERM = dict(FAST_PROBE, loss="ce")
MR2 = dict(FAST_PROBE, loss="mr2", cbar=2.0)


def require_cifar() -> Path:
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"real-data test: {CIFAR_ZIP} is absent (see /work/shared/data/README.md)")
    return CIFAR_ZIP


def cifar_subset_zip(n_train: int = 6, n_test: int = 3, classes: tuple[str, ...] = CLASSES,
                     root: str = "tiny") -> bytes:
    """A zip of ``root/{train,test}/<class>/*.jpg`` with real CIFAR-10 JPEGs (skips when the data is absent)."""
    src_path = require_cifar()
    buf = io.BytesIO()
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        names = src.namelist()
        for split, n in (("train", n_train), ("test", n_test)):
            for cls in classes:
                prefix = f"cifar10/{split}/{cls}/"
                members = sorted(m for m in names if m.startswith(prefix) and m.endswith(".jpg"))[:n]
                for member in members:
                    out.writestr(f"{root}/{split}/{cls}/{member.rsplit('/', 1)[1]}", src.read(member))
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def make_settings(data_dir: Path, **overrides) -> Settings:
    base = dict(data_dir=data_dir, extract_workers=0, extract_batch_size=8, device="cpu")
    return Settings(**{**base, **overrides})


def wait_job(client, job_id: str, timeout: float = 240.0) -> dict:
    def done():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] not in ("queued", "running") else None

    return wait_for(done, timeout, interval=0.1, what=f"job {job_id} finished")
