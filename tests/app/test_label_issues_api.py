"""Likely wrong labels through the service: a ``label_issues`` job (POST /api/jobs) fits a finished run's
configuration k-fold in the worker and stores its ranked rows; GET /api/runs/{id}/label-issues reads them."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from app_testutils import wait_job


def _start(client, run_id, **fields):
    return client.post("/api/jobs", json={"kind": "label_issues", "run_id": run_id, **fields})


def _rows(found):
    """``app.label_issues.find_label_issues``'s ranked rows as the API lists them (no pool index)."""
    return [{k: v for k, v in row.items() if k != "index"} for row in found.rows_of(None, None)]


def test_a_label_issues_job_stores_what_find_label_issues_finds(fresh_finished):
    """The job's result is the CLI's ranking for the same run and folds, every row, each with its thumbnail; the
    listing filters by class and pages; before any job the GET is a 404 that says how to start one."""
    from app.label_issues import find_label_issues

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    none = client.get(f"/api/runs/{run['id']}/label-issues")
    assert none.status_code == 404 and '"kind": "label_issues"' in none.json()["detail"]
    resp = _start(client, run["id"], folds=3)
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["what"] == f"likely wrong labels of run {run['id']} (3 folds)"
    listed = client.get("/api/jobs", params={"kind": "label_issues", "run_id": run["id"]})  # a run page's jobs
    assert [j["id"] for j in listed.json()] == [job["id"]] and listed.headers["X-Total-Count"] == "1"
    assert client.get("/api/jobs", params={"kind": "label_issues", "run_id": fresh_finished.mr2}).json() == []
    found = find_label_issues(run["path"], store.get_cache(run["cache_id"])["path"], 3)
    expected = _rows(found)
    assert expected, "the fixture run's folds mistake no image: this test would prove nothing"
    body = client.get(f"/api/runs/{run['id']}/label-issues", params={"limit": 200}).json()
    assert body["job_id"] == job["id"] and body["folds"] == 3 and body["params"] == found.params
    assert body["total"] == len(expected) and body["images"] == len(found.predictions.labels)
    assert body["accuracy"] == pytest.approx(found.accuracy) and 0 < found.accuracy <= 1
    assert any(f"(out-of-fold accuracy {100 * found.accuracy:.1f} %)" in m["text"] for m in job["messages"])
    items = body["items"]
    assert [{k: v for k, v in item.items() if k != "thumbnail_url"} for item in items] == expected
    assert all(item["thumbnail_url"].startswith(f"/api/datasets/{fresh_finished.dataset['id']}/thumbnail?source=")
               for item in items)
    from feature_cache import open_cache  # each URL carries the digest the cache recorded of its image's row

    cache = open_cache(store.get_cache(run["cache_id"])["path"])
    assert all(item["thumbnail_url"].endswith(f"&digest={bytes(cache.digests(item['split'])[item['row']]).hex()}")
               for item in items)
    assert all(client.get(item["thumbnail_url"]).status_code == 200 for item in items[:3])
    name = expected[0]["true"]
    one = client.get(f"/api/runs/{run['id']}/label-issues", params={"class": name, "limit": 1, "offset": 0}).json()
    mine = [row for row in expected if row["true"] == name]
    assert one["class"] == name and one["total"] == len(mine) and len(one["items"]) == 1
    assert one["items"][0]["row"] == mine[0]["row"] and one["items"][0]["split"] == mine[0]["split"]
    assert client.get(f"/api/runs/{run['id']}/label-issues", params={"offset": len(expected)}).json()["items"] == []
    assert client.get(f"/api/runs/{run['id']}/label-issues", params={"class": "unicorn"}).status_code == 422
    assert client.get(f"/api/runs/{run['id']}/label-issues", params={"limit": 201}).status_code == 422
    assert client.get("/api/runs/run_nope/label-issues").status_code == 404
    deleted = client.delete(f"/api/runs/{run['id']}")  # the run's results go with its folder
    assert deleted.status_code == 200 and not Path(run["path"]).exists()
    assert client.get(f"/api/runs/{run['id']}/label-issues").status_code == 404


def test_a_weak_refits_listing_is_said_to_be_mostly_its_own_errors(fresh_finished):
    """A refit right on 26 % of its images out of fold listed 191 of 241 as likely wrong labels, its accuracy said
    nowhere: the answer carries the accuracy and, below the bar, the caution (none above it, none for a result
    stored before the accuracy was kept)."""
    import json

    from app.label_issues_job import _write, result_file
    from probe.label_issues import weak_refit_caution

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    path = result_file(run["path"], job["id"])
    document = json.loads(path.read_text())
    url = f"/api/runs/{run['id']}/label-issues"
    for accuracy, warned in ((0.26, True), (0.95, False), (None, False)):
        _write(path, {k: v for k, v in {**document, "accuracy": accuracy}.items() if v is not None or k != "accuracy"})
        body = client.get(url).json()
        assert body["accuracy"] == accuracy and (body["caution"] is not None) == warned, body
    _write(path, {**document, "accuracy": 0.26})
    caution = client.get(url).json()["caution"]
    assert caution == weak_refit_caution(0.26) and caution.startswith("The refit is right on only 26.0 % of these")
    assert "more likely the probe's own errors than wrong labels" in caution


