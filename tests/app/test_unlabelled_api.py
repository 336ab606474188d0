"""Unlabelled images through the service: upload with ``unlabelled``, extract, a finished run's predictions.csv;
everything that would train or score on them is a 422 before a job exists."""
from __future__ import annotations

import csv
import io
import json
import zipfile

from fastapi.testclient import TestClient

from app.cli import main
from app.main import create_app
from feature_cache import UNLABELLED

from app_testutils import ERM, make_settings, wait_job
from testdata import image_bytes

# any folders, one level, none and deeper; a file that is not an image is skipped
FILES = {"batch1/a.png": (0, 1), "batch1/b.jpg": (1, 2), "c.png": (2, 3), "deep/x/y/d.png": (1, 4)}


def _unlabelled_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (label, index) in FILES.items():
            zf.writestr(f"new/{name}", image_bytes(label, index, size=32,
                                                   fmt="JPEG" if name.endswith(".jpg") else "PNG"))
        zf.writestr("new/notes.txt", b"not an image")
    return buf.getvalue()


def _upload(client, **data):
    return client.post("/api/datasets", files={"file": ("new.zip", _unlabelled_zip(), "application/zip")},
                       data=data)


def test_unlabelled_upload_extract_and_predictions_csv(fresh_finished, tmp_path, capsys):
    client, settings = fresh_finished.client, fresh_finished.settings
    resp = _upload(client, name="new images", unlabelled="true")
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert ds["labelled"] is False and ds["class_names"] == [UNLABELLED] and ds["skipped"] == 1
    assert ds["counts"]["test"] == [len(FILES)] and ds["num_images"] == len(FILES) and ds["imbalance"] is None
    assert client.get(f"/api/datasets/{fresh_finished.dataset['id']}").json()["labelled"] is True

    job = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "effnet-lite0"})
    assert job.status_code == 202, job.text
    job = wait_job(client, job.json()["id"])
    assert job["status"] == "succeeded", job
    cache = client.get(f"/api/caches/{job['result']['cache_id']}").json()
    assert cache["labelled"] is False and cache["class_names"] == [UNLABELLED]

    run = fresh_finished.mr2
    resp = client.get(f"/api/runs/{run}/predictions.csv", params={"cache": cache["id"]})
    assert resp.status_code == 200, resp.text
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    names = client.get(f"/api/reports/{run}").json()["class_names"]
    assert sorted(r["source"] for r in rows) == sorted(f"new/{name}" for name in FILES)
    assert all(r["true"] == "" and r["correct"] == "" and r["predicted"] in names for r in rows)
    out = tmp_path / "p.csv"
    path = client.app.state.store.get_cache(cache["id"])["path"]
    assert main(["predict", str(settings.runs_dir / run), "--features", path, "--out", str(out)]) == 0
    assert out.read_bytes() == resp.content  # what `mr2probe predict --out` writes, byte for byte
    # how many went to each class, as `mr2probe predict --json` counts them (the page had only the CSV)
    counted = client.get(f"/api/runs/{run}/predicted", params={"cache": cache["id"]})
    assert counted.status_code == 200, counted.text
    capsys.readouterr()
    assert main(["predict", str(settings.runs_dir / run), "--features", path, "--json"]) == 0
    assert counted.json()["predicted"] == json.loads(capsys.readouterr().out)["predicted"]
    # every class's probability too, as `mr2probe predict --probabilities`; bounded in the service
    proba = client.get(f"/api/runs/{run}/predictions.csv", params={"cache": cache["id"], "probabilities": "true"})
    assert proba.status_code == 200
    assert main(["predict", str(settings.runs_dir / run), "--features", path, "--out", str(out),
                 "--probabilities"]) == 0
    assert out.read_bytes() == proba.content and proba.text.splitlines()[0].endswith(",p(" + names[-1] + ")")
    import app.routes.reports as routes

    bound, routes.MAX_PROBABILITY_CELLS = routes.MAX_PROBABILITY_CELLS, 5
    try:
        big = client.get(f"/api/runs/{run}/predictions.csv", params={"cache": cache["id"], "probabilities": "1"})
    finally:
        routes.MAX_PROBABILITY_CELLS = bound
    assert big.status_code == 422 and "over the 5 this service returns" in big.json()["detail"]

    # an empty split is named by the cache's id, not its file (it read '<data dir>/caches/...'; a new-user round)
    empty = client.get(f"/api/runs/{run}/predictions.csv", params={"cache": cache["id"], "split": "train"})
    assert empty.status_code == 422 and empty.json()["detail"] == (
        f"split 'train' of cache {cache['id']!r} holds no image (an unlabelled cache holds its images in 'test').")

    png = client.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": "new/deep/x/y/d.png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    # nothing scores or trains on them: 422 naming the way to their predictions, and no job
    jobs = len(client.get("/api/jobs").json())
    scores = client.get(f"/api/runs/{run}/scores", params={"cache": cache["id"]})
    assert scores.status_code == 422 and "unlabelled" in scores.json()["detail"]
    assert "predictions.csv" in scores.json()["detail"]
    compare = client.get("/api/compare", params={"base": fresh_finished.erm, "other": run, "cache": cache["id"]})
    assert compare.status_code == 422 and "unlabelled" in compare.json()["detail"]
    probe = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM})
    assert probe.status_code == 422 and probe.json()["detail"].startswith("cache_id: ")
    pipeline = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"], "probes": [ERM]})
    assert pipeline.status_code == 422 and "unlabelled" in pipeline.json()["detail"]
    split = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"],
                                           "options": {"max_per_class": 2}})
    assert split.status_code == 422 and split.json()["detail"].startswith("options.max_per_class: ")
    assert len(client.get("/api/jobs").json()) == jobs


