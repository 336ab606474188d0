"""A probe that leaves classes out (``drop_classes``): through the service, checked before a job exists (422 naming
the field), trained on the other classes, named and reproducible from its report."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store import Store
from app_testutils import ERM, MR2, make_settings, synthetic_cache, wait_job


@pytest.fixture
def service(tmp_path):
    with TestClient(create_app(make_settings(tmp_path / "state"))) as client:
        yield client


def _refused(client, body: dict) -> str:
    before = client.get("/api/jobs").json()
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 422, resp.text
    assert client.get("/api/jobs").json() == before  # no job
    return json.dumps(resp.json()["detail"])


def test_a_pipeline_on_a_cache_leaves_a_class_out_of_both_probes(service, tmp_path):
    """drop_classes was the CLI's --drop-class alone: a service user could not train without a class. Both runs are
    of the two other classes, the first the second's reference; their words say which class they left out, and the
    report's request reproduces the run."""
    from feature_cache import open_cache
    from probe import load_report, run_probe

    cache = synthetic_cache(service.app.state.store, tmp_path)
    probes = [dict(ERM, drop_classes=["b"]), dict(MR2, drop_classes=["b"])]
    resp = service.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache["id"], "probes": probes})
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    erm, mr2 = (service.get(f"/api/runs/{run}").json() for run in job["result"]["run_ids"])
    paths = {run: service.app.state.store.get_run(run)["path"] for run in job["result"]["run_ids"]}
    assert mr2["reference_run"] == erm["id"]
    for run in (erm, mr2):
        report = load_report(paths[run["id"]])
        assert report.class_names == ["a", "c"] and report.config["drop_classes"] == ["b"]
        assert [row.n_test for row in report.per_class] == [5, 5]  # the synthetic cache's 5 test rows per class
        assert run["probe"].endswith(", without b"), run["probe"]
    # the reference is reused by a pipeline that leaves out the same class, not by one that keeps every class
    for drop, reused in ((["b"], True), ([], False)):
        body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [dict(ERM, drop_classes=drop)]}
        first = wait_job(service, service.post("/api/jobs", json=body).json()["id"])["result"]["run_ids"][0]
        assert (first == erm["id"]) is reused
    again = run_probe(open_cache(cache["path"]).training_data(), ["a", "b", "c"],
                      load_report(paths[erm["id"]]).probe_config())
    assert again.class_names == ["a", "c"] and again.summary.overall == load_report(paths[erm["id"]]).summary.overall

    # the runs list says which classes each run left out: the runs of its cache it can be compared with (the run
    # page offered the others, and GET /api/compare refused them with a 422); a database of before it reads them
    # from the reports
    store = service.app.state.store
    listed = {run["id"]: run["left_out"] for run in service.get("/api/runs", params={"cache_id": cache["id"]}).json()}
    assert listed[erm["id"]] == listed[mr2["id"]] == ["b"] and sorted(listed.values()) == [[], ["b"], ["b"]]
    with store._tx() as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN left_out")
    assert Store(store.path).get_run(mr2["id"])["left_out"] == '["b"]'


