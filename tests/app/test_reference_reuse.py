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
