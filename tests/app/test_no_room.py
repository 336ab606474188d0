"""A job that cannot write its run or its cache (a full disk, a file-size limit) says what it was writing and what to
do, and leaves nothing half-written."""
from __future__ import annotations

import errno

import pytest
from fastapi.testclient import TestClient

from app.main import create_app

from app_testutils import FAST_PROBE, make_settings, synthetic_cache, wait_job


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path / "state", data_root=tmp_path / "root")
    (tmp_path / "root").mkdir()
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the server's disk is full: the run's files could not be written (No space left on device); "
                   "nothing of the run is kept: free space on that disk, then resume the job"),
    (errno.EFBIG, "file's size): the run's files could not be written (File too large); nothing of the run is kept: "
                  "raise the service's file-size limit (ulimit -f)"),
])
def test_a_probe_that_cannot_write_its_run_says_what_and_what_to_do(service, tmp_path, monkeypatch, code, words):
    """A full disk or a file-size limit as a probe job wrote its run ended it 'OSError: [Errno 27] File too large':
    nothing said it was the run's files, nor to free space or raise the limit and resume (a follow-up round)."""
    import probe.report

    real = probe.report.report_csv

    def full(report):
        real(report)
        raise OSError(code, "No space left on device" if code == errno.ENOSPC else "File too large")

    monkeypatch.setattr(probe.report, "report_csv", full)
    cache_id = synthetic_cache(service.app.state.store, tmp_path)["id"]
    job_id = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": FAST_PROBE}).json()["id"]
    job = wait_job(service, job_id)
    assert job["status"] == "failed" and words in job["error"], job["error"]
    assert job["retryable"] is True
    settings = service.app.state.settings
    assert service.get("/api/runs").json() == [] and list(settings.runs_dir.glob("*")) == []


def test_an_extraction_that_cannot_write_its_cache_says_what_and_what_to_do(service, tmp_path, monkeypatch):
    """The same of the feature cache an extraction writes: the job said '[Errno 27] cannot write ...: File too
    large' and not what to do; what it extracted stays for the resume."""
    import feature_cache

    from app_testutils import tiny_zip_bytes

    def too_large(*args, **kwargs):
        raise OSError(errno.EFBIG, "cannot write x.h5.partial: File too large; the chunks written so far are kept")

    monkeypatch.setattr(feature_cache, "extract", too_large)
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    job_id = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"],
                                             "encoder": "effnet-lite0"}).json()["id"]
    job = wait_job(service, job_id)
    assert job["status"] == "failed" and job["retryable"] is True
    assert job["error"] == (
        "OSError: [Errno 27] the server cannot store a file this large (its file system or its process limits a "
        "file's size): the feature cache could not be written (cannot write x.h5.partial: File too large; the chunks "
        "written so far are kept); the features extracted so far are kept for the resume: raise the service's "
        "file-size limit (ulimit -f), or move its data directory (MR2PROBE_DATA_DIR) to a file system that takes "
        "larger files, then resume the job")