def _jobs(client) -> int:
    return int(client.get("/api/jobs").headers["X-Total-Count"])


def test_a_label_issues_request_is_checked_before_a_job_exists(fresh_finished):
    """Unknown run: 404; folds out of bounds or above a class's train + val images, unknown fields, a run whose
    cache file is gone or holds other features than the run trained on: 422 naming the problem, and no job."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    jobs = _jobs(client)
    unknown = _start(client, "run_nope")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "run 'run_nope' not found"
    for folds in (1, 21, True, 2.5, "3", 3.0):  # strict, as ExtractOptions and ProbeConfig: "3" is not 3
        resp = _start(client, run["id"], folds=folds)
        assert resp.status_code == 422 and "folds" in json.dumps(resp.json()["detail"]), (folds, resp.text)
    many = _start(client, run["id"], folds=7)  # 6 train + val images a class
    assert many.status_code == 422 and many.json()["detail"] == (
        "folds: folds=7: class 'airplane' has 6 image(s) in train + val, and each fold needs one of every class; "
        "use at most 6 folds.")
    extra = _start(client, run["id"], limit=5)
    assert extra.status_code == 422 and "limit" in json.dumps(extra.json()["detail"])
    blank = _start(client, run["id"], device="")  # was taken as absent (the run's device) without a word
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"][-1] == "device", blank.text
    report_file = Path(run["path"]) / "report.json"
    report = json.loads(report_file.read_text())
    report_file.write_text(json.dumps({**report, "features": {**report["features"], "fingerprint": "0" * 64}}))
    other = _start(client, run["id"])
    assert other.status_code == 422 and other.json()["detail"].startswith(
        f"run_id: run {run['id']!r}: its cache {run['cache_id']!r} holds other features"), other.text
    cache = Path(store.get_cache(run["cache_id"])["path"])
    cache.rename(cache.with_name("moved.h5"))
    gone = _start(client, run["id"])
    assert gone.status_code == 422 and "its file is gone" in gone.json()["detail"], gone.text
    assert _jobs(client) == jobs


def test_a_label_issues_job_on_a_full_disk_says_so_as_other_jobs_do(fresh_finished, monkeypatch):
    """A full disk as the job wrote its result ended it with the bare 'OSError: [Errno 28] No space left on device',
    not the words (app.status.NO_ROOM) of a probe's or an extraction's job; nothing of the result is left."""
    import errno

    import app.label_issues_job
    from probe.files import atomic_write

    def half(name):
        Path(name).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(app.label_issues_job, "atomic_write", lambda path, write: atomic_write(path, half))
    client = fresh_finished.client
    run = client.app.state.store.get_run(fresh_finished.erm)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "failed" and job["retryable"] is True, job
    assert job["error"] == ("OSError: [Errno 28] the server's disk is full: the label-issues result could not be "
                            "written (No space left on device); nothing of it is kept: free space on that disk, then "
                            "resume the job")
    results = Path(run["path"]) / "label_issues"
    assert not results.exists() or list(results.iterdir()) == []


@pytest.mark.parametrize("when", ["between folds", "after the last fold"])
def test_a_cancelled_label_issues_job_leaves_no_result(fresh_finished, monkeypatch, when):
    """A cancel between two folds stops the fits; one that lands once they are done (the result about to be
    written) is honoured too: the job ends cancelled, no file is left in the run's folder, and the GET is a 404."""
    import app.label_issues
    import probe.label_issues

    from app.status import JobStatus

    client = fresh_finished.client
    store, runner = client.app.state.store, client.app.state.runner
    run = store.get_run(fresh_finished.erm)

    def cancel_running():
        for job in store.list_jobs(JobStatus.running):
            runner.cancel(job["id"])

    if when == "between folds":
        real = probe.label_issues.out_of_fold_softmax

        def folds(*args, progress, **kwargs):
            def cancel_then_report(done, total):
                cancel_running()
                progress(done, total)

            return real(*args, progress=cancel_then_report, **kwargs)

        monkeypatch.setattr(probe.label_issues, "out_of_fold_softmax", folds)
    else:
        real = app.label_issues.fit_label_issues

        def fit_then_cancel(*args, **kwargs):
            found = real(*args, **kwargs)
            cancel_running()
            return found

        monkeypatch.setattr(app.label_issues, "fit_label_issues", fit_then_cancel)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "cancelled", job
    if when == "between folds":
        assert "fold 1/3 fitted" in job["stage"] or job["progress"] < 1.0
    results = Path(run["path"]) / "label_issues"
    assert not results.exists() or list(results.iterdir()) == []
    assert client.get(f"/api/runs/{run['id']}/label-issues").status_code == 404


