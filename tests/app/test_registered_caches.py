"""Caches extracted elsewhere (``mr2probe extract`` on a GPU box), registered by path: ``POST /api/caches``, probes on
them (a pipeline with ``cache_id``), their deletion (the file stays), and a file changed since its registration."""
from __future__ import annotations

import argparse
import os
import shutil

import pytest
from fastapi.testclient import TestClient

from app.commands import extract as extract_command
from app.main import create_app
from feature_cache import open_cache

from app_testutils import ERM, MR2, make_settings, synthetic_cache, tiny_zip_bytes, wait_job


def _extract(data, out, *extra: str) -> None:
    """What the user ran on their own machine: ``mr2probe extract --data DATA --out OUT``."""
    argv = ["--data", str(data), "--encoder", "effnet-lite0", "--out", str(out), "--batch-size", "8", "--workers",
            "0", "--device", "cpu", "--no-progress", *extra]
    parser = argparse.ArgumentParser(prog="mr2probe extract")
    extract_command.add_arguments(parser)
    assert extract_command.run(parser.parse_args(argv)) == 0


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A data root with an archive of images and two caches of it the CLI wrote (seed 0 and seed 1 splits)."""
    root = tmp_path_factory.mktemp("root")
    (root / "images.zip").write_bytes(tiny_zip_bytes(6, 3))
    (root / "features").mkdir()
    _extract(root / "images.zip", root / "features" / "images.h5")
    _extract(root / "images.zip", root / "features" / "other.h5", "--seed", "1")
    return root


@pytest.fixture
def service(tmp_path, extracted):
    root = tmp_path / "root"
    shutil.copytree(extracted, root)
    with TestClient(create_app(make_settings(tmp_path / "svc", data_root=root))) as client:
        client.root = root
        yield client


def test_a_cache_is_registered_once_its_data_set_is_and_pipelines_train_on_it(service):
    features = service.root / "features" / "images.h5"
    resp = service.post("/api/caches", json={"path": "features/images.h5"})
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("images.h5 was extracted from a data set that is not registered here")
    assert "3 classes: airplane, cat, ship): register the folder or archive it was extracted from" in resp.text
    dataset = service.post("/api/datasets", json={"path": "images.zip"}).json()

    resp = service.post("/api/caches", json={"path": str(features)})
    assert resp.status_code == 201, resp.text
    cache = resp.json()
    assert cache["source"] == "path" and cache["dataset_id"] == dataset["id"] and cache["job_id"] is None
    assert cache["fingerprint"] == open_cache(features).fingerprint and cache["num_features"] == 1280
    assert cache["counts"] == {k: open_cache(features).split_sizes[k] for k in ("train", "val", "test")}
    assert service.post("/api/caches", json={"path": "features/images.h5"}).json() == cache  # 200, the same
    assert service.post("/api/caches", json={"path": "features/images.h5"}).status_code == 200

    resp = service.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache["id"], "probes": [ERM, MR2]})
    assert resp.status_code == 202, resp.text
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["cache_id"] == cache["id"] and len(job["result"]["run_ids"]) == 2
    assert not any("extract" in m["text"] for m in job["messages"])
    assert [c["id"] for c in service.get("/api/caches").json()] == [cache["id"]]  # nothing extracted
    erm, mr2 = job["result"]["run_ids"]
    assert service.get(f"/api/runs/{mr2}").json()["reference_run"] == erm
    failures = [item for name in dataset["class_names"]
                for item in service.get(f"/api/runs/{erm}/failures", params={"class": name}).json()["items"]]
    thumbnail = service.get(failures[0]["thumbnail_url"])  # from the registered data set's files
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"

    resp = service.delete(f"/api/caches/{cache['id']}", params={"cascade": "true"})
    assert resp.status_code == 200 and features.is_file()  # the user's file stays
    assert resp.json()["notes"] == [f"the file of cache {cache['id']!r} was registered by path: it is left on the "
                                    "server as it was"]


def test_a_registered_file_that_changed_or_moved_is_refused_where_it_is_used(service):
    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    run_on_it = {"kind": "probe", "cache_id": cache["id"], "config": ERM}
    moved = service.root / "moved.h5"
    os.replace(features, moved)
    features.symlink_to(moved)  # the same file, reached through a link: it could lead out of the data root
    resp = service.post("/api/jobs", json=run_on_it)
    assert resp.status_code == 403 and "no longer where it was registered" in resp.json()["detail"]

    features.unlink()
    os.replace(service.root / "features" / "other.h5", features)  # another extraction written over it
    resp = service.post("/api/jobs", json=run_on_it)
    assert resp.status_code == 422 and "its file images.h5 changed since it was registered" in resp.json()["detail"]
    assert service.get("/api/jobs").json() == []


def test_a_registered_file_now_a_symlink_loop_is_refused_not_a_500(service):
    """The registered cache file replaced by a link that leads back to itself: Path.resolve raised RuntimeError, a
    500 for every job request on the cache (a new-user round). Refused as a file that moved."""
    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    os.replace(features, service.root / "moved.h5")
    features.symlink_to(features.name)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM})
    assert resp.status_code == 403 and "no longer where it was registered" in resp.json()["detail"], resp.text
    assert service.get("/api/caches").json()[0]["problem"], service.get("/api/caches").text


def test_a_registered_file_written_over_in_place_is_checked_again_before_a_job(service):
    """NaN written into a registered file, its fingerprint kept: a job on it was accepted, then failed after its
    queue wait (an attack round). Its size or modification time changed since its values were checked: refused,
    and registering it again checks them again."""
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    with h5py.File(features, "r+") as f:  # one value of the train split's features, nothing else
        f["train/features"][0, 0] = np.nan
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM})
    assert resp.status_code == 422 and "its file images.h5 was written since it was registered" in resp.text, resp.text
    assert "was written since it was registered" in service.get(f"/api/caches/{cache['id']}").json()["problem"]
    assert service.get("/api/jobs").json() == []
    again = service.post("/api/caches", json={"path": "features/images.h5"})  # checked again: NaN refused
    assert again.status_code == 422 and "has features that are NaN, infinite" in again.text, again.text
    with h5py.File(features, "r+") as f:  # its values put back (the file's time changed again)
        f["train/features"][0, 0] = 0.0
    again = service.post("/api/caches", json={"path": "features/images.h5"})  # checked: this cache, stamped anew
    assert again.status_code == 200 and again.json()["id"] == cache["id"] and again.json()["problem"] is None
    assert service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM}).status_code == 202


def test_a_reference_is_not_reused_on_a_file_registered_again_with_other_values(service):
    """Other values written over a registered file, its fingerprint kept, then registered again (its cache and runs
    kept): a relaunch reused the ERM run trained on the old values (80 % beside a second probe at 33 %; an attack
    round). A run records the stamp of the file it read."""
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    body = {"kind": "pipeline", "cache_id": cache["id"], "probes": [ERM]}
    [first] = wait_job(service, service.post("/api/jobs", json=body).json()["id"])["result"]["run_ids"]
    assert wait_job(service, service.post("/api/jobs", json=body).json()["id"])["result"]["run_ids"] == [first]
    with h5py.File(features, "r+") as f:
        for split in ("train", "val", "test"):
            values = f[f"{split}/features"]
            values[...] = np.random.default_rng(0).standard_normal(values.shape).astype(values.dtype)
    again = service.post("/api/caches", json={"path": "features/images.h5"})
    assert again.status_code == 200 and again.json()["id"] == cache["id"]
    job = wait_job(service, service.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded" and job["result"]["run_ids"] != [first]
    assert not any("reused" in m["text"] for m in job["messages"])


def test_a_registered_file_only_touched_keeps_its_cache_when_registered_again(service):
    """Its time changed (touch, a copy without -t): refused until registered again, which must give back this
    cache and its runs, stamped anew, even where a row of the same features was made since (a review: 200 with
    that other row, this one refused for good), and a row from before stamps gets one."""
    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    store = service.app.state.store
    with store._tx() as conn:  # a row written before stamps
        conn.execute("UPDATE caches SET stamp = NULL WHERE id = ?", (cache["id"],))
    assert service.post("/api/caches", json={"path": "features/images.h5"}).json()["id"] == cache["id"]
    assert store.get_cache(cache["id"])["stamp"]  # stamped when registered again
    os.utime(features, ns=(features.stat().st_atime_ns, features.stat().st_mtime_ns + 10**9))
    assert "was written since it was registered" in service.get(f"/api/caches/{cache['id']}").json()["problem"]
    shutil.copy(features, service.root / "x.h5")  # an extraction of the same features since, readable
    other = store.add_cache(dataset_id=cache["dataset_id"], encoder=cache["encoder"], path=str(service.root / "x.h5"),
                            fingerprint=cache["fingerprint"], num_features=cache["num_features"],
                            class_names=cache["class_names"], counts=cache["counts"], job_id=None)
    again = service.post("/api/caches", json={"path": "features/images.h5"})
    assert again.status_code == 200 and again.json()["id"] == cache["id"] != other["id"]
    assert again.json()["problem"] is None


@pytest.mark.parametrize("path, status, detail", [
    ("/etc/passwd", 403, "is outside the data root"),
    ("images.zip", 422, "is not a readable HDF5 feature cache"),
    ("features", 422, "is a folder, not a cache file"),
    ("features/missing.h5", 422, "does not exist under the data root"),
])
def test_what_is_not_a_finished_cache_under_the_data_root_is_refused(service, path, status, detail):
    resp = service.post("/api/caches", json={"path": path})
    assert resp.status_code == status and detail in resp.json()["detail"], resp.text
    assert service.get("/api/caches").json() == []


def test_a_pipeline_names_a_data_set_or_a_cache_and_a_cache_takes_no_extraction_options(service):
    for body, message in (({}, "give dataset_id (extract, then the probes) or cache_id"),
                          ({"dataset_id": "ds_x", "cache_id": "cache_x"}, "exactly one of them"),
                          ({"cache_id": "cache_x", "options": {"seed": 1}}, "options describes an extraction")):
        resp = service.post("/api/jobs", json={"kind": "pipeline", "probes": [ERM], **body})
        assert resp.status_code == 422 and message in str(resp.json()["detail"]), body
    resp = service.post("/api/jobs", json={"kind": "pipeline", "cache_id": "cache_x", "probes": [ERM]})
    assert resp.status_code == 404


def test_a_pipeline_on_a_cache_takes_the_default_encoder_and_options_a_generated_client_sends(tmp_path):
    """The schema's encoder default ('effnet-lite0') and options defaults, which a client generated from
    /openapi.json always sends, were refused with cache_id (an integration round): the default or the cache's own
    encoder is taken; another encoder, or options that would extract otherwise, are refused."""
    with TestClient(create_app(make_settings(tmp_path / "svc"), start_worker=False)) as client:
        cache = synthetic_cache(client.app.state.store, tmp_path / "data")
        for extra in ({}, {"encoder": "effnet-lite0", "options": {"val_fraction": 0.1, "seed": 0}},
                      {"encoder": "synthetic"}):
            resp = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache["id"], "probes": [ERM], **extra})
            assert resp.status_code == 202, (extra, resp.text)
        resp = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache["id"], "probes": [ERM],
                                              "encoder": "openclip:ViT-B-32"})
        assert resp.status_code == 422 and resp.json()["detail"] == (
            f"encoder: cache {cache['id']!r} holds features of encoder 'synthetic'; with cache_id the cache's "
            "features are used as they are: leave encoder out"), resp.text
        resp = client.post("/api/jobs", json={"kind": "pipeline", "cache_id": cache["id"], "probes": [ERM],
                                              "options": {"val_fraction": 0.2}})
        assert resp.status_code == 422 and "options describes an extraction" in str(resp.json()["detail"])


def test_registering_again_repoints_a_moved_cache_and_a_changed_file_is_another_cache(service):
    """'Register it again' gave back the broken cache (an outside round): the same features moved elsewhere keep
    their cache (and its runs), read at the new path; a file now holding other features is a new cache, and the
    old one stays refused, with why, in the listing."""
    service.post("/api/datasets", json={"path": "images.zip"})
    features = service.root / "features" / "images.h5"
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    assert (cache["file"], cache["problem"]) == ("features/images.h5", None)
    (service.root / "moved").mkdir()
    os.replace(features, service.root / "moved" / "images.h5")
    listed = service.get(f"/api/caches/{cache['id']}").json()
    assert listed["problem"] == (f"cache {cache['id']!r}: its file images.h5 is no longer where it was registered; "
                                 "register it again where it is now (POST /api/caches with its path: the same "
                                 "features keep this cache and its runs)")
    assert "/" + str(service.root).strip("/") not in listed["problem"]  # no server path
    again = service.post("/api/caches", json={"path": "moved/images.h5"})
    assert again.status_code == 200 and again.json()["id"] == cache["id"]
    assert (again.json()["file"], again.json()["problem"]) == ("moved/images.h5", None)

    other = service.root / "features" / "other.h5"
    os.replace(other, service.root / "moved" / "images.h5")  # other features written over the registered file
    assert "changed since it was registered" in service.get(f"/api/caches/{cache['id']}").json()["problem"]
    new = service.post("/api/caches", json={"path": "moved/images.h5"})
    assert new.status_code == 201 and new.json()["id"] != cache["id"] and new.json()["problem"] is None
    assert service.get(f"/api/caches/{cache['id']}").json()["problem"] is not None  # its features are gone


def test_an_extraction_reuses_a_registered_file_of_the_same_features(service):
    """A pipeline on the data set with the same encoder and split options encoded the images again into a second
    cache of the same fingerprint (an outside round): it reuses the registered file."""
    dataset = service.post("/api/datasets", json={"path": "images.zip"}).json()
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"], "probes": [ERM]})
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["cache_id"] == cache["id"]
    assert f"cache {cache['id']} reused: a file registered by path holds these features" in \
        [m["text"] for m in job["messages"]]
    assert [c["id"] for c in service.get("/api/caches").json()] == [cache["id"]]


def test_an_extraction_beside_an_earlier_cache_of_other_settings_says_why_it_is_not_reused(service):
    """After an upgrade that changed the preprocessing, a pipeline on a data set encoded every image again beside its
    old cache with nothing said of why (an upgrade round): the job names the cache and the settings it differs in."""
    dataset = service.post("/api/datasets", json={"path": "images.zip"}).json()
    seed1 = service.post("/api/caches", json={"path": "features/other.h5"}).json()  # split seed 1
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"], "probes": [ERM]})
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["cache_id"] != seed1["id"]
    texts = [m["text"] for m in job["messages"]]
    assert (f"cache {seed1['id']} of this data set and encoder is not reused: it differs in split_params.seed "
            "(there 1, requested 0)") in texts
    again = wait_job(service, service.post("/api/jobs", json={"kind": "extract", "dataset_id": dataset["id"]}
                                           ).json()["id"])
    assert not any("not reused" in m["text"] for m in again["messages"])  # its own cache now answers


def test_a_damaged_or_foreign_file_is_named_for_what_it_is(service):
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})
    with h5py.File(service.root / "plain.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    resp = service.post("/api/caches", json={"path": "plain.h5"})
    assert resp.status_code == 422 and resp.json()["detail"] == (
        "<data root>/plain.h5 is an HDF5 file but not an mr2probe feature cache (it has no schema_version "
        "attribute); `mr2probe extract` writes one.")
    shutil.copy(service.root / "features" / "images.h5", service.root / "short.h5")
    with h5py.File(service.root / "short.h5", "r+") as h5:  # 5 labels for every row of features (an attack round)
        del h5["train/labels"]
        h5["train/labels"] = np.zeros(5, dtype=np.int64)
    resp = service.post("/api/caches", json={"path": "short.h5"})
    assert resp.status_code == 422 and "train's rows differ: 15 features, 5 labels, 15 sources" in resp.json()["detail"]


def test_a_reference_run_of_another_data_set_is_refused(service):
    """A probe job took a reference trained on other images of the same class names: its groups ranked other
    images, and the run page opened on the comparison's 422 (an attack round)."""
    service.post("/api/datasets", json={"path": "images.zip"})
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    (service.root / "other.zip").write_bytes(tiny_zip_bytes(5, 3))  # the same classes, other images
    other = service.post("/api/datasets", json={"path": "other.zip"}).json()
    jobs = [service.post("/api/jobs", json=body).json()["id"] for body in (
        {"kind": "probe", "cache_id": cache["id"], "config": ERM},
        {"kind": "pipeline", "dataset_id": other["id"], "probes": [ERM]})]
    reference, made = (wait_job(service, job)["result"] for job in jobs)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": made["cache_id"], "config": MR2,
                                           "reference_run": reference["run_ids"][0]})
    assert resp.status_code == 422 and resp.json()["detail"] == (
        f"reference_run: run {reference['run_ids'][0]!r} was trained on another data set than cache "
        f"{made['cache_id']!r} (other images): the reference's groups and the comparison with it need the same "
        "images; train the ERM reference on this cache")


