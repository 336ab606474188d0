"""A phone's rotated photo (EXIF orientation, not applied) is named where the user reads an extraction's outcome:
`mr2probe extract`'s notes on stderr and the service's extraction job messages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.cli import main
from app.main import create_app
from app_testutils import make_settings, wait_job


def photos(root: Path) -> Path:
    """Two classes of small JPEGs in train/ and test/, one of them tagged as a portrait turned 90° (orientation 6)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("chat", "chien"):
            for i in range(2):
                (root / split / label).mkdir(parents=True, exist_ok=True)
                exif = Image.Exif()
                if (split, label, i) == ("train", "chat", 1):
                    exif[0x0112] = 6
                name = "portrait été.jpg" if exif else f"IMG {i}.jpg"
                Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(root / split / label / name,
                                                                                         exif=exif)
    return root


NOTE = "1 image of the cache carries an EXIF orientation (a phone's portrait or turned photo) that is not applied"


def test_mr2probe_extract_names_the_rotated_photo(tmp_path, capsys):
    argv = ["extract", "--data", str(photos(tmp_path / "data")), "--out", str(tmp_path / "c.h5"), "--workers", "0",
            "--device", "cpu", "--no-progress"]
    for attempt in ("written", "reused"):  # a reused cache said nothing: the note is stored in the cache
        assert main(argv) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "EXIF" in line]
        assert len(notes) == 1 and notes[0].startswith(f"note: {NOTE}")
        assert "(train/chat/portrait été.jpg)" in notes[0]


def test_an_extraction_job_says_so_in_its_messages(tmp_path):
    root = tmp_path / "root"
    photos(root / "photos")
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        dataset = client.post("/api/datasets", json={"path": "photos"}).json()
        job = wait_job(client, client.post("/api/jobs", json={
            "kind": "extract", "dataset_id": dataset["id"], "encoder": "effnet-lite0"}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    said = [m["text"] for m in job["messages"] if "EXIF" in m["text"]]
    assert len(said) == 1 and said[0].startswith(NOTE) and "train/chat/portrait été.jpg" in said[0]


def test_a_job_that_reuses_a_registered_cache_says_so_too(tmp_path, capsys):
    """A cache the user extracted with `mr2probe extract` and registered (POST /api/caches) is reused by an
    extraction job of the same features; the job said nothing of its rotated photo, which the cache notes and the
    CLI says on every reuse."""
    root = tmp_path / "root"
    photos(root / "photos")
    assert main(["extract", "--data", str(root / "photos"), "--out", str(root / "c.h5"), "--workers", "0",
                 "--device", "cpu", "--no-progress"]) == 0
    capsys.readouterr()
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        dataset = client.post("/api/datasets", json={"path": "photos"}).json()
        cache = client.post("/api/caches", json={"path": "c.h5"}).json()
        job = wait_job(client, client.post("/api/jobs", json={
            "kind": "extract", "dataset_id": dataset["id"], "encoder": "effnet-lite0"}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    texts = [m["text"] for m in job["messages"]]
    assert f"cache {cache['id']} reused: a file registered by path holds these features" in texts
    said = [text for text in texts if "EXIF" in text]
    assert len(said) == 1 and said[0].startswith(NOTE) and "train/chat/portrait été.jpg" in said[0]