def test_a_confident_learning_job_stores_its_listing_and_each_method_reads_its_own(fresh_finished):
    """method confident-learning (the CLI's --method): its rows are find_label_issues' with that method; GET
    ?method= reads the newest job of that method (a job that named none ran the default), without it the newest of
    either; an unknown method is a 422 before any job exists."""
    import json

    from app.label_issues import find_label_issues

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    jobs = _jobs(client)
    for bad in ("prune_by_noise_rate", "", None, 1):
        resp = _start(client, run["id"], method=bad)
        assert resp.status_code == 422 and "method" in json.dumps(resp.json()["detail"]), (bad, resp.text)
    assert client.get(f"/api/runs/{run['id']}/label-issues", params={"method": "cl"}).status_code == 422
    assert _jobs(client) == jobs
    default = wait_job(client, _start(client, run["id"], folds=3).json()["id"])  # no method: the default
    confident = wait_job(client, _start(client, run["id"], folds=3, method="confident-learning").json()["id"])
    assert default["status"] == confident["status"] == "succeeded", (default, confident)
    assert confident["what"] == f"likely wrong labels of run {run['id']} (3 folds, confident-learning)"
    path = store.get_cache(run["cache_id"])["path"]
    expected = _rows(find_label_issues(run["path"], path, 3, method="confident-learning"))
    every = _rows(find_label_issues(run["path"], path, 3))
    assert len(expected) < len(every), "confident learning lists fewer here: else this test would prove nothing"
    url = f"/api/runs/{run['id']}/label-issues"
    newest = client.get(url, params={"limit": 200}).json()
    mine = client.get(url, params={"limit": 200, "method": "confident-learning"}).json()
    assert newest["job_id"] == mine["job_id"] == confident["id"] and mine["method"] == "confident-learning"
    assert [{k: v for k, v in item.items() if k != "thumbnail_url"} for item in mine["items"]] == expected
    assert mine["total"] == len(expected) and mine["images"] == newest["images"]
    plain = client.get(url, params={"limit": 200, "method": "predicted-neq-given"}).json()
    assert plain["job_id"] == default["id"] and plain["method"] == "predicted-neq-given"
    assert [{k: v for k, v in item.items() if k != "thumbnail_url"} for item in plain["items"]] == every


def test_a_damaged_result_file_is_a_404_saying_so(fresh_finished):
    """A result file written over by hand (valid JSON of another shape, another layout, class counts that do not
    match its classes) is a 404 naming the job and how to start one, as a file that is gone: it answered a 500."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    job = wait_job(client, _start(client, run["id"], folds=2).json()["id"])
    assert job["status"] == "succeeded", job
    path = Path(run["path"]) / store.get_job(job["id"])["result"]["label_issues"]
    good = json.loads(path.read_text())
    name = good["class_names"][0]
    for damaged in ({}, None, [], {**good, "format": 2}, {**good, "images": good["images"][:1]},
                    {**good, "rows": [{"true": name}]}, {**good, "class_names": None}):
        path.write_text(json.dumps(damaged))
        for params in ({}, {"class": name}):
            resp = client.get(f"/api/runs/{run['id']}/label-issues", params=params)
            assert resp.status_code == 404, (damaged, resp.text)
            assert f"the result of job {job['id']!r}" in resp.json()["detail"] and "damaged" in resp.json()["detail"]
    path.write_text(json.dumps(good))
    assert client.get(f"/api/runs/{run['id']}/label-issues").json()["total"] == len(good["rows"])


def test_a_run_trained_on_a_device_this_host_lacks_is_refitted_where_the_request_says(fresh_finished):
    """A run trained on a GPU, read on a host without one (a data directory moved; here its report says cuda:7):
    without ``device`` the request is a 422 naming the field to send (it said "use 'cpu' or 'auto'", and the request
    had no field to say so); with ``"device": "cpu"`` the job fits there and succeeds; a device the host lacks is a
    422 on ``device``."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    report_file = Path(run["path"]) / "report.json"
    report = json.loads(report_file.read_text())
    report_file.write_text(json.dumps({**report, "config": {**report["config"], "device": "cuda:7"}}))
    refused = _start(client, run["id"], folds=2)
    assert refused.status_code == 422 and refused.json()["detail"].startswith(
        f"run_id: run {run['id']!r} trained on device 'cuda:7': device 'cuda:7' does not exist on this host"), refused.text
    assert 'the request\'s "device"' in refused.json()["detail"]
    absent = _start(client, run["id"], folds=2, device="cuda:7")
    assert absent.status_code == 422 and absent.json()["detail"].startswith("device: device 'cuda:7' does not exist")
    assert _start(client, run["id"], folds=2, device="gpu").status_code == 422
    resp = _start(client, run["id"], folds=2, device="cpu")
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded", job
    assert client.get(f"/api/runs/{run['id']}/label-issues").json()["job_id"] == job["id"]


