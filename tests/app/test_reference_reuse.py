"""A pipeline whose first probe (the ERM reference) was trained with the same configuration on the same cache by an
earlier job takes that run as its reference instead of training it again (``reuse_reference``, default true)."""
from __future__ import annotations

import shutil
from pathlib import Path

from app_testutils import ERM, FAST_PROBE, wait_job


def _pipeline(client, **body) -> dict:
    resp = client.post("/api/jobs", json={"kind": "pipeline", **body})
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_a_relaunch_with_another_second_probe_reuses_the_erm_run(fresh_finished):
    client, dataset, erm = fresh_finished.client, fresh_finished.dataset, fresh_finished.erm
    runs_before = {r["id"] for r in client.get("/api/runs").json()}
    focal = dict(FAST_PROBE, loss="focal", select="hard")
    job = _pipeline(client, dataset_id=dataset["id"], probes=[ERM, focal])  # the form's relaunch: same data set
    first, second = job["result"]["run_ids"]
    assert first == erm and second not in runs_before
    assert {r["id"] for r in client.get("/api/runs").json()} == runs_before | {second}  # one run trained, not two
    assert any(m["text"].startswith(f"reference: run {erm} (") and "reused, not trained again" in m["text"]
               for m in job["messages"]), job["messages"]
    assert client.get(f"/api/runs/{second}").json()["reference_run"] == erm
    assert client.get(f"/api/reports/{second}").json()["selection"]["criterion"] == "hard"

    # on the cache itself, the same; with reuse_reference=false, or another ERM configuration, a new ERM run
    cache_id = job["result"]["cache_id"]
    assert _pipeline(client, cache_id=cache_id, probes=[ERM])["result"]["run_ids"] == [erm]
    again = _pipeline(client, cache_id=cache_id, probes=[ERM], reuse_reference=False)["result"]["run_ids"]
    other = _pipeline(client, cache_id=cache_id, probes=[dict(ERM, epochs=4)])["result"]["run_ids"]
    assert len({erm, *again, *other}) == 3
    # the newest run of that configuration is the one reused
    assert _pipeline(client, cache_id=cache_id, probes=[ERM])["result"]["run_ids"] == again


def test_a_reference_whose_report_is_gone_is_trained_again(fresh_finished):
    client, erm = fresh_finished.client, fresh_finished.erm
    run = client.get(f"/api/runs/{erm}").json()
    shutil.rmtree(Path(fresh_finished.settings.runs_dir) / erm)
    job = _pipeline(client, cache_id=run["cache_id"], probes=[ERM])
    assert job["result"]["run_ids"] != [erm] and not any("reused" in m["text"] for m in job["messages"])


def test_a_reference_whose_report_is_damaged_or_from_other_code_is_trained_again(fresh_finished):
    """A report cut short was reused and the pipeline then failed (a review); one written by other code (another
    probe.report.code_digest: before an upgrade) keeps words and tests the upgrade changed."""
    import json

    client, erm = fresh_finished.client, fresh_finished.erm
    cache_id = client.get(f"/api/runs/{erm}").json()["cache_id"]
    report = Path(fresh_finished.settings.runs_dir) / erm / "report.json"
    report.write_text(report.read_text()[:100])  # damaged: not reused, a new reference trained
    job = _pipeline(client, cache_id=cache_id, probes=[ERM])
    [first] = job["result"]["run_ids"]
    assert first != erm and not any("reused" in m["text"] for m in job["messages"])
    report = Path(fresh_finished.settings.runs_dir) / first / "report.json"
    assert json.loads(report.read_text())["code"] is not None
    assert _pipeline(client, cache_id=cache_id, probes=[ERM])["result"]["run_ids"] == [first]  # this code's: reused
    report.write_text(json.dumps({**json.loads(report.read_text()), "code": "0123456789abcdef"}))
    job = _pipeline(client, cache_id=cache_id, probes=[ERM])
    [second] = job["result"]["run_ids"]
    assert second not in (erm, first)
    # and the job says why (a second identical run had appeared without a word; a dashboard-only round)
    assert any(m["text"].startswith(f"reference: run {first} (") and "its report was written by other code (before "
               "an upgrade) or cannot be read: trained again" in m["text"] for m in job["messages"]), job["messages"]


def test_a_reference_deleted_while_it_is_being_reused_is_held_or_trained_again(fresh_finished, monkeypatch):
    """A reused run deleted between the reuse decision and its recording failed the job's second probe (NotFound;
    a review): recorded first, a deletion after waits for the job (409); one before is seen, and one is trained."""
    import app.steps as steps
    from app.removal import delete
    from app.status import InvalidTransition

    client, erm, settings = fresh_finished.client, fresh_finished.erm, fresh_finished.settings
    store = client.app.state.store
    cache_id = client.get(f"/api/runs/{erm}").json()["cache_id"]
    real, refused = steps.trained_as_reference, []

    def decided_then_deleted(run):
        config = real(run)
        delete(store, settings, "runs", run["id"])  # another request, between the decision and the record
        return config

    monkeypatch.setattr(steps, "trained_as_reference", decided_then_deleted)
    job = _pipeline(client, cache_id=cache_id, probes=[ERM, dict(FAST_PROBE, loss="focal", select="hard")])
    first, second = job["result"]["run_ids"]
    assert first != erm and client.get(f"/api/runs/{erm}").status_code == 404
    assert client.get(f"/api/runs/{second}").json()["reference_run"] == first

    real_record = steps.JobContext.record

    def record_then_delete(ctx, **values):
        real_record(ctx, **values)
        if values.get("run_ids") == [first]:  # recorded: a deletion now waits for the job
            try:
                delete(store, settings, "runs", first)
            except InvalidTransition as exc:
                refused.append(str(exc))

    monkeypatch.setattr(steps, "trained_as_reference", real)
    monkeypatch.setattr(steps.JobContext, "record", record_then_delete)
    job = _pipeline(client, cache_id=cache_id, probes=[ERM, dict(FAST_PROBE, loss="focal", select="hard")])
    assert job["result"]["run_ids"][0] == first and refused and "is used by job" in refused[0]


