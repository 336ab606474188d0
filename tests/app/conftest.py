"""Fixtures for the app tests: a service on a temporary data dir with one finished ERM + MR² pipeline."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

from app_testutils import ERM, MR2, cifar_subset_zip, make_settings, wait_job


@pytest.fixture(scope="session")
def tiny_zip() -> bytes:
    """3 CIFAR-10 classes × 6 train / 3 test real JPEGs."""
    return cifar_subset_zip(6, 3)


@dataclass
class Finished:
    client: TestClient
    settings: Settings
    dataset: dict
    job: dict
    erm: str
    mr2: str


@pytest.fixture(scope="session")
def finished(tmp_path_factory, tiny_zip):
    """A running service (TestClient) with an uploaded data set and a succeeded pipeline job."""
    settings = make_settings(tmp_path_factory.mktemp("service"))
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")},
                           data={"name": "tiny cifar"})
        assert resp.status_code == 201, resp.text
        dataset = resp.json()
        resp = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"],
                                              "encoder": "effnet-lite0", "probes": [ERM, MR2]})
        assert resp.status_code == 202, resp.text
        job = wait_job(client, resp.json()["id"])
        assert job["status"] == "succeeded", job
        erm, mr2 = job["result"]["run_ids"]
        yield Finished(client, settings, dataset, job, erm, mr2)