def test_the_jobs_list_refuses_a_kind_the_service_does_not_run(finished):
    """GET /api/jobs?kind= takes the service's job kinds: another (a typo of label_issues) is a 422 naming them, not
    an empty list that read as a run without such jobs."""
    client = finished.client
    typo = client.get("/api/jobs", params={"kind": "labelissues", "run_id": finished.erm})
    assert typo.status_code == 422, typo.text
    assert typo.json()["detail"][0]["msg"] == \
        "kind must be one of extract, probe, pipeline, label_issues, got 'labelissues'."
    pipelines = client.get("/api/jobs", params={"kind": "pipeline"})
    assert [job["id"] for job in pipelines.json()] == [finished.job["id"]]
    assert pipelines.headers["X-Total-Count"] == "1"


def test_a_removed_jobs_result_file_naming_an_unknown_method_is_a_404_saying_so(fresh_finished):
    """A result file whose job's record was removed tells its method itself: one naming a method the service does
    not have (written over by hand, or by another version) is a 404 saying it is damaged, as any damaged file (it
    answered a 500: the response's method failed its check)."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    job = wait_job(client, _start(client, run["id"], folds=2).json()["id"])
    assert job["status"] == "succeeded", job
    path = Path(run["path"]) / store.get_job(job["id"])["result"]["label_issues"]
    assert client.delete(f"/api/jobs/{job['id']}/record").status_code == 200
    good = json.loads(path.read_text())
    for method in ("prune_by_noise_rate", 3, ["confident-learning"]):
        path.write_text(json.dumps({**good, "method": method}))
        resp = client.get(f"/api/runs/{run['id']}/label-issues")
        assert resp.status_code == 404, (method, resp.text)
        assert f"the result of job {job['id']!r}" in resp.json()["detail"] and "damaged" in resp.json()["detail"]
    path.write_text(json.dumps({**good, "method": "confident-learning"}))
    assert client.get(f"/api/runs/{run['id']}/label-issues").json()["method"] == "confident-learning"


def test_a_result_file_is_read_once_while_it_is_unchanged(fresh_finished, monkeypatch):
    """Paging through a run's likely wrong labels never reads a job's result file whole: each page reads its own
    rows through the file's index (each GET read, parsed and checked the whole file: 30 ms a page of 24 at
    CIFAR-10's 9,051 rows, bench/README.md; then the first GET alone, 2.2 s at 344,000 rows), and every page is the
    same as before, thumbnails included; so are the files of jobs whose record was removed. A file replaced (renamed
    over, as a job writes it, here without an index of it) is read whole again, once."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "succeeded", job
    path = Path(run["path"]) / store.get_job(job["id"])["result"]["label_issues"]
    reads = []
    read_text = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self) or read_text(self, *a, **k))
    url = f"/api/runs/{run['id']}/label-issues"
    whole = client.get(url, params={"limit": 200}).json()
    assert whole["total"], "the fixture's folds mistake no image: this test would prove nothing"
    pages = [client.get(url, params={"limit": 1, "offset": i}).json()["items"] for i in range(whole["total"])]
    assert pages == [[item] for item in whole["items"]] and all("thumbnail_url" in item for item in whole["items"])
    name = whole["items"][0]["true"]
    assert client.get(url, params={"class": name}).json()["items"] == [
        item for item in whole["items"] if item["true"] == name]
    assert reads.count(path) == 0
    assert client.delete(f"/api/jobs/{job['id']}/record").status_code == 200  # read from the run's folder now
    for _ in range(3):
        assert client.get(url, params={"limit": 200}).json()["items"] == whole["items"]
    assert client.get(f"/api/runs/{run['id']}").json()["label_issues"] == ["predicted-neq-given"]
    assert reads.count(path) == 0  # the method its file records is its head's, read through the index
    good = json.loads(read_text(path))
    twice = path.with_name("replacing.tmp")
    twice.write_text(json.dumps({**good, "rows": good["rows"] * 2}))
    twice.replace(path)
    for _ in range(2):
        again = client.get(url, params={"limit": 200}).json()
        assert again["total"] == 2 * whole["total"] and again["items"] == whole["items"] * 2
    assert reads.count(path) == 1