def _altered(service, name: str, change) -> str:
    """A copy of the CLI's cache under the data root, changed by ``change(h5)`` (h5py, r+); returns its path."""
    import h5py

    target = service.root / name
    shutil.copy(service.root / "features" / "images.h5", target)
    with h5py.File(target, "r+") as h5:
        change(h5)
    return name


def _swap(split: str, name: str, make):
    """A change for :func:`_altered`: the member ``split/name`` replaced by ``make(group, name, its data)``."""
    def change(h5):
        data = h5[f"{split}/{name}"][()]
        del h5[f"{split}/{name}"]
        make(h5[split], name, data)
    return change


def test_hostile_or_damaged_cache_files_are_422_and_never_fail_the_listing(service):
    """An attack round: a split without labels, dangling and external links, a virtual dataset over a file outside
    the data root, names that are not UTF-8, 10⁹ unwritten rows were 500s (or trained on zeros), and a registered
    file given an integer fingerprint made GET /api/caches a 500 for everyone."""
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})
    outside = service.root.parent / "outside.h5"
    with h5py.File(outside, "w") as h5:
        h5["features"] = np.ones((15, 1280), dtype=np.float16)

    def virtual(h5):
        layout = h5py.VirtualLayout(shape=(15, 1280), dtype=np.float16)
        layout[:] = h5py.VirtualSource(str(outside), "features", shape=(15, 1280))
        del h5["train/features"]
        h5["train"].create_virtual_dataset("features", layout)

    def claiming(rows):  # a split of ``rows`` rows none of which is written: HDF5 reads them as zeros
        def change(h5):
            for name in ("features", "labels", "sources"):
                del h5[f"train/{name}"]
            h5["train"].create_dataset("features", shape=(rows, 1280), dtype=np.float16, chunks=(1024, 1280))
            h5["train"].create_dataset("labels", shape=(rows,), dtype=np.int64, chunks=(4096,))
            h5["train"].create_dataset("sources", shape=(rows,), dtype=h5py.string_dtype(), chunks=(4096,))
        return change

    cases = {
        "nolabels.h5": (lambda h5: h5.__delitem__("val/labels"), "is malformed: val/labels is missing"),
        "dangling.h5": (lambda h5: (h5["test"].__delitem__("labels"), h5["test"].__setitem__(
            "labels", h5py.ExternalLink("/nowhere.h5", "/labels"))), "test/labels is a link or a virtual dataset"),
        "external.h5": (lambda h5: (h5["train"].__delitem__("features"), h5["train"].__setitem__(
            "features", h5py.ExternalLink(str(outside), "/features"))), "train/features is a link or a virtual"),
        "virtual.h5": (virtual, "train/features is a link or a virtual dataset"),
        "notutf8.h5": (lambda h5: (h5["val"].__delitem__("sources"), h5["val"].create_dataset(
            "sources", data=np.array([b"\xff\xfe"] * 3), dtype=h5py.string_dtype("ascii"))),
            "split 'val' cannot be read (UnicodeDecodeError"),
        "huge.h5": (claiming(10**9), "split 'train' claims 1,000,000,000 images, over the 50,000,000"),
        "unwritten.h5": (claiming(2 * 10**6), "split 'train' has features (0 bytes stored of 5,120,000,000): "
                         "the cache is incomplete"),
    }
    for name, (change, said) in cases.items():
        resp = service.post("/api/caches", json={"path": _altered(service, name, change)})
        assert resp.status_code == 422 and said in resp.json()["detail"], (name, resp.text)
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    with h5py.File(service.root / "features" / "images.h5", "r+") as h5:
        h5.attrs["fingerprint"] = np.int64(5)
    listed = service.get("/api/caches")
    assert listed.status_code == 200 and "'fingerprint' is not text" in listed.json()[0]["problem"]
    assert service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": ERM}).status_code == 422


