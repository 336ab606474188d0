"""Bounded load test of the mr2probe service on loopback.

Starts ``mr2probe serve`` on 127.0.0.1 (a fresh data dir), uploads a small real CIFAR-10 subset, runs an
ERM + MR² pipeline, then starts a live extraction job and lets N concurrent clients poll job status and read
reports (JSON and CSV) for a fixed duration. Prints the request rate and p50 / p99 latency per endpoint, and
fails (exit 1) on any error. Stops by itself.

    .venv/bin/python bench/load_test.py                 # 50 clients, 30 s
    .venv/bin/python bench/load_test.py --clients 10 --duration 5
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR_ZIP = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
FAST = {"epochs": 20, "seeds": [0], "lr_grid": [1e-2], "wd_grid": [0.0]}


def subset_zip(n_train: int, n_test: int, root: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(CIFAR_ZIP) as src, zipfile.ZipFile(buf, "w") as out:
        names = src.namelist()
        for split, n in (("train", n_train), ("test", n_test)):
            for cls in ("airplane", "bird", "cat", "dog", "ship"):
                prefix = f"cifar10/{split}/{cls}/"
                for m in sorted(x for x in names if x.startswith(prefix) and x.endswith(".jpg"))[:n]:
                    out.writestr(f"{root}/{split}/{cls}/{m.rsplit('/', 1)[1]}", src.read(m))
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_job(client: httpx.Client, job_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def endpoint(path: str) -> str:
    """``/api/jobs/job_1`` → ``GET /api/jobs/{id}`` (latencies are grouped per endpoint)."""
    if "?" in path or path == "/api/health":
        return "GET " + path.split("?")[0]
    head, _ = path.rsplit("/", 1)
    return f"GET {head}/{{id}}" + (".csv" if path.endswith(".csv") else "")


async def client_loop(base: str, targets: list[str], deadline: float, results: dict, errors: list) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            path = targets[i % len(targets)]
            i += 1
            start = time.perf_counter()
            try:
                resp = await client.get(path)
                elapsed = time.perf_counter() - start
                if resp.status_code != 200:
                    errors.append(f"{path}: HTTP {resp.status_code} {resp.text[:200]}")
                else:
                    results.setdefault(endpoint(path), []).append(elapsed)
            except httpx.HTTPError as exc:
                errors.append(f"{path}: {type(exc).__name__}: {exc}")


async def run_load(base: str, targets_per_client: list[list[str]], duration: float) -> tuple[dict, list, float]:
    results: dict[str, list[float]] = {}
    errors: list[str] = []
    start = time.monotonic()
    deadline = start + duration
    await asyncio.gather(*(client_loop(base, t, deadline, results, errors) for t in targets_per_client))
    return results, errors, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--no-live-job", action="store_true", help="no extraction running during the load")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "load_test.json")
    args = parser.parse_args()
    if not CIFAR_ZIP.is_file():
        print(f"load test needs {CIFAR_ZIP} (see /work/shared/data/README.md)", file=sys.stderr)
        return 2

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mr2probe-load-") as tmp:
        env = {**os.environ, "MR2PROBE_EXTRACT_WORKERS": "0", "MR2PROBE_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(REPO_ROOT)}
        env.pop("MR2PROBE_API_TOKEN", None)
        log = open(Path(tmp) / "server.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir",
                                   str(Path(tmp) / "state")], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            client = httpx.Client(base_url=base, timeout=60)
            for _ in range(300):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            print("set-up: uploading 5 CIFAR-10 classes × 10 train / 5 test, running ERM + MR² ...", flush=True)
            ds = client.post("/api/datasets", files={"file": ("small.zip", subset_zip(10, 5, "small"))}).json()
            job = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"],
                                                 "probes": [dict(FAST, loss="ce"), dict(FAST, loss="mr2")]}).json()
            job = wait_job(client, job["id"])
            if job["status"] != "succeeded":
                print(f"set-up job failed: {job['error']}", file=sys.stderr)
                return 1
            erm, mr2 = job["result"]["run_ids"]
            job_ids = [job["id"]]
            if not args.no_live_job:
                big = client.post("/api/datasets", files={"file": ("live.zip", subset_zip(200, 20, "live"))}).json()
                live = client.post("/api/jobs", json={"kind": "extract", "dataset_id": big["id"],
                                                      "options": {"batch_size": 16}}).json()
                job_ids.append(live["id"])
            # Each client mostly polls job status (what the dashboard does) and reads reports now and then.
            targets = [f"/api/jobs/{j}" for j in job_ids] * 2 + [
                f"/api/reports/{mr2}", f"/api/reports/{erm}", f"/api/reports/{mr2}.csv", "/api/jobs?limit=20",
                "/api/health"]  # the baseline: the cheapest route, measured in the same run
            per_client = [targets[i % len(targets):] + targets[:i % len(targets)] for i in range(args.clients)]
            print(f"load: {args.clients} clients for {args.duration:.0f} s on {base} "
                  f"({'with' if not args.no_live_job else 'without'} a live extraction job) ...", flush=True)
            results, errors, elapsed = asyncio.run(run_load(base, per_client, args.duration))
            live_state = client.get(f"/api/jobs/{job_ids[-1]}").json() if len(job_ids) > 1 else None
            if live_state is not None:
                client.delete(f"/api/jobs/{job_ids[-1]}")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()

    all_lat = [x for v in results.values() for x in v]
    total = len(all_lat) + len(errors)
    print(f"\n{'endpoint':<30}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p50 / health':>14}")
    rows = {}
    base_p50 = 1000 * statistics.median(results["GET /api/health"]) if results.get("GET /api/health") else float("nan")
    for name, lat in sorted(results.items()) + [("all", all_lat)]:
        rows[name] = {"requests": len(lat), "p50_ms": 1000 * statistics.median(lat),
                      "p99_ms": 1000 * percentile(lat, 0.99), "max_ms": 1000 * max(lat)}
        r = rows[name]
        r["p50_vs_health"] = r["p50_ms"] / base_p50
        print(f"{name:<30}{r['requests']:>10}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['max_ms']:>10.1f}"
              f"{r['p50_vs_health']:>13.2f}x")
    rate = total / elapsed
    print(f"\n{total} requests in {elapsed:.1f} s = {rate:.0f} req/s, {len(errors)} errors"
          + (f"; live job progressed to {100 * live_state['progress']:.0f}% ({live_state['status']})" if live_state else ""))
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f} at the end")
    for e in errors[:10]:
        print("  error:", e)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"clients": args.clients, "duration_s": elapsed, "requests": total,
                                    "errors": len(errors), "rate_per_s": rate, "endpoints": rows,
                                    "live_job": bool(live_state), "cpu_count": os.cpu_count(),
                                    "load_average_1m": os.getloadavg()[0]}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