def _large_result(folder: Path, n: int = 20_000) -> tuple[Path, dict]:
    """A result of ``n`` rows over 10 classes, written as a label_issues job writes it."""
    from app.label_issues_job import FORMAT, _write, result_file

    names = [f"c{i}" for i in range(10)]
    rows = [{"split": "train", "row": i, "source": f"train/c{i % 10}/{i:06d}.png", "true": names[i % 10],
             "predicted": names[(i + 1) % 10], "confidence": 0.5 + i / 1e6, "label_probability": i / 1e6}
            for i in range(n)]
    document = {"format": FORMAT, "run_id": "run_x", "job_id": "job_x", "folds": 5, "method": "predicted-neq-given",
                "params": {"lr": 0.1}, "class_names": names, "images": [n // 10] * 10, "rows": rows}
    path = result_file(folder, "job_x")
    _write(path, document)
    return path, document


def test_a_page_of_a_large_result_reads_its_own_rows_alone(tmp_path, monkeypatch):
    """The first GET of a page of likely wrong labels read and checked the whole result file: 2.2 s and 400 MB of
    peak memory at 344,000 rows (a 66 MB file) for 24 rows. The file is still the one JSON document (its rows one a
    line), and its index lets a page read its own rows alone: the same page as read whole, for under 1 % of the
    file's bytes."""
    import json

    from app import label_issues_job

    path, document = _large_result(tmp_path)
    assert json.loads(path.read_text()) == document
    whole = label_issues_job._whole(path.read_text())
    read = []

    class Counted:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def seek(self, at):
            self.file.seek(at)

        def read(self, size=-1):
            data = self.file.read(size)
            read.append(len(data))
            return data

    real_open = open
    monkeypatch.setattr(label_issues_job, "open", lambda *a, **k: Counted(real_open(*a, **k)), raising=False)
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("the result file was read whole"))
    stored = label_issues_job._document(path)
    assert stored.head == whole.head and stored.head["class_names"] == document["class_names"]
    for class_index, offset in ((None, 0), (None, 19_990), (3, 100), (9, 5_000)):
        assert stored.page(class_index, offset, 24) == whole.page(class_index, offset, 24)
    assert stored.page(3, 100, 24)[0] == 2_000 and stored.page(3, 100, 24)[1][0]["row"] == 1003
    assert 0 < sum(read) < path.stat().st_size / 100


def test_a_result_whose_index_does_not_hold_is_read_whole_or_said_damaged(tmp_path):
    """An index that cannot be read, or of another version of the file, is passed over (the file is read whole);
    a row written over in place behind its index's back is a LookupError saying the result is damaged (the route's
    404), never a wrong row or a 500."""
    import os

    from app.label_issues_job import _document, index_file

    path, document = _large_result(tmp_path, 50)
    expected = _document(path).page(None, 0, 50)
    index_file(path).write_bytes(b"not an index")
    assert _document(path).page(None, 0, 50) == expected
    path, document = _large_result(tmp_path, 50)  # written again, with its index
    text, stat = path.read_bytes(), path.stat()
    row = text.index(b'"true": "c7"')
    path.write_bytes(text[:row] + b'"true": "c6"' + text[row + len(b'"true": "c7"'):])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and time: the index holds
    with pytest.raises(LookupError, match="damaged"):
        _document(path).page(None, 0, 50)
    assert _document(path).page(None, 0, 7) == (50, expected[1][:7])


def test_a_result_file_s_rows_are_checked_as_plain_dicts_at_a_quarter_of_the_peak_memory():
    """A loose end: a page's first read of a result file checked each row as a LabelIssueItem model and dumped it
    again: 4.1 s and 881 MB of peak resident memory for 344,000 rows (an 84 MB file; 1.4 s and 507 MB now). The
    rows are checked as dicts of the same fields: the same document (absent defaults filled in, unknown keys left
    out), the same refusals, at a quarter of the peak."""
    import json
    import tracemalloc

    from app.label_issues_job import _stored
    from app.schemas import LabelIssueItem

    names = [f"c{i}" for i in range(10)]
    rows = [{"index": i, "split": "train", "row": i, "source": f"train/c{i % 10}/{i:06d}.png", "true": names[i % 10],
             "predicted": names[(i + 1) % 10], "confidence": 0.5 + i / 1e6, "label_probability": 0.1}
            for i in range(20_000)]
    document = {"format": 1, "folds": 5, "params": {"lr": 0.1}, "class_names": names, "images": [2_000] * 10,
                "rows": rows}
    text = json.dumps(document)
    _stored(text)  # the layout built once
    tracemalloc.start()
    try:
        stored = _stored(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(text)  # 8.9 times the text with a model per row, 2.3 times as dicts
    assert stored == {**document, "method": None, "accuracy": None,
                      "rows": [LabelIssueItem.model_validate(row).model_dump() for row in rows]}
    for damage, said in (({"rows": [{**rows[0], "split": "test"}]}, "split"),
                         ({"rows": [{**rows[0], "confidence": "high"}]}, "confidence"),
                         ({"images": [1]}, "1 image counts for 10 classes"), ({"format": 2}, "format")):
        with pytest.raises(ValueError, match=said):
            _stored(json.dumps({**document, **damage}))


def test_a_result_for_a_run_folder_removed_meanwhile_is_not_written(tmp_path):
    """The run's folder removed (rm -r) while the job fitted its folds: the result was written all the same, into
    a folder made again that held it alone, and the job 'succeeded' (a failure round). It fails naming the folder."""
    from app.label_issues_job import _write, result_file

    target = result_file(tmp_path / "run_gone", "job_1")
    with pytest.raises(FileNotFoundError, match="run_gone was removed while this job ran; its result is not stored"):
        _write(target, {"class_names": ["a"], "rows": []})
    assert list(tmp_path.iterdir()) == []


def _replace_during_first_fold(monkeypatch, run_dir: Path, write) -> None:
    """The run in ``run_dir`` replaced (``probe.rundir.replace_run`` with ``write(folder)``) as the job's first fold
    set out: a ``train --force`` to its folder during the fits."""
    import probe.label_issues
    from probe.rundir import replace_run

    real, calls = probe.label_issues.out_of_fold_softmax, []

    def folds(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            replace_run(run_dir, write, ["report.json"])
        return real(*args, **kwargs)

    monkeypatch.setattr(probe.label_issues, "out_of_fold_softmax", folds)


def test_a_run_replaced_while_its_folds_are_fitted_is_refitted_whole(fresh_finished, monkeypatch):
    """The job read the run's report, then fitted its folds for minutes: a run replaced meanwhile got the old run's
    listing stored in its folder as its own. Read through probe.rundir.read_run: fitted again from the new run."""
    import json
    import shutil

    from probe import load_report

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run, other = store.get_run(fresh_finished.erm), store.get_run(fresh_finished.mr2)
    params = {k: v for k, v in load_report(other["path"]).config["selected"].items() if v is not None}
    assert params != {k: v for k, v in load_report(run["path"]).config["selected"].items() if v is not None}
    _replace_during_first_fold(monkeypatch, Path(run["path"]), lambda folder: shutil.copy2(
        Path(other["path"]) / "report.json", folder / "report.json"))
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "succeeded", job
    result = store.get_job(job["id"])["result"]["label_issues"]
    stored = json.loads((Path(run["path"]) / result).read_text(encoding="utf-8"))
    assert stored["params"] == params  # the old run's: {lr, wd} of the ERM run


def test_a_run_replaced_by_one_that_cannot_be_refitted_fails_the_job_naming_the_run(fresh_finished, monkeypatch):
    """A run replaced by one trained on other features, after the job was checked: the job failed with the CLI's
    words ('--features /server/path ... give the run's own cache'). It names the run and its cache, and stores
    nothing."""
    import json

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    report = json.loads((Path(run["path"]) / "report.json").read_text(encoding="utf-8"))
    report["features"]["fingerprint"] = "0" * 64
    _replace_during_first_fold(monkeypatch, Path(run["path"]), lambda folder: (folder / "report.json").write_text(
        json.dumps(report), encoding="utf-8"))
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"ValueError: run {run['id']!r} cannot be refitted as it is now: its cache "
                                   f"{run['cache_id']!r} holds other features"), job["error"]
    assert "--features" not in job["error"]
    results = Path(run["path"]) / "label_issues"
    assert not results.exists() or list(results.iterdir()) == []


def test_a_run_folder_removed_while_its_folds_are_fitted_fails_the_job_naming_the_run(fresh_finished, monkeypatch):
    """The run's folder removed by hand during the fits (the job was checked at submit): the job failed with
    'no report.json at ...', not saying which run of the job's it was. It names the run, and stores nothing."""
    import shutil

    import probe.label_issues

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    real = probe.label_issues.out_of_fold_softmax

    def removed_then_folds(*args, **kwargs):
        shutil.rmtree(run["path"], ignore_errors=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(probe.label_issues, "out_of_fold_softmax", removed_then_folds)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"FileNotFoundError: run {run['id']!r} cannot be refitted as it is now: no "
                                   "report.json at "), job["error"]
    assert not Path(run["path"]).exists()


def test_a_value_error_of_another_signature_during_the_fits_is_said_as_one(fresh_finished, monkeypatch):
    """The job's errors are said again naming the run, as ``type(exc)(message)``: a ValueError subclass that takes
    other arguments (pydantic's ValidationError is one) failed the job with a TypeError of its constructor instead."""
    import probe.label_issues

    class Picky(ValueError):
        def __init__(self, what: str, where: int):
            super().__init__(f"{what} at {where}")

    def picky(*args, **kwargs):
        raise Picky("a damaged fold", 3)

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    monkeypatch.setattr(probe.label_issues, "out_of_fold_softmax", picky)
    job = wait_job(client, _start(client, run["id"], folds=3).json()["id"])
    assert job["status"] == "failed", job
    # an error of the fits names itself, not a run that 'cannot be refitted as it is now' (said of any ValueError)
    assert job["error"] == f"ValueError: run {run['id']!r}'s folds could not be fitted: a damaged fold at 3", job


_INDEX_DAMAGES = {
    "spans 0-d": ("spans", lambda a: a[0, 0]), "spans negative": ("spans", lambda a: -a),
    "spans huge": ("spans", lambda a: np.full(a.shape, 2**64 - 1, np.uint64)), "spans bool": ("spans", lambda a: a > 0),
    "spans nan": ("spans", lambda a: np.full(a.shape, np.nan)), "spans past the end": ("spans", lambda a: a + 10**6),
    "labels 0-d": ("labels", lambda a: a[0]), "labels 2-d": ("labels", lambda a: a.reshape(-1, 2)),
    "labels float": ("labels", lambda a: a + 0.5), "labels nan": ("labels", lambda a: np.full(a.shape, np.nan)),
    "labels negative": ("labels", lambda a: a - 20), "labels text": ("labels", lambda a: a.astype(str)),
    "labels bool": ("labels", lambda a: a > 0), "described 0-d": ("described", lambda a: a[0]),
    "head past the end": ("described", lambda a: np.array([a[0], a[1], a[0] + 99])),
    "head cut": ("described", lambda a: np.array([a[0], a[1], 5])),
}


@pytest.mark.parametrize("damage", sorted(_INDEX_DAMAGES))
def test_an_index_whose_arrays_were_edited_is_passed_over(tmp_path, damage):
    """A result's .index.npz with an array edited (0-d, float, bool, negative, out of the file): a page of likely
    wrong labels answered a 500 (TypeError, UFuncTypeError, iteration over a 0-d array) or a 404 saying the whole
    result damaged (an attack round). The index is checked as _write writes it where it is read, and one that is
    not is passed over: the result, read whole, gives the same pages; neither file is changed."""
    import hashlib

    from app.label_issues_job import _document, _whole, index_file

    path, _ = _large_result(tmp_path, 50)
    expected = {(c, o): _whole(path.read_text()).page(c, o, 7) for c, o in ((None, 0), (None, 45), (3, 1))}
    with np.load(index_file(path)) as data:
        arrays = dict(data)
    name, edit = _INDEX_DAMAGES[damage]
    arrays[name] = edit(arrays[name])
    with open(index_file(path), "wb") as out:
        np.savez(out, **arrays)
    stored = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (path, index_file(path))]
    assert {(c, o): _document(path).page(c, o, 7) for c, o in expected} == expected
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in (path, index_file(path))] == stored