def test_a_class_is_left_out_by_its_name_with_white_space_trimmed_where_no_class_has_that_name(service, tmp_path):
    """The launch form trimmed each name, so a class 'cat ' could not be left out from it while the CLI and the API
    could; the form now sends names as typed, and each entry point takes the class a name names exactly, else the
    one class it names trimmed (' b' after a comma is b), storing the class's own name."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [dict(ERM, drop_classes=[" b "]), MR2]}
    body["probes"][1] = dict(MR2, drop_classes=[" b "])
    resp = service.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert [p["drop_classes"] for p in job["request"]["probes"]] == [["b"], ["b"]]
    assert job["status"] == "succeeded", job["error"]
    run = service.get(f"/api/runs/{job['result']['run_ids'][0]}").json()
    assert run["left_out"] == ["b"]


@pytest.mark.parametrize("probes,field,says", [
    ([dict(ERM, drop_classes=["B"])], "probes[0].drop_classes", "no class named 'B' to leave out (did you mean 'b'?)"),
    ([dict(ERM, drop_classes=["a", "b"])], "probes[0].drop_classes", "leaves 1 class; a probe needs 2"),
    ([dict(ERM, drop_classes=["b"]), MR2], "probes[1].drop_classes",
     "leaves out no class, the first probe 'b': every probe of a pipeline leaves out the same classes"),
    ([dict(ERM, drop_classes=["b", "b"])], "probes", "drop_classes must be distinct values; repeated: 'b'"),
])
def test_a_drop_that_cannot_run_is_refused_before_a_job_exists(service, tmp_path, probes, field, says):
    cache = synthetic_cache(service.app.state.store, tmp_path)
    detail = _refused(service, {"kind": "pipeline", "cache_id": cache["id"], "probes": probes})
    assert field in detail and says in detail, detail


def test_a_reference_run_of_every_class_is_refused_for_a_probe_that_leaves_one_out(service, tmp_path):
    """Its groups and floor are per class: a reference of three classes cannot rank the two this probe keeps."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM})
    reference = wait_job(service, resp.json()["id"])["result"]["run_ids"][0]
    body = {"kind": "probe", "cache_id": cache["id"], "config": dict(MR2, drop_classes=["c"]),
            "reference_run": reference}
    detail = _refused(service, body)
    assert "reference_run" in detail and "has other classes than cache" in detail
    assert "less the classes this probe leaves out" in detail
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"],
                                           "config": dict(ERM, drop_classes=["c"])})
    kept = wait_job(service, resp.json()["id"])["result"]["run_ids"][0]
    resp = service.post("/api/jobs", json={**body, "reference_run": kept})  # a reference of the same two classes
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded", job["error"]


