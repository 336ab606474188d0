"""DELETE /api/runs|caches|datasets/{id} (app.removal): rows in one transaction, refused while a job uses them or
while they have dependents (unless cascade=true), then only the service's own files."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.status import InvalidTransition, NotFound
from app.store import Store

from app_testutils import ERM, make_settings, synthetic_cache, wait_job


def test_deleting_runs_cache_and_uploaded_data_set_removes_their_files(fresh_finished):
    f = fresh_finished
    client, settings = f.client, f.settings
    cache_id = f.job["result"]["cache_id"]
    cache_files = sorted((settings.caches_dir / f.dataset["id"]).rglob("*.h5"))
    assert len(cache_files) == 1 and (settings.runs_dir / f.erm / "report.json").is_file()

    # The ERM run is the MR² run's reference: deleting it says so, and the MR² run keeps its report.
    resp = client.delete(f"/api/runs/{f.erm}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"] == [{"kind": "run", "id": f.erm, "name": "ce/linear (5 epochs)"}]
    assert resp.json()["notes"] == [f"run {f.mr2!r} took run {f.erm!r} as its reference: it keeps its report and "
                                    "groups; the comparison with it is gone"]
    assert not (settings.runs_dir / f.erm).exists()
    assert client.get(f"/api/runs/{f.erm}").status_code == 404
    assert client.get(f"/api/reports/{f.erm}").status_code == 404
    assert client.get(f"/api/reports/{f.mr2}").status_code == 200
    assert client.get("/api/compare", params={"base": f.erm, "other": f.mr2}).status_code == 404
    assert client.delete(f"/api/runs/{f.erm}").status_code == 404

    # A cache with runs: a 409 naming them, nothing deleted; with cascade, the runs first, then the cache.
    resp = client.delete(f"/api/caches/{cache_id}")
    assert resp.status_code == 409
    assert resp.json()["detail"] == (f"cache {cache_id!r} has runs {f.mr2!r}: delete them first, or send "
                                     "cascade=true to delete them with it")
    assert cache_files[0].is_file() and (settings.runs_dir / f.mr2).is_dir()
    resp = client.delete(f"/api/caches/{cache_id}", params={"cascade": "true"})
    assert resp.status_code == 200, resp.text
    assert [(d["kind"], d["id"]) for d in resp.json()["deleted"]] == [("run", f.mr2), ("cache", cache_id)]
    assert not cache_files[0].exists() and not (settings.runs_dir / f.mr2).exists()
    assert not (settings.caches_dir / f.dataset["id"]).exists()  # its now empty folders too
    assert client.get("/api/caches").json() == [] and client.get("/api/runs").json() == []

    # The uploaded data set: its archive goes with it; a job naming it afterwards is a 404.
    assert (settings.uploads_dir / f.dataset["id"]).is_dir()
    resp = client.delete(f"/api/datasets/{f.dataset['id']}")
    assert resp.status_code == 200 and resp.json() == {
        "deleted": [{"kind": "data set", "id": f.dataset["id"], "name": "tiny images"}], "notes": [], "dry_run": False}
    assert not (settings.uploads_dir / f.dataset["id"]).exists()
    assert client.get("/api/datasets").json() == []
    resp = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": f.dataset["id"], "probes": [ERM]})
    assert resp.status_code == 404 and f.dataset["id"] in resp.json()["detail"]


def _run(store, settings, cache: dict, run_id: str, job_id: str | None = None, folder: bool = True) -> Path:
    """A run row on ``cache`` (and its folder under the service's runs/, unless ``folder`` is False)."""
    run_dir = settings.runs_dir / run_id
    if folder:
        run_dir.mkdir(parents=True, exist_ok=True)
    store.add_run(run_id=run_id, job_id=job_id, cache_id=cache["id"], name="ce/linear", head="linear", loss="ce",
                  reference_run=None, path=str(run_dir), summary={})
    return run_dir


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path / "svc")
    with TestClient(create_app(settings, start_worker=False)) as client:
        yield client, client.app.state.store, settings