def test_a_copied_fingerprint_does_not_take_over_a_cache(service):
    """A file carrying a registered cache's fingerprint over other classes moved that cache (and its runs) onto it
    (an attack round): the same fingerprint is the same cache only with the same classes, width, splits, data set."""
    service.post("/api/datasets", json={"path": "images.zip"})
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    os.replace(service.root / "features" / "images.h5", service.root / "away.h5")  # the registered file moved
    shutil.copy(service.root / "away.h5", service.root / "forged.h5")
    import h5py

    with h5py.File(service.root / "forged.h5", "r+") as h5:
        h5.attrs["class_names"] = '["airplane", "cat", "dog"]'
    resp = service.post("/api/caches", json={"path": "forged.h5"})
    assert resp.status_code == 422 and resp.json()["detail"] == (
        f"forged.h5 carries the fingerprint of cache {cache['id']!r} but holds other classes (['airplane', 'cat', "
        "'dog'] against ['airplane', 'cat', 'ship']): it is not that cache's file")
    assert service.get(f"/api/caches/{cache['id']}").json()["file"] == "features/images.h5"  # not moved
    assert service.post("/api/caches", json={"path": "away.h5"}).json()["file"] == "away.h5"  # the real one is


def test_a_reference_scored_on_another_test_split_is_refused(service):
    """A reference trained on another cache of the same images with another cap per class was taken, and the run
    page opened on the comparison's 422 'scored on different test splits' (an attack round)."""
    dataset = service.post("/api/datasets", json={"path": "images.zip"}).json()
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    reference = wait_job(service, service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"],
                                                                   "config": ERM}).json()["id"])["result"]
    capped = wait_job(service, service.post("/api/jobs", json={
        "kind": "extract", "dataset_id": dataset["id"], "options": {"max_per_class": 2}}).json()["id"])["result"]
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": capped["cache_id"], "config": MR2,
                                           "reference_run": reference["run_ids"][0]})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(
        f"reference_run: run {reference['run_ids'][0]!r} was scored on another test split than cache "
        f"{capped['cache_id']!r} (9 test images against 6, or other ones)")


