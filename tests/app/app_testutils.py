"""Builders shared by the app tests: tiny generated image archives (every clone has them) and fast probe configs."""
from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

from app.config import Settings
from testdata import REPO_ROOT, image_zip, write_synthetic_cache

CLASSES = ("airplane", "cat", "ship")

# Few epochs, one seed, fixed hyper-parameters: a probe fits in well under a second on CPU.
FAST_PROBE = {"epochs": 5, "seeds": [0], "lr_grid": [1e-2], "wd_grid": [0.0]}
ERM = dict(FAST_PROBE, loss="ce")
MR2 = dict(FAST_PROBE, loss="mr2", cbar=2.0)


def tiny_zip_bytes(n_train: int = 6, n_test: int = 3, classes: tuple[str, ...] = CLASSES, root: str = "tiny",
                   extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of ``root/{train,test}/<class>/*`` with generated 32×32 JPEG / PNG images (see tests/testdata.py)."""
    return image_zip(n_train, n_test, classes, root=root, extra=extra)


def unzip(data: bytes, folder: Path) -> None:
    """Extract the zip ``data`` (e.g. :func:`tiny_zip_bytes`) into ``folder``: a data set to register by path."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)


def manifest_pair_without_test_rows(root: Path, untested: str = "ship") -> Path:
    """The tiny set (:func:`tiny_zip_bytes` of 4 train and 2 test images a class) unpacked under ``root`` as a
    manifest pair, ``root/tiny/train.csv`` and ``test.csv``, whose class ``untested`` has no test rows; its folder."""
    unzip(tiny_zip_bytes(4, 2), root)
    pair = root / "tiny"
    for name, split in (("train.csv", "train"), ("test.csv", "test")):
        rows = [f"{f.relative_to(pair).as_posix()},{f.parent.name}" for f in sorted((pair / split).rglob("*.*"))
                if split == "train" or f.parent.name != untested]
        (pair / name).write_text("path,label\n" + "\n".join(rows) + "\n")
    return pair


def extract_and_probe(client, dataset_id: str, config: dict) -> tuple[str, object]:
    """Extract the data set ``dataset_id`` (a job waited for, which must succeed), then ask for a probe job of
    ``config`` on its cache: (the cache's id, the probe request's response)."""
    job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": dataset_id}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    cache = client.get("/api/caches").json()[0]["id"]
    return cache, client.post("/api/jobs", json={"kind": "probe", "cache_id": cache, "config": config})


def synthetic_cache(store, folder: Path, attrs: dict | None = None, per_class: dict | None = None) -> dict:
    """A cache row (and its data set row) over a small synthetic 8-d feature file: 3 classes, no extraction,
    ``per_class`` rows per class in each split (default train 10, val 4, test 5).

    ``attrs`` overrides the cache's root attributes; a ``None`` value leaves that attribute out."""
    attrs = {"encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "f" * 64,
             **(attrs or {})}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    per_class = per_class or {"train": 10, "val": 4, "test": 5}
    path = write_synthetic_cache(folder / "synthetic.h5", per_class, 8, attrs, dtype="float32")
    ds = store.add_dataset(name="s", source="path", path=str(folder), class_names=["a", "b", "c"],
                           counts={split: [n] * 3 for split, n in per_class.items()}, fingerprint="d", skipped=0)
    return store.add_cache(dataset_id=ds["id"], encoder="synthetic", path=str(path), fingerprint="f" * 64,
                           num_features=8, class_names=["a", "b", "c"],
                           counts={split: 3 * n for split, n in per_class.items()}, job_id=None)


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
    """Test settings; TestClient sends ``Host: testserver``, so that name is an allowed host."""
    base = dict(data_dir=data_dir, extract_workers=0, extract_batch_size=8, device="cpu", allowed_hosts=["testserver"])
    return Settings(**{**base, **overrides})


def wait_job(client, job_id: str, timeout: float = 240.0) -> dict:
    def done():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] not in ("queued", "running") else None

    return wait_for(done, timeout, interval=0.1, what=f"job {job_id} finished")


def replaced_meanwhile(run: Path, monkeypatch, module, name: str, edit=None) -> list:
    """``module.name`` (a reader of a run's second file) replaces the run in ``run`` (a copy whose report names its
    classes in the other case, ``str.swapcase``: the new run; ``edit(folder)`` changes it further) the first time it
    is called, before it reads, as a `train --force` to the folder that moved its run in between the reads did."""
    from probe.report import RUN_FILES
    from probe.rundir import replace_run

    real, calls = getattr(module, name), []

    def write(staging):
        for path in run.iterdir():
            if path.is_file() and not path.name.startswith("."):
                shutil.copy(path, staging / path.name)
        report = json.loads((staging / "report.json").read_text(encoding="utf-8"))
        report["class_names"] = [n.swapcase() for n in report["class_names"]]
        for row in report["per_class"]:
            row["name"] = row["name"].swapcase()
        (staging / "report.json").write_text(json.dumps(report), encoding="utf-8")
        if edit is not None:
            edit(staging)

    def reader(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            replace_run(run, write, RUN_FILES)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, reader)
    return calls


def head_named_too(folder: Path) -> None:
    """``replaced_meanwhile``'s ``edit`` where the new run must load as a probe: its head names its classes as its
    report does (in the other case)."""
    head = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    head["class_names"] = [n.swapcase() for n in head["class_names"]]
    (folder / "head.json").write_text(json.dumps(head), encoding="utf-8")
