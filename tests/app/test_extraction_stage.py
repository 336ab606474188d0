"""What an extraction job's stage says before its first batch is written, and while it waits for another job."""
from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.steps import EXTRACTING_FIRST_BATCH, WAITING_FOR_EXTRACTION
from app_testutils import make_settings, tiny_zip_bytes, wait_for, wait_job


@pytest.fixture
def service(tmp_path):
    with TestClient(create_app(make_settings(tmp_path / "state"))) as client:
        yield client


def _stage_becomes(client, job_id: str, stage: str) -> None:
    wait_for(lambda: client.get(f"/api/jobs/{job_id}").json()["stage"] == stage, 60, what=f"stage {stage!r}")


def test_the_first_batch_is_said_as_extracting_not_as_building_the_encoder(service, monkeypatch):
    """64 phone photos take 10-30 s to decode and encode on a CPU: the stage said "building encoder" meanwhile."""
    import feature_cache

    real, release = feature_cache.extract, threading.Event()

    def first_batch_under_way(*args, **kwargs):
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", first_batch_under_way)
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    job_id = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"]
    try:
        _stage_becomes(service, job_id, EXTRACTING_FIRST_BATCH)
    finally:
        release.set()
    assert wait_job(service, job_id)["status"] == "succeeded"


def test_a_job_waiting_for_another_extraction_says_so_in_its_stage(service, monkeypatch):
    import feature_cache

    import app.steps as steps

    real, calls = feature_cache.extract, []

    def busy_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise feature_cache.ExtractionBusy("x.h5 is being extracted by another process")
        return real(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", busy_once)
    monkeypatch.setattr(steps, "BUSY_POLL_SECONDS", 60.0)  # it waits until cancelled
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    job_id = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"]
    _stage_becomes(service, job_id, WAITING_FOR_EXTRACTION)
    assert service.delete(f"/api/jobs/{job_id}").status_code in (200, 202)
    assert wait_job(service, job_id)["status"] == "cancelled" and calls == [1]