def test_malformed_members_a_compressed_file_and_a_copied_fingerprint_of_a_readable_cache(service):
    """A review: a group in a dataset's place and 2-D labels were 500s (at registration, or at the job); a
    compressed (repacked) cache was refused as incomplete; a file of other width carrying a readable cache's
    fingerprint was answered 200 as that cache."""
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})

    bad = {
        "group.h5": (_swap("train", "labels", lambda g, n, d: g.create_group(n)), "train/labels is not a dataset"),
        "labels2d.h5": (_swap("val", "labels", lambda g, n, d: g.create_dataset(n, data=np.stack([d, d], 1))),
                        "val/labels is a 2-d int64 array"),
        "floatlabels.h5": (_swap("test", "labels", lambda g, n, d: g.create_dataset(n, data=d.astype(float))),
                           "test/labels is a 1-d float64 array"),
    }
    for name, (change, said) in bad.items():
        resp = service.post("/api/caches", json={"path": _altered(service, name, change)})
        assert resp.status_code == 422 and said in resp.json()["detail"], (name, resp.text)
    packed = _altered(service, "packed.h5", _swap("train", "features", lambda g, n, d: g.create_dataset(
        n, data=d, compression="gzip", chunks=(4, d.shape[1]))))
    assert service.post("/api/caches", json={"path": packed}).status_code == 201
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()  # the same features: packed's
    wide = _altered(service, "wide.h5", lambda h5: [_swap(s, "features", lambda g, n, d: g.create_dataset(
        n, data=np.zeros((d.shape[0], 16), np.float16)))(h5) for s in ("train", "val", "test")])
    resp = service.post("/api/caches", json={"path": wide})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(
        f"wide.h5 carries the fingerprint of cache {cache['id']!r} but holds other feature width (16 against 1280)")


