"""Fixtures for the app tests: services on temporary data dirs, with a finished ERM + MR² pipeline.

``finished`` is one service shared by the session for tests that only read it; a test that changes state
takes ``fresh_finished`` (its own service and pipeline) or builds its own service.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

from app_testutils import ERM, MR2, make_settings, tiny_zip_bytes, wait_job


@pytest.fixture(scope="session")
def tiny_zip() -> bytes:
    """3 classes × 6 train / 3 test generated 32×32 images."""
    return tiny_zip_bytes(6, 3)


@dataclass
class Finished:
    client: TestClient
    settings: Settings
    dataset: dict
    job: dict
    erm: str
    mr2: str


def _finished_service(data_dir: Path, tiny_zip: bytes):
    settings = make_settings(data_dir)
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")},
                           data={"name": "tiny images"})
        assert resp.status_code == 201, resp.text
        dataset = resp.json()
        resp = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"],
                                              "encoder": "effnet-lite0", "probes": [ERM, MR2]})
        assert resp.status_code == 202, resp.text
        job = wait_job(client, resp.json()["id"])
        assert job["status"] == "succeeded", job
        erm, mr2 = job["result"]["run_ids"]
        yield Finished(client, settings, dataset, job, erm, mr2)


@pytest.fixture(scope="session")
def finished(tmp_path_factory, tiny_zip):
    """A running service (TestClient) with an uploaded data set and a succeeded pipeline job; read-only use."""
    yield from _finished_service(tmp_path_factory.mktemp("service"), tiny_zip)


@pytest.fixture
def fresh_finished(tmp_path, tiny_zip):
    """Like ``finished``, but this test's own: it may submit, cancel and resume jobs."""
    yield from _finished_service(tmp_path / "service", tiny_zip)