def test_two_pipelines_started_together_train_one_reference(tmp_path, tiny_zip, monkeypatch):
    """With two CPU slots, two pipelines on one cache each trained the same ERM reference (a state round): the
    second waits for the first's and reuses it."""
    import threading

    from fastapi.testclient import TestClient

    import app.steps as steps
    from app.main import create_app
    from app_testutils import make_settings, wait_for

    real, release, calls = steps.probe_step, threading.Event(), []

    def held_first(ctx, *args, **kwargs):
        calls.append(ctx.job_id)
        if len(calls) == 1:
            assert release.wait(120), "never released"
        return real(ctx, *args, **kwargs)

    with TestClient(create_app(make_settings(tmp_path, cpu_jobs=2))) as client:
        dataset = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")}).json()
        extract = client.post("/api/jobs", json={"kind": "extract", "dataset_id": dataset["id"],
                                                 "encoder": "effnet-lite0"}).json()["id"]
        cache_id = wait_job(client, extract)["result"]["cache_id"]
        monkeypatch.setattr(steps, "probe_step", held_first)
        first = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache_id, "probes": [ERM]}).json()["id"]
        wait_for(lambda: calls, 60, what="the first pipeline training its reference")
        second = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache_id,
                                                "probes": [ERM, dict(FAST_PROBE, loss="focal")]}).json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{second}").json()["status"] not in ("queued", "running")
                 or any(f"job {first} is training this configuration" in m["text"]
                        for m in client.get(f"/api/jobs/{second}").json()["messages"]), 120,
                 what="the second pipeline waiting (or, unfixed, finished)")
        release.set()
        made = [wait_job(client, job)["result"]["run_ids"] for job in (first, second)]
    assert made[1][0] == made[0][0] and len(made[1]) == 2
    assert calls == [first, second]  # the reference trained once, the focal probe by the second pipeline


def test_a_reference_is_reused_after_its_jobs_record_is_removed(fresh_finished):
    """Removing finished jobs' records (DELETE /api/jobs?older_than_days=0) lost what a run was trained as, which
    only the job's record told: the next pipeline trained an identical ERM run (an attack round). The run's row
    records it; a database of before gets it from the jobs' records still there when it is opened."""
    import json
    import sqlite3

    from app.store import Store

    client, erm = fresh_finished.client, fresh_finished.erm
    cache_id = client.get(f"/api/runs/{erm}").json()["cache_id"]
    store = client.app.state.store
    assert json.loads(store.get_run(erm)["reference_config"]) == fresh_finished.job["request"]["probes"][0]
    assert store.get_run(fresh_finished.mr2)["reference_config"] is None
    job = _pipeline(client, cache_id=cache_id, probes=[dict(ERM, epochs=4), dict(FAST_PROBE, loss="focal")])
    first, second = job["result"]["run_ids"]
    old = fresh_finished.settings.data_dir / "old.db"  # a database of before the column, its jobs' records there
    with sqlite3.connect(old) as conn:
        with sqlite3.connect(store.path) as source:
            source.backup(conn)
        conn.execute("ALTER TABLE runs DROP COLUMN reference_config")

    assert client.delete("/api/jobs", params={"older_than_days": 0}).status_code == 200
    assert client.get(f"/api/jobs/{fresh_finished.job['id']}").status_code == 404
    assert _pipeline(client, cache_id=cache_id, probes=[ERM])["result"]["run_ids"] == [erm]

    reopened = Store(old)  # filled from the jobs' records when opened
    assert json.loads(reopened.get_run(first)["reference_config"]) == job["request"]["probes"][0]
    assert json.loads(reopened.get_run(erm)["reference_config"]) == fresh_finished.job["request"]["probes"][0]
    assert reopened.get_run(second)["reference_config"] is None


def test_reuse_reference_is_a_strict_boolean(fresh_finished):
    """As ExtractOptions and ProbeConfig: "false", 0 and "no" are 422s naming the field, before a job exists (lax,
    "no" read as false and trained the reference again)."""
    client = fresh_finished.client
    cache_id = client.get(f"/api/runs/{fresh_finished.erm}").json()["cache_id"]
    jobs = client.get("/api/jobs").headers["X-Total-Count"]
    for value in ("false", 0, "no", None):
        resp = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache_id, "probes": [ERM],
                                              "reuse_reference": value})
        assert resp.status_code == 422, (value, resp.text)
        assert [e["loc"][-1] for e in resp.json()["detail"]] == ["reuse_reference"], (value, resp.text)
    assert client.get("/api/jobs").headers["X-Total-Count"] == jobs