def test_registrations_of_one_file_at_once_make_one_cache(service):
    """The lookup and the insert were two transactions: 4 threads registering one file made two rows in 2 of 30
    rounds (a review); the insert now looks up the same file and fingerprint in its own transaction."""
    from concurrent.futures import ThreadPoolExecutor

    from app.caches import register_cache

    service.post("/api/datasets", json={"path": "images.zip"})
    store, path = service.app.state.store, (service.root / "features" / "images.h5").resolve()
    for _ in range(5):
        with ThreadPoolExecutor(4) as pool:
            ids = {row["id"] for row, _ in pool.map(lambda _: register_cache(store, path, store.data_root), range(4))}
        assert len(ids) == 1 and len(store.list_caches()) == 1
        service.delete(f"/api/caches/{ids.pop()}")


def test_files_that_read_outside_themselves_or_hold_what_no_job_can_train_on_are_refused(service):
    """An attack round: HDF5 external storage read a file outside the data root (and, pointed at a FIFO, stalled
    every route); float128 features were 500s on every scoring route; NaN features, a 'normalized' array and an
    unknown default head made jobs that could only fail; a 100,000-character encoder name filled every listing; a
    49 KB gzip file declaring 5 M rows with one chunk written was registered; a 4,000,000-wide file took a job to
    3.5 GB; uint64 labels of 2**64 − 1 were reported as -1."""
    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})
    outside = service.root.parent / "outside.bin"
    outside.write_bytes(bytes(15 * 1280 * 2))

    def replace(split, name, **create):
        def change(h5):
            del h5[f"{split}/{name}"]
            h5[split].create_dataset(name, **create)
        return change

    def attr(key, value):
        return lambda h5: h5.attrs.__setitem__(key, value)

    def nan(h5):
        h5["val/features"][1, 3] = np.nan

    rows = 5_000_000
    cases = {
        "extstore.h5": (replace("train", "features", shape=(15, 1280), dtype=np.float16,
                                external=[(str(outside), 0, 15 * 1280 * 2)]), "train/features is a link or a virtual"),
        "f128.h5": (replace("test", "features", data=np.zeros((9, 1280), np.longdouble)),
                    "test/features is a 2-d float128 array"),
        "normarr.h5": (attr("normalized", np.array([1, 2, 3])), "the root attribute 'normalized' is '[1 2 3]', not "
                       "true or false"),
        "evilhead.h5": (attr("default_head", "evil"), "the root attribute 'default_head' is 'evil', not a head"),
        "longenc.h5": (attr("encoder", "e" * 100_000), "the root attribute 'encoder' is over 4,096 characters"),
        "nan.h5": (nan, "nan.h5: split 'val' has features that are NaN, infinite or too large for float32 "
                   "(a squared norm past 3.4e+38), row 1 first"),
        "chunks.h5": (lambda h5: [replace("test", name, shape=(rows, *shape), dtype=dtype, chunks=(4096, *shape),
                                          compression="gzip")(h5) for name, shape, dtype in
                                  (("features", (1280,), np.float16), ("labels", (), np.int64),
                                   ("sources", (), h5py.string_dtype()))]
                      and h5["test/features"].__setitem__((slice(0, 4096),), np.ones((4096, 1280), np.float16)),
                      "split 'test' has features (1 chunks stored of the 1,221 its 5,000,000 rows span)"),
        "wide.h5": (lambda h5: [replace(s, "features", shape=(h5[f"{s}/labels"].shape[0], 70_000), dtype=np.float16,
                                        chunks=(1, 70_000), compression="gzip", fillvalue=0)(h5)
                                for s in ("train", "val", "test")],
                    "holds 70,000 features per image, over the 65,536 a registered cache may hold"),
        "u64.h5": (replace("val", "labels", data=np.full(3, 2**64 - 1, np.uint64)),
                   "has 3 labels outside 0..2 (its 3 classes), e.g. 18446744073709551615"),
    }
    for name, (change, said) in cases.items():
        resp = service.post("/api/caches", json={"path": _altered(service, name, change)})
        assert resp.status_code == 422 and said in resp.json()["detail"], (name, resp.text)
    assert service.get("/api/caches").json() == []


