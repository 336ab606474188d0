"""The real server (uvicorn on 127.0.0.1) killed with SIGKILL during a job, restarted, and resumed."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app_testutils import ERM, MR2, REPO_ROOT, free_port, tiny_zip_bytes, wait_for

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, data_dir: Path, log: Path, token: str | None = None):
        self.port = free_port()
        self.data_dir, self.log, self.token = data_dir, log, token
        self.proc: subprocess.Popen | None = None

    def start(self) -> httpx.Client:
        env = {**os.environ, "MR2PROBE_EXTRACT_WORKERS": "0", "MR2PROBE_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(REPO_ROOT)}
        env.pop("MR2PROBE_API_TOKEN", None)
        if self.token:
            env["MR2PROBE_API_TOKEN"] = self.token
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return client.get("/api/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 90, interval=0.2, what="server health")
        return client

    def explain(self, job: dict) -> str:
        """An assertion message: the job, and the end of the server's log (a failed job's traceback is there)."""
        return f"{job}\n--- server log (end) ---\n{self.log.read_text(errors='replace')[-4000:]}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)


def _wait_job(client: httpx.Client, job_id: str) -> dict:
    def done():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] not in ("queued", "running") else None

    return wait_for(done, 300, interval=0.2, what=f"job {job_id} finished")


def test_sigkill_during_extraction_then_restart_and_resume(tmp_path, tiny_zip):
    server = Server(tmp_path / "state", tmp_path / "server.log")
    try:
        client = server.start()
        ds1 = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip)}).json()
        job1 = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds1["id"], "probes": [ERM, MR2]}).json()
        job1 = _wait_job(client, job1["id"])
        assert job1["status"] == "succeeded", server.explain(job1)
        erm, mr2 = job1["result"]["run_ids"]
        reports = {run: client.get(f"/api/reports/{run}").json() for run in (erm, mr2)}

        big = tiny_zip_bytes(20, 4, root="bigger")
        ds2 = client.post("/api/datasets", files={"file": ("bigger.zip", big)}).json()
        resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds2["id"], "options": {"batch_size": 2}})
        assert resp.status_code == 202
        job2_id = resp.json()["id"]

        def some_chunks_written():
            job = client.get(f"/api/jobs/{job2_id}").json()
            assert job["status"] in ("queued", "running"), job
            return job if job["progress"] > 0.05 else None

        before = wait_for(some_chunks_written, 180, interval=0.05, what="extraction under way")
        server.kill()
        client.close()
        partials = list((tmp_path / "state" / "caches" / ds2["id"]).rglob("*.partial"))
        assert len(partials) == 1, "the killed extraction leaves one resumable partial file"
        assert list((tmp_path / "state" / "caches" / ds2["id"]).rglob("*.h5")) == []

        client = server.start()
        assert {d["id"] for d in client.get("/api/datasets").json()} == {ds1["id"], ds2["id"]}
        assert {r["id"] for r in client.get("/api/runs").json()} == {erm, mr2}
        for run, report in reports.items():
            assert client.get(f"/api/reports/{run}").json() == report
            assert client.get(f"/api/reports/{run}.csv").status_code == 200
        after = client.get(f"/api/jobs/{job1['id']}").json()
        assert after["status"] == "succeeded", server.explain(after)
        job2 = client.get(f"/api/jobs/{job2_id}").json()
        assert job2["status"] == "interrupted" and job2["resumable"] is True, server.explain(job2)
        assert job2["progress"] >= before["progress"]
        assert client.get("/api/caches").json()[0]["dataset_id"] == ds1["id"]  # no cache for the killed job

        resp = client.post(f"/api/jobs/{job2_id}/resume")
        assert resp.status_code == 202 and resp.json()["status"] == "queued"
        job2 = _wait_job(client, job2_id)
        assert job2["status"] == "succeeded" and job2["attempts"] == 2, server.explain(job2)
        cache = client.get(f"/api/caches/{job2['result']['cache_id']}").json()
        assert cache["dataset_id"] == ds2["id"] and sum(cache["counts"].values()) == 72
        encoded = [m["text"] for m in job2["messages"] if "images encoded in this attempt" in m["text"]]
        done, total = map(int, re.search(r"\((\d+) of (\d+) images encoded", encoded[-1]).groups())
        assert total == 72 and done < total, "the resumed extraction continued from its last chunk"
        assert list((tmp_path / "state" / "caches" / ds2["id"]).rglob("*.partial")) == []
        client.close()
    finally:
        server.kill()


def test_the_server_logs_one_line_per_request_without_the_token(tmp_path):
    """The server logged no request (uvicorn's access log was off): an operator saw neither who called what nor
    the 401s of a client with an old token (an operator round). One line each, in the service's format."""
    token = "rotated-secret-token-42"
    server = Server(tmp_path / "data", tmp_path / "server.log", token=token)
    client = server.start()
    try:
        assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/datasets?limit=3", headers={"Authorization": "Bearer old-token"}).status_code == 401
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(60)
    log = server.log.read_text()
    timestamped = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO uvicorn.access: 127\.0\.0\.1:\d+ - "
    assert len(re.findall(timestamped + r'"GET /api/jobs HTTP/1\.1" 200$', log, re.M)) == 1
    assert len(re.findall(timestamped + r'"GET /api/datasets\?limit=3 HTTP/1\.1" 401$', log, re.M)) == 1
    assert token not in log and "old-token" not in log
