"""Removing finished jobs' records (DELETE /api/jobs/{id}/record, DELETE /api/jobs?older_than_days=): the jobs table
grew for ever; open jobs are refused, and the runs and caches the jobs made stay."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.status import JobStatus

from app_testutils import make_settings, synthetic_cache


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path / "svc")
    with TestClient(create_app(settings, start_worker=False)) as client:
        yield client, client.app.state.store, settings


def _job(store, cache: dict, end: JobStatus | None = None, interrupt: bool = False, **result) -> str:
    job = store.add_job("probe", {"cache_id": cache["id"], "config": {}})
    if end is not None or interrupt:
        store.claim(job["id"])
        if result:
            store.update_result(job["id"], **result)
        if interrupt:
            store.interrupt(job["id"])
        else:
            store.finish(job["id"], end)
    return job["id"]


def test_a_finished_job_record_is_removed_and_what_it_made_stays(service, tmp_path):
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    run_dir = settings.runs_dir / "run_0123456789ab"
    run_dir.mkdir(parents=True)
    done = _job(store, cache, JobStatus.succeeded, run_ids=["run_0123456789ab"])
    store.add_run(run_id="run_0123456789ab", job_id=done, cache_id=cache["id"], name="ce/linear", head="linear",
                  loss="ce", reference_run=None, path=str(run_dir), summary={})
    half = settings.runs_dir / "run_aaaaaaaaaaaa"  # a failed job's half-written run: nothing names it once it goes
    half.mkdir()
    failed = _job(store, cache, JobStatus.failed, pending_run="run_aaaaaaaaaaaa")
    queued, interrupted = _job(store, cache), _job(store, cache, interrupt=True)

    for job_id, status in ((queued, "queued"), (interrupted, "interrupted")):
        resp = client.delete(f"/api/jobs/{job_id}/record")
        assert resp.status_code == 409, resp.text
        assert resp.json()["detail"] == (f"job {job_id!r} is {status}; only a finished job (succeeded, failed or "
                                         f"cancelled) can be removed: cancel it first (DELETE /api/jobs/{job_id})")
    resp = client.delete(f"/api/jobs/{done}/record", params={"dry_run": "true"})
    assert resp.status_code == 200 and resp.json() == {"removed": [done], "dry_run": True}
    assert client.get(f"/api/jobs/{done}").status_code == 200

    for job_id in (done, failed):
        resp = client.delete(f"/api/jobs/{job_id}/record")
        assert resp.status_code == 200 and resp.json() == {"removed": [job_id], "dry_run": False}, resp.text
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.delete(f"/api/jobs/{done}/record").status_code == 404
    assert client.get("/api/runs/run_0123456789ab").status_code == 200 and (run_dir / ".").is_dir()
    assert client.get(f"/api/caches/{cache['id']}").status_code == 200
    assert not half.exists()
    resp = client.get("/api/jobs")
    assert [j["id"] for j in resp.json()] == [interrupted, queued] and resp.headers["X-Total-Count"] == "2"


def test_a_purge_removes_only_finished_jobs_older_than_its_bound(service, tmp_path):
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    old = [_job(store, cache, status) for status in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)]
    recent = _job(store, cache, JobStatus.succeeded)
    open_ = [_job(store, cache), _job(store, cache, interrupt=True)]
    with store._tx() as conn:  # finished 40 days ago; the open ones queued then too
        conn.execute("UPDATE jobs SET finished_at = '2000-01-01T00:00:00.000+00:00', "
                     "updated_at = '2000-01-01T00:00:00.000+00:00', created_at = '2000-01-01T00:00:00.000+00:00' "
                     f"WHERE id IN ({', '.join('?' for _ in old + open_)})", (*old, *open_))

    assert client.delete("/api/jobs").status_code == 422  # no bound: nothing removed by mistake
    resp = client.delete("/api/jobs", params={"older_than_days": 30, "dry_run": "true"})
    assert resp.status_code == 200 and resp.json() == {"removed": old, "dry_run": True}
    assert client.get("/api/jobs").headers["X-Total-Count"] == "6"
    resp = client.delete("/api/jobs", params={"older_than_days": 30})
    assert resp.status_code == 200 and resp.json() == {"removed": old, "dry_run": False}
    assert {j["id"] for j in client.get("/api/jobs").json()} == {recent, *open_}
    resp = client.delete("/api/jobs", params={"older_than_days": 0})
    assert resp.json()["removed"] == [recent]
    assert {j["id"] for j in client.get("/api/jobs").json()} == set(open_)


def test_a_job_whose_files_cannot_be_removed_loses_its_record_all_the_same(service, tmp_path, monkeypatch, caplog):
    """A file system that refuses a removal answered 500 and kept the record."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    failed = _job(store, cache, JobStatus.failed, pending_run="run_aaaaaaaaaaaa")
    runner = client.app.state.runner

    def refuse(job, store, settings):
        raise PermissionError(13, "Permission denied", "runs/run_aaaaaaaaaaaa")

    monkeypatch.setitem(runner.handlers, "probe", runner.handlers["probe"].__class__(
        runner.handlers["probe"].run, runner.handlers["probe"].resource, refuse))
    resp = client.delete(f"/api/jobs/{failed}/record")
    assert resp.status_code == 200 and resp.json()["removed"] == [failed], resp.text
    assert client.get(f"/api/jobs/{failed}").status_code == 404
    assert f"job {failed}: removing the files it left failed" in caplog.text


