"""GET /api/runs/{id}/near-duplicates: every test image that duplicates a train or val image, a page at a time, with
both images' thumbnails; bounded parameters and one-line 4xx JSON for runs without the list."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from probe import ProbeConfig, run_probe
from probe.near_duplicates import PAIRS_FILE, read_pairs
from probe.report import FeatureSource
from testdata import LEAKY_IDENTICAL, LEAKY_NEAR, leaky_splits

from app_testutils import make_settings, synthetic_cache

NAMES = ["a", "b", "c"]
FAST = dict(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0)


def _add_run(app, cache, run_id, encoder="effnet-lite0"):
    data, sources, digests = leaky_splits(NAMES)
    out = app.state.settings.runs_dir / run_id
    run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out, sources=sources, contents=digests,
              features=FeatureSource(fingerprint="f" * 64, encoder=encoder))
    app.state.store.add_run(run_id=run_id, job_id=None, cache_id=cache["id"], name=run_id, head="linear", loss="ce",
                            reference_run=None, path=str(out), summary={"overall": 0.5})
    return out, sources


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("svc")
    app = create_app(make_settings(root / "svc"), start_worker=False)
    cache = synthetic_cache(app.state.store, root / "data")
    runs = {run_id: _add_run(app, cache, run_id, encoder) for run_id, encoder in
            (("leaky", "effnet-lite0"), ("unchecked", "openclip:x"), ("older", "effnet-lite0"))}
    (runs["older"][0] / PAIRS_FILE).unlink()  # as a run written before the list was kept
    with TestClient(app) as client:
        yield client, cache, runs


def test_pages_every_pair_most_similar_first_with_both_thumbnails(service):
    client, cache, runs = service
    out, sources = runs["leaky"]
    body = client.get("/api/runs/leaky/near-duplicates").json()
    assert (body["encoder"], body["threshold"], body["test_images"]) == ("effnet-lite0", 0.9, 60)
    # the rule in the report's words, the ratio test with it (the run page said the threshold alone)
    assert body["rule"] == "cosine ≥ 0.9 of effnet-lite0 features, 2.5× closer than to any other image, or ≥ 0.99"
    assert body["total"] == len(LEAKY_NEAR) + len(LEAKY_IDENTICAL) == len(body["items"])
    assert [(i["test"], i["seen"], i["identical"]) for i in body["items"]] == [
        (p["test"], p["seen"], p["identical"]) for p in read_pairs(out)]
    assert {i["test"] for i in body["items"]} == {sources["test"][r] for r in LEAKY_NEAR + LEAKY_IDENTICAL}
    thumbnail = f"/api/datasets/{cache['dataset_id']}/thumbnail?source="
    for item in body["items"]:
        assert item["test_thumbnail_url"] == thumbnail + item["test"].replace("/", "%2F")
        assert item["seen_thumbnail_url"] == thumbnail + item["seen"].replace("/", "%2F")
    page = client.get("/api/runs/leaky/near-duplicates", params={"limit": 2, "offset": 3}).json()
    assert (page["total"], page["limit"], page["offset"]) == (7, 2, 3) and page["items"] == body["items"][3:5]
    assert client.get("/api/runs/leaky/near-duplicates", params={"offset": 7}).json()["items"] == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"offset": 10**9 + 1},
                                    {"limit": "x"}])
def test_bad_parameters_are_422(service, params):
    client, _, _ = service
    resp = client.get("/api/runs/leaky/near-duplicates", params=params)
    assert resp.status_code == 422 and "detail" in resp.json()


def test_runs_without_the_list_are_404_saying_why_and_a_damaged_list_422(service):
    client, _, runs = service
    unchecked = client.get("/api/runs/unchecked/near-duplicates")
    assert unchecked.status_code == 404 and unchecked.json()["detail"] == (
        f"run 'unchecked' has no {PAIRS_FILE}: it was not checked for near-duplicates (an encoder without a measured "
        "threshold, arrays given without their features' source, too many train and val images to compare even one "
        "test image within the products budget, or a report written before the check)")
    older = client.get("/api/runs/older/near-duplicates")
    assert older.status_code == 404 and "written before the list was kept" in older.json()["detail"]
    assert client.get("/api/runs/nosuch/near-duplicates").status_code == 404
    (runs["older"][0] / PAIRS_FILE).write_text("not,the,columns\n")
    try:
        damaged = client.get("/api/runs/older/near-duplicates")
        assert damaged.status_code == 422 and "cannot be read" in damaged.json()["detail"]
    finally:
        (runs["older"][0] / PAIRS_FILE).unlink()


def test_a_run_replaced_between_its_report_and_its_list_is_the_new_runs(service, monkeypatch):
    """The route read report.json, then near_duplicates.csv: a train --force that moved in an unchecked run in
    between read as a checked run whose list was lost ("written before the list was kept"). Read again, whole: the
    new run, not checked."""
    import probe.near_duplicates

    client, cache, _ = service
    out, _ = _add_run(client.app, cache, "replaced")
    real, calls = probe.near_duplicates.read_pairs, []

    def read_pairs(folder, *args):
        calls.append(1)
        if len(calls) == 1:
            data, sources, digests = leaky_splits(NAMES)
            run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out, sources=sources, contents=digests,
                      features=FeatureSource(fingerprint="f" * 64, encoder="openclip:x"))
        return real(folder, *args)

    monkeypatch.setattr(probe.near_duplicates, "read_pairs", read_pairs)
    got = client.get("/api/runs/replaced/near-duplicates")
    assert got.status_code == 404 and "it was not checked for near-duplicates" in got.json()["detail"], got.json()
    assert len(calls) == 2


HEADER = "test_row,test,seen_split,seen_row,seen,similarity,identical\n"


@pytest.mark.parametrize("damage", [HEADER + "0,a.png,test,0,b.png,0.95,0\n", HEADER + "0,a.png,train,0,b.png,nan,0\n",
                                    HEADER + "0,a.png,train,0,b.png,inf,0\n", HEADER + "0,a.png,train,-1,b.png,0.9,0\n",
                                    HEADER + "0,a.png,train,0,b.png,0.9,yes\n", HEADER + "0,a.png\n",
                                    HEADER + "60,a.png,train,0,b.png,0.9,0\n",
                                    HEADER + "0," + "x" * 200_000 + ",train,0,b.png,0.9,0\n",
                                    (HEADER + "0,\udcff.png,train,0,b.png,0.9,0\n").encode("utf-8", "surrogateescape"),
                                    "folder"])
def test_a_damaged_list_is_a_422_naming_it_never_a_500(service, damage):
    """Another split was a 500 (the response's Literal), a field past the csv module's limit and a folder of that
    name too; nan or inf a 200 with a null similarity that the run page's panel could not draw; not UTF-8 a 422
    that did not name the file; a test row past the run's 60 test images was a 200 listing it."""
    client, _, runs = service
    path = runs["older"][0] / PAIRS_FILE
    if damage == "folder":
        path.mkdir()
    else:
        (path.write_bytes if isinstance(damage, bytes) else path.write_text)(damage)
    try:
        resp = client.get("/api/runs/older/near-duplicates")
    finally:
        path.rmdir() if path.is_dir() else path.unlink()
    detail = resp.json()["detail"]
    assert resp.status_code == 422 and detail.startswith(f"{PAIRS_FILE} of run older cannot be read"), resp.text
    assert "\n" not in detail


def test_a_cosine_rounded_past_one_is_a_pair_not_damage(service):
    """float32 products give an image and its copy a cosine of 1.000001: such a list is no damaged one."""
    client, _, runs = service
    path = runs["older"][0] / PAIRS_FILE
    path.write_text(HEADER + "0,a.png,train,0,b.png,1.000001,1\n1,c.png,val,2,d.png,-1.000001,0\n")
    try:
        resp = client.get("/api/runs/older/near-duplicates")
    finally:
        path.unlink()
    assert resp.status_code == 200 and [i["similarity"] for i in resp.json()["items"]] == [1.000001, -1.000001]


def test_a_sampled_run_says_how_many_test_images_were_compared(service, monkeypatch):
    import probe.run

    client, cache, runs = service
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 2 * 25 * 150 * 64)  # 25 of the 60 test rows fit half
    _add_run(client.app, cache, "sampled")
    body = client.get("/api/runs/sampled/near-duplicates").json()
    assert (body["sampled"], body["test_images"]) == (25, 60)
    assert client.get("/api/runs/leaky/near-duplicates").json()["sampled"] is None