def test_a_path_in_the_service_s_own_folder_is_refused(tmp_path, extracted):
    """An attack round: with the data folder under the data root, a cache file registered in data/caches/<data set>
    went with that data set's deletion (whose notes said it stayed), and an upload registered as another data set
    went with the upload's."""
    root = tmp_path / "root"
    shutil.copytree(extracted, root)
    with TestClient(create_app(make_settings(root / "svc", data_root=root))) as client:
        upload = client.post("/api/datasets", files={"file": ("mine.zip", tiny_zip_bytes(6, 3), "application/zip")},
                             data={"name": "mine"}).json()
        inside = next((root / "svc" / "uploads").rglob("*.zip"))
        resp = client.post("/api/datasets", json={"path": str(inside)})
        assert resp.status_code == 403 and "lies in or holds the service's own data" in resp.json()["detail"]
        (root / "svc" / "caches").mkdir(exist_ok=True)
        shutil.copy(root / "features" / "images.h5", root / "svc" / "caches" / "mine.h5")
        resp = client.post("/api/caches", json={"path": "svc/caches/mine.h5"})
        assert resp.status_code == 403 and "lies in or holds the service's own data" in resp.json()["detail"]
        resp = client.post("/api/datasets", json={"path": "."})  # the data root, holding the data folder
        assert resp.status_code == 403 and "lies in or holds the service's own data" in resp.json()["detail"]
        assert client.get("/api/caches").json() == [] and len(client.get("/api/datasets").json()) == 1
        assert client.delete(f"/api/datasets/{upload['id']}").status_code == 200
    # a data root inside the data folder, beside what the service manages, keeps its own files (a review)
    shutil.copytree(extracted, root / "svc" / "datasets")
    with TestClient(create_app(make_settings(root / "svc", data_root=root / "svc" / "datasets"))) as client:
        assert client.post("/api/datasets", json={"path": "images.zip"}).status_code == 201
        assert client.post("/api/caches", json={"path": "features/images.h5"}).status_code == 201