def test_split_options_at_their_defaults_are_taken_on_unlabelled_images(tmp_path):
    """A client generated from /openapi.json sends every option's default (val_fraction 0.1, seed 0): the
    extraction of unlabelled images was refused as though it split them (an integration round). A value that would
    split them otherwise is still refused."""
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client, unlabelled="true").json()
        for options in ({}, {"val_fraction": 0.1, "seed": 0}, {"val_fraction": 0.1, "max_per_class": None, "seed": 3}):
            resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "options": options})
            assert resp.status_code == 202, (options, resp.text)
        for options, field in (({"val_fraction": 0.2}, "val_fraction"), ({"max_per_class": 5}, "max_per_class"),
                               ({"val_fraction": 0.1, "max_per_class": 5}, "max_per_class")):
            resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "options": options})
            assert resp.status_code == 422 and resp.json()["detail"].startswith(
                f"options.{field}: splits a labelled data set; data set {ds['id']!r} holds unlabelled images"), resp.text


def test_unlabelled_flag_is_checked_before_anything_is_stored(fresh_finished):
    client, settings = fresh_finished.client, fresh_finished.settings
    before = client.get("/api/datasets").json()
    resp = _upload(client, unlabelled="maybe")
    assert resp.status_code == 422 and resp.json()["detail"].startswith("unlabelled: must be true or false")
    assert client.get("/api/datasets").json() == before
    assert len(list(settings.uploads_dir.iterdir())) == len(before)  # the refused upload's folder is gone
    resp = client.post("/api/datasets", json={"path": "x", "unlabelled": "yes"})  # strict: a string is no bool
    assert resp.status_code == 422 and "unlabelled" in resp.text
    # "false" is the labelled upload: the unlabelled tree's folders read as classes, 'deep' (one image) too small to
    # train on, registered with the warning that train jobs must leave it out (as `mr2probe extract` reads it)
    resp = _upload(client, unlabelled="false")
    assert resp.status_code == 201 and resp.json()["labelled"] is True, resp.text
    assert resp.json()["class_names"] == ["batch1", "deep"] and '"drop_classes": ["deep"]' in resp.json()["warnings"][0]