def test_a_sampled_runs_pairs_say_the_identical_ones_outside_the_sample_as_the_cli_does(service, monkeypatch,
                                                                                         capsys):
    """After a sampled check the list holds every byte-identical test image; the API's outside_sample says how many
    lie outside the sample, the number `mr2probe report --near-duplicates` says (total - outside_sample of the
    sampled ones duplicate one, as its line's first count)."""
    import probe.run
    from app.cli import main

    client, cache, _ = service
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 2 * 25 * 150 * 64)  # 25 of the 60 test rows fit half
    out, _ = _add_run(client.app, cache, "sampled-identical")
    body = client.get("/api/runs/sampled-identical/near-duplicates", params={"limit": 200}).json()
    assert body["sampled"] == 25 and body["outside_sample"] > 0 and body["total"] == len(body["items"])
    assert sum(item["identical"] for item in body["items"]) == len(LEAKY_IDENTICAL)
    capsys.readouterr()
    assert main(["report", str(out), "--near-duplicates"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{body['total'] - body['outside_sample']} of 25 sampled test images")
    assert f"; {body['outside_sample']} more test image" in first
    assert client.get("/api/runs/leaky/near-duplicates").json()["outside_sample"] == 0


def test_runs_leaving_out_one_class_named_in_either_unicode_form_are_checked_once(monkeypatch):
    """An attack round: /compare?cache= checks the cache against the train and val images once per distinct (run
    cache, classes left out), but grouped the runs by drop_classes as given: two runs leaving out 'café', named
    composed and decomposed, were checked twice and the line said twice, each prefixed with its run. They are one
    group now, as the runs list names their left-out classes."""
    import unicodedata
    from types import SimpleNamespace

    from app import predicted_near

    monkeypatch.setattr(predicted_near, "near_train", lambda report, own, cache, split: (None, ["not checked: why"]))
    features = SimpleNamespace(fingerprint="f" * 64)
    runs = [(name, SimpleNamespace(features=features, config={"drop_classes": drop}), None)
            for name, drop in (("run_a", [unicodedata.normalize("NFC", "café"), "b"]),
                               ("run_b", ["b", unicodedata.normalize("NFD", "café")]))]
    assert predicted_near.near_lines(runs, None, "test") == [(["run_a", "run_b"], "not checked: why")]