def test_the_finite_check_reads_blocks_by_bytes_and_a_file_registered_again_is_read_again(service, tmp_path,
                                                                                          monkeypatch):
    """A review: blocks of 65,536 rows whatever the width (32 GiB at the widest allowed); and a second review: a file
    replaced at its path by one of the same fingerprint holding NaN passed a shortcut for "this very file"."""
    import h5py
    import numpy as np

    from app import caches

    monkeypatch.setattr(caches, "_FEATURE_CHUNK_BYTES", 10 * 1000 * 4)  # 10 rows of 1,000 float32
    with h5py.File(tmp_path / "f.h5", "w") as h5:
        data = np.zeros((95, 1000), np.float32)
        data[57, 999] = np.inf
        h5["x"] = data
        assert caches._nonfinite_rows(h5["x"]) == 57
        h5["x"][57, 999] = 0
        assert caches._nonfinite_rows(h5["x"]) is None
    service.post("/api/datasets", json={"path": "images.zip"})
    first = service.post("/api/caches", json={"path": "features/images.h5"})
    with h5py.File(service.root / "features" / "images.h5", "r+") as h5:
        h5["val/features"][0, 0] = np.nan
    again = service.post("/api/caches", json={"path": "features/images.h5"})
    assert first.status_code == 201 and again.status_code == 422 and "NaN" in again.json()["detail"]