def test_a_listed_sample_that_cannot_be_shown_is_a_422(fresh_finished, monkeypatch):
    """Thumbnails of listed samples that do not decode (not an image, too many pixels for Pillow or for the bound of
    every decode, datasets.MAX_DECODED_PIXELS) answer 422 naming the sample, not 500; an unlisted one stays a 404."""
    from PIL import Image

    from feature_cache import datasets

    bomb = io.BytesIO()
    Image.new("1", (14000, 14000)).save(bomb, format="PNG")  # ~200M pixels in a few kB: Pillow's bomb error
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("odd/ok.png", image_bytes(0, 1, size=32))
        zf.writestr("odd/text.png", b"text, not a PNG")
        zf.writestr("odd/bomb.png", bomb.getvalue())
    client = fresh_finished.client
    ds = client.post("/api/datasets", files={"file": ("odd.zip", buf.getvalue(), "application/zip")},
                     data={"unlabelled": "1"}).json()

    def thumb(source):
        return client.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": source})

    monkeypatch.setattr(datasets, "MAX_DECODED_PIXELS", 32 * 32 - 1)  # the bound extraction decodes under
    resp = thumb("odd/ok.png")
    assert resp.status_code == 422 and resp.json()["detail"] == (
        "sample 'odd/ok.png' cannot be shown: DecompressionBombError: 32 x 32 = 1,024 pixels, over the 1,023 an image "
        "may decode to (a decompression bomb?); shrink it to use it")
    monkeypatch.undo()
    assert thumb("odd/ok.png").status_code == 200
    for source, why in (("odd/text.png", "UnidentifiedImageError"), ("odd/bomb.png", "DecompressionBombError")):
        resp = thumb(source)
        assert resp.status_code == 422 and resp.json()["detail"].startswith(f"sample '{source}' cannot be shown: {why}")
    assert thumb("odd/none.png").status_code == 404


def test_a_labelled_cache_of_none_of_the_runs_classes_is_predicted_unscored(fresh_finished):
    """/predicted and predictions.csv refused a labelled cache none of whose classes is the run's, though predicting
    needs no labels (a new-user round): its images are predicted as unlabelled ones are, with a warning saying why no
    accuracy is given; /scores, which has nothing to score, says where the predictions are."""
    from app_testutils import tiny_zip_bytes

    client, run = fresh_finished.client, fresh_finished.mr2
    data = tiny_zip_bytes(2, 2, classes=("dog", "frog"), root="pets")
    ds = client.post("/api/datasets", files={"file": ("pets.zip", data, "application/zip")}, data={"name": "pets"})
    assert ds.status_code == 201, ds.text
    job = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds.json()["id"], "encoder": "effnet-lite0"})
    job = wait_job(client, job.json()["id"])
    assert job["status"] == "succeeded", job
    cache = job["result"]["cache_id"]
    said = "none of the cache's classes (dog, frog) is one of the run's (airplane, cat, ship): its labels cannot score"
    counted = client.get(f"/api/runs/{run}/predicted", params={"cache": cache})
    assert counted.status_code == 200, counted.text
    body = counted.json()
    assert body["images"] == 4 and sum(p["n"] for p in body["predicted"]) == 4
    assert [w for w in body["warnings"] if w.startswith(said)], body["warnings"]
    listed = client.get(f"/api/runs/{run}/predictions.csv", params={"cache": cache})
    assert listed.status_code == 200, listed.text
    rows = list(csv.DictReader(io.StringIO(listed.text)))
    assert sorted(r["true"] for r in rows) == ["dog", "dog", "frog", "frog"] and {r["correct"] for r in rows} == {""}
    scored = client.get(f"/api/runs/{run}/scores", params={"cache": cache})
    assert scored.status_code == 422 and "nothing to score; `mr2probe predict` lists its predictions" in scored.text