def test_a_job_that_will_read_a_row_holds_its_deletion(service, tmp_path):
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    job = store.add_job("probe", {"cache_id": cache["id"], "config": {}})  # queued (no worker)
    for path, params in ((f"/api/caches/{cache['id']}", {}),
                         (f"/api/datasets/{cache['dataset_id']}", {"cascade": "true"})):
        resp = client.delete(path, params=params)
        assert resp.status_code == 409, resp.text
        assert resp.json()["detail"].startswith(f"cache {cache['id']!r}") and \
            f"is used by job {job['id']!r} (queued): cancel it or let it finish, then delete" in resp.json()["detail"]
    assert store.get_cache(cache["id"]) and store.get_dataset(cache["dataset_id"])
    # Interrupted (it resumes) holds too; cancelled does not.
    store.claim(job["id"])
    store.interrupt(job["id"])
    assert client.delete(f"/api/caches/{cache['id']}").status_code == 409
    store.cancel_queued(job["id"])
    resp = client.delete(f"/api/datasets/{cache['dataset_id']}", params={"cascade": True})
    assert resp.status_code == 200, resp.text
    assert [d["kind"] for d in resp.json()["deleted"]] == ["cache", "data set"]


def test_a_folder_registered_by_path_and_files_outside_the_data_dir_stay(service, tmp_path):
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")  # its file lies in the user's folder, not under caches/
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    resp = client.delete(f"/api/datasets/{cache['dataset_id']}")
    assert resp.status_code == 409 and f"has caches {cache['id']!r}" in resp.json()["detail"]
    resp = client.delete(f"/api/datasets/{cache['dataset_id']}", params={"cascade": "1"})
    assert resp.status_code == 200
    assert resp.json()["notes"] == [f"the files of data set {cache['dataset_id']!r} were registered by path: they are "
                                    "left on the server as they were"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before == ["synthetic.h5"]
    assert client.get(f"/api/caches/{cache['id']}").status_code == 404


def test_a_job_is_not_queued_for_a_row_deleted_after_its_checks(tmp_path):
    """The request's rows are checked again in the transaction that queues it: a deletion in between is a 404."""
    store = Store(tmp_path / "s.sqlite3")
    cache = synthetic_cache(store, tmp_path / "data")
    for request in ({"cache_id": "cache_gone"}, {"dataset_id": "ds_gone"},
                    {"cache_id": cache["id"], "reference_run": "run_gone"}):
        with pytest.raises(NotFound):
            store.add_job("probe", request)
    assert store.list_jobs() == []
    with pytest.raises(NotFound, match="cache 'cache_gone' not found"):
        store.delete("caches", "cache_gone", lambda conn, table, row: [(table, row)])
    with pytest.raises(InvalidTransition):  # a plan that refuses leaves every row
        store.delete("caches", cache["id"], lambda conn, table, row: (_ for _ in ()).throw(InvalidTransition("no")))
    assert store.get_cache(cache["id"])


def test_what_a_running_job_is_making_holds_its_deletion(service, tmp_path):
    """The cache file a running extraction reuses (recorded as its ``extraction`` before the cache is), the run it
    trains (``pending_run``) and a row its job made (``job_id``): deleted under the job in an attack round (a reused
    cache went while its job recorded it again, as a row without a file)."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    extracting = store.claim(store.add_job("pipeline", {"dataset_id": cache["dataset_id"]})["id"])
    store.update_result(extracting["id"], extraction=cache["path"])
    resp = client.delete(f"/api/caches/{cache['id']}")
    assert resp.status_code == 409 and resp.json()["detail"] == (
        f"cache {cache['id']!r} is used by job {extracting['id']!r} (running): cancel it or let it finish, then delete")
    store.finish(extracting["id"], "succeeded")
    training = store.claim(store.add_job("probe", {"cache_id": cache["id"]})["id"])
    queued = store.add_job("probe", {"cache_id": cache["id"]})
    store.update_result(training["id"], pending_run="run_p")
    run_dir = _run(store, settings, cache, "run_p")
    resp = client.delete("/api/runs/run_p")
    assert resp.status_code == 409 and f"is used by job {training['id']!r} (running)" in resp.json()["detail"]
    # every holder with its own status
    resp = client.delete(f"/api/caches/{cache['id']}", params={"cascade": "true"})
    assert resp.status_code == 409 and resp.json()["detail"].startswith(
        f"run 'run_p' (of cache {cache['id']!r}) is used by job {training['id']!r} (running)")
    store.update_result(training["id"], pending_run=None)
    resp = client.delete(f"/api/caches/{cache['id']}", params={"cascade": "true"})
    assert resp.status_code == 409 and resp.json()["detail"] == (
        f"cache {cache['id']!r} is used by job {training['id']!r} (running), {queued['id']!r} (queued): cancel it or "
        "let it finish, then delete")
    made = _run(store, settings, cache, "run_m", job_id=training["id"])
    assert client.delete("/api/runs/run_m").status_code == 409
    assert made.is_dir() and run_dir.is_dir()


def test_a_job_whose_rows_were_deleted_does_not_resume(service, tmp_path):
    """It was queued again and failed again on every resume (an attack round): now a 409 saying why."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    job = store.claim(store.add_job("probe", {"cache_id": cache["id"]})["id"])
    store.finish(job["id"], "failed", error="OSError: disk full")
    assert client.get(f"/api/jobs/{job['id']}").json()["resumable"] is True
    assert client.delete(f"/api/caches/{cache['id']}").status_code == 200  # a failed job holds nothing
    # no longer resumable (it said so, and resume answered 409; an attack round)
    assert [j["resumable"] for j in client.get("/api/jobs").json() if j["id"] == job["id"]] == [False]
    resp = client.post(f"/api/jobs/{job['id']}/resume")
    assert resp.status_code == 409 and resp.json()["detail"] == (
        f"job {job['id']!r} cannot resume: the cache {cache['id']!r} it uses was deleted; submit a new job")
    assert store.get_job(job["id"])["status"] == "failed"


def test_a_run_folder_replaced_by_a_link_loses_the_link_and_never_its_target(service, tmp_path):
    """Only the service's own files go: a run folder that is a symbolic link to a folder outside the data dir is
    unlinked, and what it points to stays (the link was left dangling; an attack round)."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    (settings.runs_dir / "run_l").symlink_to(outside, target_is_directory=True)
    _run(store, settings, cache, "run_l", folder=False)
    assert client.delete("/api/runs/run_l").status_code == 200
    assert not (settings.runs_dir / "run_l").is_symlink() and (outside / "keep.txt").read_text() == "mine"


def test_files_the_file_system_refuses_to_remove_leave_the_deletion_done(service, tmp_path, monkeypatch, caplog):
    """The rows are deleted in their transaction; a file that cannot be removed after it is logged, not a 500
    that says the deletion failed (a review)."""
    import shutil

    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    _run(store, settings, cache, "run_x")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(shutil, "rmtree", refuse)
    resp = client.delete("/api/runs/run_x")
    assert resp.status_code == 200 and client.get("/api/runs/run_x").status_code == 404
    assert "deleted run run_x; its files could not all be removed: read-only file system" in caplog.text


def test_a_dry_run_answers_what_would_go_and_deletes_nothing(service, tmp_path):
    """dry_run=true: the rows the same request would delete now (or its 409), nothing deleted; the dashboard's
    confirmation lists them (its count came from its last listing; an attack round)."""
    client, store, settings = service
    cache = synthetic_cache(store, tmp_path / "data")
    run_dir = _run(store, settings, cache, "run_d")
    resp = client.delete(f"/api/datasets/{cache['dataset_id']}", params={"cascade": "true", "dry_run": "true"})
    assert resp.status_code == 200 and resp.json()["dry_run"] is True
    assert [(d["kind"], d["id"]) for d in resp.json()["deleted"]] == [
        ("run", "run_d"), ("cache", cache["id"]), ("data set", cache["dataset_id"])]
    assert store.get_run("run_d") and store.get_cache(cache["id"]) and run_dir.is_dir()
    assert client.delete(f"/api/caches/{cache['id']}", params={"dry_run": "true"}).status_code == 409
    resp = client.delete("/api/runs/run_d")
    assert resp.status_code == 200 and resp.json()["dry_run"] is False and not run_dir.exists()


def test_a_deleted_reference_of_several_runs_is_said_in_the_plural():
    from app.removal import _notes

    class Runs:
        def rows(self, sql, args):
            return [{"id": "run_a"}, {"id": "run_b"}]

    assert _notes(Runs(), [("runs", {"id": "run_erm"})]) == [
        "runs 'run_a', 'run_b' took run 'run_erm' as their reference: they keep their reports and groups; the "
        "comparison with it is gone"]