def test_a_job_that_asks_no_folds_on_few_shot_data_uses_fewer_and_says_so(tmp_path):
    """The default 5 folds refused a run whose smallest class has 4 train + val images though the request named no
    folds (the run page sent 5 too): the job uses 4, its request and its log say so, as the CLI does; 5 asked for is
    a 422 naming the class, its count and the most folds."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app_testutils import ERM, make_settings, synthetic_cache

    with TestClient(create_app(make_settings(tmp_path / "state"))) as client:
        cache = synthetic_cache(client.app.state.store, tmp_path, per_class={"train": 3, "val": 1, "test": 5})
        probe = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": dict(ERM, cv=0)})
        run = wait_job(client, probe.json()["id"])["result"]["run_ids"][0]
        resp = _start(client, run)
        assert resp.status_code == 202, resp.text
        job = wait_job(client, resp.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["request"]["folds"] == 4 and job["what"] == f"likely wrong labels of run {run} (4 folds)"
        note = "note: 4 folds, not the default 5: class 'a' has 4 images in train + val"
        assert any(m["text"].startswith(note) for m in job["messages"]), job["messages"]
        assert client.get(f"/api/runs/{run}/label-issues").json()["folds"] == 4
        refused = _start(client, run, folds=5)
        assert refused.status_code == 422 and refused.json()["detail"] == (
            "folds: folds=5: class 'a' has 4 image(s) in train + val, and each fold needs one of every class; "
            "use at most 4 folds.")


_OUT_OF_RANGE = {"accuracy": float("nan"), "folds": 1, "params": {"lr": float("inf")}, "images": [-5] + [2] * 9,
                 "confidence": float("nan"), "label_probability": -float("inf"), "row": -1}


@pytest.mark.parametrize("field", sorted(_OUT_OF_RANGE))
@pytest.mark.parametrize("indexed", [True, False])
def test_a_result_holding_numbers_out_of_their_range_is_said_damaged(tmp_path, field, indexed):
    """A stored result edited or damaged to hold NaN, an infinity or a value past its range (an accuracy or a
    probability outside [0, 1], fewer than 2 folds, a negative count or row) was served: "-inf %" in the page's
    caution, and null where the schema gives a number (an attack round). It is a damaged result now (the route's
    404), read through its index or whole."""
    from app.label_issues_job import _document, _write, index_file

    path, document = _large_result(tmp_path, 50)
    document["accuracy"] = 0.9
    if field in ("confidence", "label_probability", "row"):
        document["rows"][0][field] = _OUT_OF_RANGE[field]
    else:
        document[field] = _OUT_OF_RANGE[field]
    _write(path, document)
    if not indexed:
        index_file(path).unlink()
    with pytest.raises((LookupError, ValueError)):  # newest_result: a LookupError saying damaged, the route's 404
        _document(path).page(None, 0, 7)


def test_a_run_whose_old_report_records_no_features_is_a_404_that_advises_no_refused_request(fresh_finished):
    """A run an older version wrote, whose report records no features (no fingerprint to check its cache against):
    the GET's 404 advised the POST that starts a job, which the service refuses as a 422 (an upgrade round). It says
    no job can find them, and to train the run again."""
    import json

    from app.label_issues_job import NO_FEATURES

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    run = store.get_run(fresh_finished.erm)
    path = Path(run["path"]) / "report.json"
    report = json.loads(path.read_text())
    del report["features"]  # as a report written before runs recorded them
    path.write_text(json.dumps(report))
    refused = _start(client, run["id"])
    assert refused.status_code == 422 and "records no features fingerprint" in refused.json()["detail"], refused.text
    none = client.get(f"/api/runs/{run['id']}/label-issues")
    assert none.status_code == 404, none.text
    assert none.json()["detail"] == f"run {run['id']!r} has no likely wrong labels found yet: {NO_FEATURES}"
    assert '"kind": "label_issues"' not in none.json()["detail"]


def test_a_result_and_its_index_are_written_as_every_other_file_is(tmp_path, monkeypatch):
    """The job wrote through a copy of probe.files.atomic_write with a fixed '<name>.tmp' (two writers of one
    result shared it) and no sync of the folder after the rename (a power loss could lose the rename). Each file
    goes through a unique hidden temporary name (probe.files.temporary_name) and the folder is synced after it."""
    import json

    import probe.files
    from app.label_issues_job import _write, index_file, result_file
    from probe.files import temporary_of

    target = result_file(tmp_path / "run_1", "job_1")
    target.parent.parent.mkdir()
    replaced, synced = [], []
    real_replace, real_sync = os.replace, probe.files.sync
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((Path(src), Path(dst))),
                                                          real_replace(src, dst))[1])
    monkeypatch.setattr(probe.files, "sync", lambda path: (synced.append(Path(path)), real_sync(path))[1])
    _write(target, {"class_names": ["a"], "rows": [{"row": 0, "true": "a"}]})
    assert [dst for _, dst in replaced] == [target, index_file(target)]
    assert [temporary_of(src) for src, _ in replaced] == [target.name, index_file(target).name]
    assert synced.count(target.parent) == 2
    assert json.loads(target.read_text())["rows"] == [{"row": 0, "true": "a"}]
    assert sorted(p.name for p in target.parent.iterdir()) == ["job_1.index.npz", "job_1.json"]


def test_the_start_up_sweep_removes_a_killed_label_issues_writers_temporary_files(tmp_path):
    """A service killed while a label-issues job wrote its result left the temporary files in the run's
    label_issues folder for good (no later write has that job's name): the start-up sweep removes those whose
    writer is gone, and keeps a live writer's and the results."""
    from app.cleanup import sweep_data_dir
    from app.config import Settings
    from app.label_issues_job import result_file
    from app.store import Store

    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_path)
    folder = result_file(settings.runs_dir / "run_1", "job_1").parent
    folder.mkdir(parents=True)
    (folder / "job_0.json").write_text("{}")
    dead = [folder / ".job_1.json.99999999-0123456789abcdef.tmp", folder / ".job_1.index.npz.99999999-00ff.tmp"]
    live = folder / f".job_2.json.{os.getpid()}-0123456789abcdef.tmp"
    for tmp in (*dead, live):
        tmp.write_text("half")
    assert sorted(sweep_data_dir(store, settings)) == sorted(dead)
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, "job_0.json"])