def test_a_pipeline_on_a_data_set_leaves_a_class_out(service, tmp_path):
    """Extraction, then probes of the other classes: the request is checked on the data set's counts less the class
    left out."""
    from app_testutils import tiny_zip_bytes

    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(4, 2))}).json()
    body = {"kind": "pipeline", "dataset_id": ds["id"], "encoder": "effnet-lite0",
            "probes": [dict(ERM, drop_classes=["ship"])]}
    job = wait_job(service, service.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    run = service.get(f"/api/runs/{job['result']['run_ids'][0]}").json()
    assert run["probe"] == "ERM (ce), linear head, without ship"
    report = service.get(f"/api/reports/{run['id']}").json()
    assert report["class_names"] == ["airplane", "cat"]
    body["probes"] = [dict(ERM, drop_classes=["plane"])]
    assert "no class named 'plane' to leave out (did you mean 'airplane'?)" in _refused(service, body)


def test_the_failures_of_a_run_that_left_a_class_out_name_rows_of_the_cache_test_split(service, tmp_path,
                                                                                      monkeypatch):
    """GET /api/runs/{id}/failures gives each mistake's row of the cache's test split: a run without class 'a'
    stored predictions of the other classes' test images alone, and gave their positions among those (row 0 for
    the cache's row 5). The cache is opened once for those rows and the thumbnails' digests (it was twice)."""
    import feature_cache
    from feature_cache import open_cache

    cache = synthetic_cache(service.app.state.store, tmp_path)
    body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [dict(ERM, drop_classes=["a"])]}
    job = wait_job(service, service.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    run = job["result"]["run_ids"][0]
    opened = []
    monkeypatch.setattr(feature_cache, "open_cache", lambda *a, **kw: opened.append(a) or open_cache(*a, **kw))
    items = service.get(f"/api/runs/{run}/failures").json()["items"]
    assert items  # the synthetic classes overlap: mistakes to list
    assert len(opened) == 1 and all("thumbnail_url" in item for item in items)
    test = open_cache(cache["path"])
    sources, labels = test.sources("test"), test.labels("test")
    for item in items:
        assert sources[item["index"]] == item["source"] == f"{item['index']}.png"
        assert test.class_names[labels[item["index"]]] == item["true"] != "a"


def test_the_failures_of_a_class_the_run_left_out_say_it_was_left_out(service, tmp_path):
    """A long-tailed round: a class of one image dropped to train, then asked for by name, read "'a' is not a class
    of this run; its classes: ..." as if mistyped; the answer now says the run left it out."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [dict(ERM, drop_classes=["a"])]}
    job = wait_job(service, service.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    run = job["result"]["run_ids"][0]
    resp = service.get(f"/api/runs/{run}/failures", params={"class": "a"})
    assert resp.status_code == 422
    assert resp.json()["detail"] == ("class: 'a' was left out of this run (drop_classes, --drop-class): none of its "
                                     "images is in any split")
    unknown = service.get(f"/api/runs/{run}/failures", params={"class": "zebra"})
    assert unknown.status_code == 422 and "'zebra' is not a class of this run" in unknown.json()["detail"]


def test_a_run_that_left_a_class_out_is_not_compared_with_one_of_every_class_and_says_why(service, tmp_path):
    """Two runs of one cache, one of them without a class: "runs have different classes" named their first
    difference alone, as if they were of two data sets (a review)."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    runs = []
    for drop in ([], ["b"]):
        body = {"kind": "probe", "cache_id": cache["id"], "config": dict(ERM, drop_classes=drop)}
        runs.append(wait_job(service, service.post("/api/jobs", json=body).json()["id"])["result"]["run_ids"][0])
    resp = service.get("/api/compare", params={"base": runs[0], "other": runs[1]})
    assert resp.status_code == 422
    assert "(the other run left out b: compare it with a run that left out the same classes)" in resp.text


def test_likely_wrong_labels_and_scored_failures_of_a_left_out_class_say_it_was_left_out(service, tmp_path):
    """An attack round: GET /api/runs/{id}/failures said a class the run left out was left out, but its likely
    wrong labels and its mistakes on a cache (/scores/failures, whose cache has the class) answered "'a' is not a
    class of this run", as if the name were mistyped."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [dict(ERM, drop_classes=["a"])]}
    run = wait_job(service, service.post("/api/jobs", json=body).json()["id"])["result"]["run_ids"][0]
    issues = service.post("/api/jobs", json={"kind": "label_issues", "run_id": run, "folds": 2}).json()["id"]
    assert wait_job(service, issues)["status"] == "succeeded"
    left_out = "'a' was left out of this run (drop_classes, --drop-class): none of its images is in any split"
    for path, params in ((f"/api/runs/{run}/label-issues", {"class": "a"}),
                         (f"/api/runs/{run}/scores/failures", {"cache": cache["id"], "class": "a"}),
                         (f"/api/runs/{run}/scores/failures", {"cache": cache["id"], "class": "b", "predicted": "a"})):
        resp = service.get(path, params=params)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == f"{'predicted' if 'predicted' in params else 'class'}: {left_out}"
    unknown = service.get(f"/api/runs/{run}/label-issues", params={"class": "zebra"})
    assert unknown.status_code == 422 and "'zebra' is not a class of this run" in unknown.json()["detail"]


def test_a_pipeline_leaving_out_a_class_named_in_decomposed_unicode_runs(service, tmp_path):
    """An attack round: the request's check takes a class named in decomposed Unicode (NFD, as macOS writes file
    names) as its composed class, but the extraction matched the names exactly: a pipeline leaving out 'café', a
    class without test images, was accepted and then failed after its queue wait, "data set ... changed since this
    job was requested: class 'café' has no train or no test image". It runs now."""
    import io
    import unicodedata
    import zipfile

    from app_testutils import tiny_zip_bytes

    source = zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(4, 2, classes=("airplane", "cat", "café"))))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for member in source.namelist():
            if not member.startswith("tiny/test/café/"):
                out.writestr(member, source.read(member))
    ds = service.post("/api/datasets", files={"file": ("t.zip", archive.getvalue())}).json()
    assert "café" in ds["class_names"] and any("'café'" in w for w in ds["warnings"]), ds
    decomposed = unicodedata.normalize("NFD", "café")
    body = {"kind": "pipeline", "dataset_id": ds["id"], "probes": [dict(ERM, drop_classes=[decomposed])]}
    resp = service.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert service.get(f"/api/reports/{job['result']['run_ids'][0]}").json()["class_names"] == ["airplane", "cat"]