def test_a_second_attack_round_s_files_are_refused_and_a_scale_offset_file_is_not(service):
    """Attack round 14: a 1 GiB gzip chunk decompressed again per block (32 s for a 4.9 MB file), features 20×+
    compressed (a 6 MB file of 20 M constant rows cost minutes per scoring request), a schema_version array (500),
    integer-array names (500), big-endian features, float64 past float32's range and a width of 0 (jobs that could
    only fail), an encoder name with an escape sequence, a 3 MB preprocess copied into every report; and a
    scale-offset file, complete, refused as incomplete."""
    import json

    import h5py
    import numpy as np

    service.post("/api/datasets", json={"path": "images.zip"})

    def constant(rows):  # a constant train split of many rows, gzip: tiny on disk
        def change(h5):
            for name in ("features", "labels", "sources"):
                del h5[f"train/{name}"]
            g = h5["train"]
            g.create_dataset("features", data=np.zeros((rows, 1280), np.float16), chunks=(1024, 1280),
                             compression="gzip")
            g.create_dataset("labels", data=np.zeros(rows, np.int64), compression="gzip")
            g.create_dataset("sources", data=np.array([b"train/airplane/000.jpg"] * rows, dtype="S22"),
                             compression="gzip")
        return change

    cases = {
        "constant.h5": (constant(30_000), "999× compressed, which features of images never are"),
        "version.h5": (lambda h5: h5.attrs.__setitem__("schema_version", np.array([1, 1])), "has schema_version"),
        "vlen.h5": (_swap("test", "sources", lambda g, n, d: g.create_dataset(
            n, data=np.array([np.arange(2, dtype=np.int32)] * d.shape[0] + [None], dtype=object)[:-1],
            dtype=h5py.vlen_dtype(np.int32))), "test/sources is a 1-d object array"),
        "bigendian.h5": (_swap("val", "features", lambda g, n, d: g.create_dataset(n, data=d.astype(">f4"))),
                         "val/features is a 2-d >f4 array"),
        "huge64.h5": (_swap("val", "features", lambda g, n, d: g.create_dataset(n, data=d.astype(np.float64) * 1e300
                                                                                    + 1e300)),
                      "too large for float32 (a squared norm past 3.4e+38), row 0 first"),
        # finite float32, but ‖φ‖² past its range: r_k² was infinite and every MR² job failed (a loose end)
        "huge32.h5": (_swap("train", "features", lambda g, n, d: g.create_dataset(
            n, data=np.where(np.arange(d.shape[0])[:, None] == 2, np.float32(3e38), d.astype(np.float32)))),
                      "too large for float32 (a squared norm past 3.4e+38), row 2 first"),
        "zero.h5": (lambda h5: [_swap(s, "features", lambda g, n, d: g.create_dataset(
            n, data=np.zeros((d.shape[0], 0), np.float16)))(h5) for s in ("train", "val", "test")], "is incomplete or malformed"),
        "escape.h5": (lambda h5: h5.attrs.__setitem__("encoder", "effnet\x1b[31m\u202elite0"),
                      "the root attribute 'encoder' holds control or text-direction characters"),
        "preprocess.h5": (lambda h5: h5.attrs.__setitem__("preprocess", json.dumps({"x": "a" * 5000})),
                          "the root attribute 'preprocess' is over 4,096 characters"),
    }
    for name, (change, said) in cases.items():
        resp = service.post("/api/caches", json={"path": _altered(service, name, change)})
        assert resp.status_code == 422 and said in resp.json()["detail"], (name, resp.text)
    from app import caches

    with pytest.MonkeyPatch.context() as patch:  # a band of chunk rows over the limit (512 MiB; 4 KiB here)
        patch.setattr(caches, "MAX_ROW_BAND_BYTES", 4096)
        one = _altered(service, "onechunk.h5", _swap("val", "features", lambda g, n, d: g.create_dataset(
            n, data=d, chunks=d.shape)))
        resp = service.post("/api/caches", json={"path": one})
        assert resp.status_code == 422 and "reading any row decompresses" in resp.text and "(at most 4,096;" in resp.text
    scaled = _altered(service, "scaleoffset.h5", _swap("train", "features", lambda g, n, d: g.create_dataset(
        n, data=d.astype(np.float32), chunks=(3, d.shape[1]), scaleoffset=2)))
    assert service.post("/api/caches", json={"path": scaled}).status_code == 201


def test_the_listing_opens_a_registered_file_again_only_once_it_changed(service, monkeypatch):
    """Every listing opened every registered file to check it (7.5 ms each on CIFAR-10's): an untouched file that
    passed is not opened again; one whose modification time was set back after a write (its change time moved) is,
    and so is one that failed, until it passes."""
    import feature_cache

    service.post("/api/datasets", json={"path": "images.zip"})
    cache = service.post("/api/caches", json={"path": "features/images.h5"}).json()
    opened = []
    real = feature_cache.open_cache
    monkeypatch.setattr(feature_cache, "open_cache", lambda path, *a, **k: opened.append(str(path)) or real(path, *a,
                                                                                                            **k))
    listing = [service.get("/api/caches").json() for _ in range(3)]
    assert [[c["problem"] for c in cached] for cached in listing] == [[None]] * 3
    assert len(opened) <= 1  # at most once, by the first listing after registration
    features = service.root / "features" / "images.h5"
    info, before = features.stat(), len(opened)
    os.utime(features, ns=(info.st_atime_ns, info.st_mtime_ns))  # the same times set again: the ctime moves
    assert service.get("/api/caches").json()[0]["problem"] is None
    assert opened[before:] == [str(features)]  # opened again, once
    service.get("/api/caches")
    assert len(opened) == before + 1 and cache["id"] == service.get("/api/caches").json()[0]["id"]


def test_a_registered_cache_of_a_manifest_pair_says_to_add_rows_to_its_csv_files(tmp_path):
    """A cache extracted elsewhere from a manifest pair (train.csv + test.csv) whose class 'ship' has no test rows,
    registered by path: a probe job keeping the class was told to add 'a class folder under test/', which the pair
    has none of. The cache row records the layout its file was extracted from; the refusal names test.csv."""
    from app_testutils import manifest_pair_without_test_rows

    root = tmp_path / "root"
    pair = manifest_pair_without_test_rows(root)
    _extract(pair, root / "pair.h5")
    with TestClient(create_app(make_settings(tmp_path / "svc", data_root=root))) as client:
        assert client.post("/api/datasets", json={"path": "tiny"}).status_code == 201
        cache = client.post("/api/caches", json={"path": "pair.h5"})
        assert cache.status_code == 201, cache.text
        refused = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache.json()["id"], "config": ERM})
        assert refused.status_code == 422 and "add their rows to test.csv, or leave it out of the job with " \
            '"drop_classes": ["ship"]' in refused.json()["detail"], refused.text