def test_removing_a_label_issues_jobs_record_keeps_what_it_found(fresh_finished):
    """A succeeded label_issues job's result is the run's: removing the job's record, or a purge of every finished
    record, leaves it, and GET /api/runs/{id}/label-issues still reads the newest (it deleted the file, a 404 after);
    the run's deletion removes it."""
    from pathlib import Path

    from app_testutils import wait_job

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    assert client.get(f"/api/runs/{run['id']}").json()["label_issues"] == []
    jobs = [wait_job(client, client.post("/api/jobs", json={"kind": "label_issues", "run_id": run["id"],
                                                              "folds": folds}).json()["id"]) for folds in (2, 3)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    before = client.get(f"/api/runs/{run['id']}/label-issues", params={"limit": 200}).json()
    assert before["job_id"] == jobs[1]["id"] and before["folds"] == 3
    removed = client.delete(f"/api/jobs/{jobs[1]['id']}/record")
    assert removed.status_code == 200 and removed.json()["removed"] == [jobs[1]["id"]]
    after = client.get(f"/api/runs/{run['id']}/label-issues", params={"limit": 200})
    assert after.status_code == 200, after.text
    assert {k: v for k, v in after.json().items() if k != "finished_at"} == {
        k: v for k, v in before.items() if k != "finished_at"}
    assert client.delete("/api/jobs", params={"older_than_days": 0}).status_code == 200
    assert client.get(f"/api/jobs/{jobs[0]['id']}").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/label-issues").json()["job_id"] == jobs[1]["id"]
    # the run says they are there (its page offered to look for them again: no job of it was listed any more)
    assert client.get(f"/api/runs/{run['id']}").json()["label_issues"] == ["predicted-neq-given"]
    assert client.delete(f"/api/runs/{run['id']}").status_code == 200 and not Path(run["path"]).exists()
    assert client.get(f"/api/runs/{run['id']}/label-issues").status_code == 404


@pytest.mark.parametrize("days", ["nan", "NaN", "inf", "-inf"])
def test_a_purge_bound_that_is_not_a_number_is_refused_as_such(service, days):
    """older_than_days=nan was refused as "less than or equal to 100000", a bound it does not break: it is not a
    finite number (±inf is out of the range, said with it), and nothing is removed."""
    client, _, _ = service
    resp = client.delete("/api/jobs", params={"older_than_days": days})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "older_than_days"]
    said = "must be a finite number" if days.lower() == "nan" else "must be in [0, 100000]"
    suffix = "" if days.lower() == "nan" else ", out of range"
    assert resp.json()["detail"][0]["msg"] == f"older_than_days {said}, got {float(days)}{suffix}."


@pytest.mark.parametrize("how", ["record", "purge"])
def test_a_failed_job_resumed_while_its_record_is_removed_keeps_what_it_resumes_from(service, tmp_path, monkeypatch,
                                                                                     how):
    """A failed job is resumable: a resume that lands after the removal read the job, before it discarded what the
    job left, queued the job again, and the removal then deleted its half-written run (a 409 said the job was queued
    now, its files gone all the same). The removal checks each job again, a resume waiting for it: the job stays
    queued with what it resumes from."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    half = settings.runs_dir / "run_aaaaaaaaaaaa"
    half.mkdir(parents=True)
    failed = _job(store, cache, JobStatus.failed, pending_run="run_aaaaaaaaaaaa")
    get_job = store.get_job
    read = get_job if how == "record" else store.finished_jobs

    def read_then_resumed(*args, **kwargs):  # the removal's read, then the resume that lands before its discard
        got = read(*args, **kwargs)
        if get_job(failed)["status"] == JobStatus.failed.value:
            store.resume(failed)
        return got

    monkeypatch.setattr(store, "get_job" if how == "record" else "finished_jobs", read_then_resumed)
    if how == "record":
        resp = client.delete(f"/api/jobs/{failed}/record")
        assert resp.status_code == 409, resp.text
    else:
        resp = client.delete("/api/jobs", params={"older_than_days": 0})
        assert resp.status_code == 200 and resp.json()["removed"] == [], resp.text
    assert store.get_job(failed)["status"] == "queued" and half.is_dir()
    assert store.get_job(failed)["result"]["pending_run"] == "run_aaaaaaaaaaaa"


def test_cancelling_a_job_whose_partial_file_cannot_be_removed_answers_the_cancelled_job(service, tmp_path):
    """DELETE /api/jobs/{id} of an interrupted extraction whose partial file the file system would not let go (here:
    a file where its folder should be) cancelled the job, then answered a 500: the cancel held and the client was
    told it failed. It answers the cancelled job, which says its files are left to the server's next start (whose
    sweep removes the partial files no job extracts)."""
    client, store, _ = service
    dataset = store.add_dataset(name="d", source="path", path=str(tmp_path), class_names=["a", "b"], counts={},
                                fingerprint=None, skipped=0)
    (tmp_path / "not-a-folder").write_text("x")
    job = store.add_job("extract", {"dataset_id": dataset["id"], "encoder": "openclip:ViT-B-32", "options": {}})
    store.claim(job["id"])
    store.update_result(job["id"], extraction=str(tmp_path / "not-a-folder" / "x-seed0.h5"))
    store.interrupt(job["id"])
    resp = client.delete(f"/api/jobs/{job['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    assert resp.json()["messages"][-1]["text"].startswith("its partial files could not be removed now")