def test_the_start_up_sweep_removes_every_stores_stale_temporaries_by_one_rule(tmp_path):
    """Temporaries a killed process left elsewhere than a label_issues folder stayed for good: a run folder's own
    (``.head.json.<pid>-<hex>.tmp``, an --out written into the run), and the fixed ``<job>.json.tmp`` and
    ``seen_sources.npz.tmp`` older versions wrote (no process id in the name). One rule for every store: a
    temporary whose writer is gone, or one without a writer's id untouched for probe.files.LEGACY_TMP_AGE; a live
    writer's, a fresh one and the run's own files are kept."""
    from app.cleanup import sweep_data_dir
    from app.config import Settings
    from app.label_issues_job import result_file
    from app.store import Store
    from probe.files import LEGACY_TMP_AGE

    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_path)
    run = settings.runs_dir / "run_1"
    results = result_file(run, "job_1").parent
    cache = settings.caches_dir / "ds_1" / "enc"
    for folder in (results, cache):
        folder.mkdir(parents=True)
    (run / "report.json").write_text("{}")
    old = time.time() - LEGACY_TMP_AGE - 60
    dead = [run / ".head.json.99999999-0123456789abcdef.tmp", results / "job_1.json.tmp",
            run / "seen_sources.npz.tmp", cache / "c.h5.tmp"]
    kept = [run / f".report.html.{os.getpid()}-00ff.tmp", results / "job_2.json.tmp"]  # live writer; fresh
    for tmp in (*dead, *kept):
        tmp.write_text("half")
    for tmp in dead[1:]:
        os.utime(tmp, (old, old))
    assert sorted(sweep_data_dir(store, settings)) == sorted(dead)
    assert all(tmp.exists() for tmp in kept) and (run / "report.json").exists()