def _cache_of(store, folder, names: list[str]) -> dict:
    """A registered synthetic 8-d cache of the classes ``names`` (train 10, val 4, test 5 rows each)."""
    import numpy as np
    from feature_cache import write_cache

    k, rng, sizes = len(names), np.random.default_rng(0), {"train": 10, "val": 4, "test": 5}
    splits = {split: (rng.normal(size=(k * n, 8)).astype(np.float32) + np.repeat(np.arange(k), n)[:, None],
                      np.repeat(np.arange(k), n), [f"{split}{i}.png" for i in range(k * n)])
              for split, n in sizes.items()}
    path = write_cache(folder / "classes.h5", splits, names, {"encoder": "synthetic", "default_head": "linear",
                                                              "normalized": False, "fingerprint": "f" * 64})
    ds = store.add_dataset(name="classes", source="path", path=str(folder), class_names=names,
                           counts={split: [n] * k for split, n in sizes.items()}, fingerprint="d", skipped=0)
    return store.add_cache(dataset_id=ds["id"], encoder="synthetic", path=str(path), fingerprint="f" * 64,
                           num_features=8, class_names=names, counts={s: k * n for s, n in sizes.items()}, job_id=None)


def test_a_pipeline_whose_probes_leave_out_the_same_classes_in_another_order_runs(service, tmp_path):
    """An attack round: probes leaving out 'a' and 'b', named in another order by the second, were refused with
    "leaves out 'b', 'a', the first probe 'a', 'b': every probe of a pipeline leaves out the same classes"; the
    classes a run keeps are in the cache's order whatever the order they are named in. Both runs are of c and d."""
    cache = _cache_of(service.app.state.store, tmp_path, ["a", "b", "c", "d"])
    body = {"kind": "pipeline", "cache_id": cache["id"],
            "probes": [dict(ERM, drop_classes=["a", "b"]), dict(MR2, drop_classes=["b", "a"])]}
    resp = service.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    for run in job["result"]["run_ids"]:
        assert service.get(f"/api/reports/{run}").json()["class_names"] == ["c", "d"]


def test_runs_leaving_out_one_class_named_composed_and_decomposed_list_it_alike(service, tmp_path):
    """An attack round: the runs list's left_out kept drop_classes as given, so a run leaving out 'café' named in
    decomposed Unicode (NFD, as macOS writes names) listed another name than one leaving it out named composed, and
    the run page, which compares those lists, called the two runs of the same classes not comparable. Both list the
    class as the cache names it."""
    import unicodedata

    cache = _cache_of(service.app.state.store, tmp_path, ["café", "b", "c"])
    for form in ("NFC", "NFD"):
        body = {"kind": "probe", "cache_id": cache["id"],
                "config": dict(ERM, drop_classes=[unicodedata.normalize(form, "café")])}
        resp = service.post("/api/jobs", json=body)
        assert resp.status_code == 202, resp.text
        assert wait_job(service, resp.json()["id"])["status"] == "succeeded"
    runs = service.get("/api/runs", params={"cache_id": cache["id"]}).json()
    assert [run["left_out"] for run in runs] == [["café"], ["café"]]


def test_a_pipeline_whose_probes_name_a_left_out_class_with_and_without_white_space_runs(service, tmp_path):
    """A review: 'b' and ' b ' both name the class 'b' (probe.splits.dropped_index), and each probe's run leaves it
    out, but the pipeline was refused with "leaves out ' b ', the first probe 'b': every probe of a pipeline leaves
    out the same classes". Both probes now store the class's own name."""
    cache = synthetic_cache(service.app.state.store, tmp_path)
    body = {"kind": "pipeline", "cache_id": cache["id"],
            "probes": [dict(ERM, drop_classes=["b"]), dict(MR2, drop_classes=[" b "])]}
    resp = service.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert [p["drop_classes"] for p in job["request"]["probes"]] == [["b"], ["b"]]
    assert job["status"] == "succeeded", job["error"]
