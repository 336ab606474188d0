"""Latency of ``GET /api/runs/{id}/label-issues`` pages (limit 24) on a large result, through the service in process
(a TestClient; no network).

On a fresh ``--data-dir`` it registers ``--cache`` as a cache row (no data set to extract), trains a run on it (a
pipeline job: ERM, linear head, one seed) and runs one ``label_issues`` job per ``--methods`` (5 folds); on a data
dir it prepared before, it reuses them (state in ``DATA_DIR/bench_state.json``). It then times, per method, the
first GET in the process (cold), the same GET repeated, a ``?class=`` page and the last page, and prints the result
file's size and the process's peak RSS. Run it from two source trees (``PYTHONPATH=TREE``) on the same data dir to
compare code on the same files.

    PYTHONPATH=. nice .venv/bin/python bench/label_issues_pages.py --data-dir /tmp/svc --cache cifar10-full.h5
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path


def wait(client, job_id: str) -> dict:
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
            return job
        time.sleep(0.5)


def prepared_run(client, data_dir: Path, cache_path: str) -> str:
    """The run the data dir's earlier call trained, or a new one on ``cache_path`` registered as a cache row."""
    from feature_cache import open_cache

    state = data_dir / "bench_state.json"
    if state.exists():
        return json.loads(state.read_text())["run_id"]
    store, cache = client.app.state.store, open_cache(cache_path)
    counts = {split: len(cache.load(split, dtype=None)[1]) for split in ("train", "val", "test")}
    names = list(cache.class_names)
    dataset = store.add_dataset(name="bench", source="path", path=str(Path(cache_path).parent), class_names=names,
                                counts={split: [0] * len(names) for split in counts},
                                fingerprint="bench" + cache.fingerprint[:8], skipped=0)
    row = store.add_cache(dataset_id=dataset["id"], encoder=cache.attrs.get("encoder", "bench"), path=cache_path,
                          fingerprint=cache.fingerprint, num_features=cache.num_features, class_names=names,
                          counts=counts, job_id=None)
    resp = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": row["id"],
                                          "probes": [{"loss": "ce", "seeds": [0], "head": "linear"}]})
    run_id = wait(client, resp.json()["id"])["result"]["run_ids"][0]
    state.write_text(json.dumps({"run_id": run_id}))
    return run_id


def timed(client, url: str, missing_ok: bool = False, **params) -> tuple[float, dict | None]:
    start = time.perf_counter()
    resp = client.get(url, params=params)
    elapsed = time.perf_counter() - start
    if missing_ok and resp.status_code == 404:
        return elapsed, None
    if resp.status_code != 200:
        raise SystemExit(f"GET {url} {params}: {resp.status_code} {resp.text[:300]}")
    return elapsed, resp.json()


def pages(client, run_id: str, method: str, repeats: int) -> str:
    """The method's result read (its job run first where there is none): the GETs' times, in a line."""
    url = f"/api/runs/{run_id}/label-issues"
    cold, body = timed(client, url, missing_ok=True, method=method, limit=24)
    if body is None:
        wait(client, client.post("/api/jobs", json={"kind": "label_issues", "run_id": run_id,
                                                    "method": method}).json()["id"])
        cold, body = timed(client, url, method=method, limit=24)
    again = statistics.median(timed(client, url, method=method, limit=24)[0] for _ in range(repeats))
    name = body["items"][0]["true"]
    klass = statistics.median(timed(client, url, method=method, limit=24, **{"class": name})[0]
                              for _ in range(repeats))
    last = statistics.median(timed(client, url, method=method, limit=24, offset=body["total"] - 1)[0]
                             for _ in range(repeats))
    return (f"{method}: {body['total']} of {body['images']} images listed; GET limit=24 first {cold * 1e3:.0f} ms, "
            f"repeated {again * 1e3:.1f} ms, ?class= {klass * 1e3:.1f} ms, last page {last * 1e3:.1f} ms (medians "
            f"of {repeats})")


def main(argv=None) -> None:
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the service's data dir (made, or reused)")
    parser.add_argument("--cache", help="the feature cache to train on (a fresh data dir only)")
    parser.add_argument("--methods", nargs="+", default=["predicted-neq-given", "confident-learning"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir, extract_workers=0, device="cpu", allowed_hosts=["testserver"])
    with TestClient(create_app(settings)) as client:
        run_id = prepared_run(client, args.data_dir, args.cache)
        for method in args.methods:
            print(pages(client, run_id, method, args.repeats), flush=True)
        folder = Path(client.app.state.store.get_run(run_id)["path"]) / "label_issues"
        print("result files:", ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(folder.glob("*.json"))))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
