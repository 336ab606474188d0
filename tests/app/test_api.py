"""The REST API with FastAPI's TestClient, on a tiny generated image archive, through to finished reports."""
from __future__ import annotations

import csv
import html
import importlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import get_store
from app.main import create_app
from feature_cache import open_cache

from app.validation import resolve_probe_config

from app_testutils import (CLASSES, ERM, FAST_PROBE, MR2, extract_and_probe, make_settings,
                           manifest_pair_without_test_rows, tiny_zip_bytes, unzip, wait_for, wait_job)


# -- data sets -------------------------------------------------------------------------------------------
def test_upload_returns_classes_and_counts(finished):
    ds = finished.dataset
    assert ds["id"].startswith("ds_") and ds["source"] == "upload" and ds["name"] == "tiny images"
    assert ds["class_names"] == sorted(CLASSES)
    assert ds["counts"]["test"] == [3, 3, 3]
    train_plus_val = [a + b for a, b in zip(ds["counts"]["train"], ds["counts"].get("val", [0, 0, 0]))]
    assert train_plus_val == [6, 6, 6] and ds["num_images"] == 27 and ds["skipped"] == 0 and ds["imbalance"] == 1.0
    assert finished.client.get(f"/api/datasets/{ds['id']}").json() == ds
    assert [d["id"] for d in finished.client.get("/api/datasets").json()] == [ds["id"]]
    # The upload was streamed into the data dir under the data set's id.
    assert (finished.settings.uploads_dir / ds["id"] / "tiny.zip").is_file()


def test_upload_over_the_limit_is_413_and_leaves_nothing(tmp_path, tiny_zip):
    settings = make_settings(tmp_path, max_upload_bytes=4096)
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")})
        assert resp.status_code == 413
        assert "over the limit of 4096 bytes" in resp.json()["detail"]
        assert not any(settings.uploads_dir.glob("*/*"))
        assert client.get("/api/datasets").json() == []


def test_an_upload_over_the_limit_is_said_in_mib_with_what_to_do_instead(tmp_path):
    settings = make_settings(tmp_path, max_upload_bytes=3 * 2 ** 20)
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photos.zip\"\r\n\r\n" + bytes(5 * 2 ** 20)
    hint = (f"is over the limit of {3 * 2 ** 20} bytes (3.0 MiB, MR2PROBE_MAX_UPLOAD_BYTES): register the folder or "
            "archive by its path on the server instead (under MR2PROBE_DATA_ROOT), or have the server's limit raised")
    headers = {"content-type": "multipart/form-data; boundary=b"}
    with TestClient(create_app(settings)) as client:
        declared = client.post("/api/datasets", content=body, headers=headers)
        assert declared.status_code == 413
        assert declared.json()["detail"] == f"upload of {len(body)} bytes (5.0 MiB) {hint}"
        streamed = client.post("/api/datasets", content=iter([body[:2 ** 20]] * 5), headers=headers)  # no length
        assert streamed.status_code == 413 and streamed.json()["detail"] == f"upload {hint}"
        assert not any(settings.uploads_dir.glob("*/*"))


def test_streamed_limit_without_content_length(tmp_path, tiny_zip):
    """A chunked body (no Content-Length) is cut off while streaming."""
    settings = make_settings(tmp_path, max_upload_bytes=4096)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.zip\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + tiny_zip + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 1024):
            yield body[i:i + 1024]

    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", content=chunks(),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert resp.status_code == 413
        assert not any(settings.uploads_dir.glob("*/*"))


def test_an_upload_cut_short_or_with_a_field_the_form_does_not_take_is_refused(tmp_path, tiny_zip):
    """A body without its closing boundary was registered, and a mistyped field (unlabeled=true) was ignored, as
    unknown JSON fields are not (an attack round): both 422, nothing registered, nothing left in uploads."""
    settings = make_settings(tmp_path)
    boundary = "b0undary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.zip\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + tiny_zip
    typo = f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"unlabeled\"\r\n\r\ntrue".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", content=part, headers=headers)
        assert resp.status_code == 422 and "ends before its closing boundary" in resp.json()["detail"], resp.text
        resp = client.post("/api/datasets", content=part + typo + f"\r\n--{boundary}--\r\n".encode(), headers=headers)
        assert resp.status_code == 422 and resp.json()["detail"] == (
            "unknown form field 'unlabeled': this form takes file, name, unlabelled"), resp.text
        for nameless in (b"Content-Disposition: form-data", b"X-Foo: bar", b'Content-Disposition: form-data; name=""'):
            body = (part + f"\r\n--{boundary}\r\n".encode() + nameless + b"\r\n\r\njunk"
                    + f"\r\n--{boundary}--\r\n".encode())
            resp = client.post("/api/datasets", content=body, headers=headers)  # skipped without a word before
            assert resp.status_code == 422 and "a form part without a name" in resp.text, (nameless, resp.text)
        assert client.get("/api/datasets").json() == [] and not any(settings.uploads_dir.glob("*/*"))
        resp = client.post("/api/datasets", content=part + f"\r\n--{boundary}--\r\n".encode(), headers=headers)
        assert resp.status_code == 201, resp.text


def test_uploads_are_bounded_in_number_and_end_when_they_stall(tmp_path, tiny_zip):
    """Sixty uploads of a byte a second were all kept open (an attack round): one more than MR2PROBE_MAX_UPLOADS is a
    429 while they stream, and one that sends nothing for MR2PROBE_UPLOAD_IDLE_SECONDS is a 408, its folder gone.
    A real server (TestClient reads a request's whole body before the app sees it) and a raw socket."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from app_testutils import free_port

    settings = make_settings(tmp_path, max_uploads=1, upload_idle_seconds=1.0, upload_min_rate=1000,
                             allowed_hosts=["127.0.0.1"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, what="uvicorn started")
    try:
        boundary = "b0undary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.zip\"\r\n"
                f"Content-Type: application/zip\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(f"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                         f"boundary={boundary}\r\nContent-Length: {len(head) + 10_000}\r\n\r\n".encode() + head)
            wait_for(lambda: any(settings.uploads_dir.glob("*/*")), 30, interval=0.05, what="the upload streaming")
            files = {"file": ("t.zip", tiny_zip, "application/zip")}
            busy = httpx.post(f"http://127.0.0.1:{port}/api/datasets", files=files, timeout=30)
            assert busy.status_code == 429, busy.text
            assert "1 uploads are streaming already (MR2PROBE_MAX_UPLOADS = 1)" in busy.json()["detail"]
            answer = b""  # then nothing more is sent: ended after 1 s, the answer read whole (it came in parts)
            while not answer.endswith(b"}"):
                part = slow.recv(65536)
                if not part:
                    break
                answer += part
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "sent nothing for 1 s (MR2PROBE_UPLOAD_IDLE_SECONDS)" in answer
        wait_for(lambda: not any(settings.uploads_dir.glob("*/*")), 30, interval=0.05, what="its folder removed")
        ok = httpx.post(f"http://127.0.0.1:{port}/api/datasets", files=files, timeout=30)
        assert ok.status_code == 201, ok.text  # the slot is free again
        # a byte every 0.3 s never idles 1 s, but averages under MR2PROBE_UPLOAD_MIN_RATE once 1 s has passed (a
        # byte a minute held the slot for ever; a review)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as trickle:
            trickle.sendall(f"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                            f"boundary={boundary}\r\nContent-Length: {len(head) + 10_000}\r\n\r\n".encode() + head)
            answer = b""
            for byte in tiny_zip[:40]:
                try:
                    trickle.sendall(bytes([byte]))
                except OSError:  # the server ended it
                    break
                time.sleep(0.3)
                trickle.setblocking(False)
                try:
                    answer += trickle.recv(65536)
                except BlockingIOError:
                    pass
                trickle.setblocking(True)
                if answer.endswith(b"}"):
                    break
        assert answer.startswith(b"HTTP/1.1 408") and b"under MR2PROBE_UPLOAD_MIN_RATE = 1,000" in answer, answer
    finally:
        server.should_exit = True
        thread.join(30)


def test_an_upload_is_ended_past_its_longest_time_however_fast_it_streams():
    """Four uploads at the minimum rate held every slot for the ~36 h a 2 GiB upload takes (an attack round): past
    MR2PROBE_UPLOAD_MAX_SECONDS it ends (408), whatever its rate."""
    import anyio

    from app.routes.datasets import _until_idle
    from app.status import UploadStalled

    async def steady():
        while True:
            yield b"x" * 4096
            await anyio.sleep(0.05)

    async def read(limit):
        return [len(c) async for c in _until_idle(steady(), 10.0, 1000, limit)]

    with pytest.raises(UploadStalled, match="ran past MR2PROBE_UPLOAD_MAX_SECONDS = 0.3 s"):
        anyio.run(read, 0.3)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_unsafe_and_unusable_archives(tmp_path):
    with TestClient(create_app(make_settings(tmp_path))) as client:
        evil = _zip({"../escape/a/x.jpg": b"x", "d/train/a/1.jpg": b"x"})
        resp = client.post("/api/datasets", files={"file": ("evil.zip", evil)})
        assert resp.status_code == 400
        assert resp.json()["detail"].startswith("refused: ") and "'..'" in resp.json()["detail"]
        one_class = _zip({"d/train/only/1.jpg": b"x"})
        resp = client.post("/api/datasets", files={"file": ("one.zip", one_class)})
        assert resp.status_code == 422 and "at least 2 classes" in resp.json()["detail"]
        resp = client.post("/api/datasets", files={"file": ("notes.txt", b"hello")})
        assert resp.status_code == 422 and "is not an archive" in resp.json()["detail"]
        resp = client.post("/api/datasets", files={"other": ("a.zip", evil)})
        assert resp.status_code == 422 and "goes in a form part named 'file'; got a file in 'other'" in \
            resp.json()["detail"]
        resp = client.post("/api/datasets", data={"name": "no file"}, files={})
        assert resp.status_code == 422
        resp = client.post("/api/datasets", content=b"raw", headers={"Content-Type": "application/octet-stream"})
        assert resp.status_code == 422
        assert client.get("/api/datasets").json() == []


def test_a_refused_archives_absolute_member_name_is_shown_as_it_is(tmp_path):
    """An absolute member name is the archive's, not a server path: the refusal said "member '<server path>' has an
    absolute path" (an extremes round); the manifest's server path stays hidden when registered by path."""
    root = tmp_path / "root"
    root.mkdir()
    evil = _zip({"/etc/passwd": b"x", "d/train/a/1.jpg": b"x"})
    (root / "evil.zip").write_bytes(evil)
    (root / "m.csv").write_text("path,label\n/etc/shadow.jpg,a\n")
    with TestClient(create_app(make_settings(tmp_path / "svc", data_root=root))) as client:
        resp = client.post("/api/datasets", files={"file": ("evil.zip", evil)})
        assert resp.status_code == 400
        assert resp.json()["detail"] == ("refused: evil.zip: member '/etc/passwd' has an absolute path; archives "
                                         "must use relative paths."), resp.json()
        for name, quoted in (("evil.zip", "member '/etc/passwd'"), ("m.csv", "path '/etc/shadow.jpg'")):
            detail = client.post("/api/datasets", json={"path": str(root / name)}).json()["detail"]
            assert quoted in detail and str(root) not in detail and "<server path>" not in detail, detail


def test_an_unusable_upload_is_named_as_uploaded_and_loose_images_get_the_unlabelled_hint(tmp_path):
    """A one-class upload's 422 read '<data dir>/uploads/ds_<id>/oneclass.zip: found 1 class folder(s)': a server
    path and the id of a data set never created; a zip of images in no class folder, sent without unlabelled=true,
    got no word of it (a new-user round)."""
    hint = ("Here: unlabelled=true with the upload or registration (the dashboard's \"unlabelled images\" box) "
            "extracts them for a finished run to predict.")
    with TestClient(create_app(make_settings(tmp_path))) as client:
        # (one class of training images: a test set alone of one class registers, to score runs on)
        resp = client.post("/api/datasets", files={"file": ("oneclass.zip", _zip({"train/5/1.jpg": b"x",
                                                                                   "test/5/2.jpg": b"x"}))})
        assert resp.status_code == 422
        assert resp.json()["detail"] == ("oneclass.zip: found 1 class folder(s) (5); a probe needs at least 2 "
                                         "classes.")  # class folders under a split folder: labelled, no hint
        for members, found in (({"incoming/1.jpg": b"x", "incoming/2.jpg": b"x"}, "1 class folder(s) (incoming)"),
                               ({"1.jpg": b"x", "2.jpg": b"x"}, "0 class folder(s) (none)")):
            resp = client.post("/api/datasets", files={"file": ("new-images.zip", _zip(members))})
            detail = resp.json()["detail"]
            assert resp.status_code == 422 and detail.startswith(f"new-images.zip: found {found}; "), detail
            assert "`mr2probe extract --unlabelled`" in detail and detail.endswith(hint), detail
        nested = client.post("/api/datasets", files={"file": ("d.zip", _zip({"d/only/1.jpg": b"x"}))}).json()
        assert nested["detail"] == "d.zip: found 1 class folder(s) (only); a probe needs at least 2 classes."
        assert client.get("/api/datasets").json() == []
        assert not any(p.is_file() for p in tmp_path.rglob("*.zip"))  # nothing kept


def test_a_form_field_that_is_not_utf8_is_refused(tmp_path, tiny_zip):
    """An attack round: a multipart name of invalid UTF-8 was stored mangled ('bad\ufffd\ufffd\ufffdname'),
    where the same bytes in JSON are a 422."""
    boundary = "xyzzy"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n".encode() + b"bad\xed\xa0\x80name"
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.zip\"\r\n"
              f"Content-Type: application/zip\r\n\r\n".encode() + tiny_zip + f"\r\n--{boundary}--\r\n".encode())
    with TestClient(create_app(make_settings(tmp_path))) as client:
        resp = client.post("/api/datasets", content=body,
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert resp.status_code == 422 and "form field 'name' is not UTF-8 text" in resp.text
        assert client.get("/api/datasets").json() == []


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tbz2", "w:bz2")])
def test_upload_tar_archives(tmp_path, tiny_zip, suffix, mode):
    """Every archive a data set may be is an upload too: a .tar.xz that read as a server path was refused as an
    upload, "not an archive" (a review): app.datasets' list was written apart from feature_cache's."""
    import tarfile

    from app.datasets import ARCHIVE_SUFFIXES
    from feature_cache.datasets import ARCHIVE_SUFFIXES as READ

    assert ARCHIVE_SUFFIXES is READ and suffix in READ
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(tiny_zip)) as z, tarfile.open(fileobj=buf, mode=mode) as tar:
        for name in z.namelist():
            data = z.read(name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with TestClient(create_app(make_settings(tmp_path))) as client:
        resp = client.post("/api/datasets", files={"file": (f"my data{suffix}", buf.getvalue())})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["class_names"] == sorted(CLASSES) and body["counts"]["test"] == [3, 3, 3]
        assert body["name"] == f"my_data{suffix}"  # the stored file name is sanitised
        refused = client.post("/api/datasets", files={"file": ("my data.rar", buf.getvalue())})
        assert refused.status_code == 422 and ", ".join(READ) in refused.text
        # a file named by its suffix alone kept it (".tar.xz" read as "tar.xz", "not an archive"; an attack round)
        bare = client.post("/api/datasets", files={"file": (suffix, buf.getvalue())})
        assert bare.status_code == 200 and bare.json()["id"] == body["id"]  # the same bytes: that data set


def test_upload_with_train_test_folders_in_two_places_is_a_422_naming_them(tmp_path):
    """partA/{train,test}/{a,b}, partB/{train,test}/{c,d} and extra_class/ was a 201 with classes a and b,
    skipped 0: the other images and classes were dropped without a word (found by the third attack round)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for classes, root in ((("a", "b"), "partA"), (("c", "d"), "partB")):
            with zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(2, 1, classes, root=root))) as part:
                for name in part.namelist():
                    out.writestr(name, part.read(name))
                    image = part.read(name)
        out.writestr("extra_class/000.png", image)
    with TestClient(create_app(make_settings(tmp_path))) as client:
        resp = client.post("/api/datasets", files={"file": ("parts.zip", buf.getvalue(), "application/zip")})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"].endswith(
            "parts.zip: found train/test folders in 2 places (partA, partB): register one of them, or arrange the "
            "images in one tree (train/<class>/…, test/<class>/…).")
        assert client.get("/api/datasets").json() == []


def test_register_a_manifest_not_utf8_or_not_csv_is_a_422_naming_it(tmp_path):
    """A latin-1 manifest or one with a field over the csv module's limit was a 500."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "man.csv").write_bytes("path,label\na.png,caf\u00e9\n".encode("latin-1"))
    (root / "long.csv").write_text(f"path,label\n{'x' * 200_000},a\n")
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        resp = client.post("/api/datasets", json={"path": "man.csv"})
        assert resp.status_code == 422 and resp.json()["detail"] == (
            "<data root>/man.csv is not UTF-8 text (byte 0xe9 at line 2): save it as UTF-8.")
        resp = client.post("/api/datasets", json={"path": "long.csv"})
        assert resp.status_code == 422 and resp.json()["detail"] == (
            "<data root>/long.csv: line 2 has a field longer than the CSV reader's limit of 131072 characters: "
            "is it a manifest of path,label rows?")


def test_register_server_side_directory(tmp_path, tiny_zip):
    root = tmp_path / "root"
    unzip(tiny_zip, root)
    (tmp_path / "outside").mkdir()
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", json={"path": "tiny", "name": "on disk"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["source"] == "path" and body["class_names"] == sorted(CLASSES) and body["counts"]["test"] == [3, 3, 3]
        assert body["val_given"] is False  # train/ and test/: val is carved from train
        # The same directory again is the same data set (200: nothing created), without a name or with its own;
        # under another name it is refused, naming the registration to use (it kept its name, silently)
        for again in ({"path": str(root / "tiny")}, {"path": "tiny", "name": "on disk"}):
            resp = client.post("/api/datasets", json=again)
            assert resp.status_code == 200 and resp.json()["id"] == body["id"], resp.text
        resp = client.post("/api/datasets", json={"path": "tiny", "name": "renamed"})
        assert resp.status_code == 409 and resp.json()["detail"] == (
            f"this folder, with the same content, is registered already as 'on disk' (id {body['id']}): use that "
            "data set (its caches are reused), or register it without a name")
        assert [d["name"] for d in client.get("/api/datasets").json()] == ["on disk"]
        (root / "sneaky").symlink_to(tmp_path / "outside", target_is_directory=True)
        for outside in (str(tmp_path / "outside"), "../outside", "/etc", "sneaky"):
            resp = client.post("/api/datasets", json={"path": outside})
            assert resp.status_code == 403 and "outside the data root" in resp.json()["detail"]
        resp = client.post("/api/datasets", json={"path": "missing"})
        assert resp.status_code == 422 and "does not exist" in resp.json()["detail"]
        resp = client.post("/api/datasets", json={"path": "tiny", "colour": "red"})
        assert resp.status_code == 422
        # the media type is case-insensitive and exact (an attack round)
        body = b'{"path": "tiny"}'
        resp = client.post("/api/datasets", content=body, headers={"Content-Type": "Application/JSON; charset=UTF-8"})
        assert resp.status_code == 200, resp.text
        resp = client.post("/api/datasets", content=body, headers={"Content-Type": "application/jsonx"})
        assert resp.status_code == 422 and resp.json()["detail"] != [], resp.text
    with TestClient(create_app(make_settings(tmp_path / "state2"))) as client:
        resp = client.post("/api/datasets", json={"path": str(root / "tiny")})
        assert resp.status_code == 403 and "MR2PROBE_DATA_ROOT" in resp.json()["detail"]


def test_a_val_share_on_a_data_set_with_its_own_val_does_nothing_and_says_so(tmp_path, tiny_zip):
    """A val/ folder is used as it is: the data set says so (the launch form greys the share out), and a job asking
    for a share extracts the same features as one without (the share named another extraction), with a message."""
    import shutil

    root = tmp_path / "root"
    unzip(tiny_zip, root)
    shutil.copytree(root / "tiny" / "test", root / "tiny" / "val")
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        dataset = client.post("/api/datasets", json={"path": "tiny"}).json()
        assert dataset["val_given"] is True and dataset["counts"]["val"] == [3, 3, 3]
        assert client.get("/api/datasets").json()[0]["val_given"] is True
        jobs = [wait_job(client, client.post("/api/jobs", json={
            "kind": "extract", "dataset_id": dataset["id"], "encoder": "effnet-lite0", **extra}).json()["id"])
            for extra in ({}, {"options": {"val_fraction": 0.3}})]
        assert [job["status"] for job in jobs] == ["succeeded"] * 2
        assert jobs[1]["result"]["cache_id"] == jobs[0]["result"]["cache_id"]
        texts = [m["text"] for m in jobs[1]["messages"]]
        assert ("options.val_fraction 0.3 is unused: the data set has a val split of its own (9 images), used as it "
                "is; no share of train is carved out") in texts
        assert not any("unused" in m["text"] for m in jobs[0]["messages"])
        assert len(client.get("/api/caches").json()) == 1


def test_an_extraction_job_keeps_freed_memory_for_its_run(tmp_path, tiny_zip, monkeypatch):
    """The service is a process of its own: its extraction keeps the measured allocator setting (probe.allocator),
    as its probe runs do, where a library call of feature_cache.extract leaves it off by default."""
    import importlib

    module = importlib.import_module("feature_cache.extract")  # the module, not the function feature_cache exports
    calls = []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(module, "release_freed_memory", lambda: calls.append("release"))
    root = tmp_path / "root"
    unzip(tiny_zip, root)
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        dataset = client.post("/api/datasets", json={"path": "tiny"}).json()
        job = wait_job(client, client.post("/api/jobs", json={
            "kind": "extract", "dataset_id": dataset["id"], "encoder": "effnet-lite0"}).json()["id"])
        assert job["status"] == "succeeded" and calls == ["keep", "release"]


def test_an_extraction_job_says_when_its_test_split_is_carved_out(tmp_path, tiny_zip):
    """A data set without a test/ folder gets a share of train as test: the job's messages say so (a new-user round:
    the extraction said nowhere that every test figure would rest on 4 images carved out of train)."""
    import shutil

    root = tmp_path / "root"
    unzip(tiny_zip, root)
    shutil.rmtree(root / "tiny" / "test")
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        dataset = client.post("/api/datasets", json={"path": "tiny"}).json()
        job = wait_job(client, client.post("/api/jobs", json={
            "kind": "extract", "dataset_id": dataset["id"], "encoder": "effnet-lite0"}).json()["id"])
        assert job["status"] == "succeeded"
        carved = [m["text"] for m in job["messages"] if "no test split of its own" in m["text"]]
        test = client.get(f"/api/caches/{job['result']['cache_id']}").json()["counts"]["test"]
        assert carved == [f"the data set has no test split of its own: {test} images, 0.2 "
                          "of each class of its images (seed 0), are carved out as test, where every test figure of "
                          "a run on it is measured; give it a test/ folder to choose them"]


def test_the_same_archive_uploaded_again_is_the_same_data_set(tmp_path, tiny_zip):
    """Uploaded twice, one archive made two data sets, extracted twice (a new-user round): as a folder registered
    again, it is the data set already there (200, the new copy removed), and under another name a 409."""
    settings = make_settings(tmp_path / "state")
    with TestClient(create_app(settings)) as client:
        first = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip)}, data={"name": "mine"})
        assert first.status_code == 201, first.text
        again = client.post("/api/datasets", files={"file": ("copy.zip", tiny_zip)})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
        named = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip)}, data={"name": "mine"})
        assert named.status_code == 200 and named.json()["id"] == first.json()["id"]
        other = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip)}, data={"name": "theirs"})
        assert other.status_code == 409 and other.json()["detail"].startswith(
            f"this archive, with the same content, is registered already as 'mine' (id {first.json()['id']})")
        assert [d["id"] for d in client.get("/api/datasets").json()] == [first.json()["id"]]
        assert [p.name for p in settings.uploads_dir.iterdir()] == [first.json()["id"]]  # the copies went
        changed = client.post("/api/datasets", files={"file": ("more.zip", tiny_zip_bytes(5, 2))})
        assert changed.status_code == 201  # other content: another data set
        # other bytes under a fingerprint that matches (a zip's reads the CRC32 its index claims: a crafted zip of
        # other images matched; an attack round): another data set, its copy kept
        from app import datasets as registration

        monkey = pytest.MonkeyPatch()
        monkey.setattr(registration, "_same_file", lambda a, b: False)
        try:
            crafted = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip)})
        finally:
            monkey.undo()
        assert crafted.status_code == 201 and crafted.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("split_column, add", [
    (True, "add their rows to labels.csv with test in its split column"),
    (False, "add their rows to labels.csv (at least 2 images of each class, to be split into train and test)"),
])
def test_a_single_csv_manifest_with_a_class_short_of_images_is_told_to_add_rows_to_it(tmp_path, capsys,
                                                                                     split_column, add):
    """A single CSV manifest (with a split column, or without one) whose class 'ship' has no test image was told to
    add "a class folder under test/", which it has none of (a follow-up round): the registration's warning, the
    job's refusal and mr2probe extract's warning name the manifest's rows now (one definition)."""
    from feature_cache import open_dataset
    from feature_cache.options import said_before

    root = tmp_path / "root"
    unzip(tiny_zip_bytes(4, 2), root)
    tree = root / "tiny"
    rows = [f"{f.relative_to(tree).as_posix()},{f.parent.name}" + (f",{split}" if split_column else "")
            for split in ("train", "test") for f in sorted((tree / split).rglob("*.*"))
            if f.parent.name != "ship" or (split == "train" and (split_column or f.stem.endswith("0")))]
    (tree / "labels.csv").write_text("path,label" + (",split" if split_column else "") + "\n" + "\n".join(rows))
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        resp = client.post("/api/datasets", json={"path": "tiny/labels.csv"})
        assert resp.status_code == 201, resp.text
        warned = [w for w in resp.json()["warnings"] if "'ship'" in w]
        assert len(warned) == 1 and f"(or {add}; extracting keeps it)" in warned[0], warned
        refused = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": resp.json()["id"], "probes": [ERM]})
        assert refused.status_code == 422 and f"{add}, or leave it out of the job with " \
            '"drop_classes": ["ship"]' in refused.json()["detail"], refused.text
        _, on_cache = extract_and_probe(client, resp.json()["id"], ERM)
        assert on_cache.status_code == 422 and f"{add}, or leave it out" in on_cache.json()["detail"], on_cache.text
    assert any(f"test images of every class; {add}, or drop it before training." in line
               for line in said_before(open_dataset(tree / "labels.csv"), None)), capsys.readouterr()


def test_a_manifest_pair_with_a_class_only_in_train_csv_is_told_to_add_rows_to_test_csv(tmp_path):
    """A manifest pair (train.csv, test.csv) whose class 'ship' is only in train.csv registers with a warning; it said
    to add images in "a class folder under test/", which a manifest has none of (a review): rows to test.csv now."""
    import sqlite3

    root = tmp_path / "root"
    manifest_pair_without_test_rows(root)
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root))) as client:
        resp = client.post("/api/datasets", json={"path": "tiny"})
        assert resp.status_code == 201, resp.text
        warned = [w for w in resp.json()["warnings"] if "'ship'" in w]
        assert len(warned) == 1 and "(or add their rows to test.csv; extracting keeps it)" in warned[0], warned
        assert "class folder" not in warned[0]
        # a pipeline that keeps the class is refused in the same words
        refused = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": resp.json()["id"], "probes": [ERM]})
        assert refused.status_code == 422 and "add their rows to test.csv, or leave it out of the job with " \
            '"drop_classes": ["ship"]' in refused.json()["detail"], refused.text
        # and so is a probe job on its cache, whose row records the layout (it gave the folder words); a cache
        # recorded before its layout was gets neutral words
        cache, on_cache = extract_and_probe(client, resp.json()["id"], ERM)
        assert on_cache.status_code == 422 and "add their rows to test.csv, or leave it out of the job with " \
            '"drop_classes": ["ship"]' in on_cache.json()["detail"], on_cache.text
        with sqlite3.connect(client.app.state.store.path) as conn:
            conn.execute("UPDATE caches SET layout = NULL")
        old = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache, "config": ERM}).json()["detail"]
        assert "add test images of it to the data set the cache was extracted from, or leave it out" in old, old


def test_a_class_without_test_images_registers_and_a_train_job_must_drop_it(tmp_path):
    """A class of too few images (here no test image): registration (path or upload) refused it with a 422 that said
    every job on it would fail, while `mr2probe extract` extracts it and train takes --drop-class. It registers now,
    its warnings naming the class and drop_classes (the launch form shows them); an extraction runs, saying so; a
    train job that keeps the class is refused before it exists, naming it and the fix; one that drops it is taken."""
    root = tmp_path / "root"
    unzip(tiny_zip_bytes(4, 2), root)
    for image in (root / "tiny" / "test" / "ship").iterdir():
        image.unlink()
    (root / "tiny" / "test" / "ship").rmdir()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((root / "tiny").rglob("*.*")):
            z.write(f, f.relative_to(root).as_posix())
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        for resp in (client.post("/api/datasets", json={"path": "tiny"}),
                     client.post("/api/datasets", files={"file": ("no_ship.zip", archive.getvalue())})):
            assert resp.status_code == 201, resp.text
            warned = [w for w in resp.json()["warnings"] if "'ship'" in w]
            assert len(warned) == 1 and warned[0].startswith("class 'ship' has no train or no test image"), warned
            assert "'ship' train 3, val 1, test 0" in warned[0] and '"drop_classes": ["ship"]' in warned[0]
        ds = resp.json()
        assert client.get(f"/api/datasets/{ds['id']}").json()["warnings"] == resp.json()["warnings"]
        refused = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"], "probes": [ERM]})
        detail = refused.json()["detail"]
        assert refused.status_code == 422 and detail.startswith("dataset_id: class 'ship' has no train or no test "
                                                                "image"), refused.text
        assert 'leave it out of the job with "drop_classes": ["ship"]' in detail
        assert client.get("/api/jobs").json() == []
        job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert [m["text"] for m in job["messages"] if m["text"].startswith("warning: class 'ship'")], job["messages"]
        cache = client.get("/api/caches").json()[0]["id"]
        keeps = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache, "config": ERM})
        assert keeps.status_code == 422 and '"drop_classes": ["ship"]' in keeps.json()["detail"], keeps.text
        dropped = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache,
                                                 "config": {**ERM, "drop_classes": ["ship"]}})
        assert dropped.status_code == 202, dropped.text
        wait_job(client, dropped.json()["id"])


def test_an_extraction_job_says_which_classes_get_no_validation_image(tmp_path):
    """A class of 2 images (train 1, test 1, val 0): the runs said its accuracy played no part in choosing the
    configuration, the extraction job nothing. Its messages (and the registration's warnings) say it now, in the
    runs' words (probe.splits.without_validation)."""
    from probe.splits import without_validation
    from testdata import make_tree

    root = tmp_path / "root"
    make_tree(root / "few", {"ant": 2, "bee": 8, "cat": 8}, splits=("",))
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", json={"path": "few"}).json()
        said = [w for w in ds["warnings"] if "no validation image" in w]
        assert len(said) == 1 and said[0].endswith(without_validation(["ant"])), ds["warnings"]
        job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert [m["text"] for m in job["messages"] if "no validation image" in m["text"]] == said, job["messages"]


def test_the_registration_answer_carries_what_an_extraction_would_warn_of_the_data_set(tmp_path, tiny_zip):
    """A test/ folder copied from train/ was warned of only in the extraction job's messages: the registration
    answer (which the launch form shows) and the data sets list now carry the extraction's warnings; a data set
    registered before has none, and gets them when registered again."""
    import shutil
    import sqlite3

    from feature_cache import open_dataset
    from feature_cache.options import cautions

    root = tmp_path / "root"
    unzip(tiny_zip, root)
    shutil.rmtree(root / "tiny" / "test")
    shutil.copytree(root / "tiny" / "train", root / "tiny" / "test")
    data = open_dataset(root / "tiny")
    expected = [text for kind, text in cautions(data, "options.val_fraction", None) if kind == "warning"]
    assert data.duplicates in expected
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        body = client.post("/api/datasets", json={"path": "tiny"}).json()
        assert body["warnings"] == expected
        assert client.get(f"/api/datasets/{body['id']}").json()["warnings"] == expected
        with sqlite3.connect(settings.db_path) as conn:  # as a data set registered before the warnings were kept
            conn.execute("UPDATE datasets SET data_warnings = NULL")
        assert client.get(f"/api/datasets/{body['id']}").json()["warnings"] == []
        again = client.post("/api/datasets", json={"path": "tiny"})
        assert again.status_code == 200 and again.json()["warnings"] == expected


def test_a_data_set_that_lost_a_class_after_registration_is_refused_before_a_job(tmp_path):
    """The files under a registered path changed (class 'ship' lost its test images): a train request that keeps
    the class is refused with the registration's message naming the class (the job was accepted, then failed; an
    attack round), and no encoder is built or cache file written."""
    root = tmp_path / "root"
    unzip(tiny_zip_bytes(4, 2), root)
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", json={"path": "tiny"}).json()
        for image in (root / "tiny" / "test" / "ship").iterdir():
            image.unlink()
        (root / "tiny" / "test" / "ship").rmdir()
        resp = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"], "probes": [ERM]})
        assert resp.status_code == 422 and "class 'ship' has no train or no test image" in resp.json()["detail"]
        assert client.get("/api/jobs").json() == []
        assert client.get("/api/caches").json() == [] and not list(settings.caches_dir.rglob("*.h5*"))


# -- jobs and reports ----------------------------------------------------------------------------------
def test_pipeline_job_finishes_with_two_runs(finished):
    job = finished.job
    assert job["kind"] == "pipeline" and job["progress"] == 1.0 and job["error"] is None
    assert job["result"]["cache_id"].startswith("cache_") and len(job["result"]["run_ids"]) == 2
    # Probe configs are stored validated and complete, unset fields (head) resolved at submission with the
    # encoder's default head (effnet-lite0: linear), as the job runs them.
    stored = job["request"]["probes"]
    assert stored == [resolve_probe_config(p, "linear").model_dump(mode="json") for p in (ERM, MR2)]
    assert [p["head"] for p in stored] == ["linear", "linear"] and [p["loss"] for p in stored] == ["ce", "mr2"]
    assert all(p[key] == value for p, sent in zip(stored, (ERM, MR2)) for key, value in sent.items())
    assert job["request"]["encoder"] == "effnet-lite0"
    # what it was asked to do, in a line, as its runs are named (a dashboard-only round: a cancelled job's page said
    # only its status)
    served = finished.client.get(f"/api/jobs/{job['id']}").json()
    assert served["what"] == (f"pipeline on data set {job['request']['dataset_id']}, encoder effnet-lite0: "
                              "ce/linear (5 epochs), then mr2/linear (5 epochs)")
    texts = " | ".join(m["text"] for m in job["messages"])
    assert "encoder effnet-lite0 ready (1280-d features" in texts and "groups from reference run" in texts
    listed = finished.client.get("/api/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["status"] == "succeeded"
    assert [j["id"] for j in finished.client.get("/api/jobs?status=succeeded").json()] == [job["id"]]
    assert finished.client.get("/api/jobs?status=running").json() == []
    assert finished.client.get("/api/jobs?status=bogus").status_code == 422


def test_caches_and_runs_are_listed(finished):
    caches = finished.client.get("/api/caches").json()
    assert len(caches) == 1 and caches[0]["id"] == finished.job["result"]["cache_id"]
    assert caches[0]["num_features"] == 1280 and caches[0]["encoder"] == "effnet-lite0"
    assert caches[0]["class_names"] == sorted(CLASSES)
    assert Path(finished.client.app.state.store.get_cache(caches[0]["id"])["path"]).is_file()
    # the extractor the run page matches caches on: the runs' own, as their reports record it
    from feature_cache import open_cache

    path = finished.client.app.state.store.get_cache(caches[0]["id"])["path"]
    report = finished.client.get(f"/api/reports/{finished.erm}").json()
    assert caches[0]["extractor"] == open_cache(path).extractor == report["features"]["extractor"] is not None
    runs = {r["id"]: r for r in finished.client.get("/api/runs").json()}
    assert set(runs) == {finished.erm, finished.mr2}
    # a window of the listing, newest first, and every row's count (a listing cut at 500 said nothing of the rest)
    for path, total in (("/api/runs", 2), ("/api/caches", 1), ("/api/datasets", 1)):
        got = finished.client.get(path, params={"limit": 1})
        assert got.headers["X-Total-Count"] == str(total) and len(got.json()) == 1
    newest, older = (finished.client.get("/api/runs", params={"limit": 1, "offset": k}).json() for k in (0, 1))
    assert [newest[0]["id"], older[0]["id"]] == [finished.mr2, finished.erm]
    assert finished.client.get("/api/runs", params={"offset": 2}).json() == []
    for bad in ({"limit": 0}, {"limit": 5001}, {"offset": -1}):
        assert finished.client.get("/api/runs", params=bad).status_code == 422
    assert runs[finished.erm]["loss"] == "ce" and runs[finished.erm]["reference_run"] is None
    assert runs[finished.mr2]["loss"] == "mr2" and runs[finished.mr2]["reference_run"] == finished.erm
    # one run: the list's row, and the methods of its stored likely wrong labels (none looked for here)
    assert finished.client.get(f"/api/runs/{finished.mr2}").json() == {**runs[finished.mr2], "label_issues": []}
    from probe import load_report
    from probe.compare import probe_words

    store = finished.client.app.state.store
    for run in (finished.erm, finished.mr2):  # each run's disparity-aware decision, as its report has it
        assert runs[run]["verdict"] == finished.client.get(f"/api/reports/{run}").json()["selection"]["verdict"]
        # and what it ships, in compare's words (the runs list dropped loss options, the preset, a kept reference)
        assert runs[run]["probe"] == probe_words(load_report(store.get_run(run)["path"]))
        assert runs[run]["posthoc"] is None  # no post-hoc bias
    # a database from before the column: filled from each run's report.json as the service opens it
    import sqlite3

    from app.store import Store

    old = Path(finished.settings.data_dir) / "copy.sqlite3"
    with sqlite3.connect(store.path) as source, sqlite3.connect(old) as target:
        source.backup(target)
    with sqlite3.connect(old) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN probe")
    assert Store(old).get_run(finished.mr2)["probe"] == runs[finished.mr2]["probe"]
    old.unlink()
    # The run's summary is the report's, whose overall accuracy is the share of correct test images.
    report = finished.client.get(f"/api/reports/{finished.mr2}").json()
    assert runs[finished.mr2]["summary"]["overall"] == report["summary"]["overall"]
    correct = sum(round(r["accuracy"] * r["n_test"]) for r in report["per_class"])
    assert runs[finished.mr2]["summary"]["overall"] == pytest.approx(correct / 9)


def test_report_json_and_csv(finished):
    resp = finished.client.get(f"/api/reports/{finished.mr2}")
    assert resp.status_code == 200
    report = resp.json()
    assert report["schema_version"] == 2 and report["run_id"] == finished.mr2
    assert report["class_names"] == sorted(CLASSES) and len(report["per_class"]) == 3
    assert report["grouping"]["source"] == "reference" and report["grouping"]["reference_run"] == finished.erm
    assert report["config"]["loss"] == "mr2" and report["config"]["cbar"] == 2.0
    cache = finished.client.get("/api/caches").json()[0]
    assert report["features"]["cache"] == finished.job["result"]["cache_id"] == cache["id"]
    assert report["features"]["encoder"] == cache["encoder"] and len(report["features"]["fingerprint"]) == 64
    assert not any("used other features" in w for w in report["warnings"])  # ERM reference on the same cache
    n_test = sum(r["n_test"] for r in report["per_class"])
    correct = sum(round(r["accuracy"] * r["n_test"]) for r in report["per_class"])
    assert n_test == 9 and report["summary"]["overall"] == pytest.approx(correct / n_test)
    resp = finished.client.get(f"/api/reports/{finished.mr2}.csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert f'filename="{finished.mr2}_per_class.csv"' in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["name"] for r in rows] == report["class_names"]
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([r["accuracy"] for r in report["per_class"]])


def test_a_report_s_per_class_rows_carry_the_shipped_and_val_accuracy_intervals(finished):
    """GET /api/reports/ID gives each class's shipped and validation accuracy with its 95 % Wilson interval (the
    dashboard's per-class table shows them): over its test images, and over the images behind val_accuracy."""
    from scipy.stats import binomtest

    def wilsoncc(accuracy, images):
        ci = binomtest(round(accuracy * images), images).proportion_ci(0.95, method="wilsoncc")
        return ci.low, ci.high

    report = finished.client.get(f"/api/reports/{finished.erm}").json()
    assert report["config"]["seeds"] == [0]  # one seed: each accuracy is a count of images right
    for row in report["per_class"]:
        assert row["shipped_accuracy_ci"] == pytest.approx(wilsoncc(row["accuracy_per_seed"][0], row["n_test"]))
        behind = row["n_val"] + row["n_train"] * (report["selection"]["cv"] is not None)
        assert row["val_accuracy_ci"] == pytest.approx(wilsoncc(row["val_accuracy"], behind))


def test_reports_and_comparisons_download_as_the_cli_exports_them(finished):
    from probe import compare_reports, load_report
    from probe.export import comparison_html, comparison_markdown, report_html, report_markdown
    from probe.predictions import load_pair

    client, runs = finished.client, finished.settings.runs_dir
    report = load_report(runs / finished.mr2).model_dump(mode="json")
    for fmt, render, media in (("html", report_html, "text/html"), ("md", report_markdown, "text/markdown")):
        resp = client.get(f"/api/reports/{finished.mr2}.{fmt}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(media)
        assert resp.headers["content-disposition"] == f'attachment; filename="{finished.mr2}_report.{fmt}"'
        assert resp.text == render(report)
    from probe.export import runs_context

    base, other = load_report(runs / finished.erm), load_report(runs / finished.mr2)
    comparison = compare_reports(base, other, load_pair(runs / finished.erm, runs / finished.mr2))
    # with the runs as the pages name them and their reports' warnings (an export read more reliable than its page;
    # a dashboard-only round)
    rows = {r["id"]: r for r in client.get("/api/runs").json()}
    names = {run: f"{rows[run]['name']} ({run}), data set {finished.dataset['name']}" for run in (finished.erm,
                                                                                              finished.mr2)}
    context = runs_context(base, other, names)
    assert context.names == [("base run", names[finished.erm]), ("other run", names[finished.mr2])]
    # each run's warnings, once where both give one (a new-user round: mostly pairs, before the verdict)
    both = [text for label, text in context.warnings if label == "warning (both runs)"]
    assert both == [w for w in base.warnings if w in other.warnings]
    assert [text for label, text in context.warnings if label == "warning (other run)"] == [w for w in other.warnings
                                                                                   if w not in both]
    for fmt, render in (("html", comparison_html), ("md", comparison_markdown)):
        resp = client.get(f"/api/compare.{fmt}", params={"base": finished.erm, "other": finished.mr2})
        assert resp.status_code == 200
        assert resp.headers["content-disposition"] == f'attachment; filename="{finished.erm}_vs_{finished.mr2}.{fmt}"'
        assert resp.text == render(comparison, context)


def test_compare(finished, capsys):
    import json

    from app.cli import main

    # a run compared with itself says so, as the CLI does (an attack round: a normal "no change" read as a result)
    same = finished.client.get("/api/compare", params={"base": finished.erm, "other": finished.erm}).json()
    assert f"run {finished.erm} is compared with itself: every difference is 0" in same["warnings"]
    # the CLI's --json says it in the same words among the same warnings (it said it on stderr alone)
    folder = str(finished.settings.runs_dir / finished.erm)
    capsys.readouterr()
    assert main(["compare", folder, folder, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == same["warnings"]
    resp = finished.client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2})
    assert resp.status_code == 200
    body = resp.json()
    assert body["base"] == finished.erm and body["other"] == finished.mr2
    erm = finished.client.get(f"/api/reports/{finished.erm}").json()
    mr2 = finished.client.get(f"/api/reports/{finished.mr2}").json()
    overall = body["metrics"]["overall"]
    assert overall["base"] == erm["summary"]["overall"] and overall["other"] == mr2["summary"]["overall"]
    assert overall["delta"] == pytest.approx(mr2["summary"]["overall"] - erm["summary"]["overall"])
    assert [c["name"] for c in body["per_class"]] == sorted(CLASSES)
    # what the other run cost, from the two reports' timing
    assert body["cost"]["base_seconds"] == erm["timing"]["total_seconds"]
    assert body["cost"]["ratio"] == pytest.approx(mr2["timing"]["total_seconds"] / erm["timing"]["total_seconds"])
    assert body["cost"]["comparable"] and body["cost"]["setting"].startswith("cpu, ")
    assert finished.client.get("/api/compare", params={"base": finished.erm}).status_code == 422


def test_several_runs_are_compared_with_one_base_in_one_answer(finished):
    """GET /api/compare/many (mr2probe compare RUN_A RUN_B RUN_C): one row per run, each the pairwise comparison's
    delta and interval, the sign-flip tests Holm-corrected over the runs; every pairwise comparison as /api/compare
    gives it. Bounded and checked before any work: 422 for no run, a run named twice, the base among them, more
    than 12 runs."""
    from probe.uncertainty import holm

    client = finished.client
    resp = client.get("/api/compare/many", params={"base": finished.erm, "other": [finished.mr2]})
    assert resp.status_code == 200
    body = resp.json()
    pairwise = [client.get("/api/compare", params={"base": finished.erm, "other": finished.mr2}).json()]
    assert body["comparisons"] == pairwise and [row["run"] for row in body["rows"]] == [finished.mr2]
    assert body["base"] == finished.erm and body["base_scores"]["overall"] == pairwise[0]["metrics"]["overall"]["base"]
    corrected = holm([pair["metrics"]["hard"]["p_value"] for pair in pairwise])  # a family of one: p itself
    for row, pair, holm_p in zip(body["rows"], pairwise, corrected):
        assert row["metrics"]["hard"]["delta_ci"] == pair["metrics"]["hard"]["delta_ci"]
        assert row["metrics"]["hard"]["holm_p"] == holm_p == pair["metrics"]["hard"]["p_value"]
    # the runs' own warnings, which the rows do not show (a new-user round): those every run gives, once
    reports = {run: client.get(f"/api/reports/{run}").json()["warnings"] for run in (finished.erm, finished.mr2)}
    shared = [w for w in reports[finished.erm] if w in reports[finished.mr2]]
    assert body["run_warnings"] == ([{"run": None, "text": w} for w in shared]
                                    + [{"run": run, "text": w} for run in (finished.erm, finished.mr2)
                                       for w in reports[run] if w not in shared])
    for params, says in (({"base": finished.erm}, "other"),
                         ({"base": finished.erm, "other": [finished.mr2, finished.mr2]}, "more than once"),
                         ({"base": finished.erm, "other": [f"run_{i}" for i in range(13)]}, "12"),
                         ({"base": finished.erm, "other": ["x" * 65]}, "64"),
                         # the base itself, a row of zeros that only made Holm's correction of the others stricter
                         ({"base": finished.erm, "other": [finished.mr2, finished.erm]}, "the base run")):
        resp = client.get("/api/compare/many", params=params)
        assert resp.status_code == 422 and says in resp.text
    assert client.get("/api/compare/many", params={"base": finished.erm, "other": ["run_missing"]}).status_code == 404
    # the same rows as a file for a pull request (mr2probe compare RUN_A RUN_B RUN_C --format md / html)
    resp = client.get("/api/compare/many.md", params={"base": finished.mr2, "other": [finished.erm]})
    assert resp.status_code == 200 and resp.text.startswith(f"# mr2probe compare: {finished.mr2} vs 1 run\n")
    # each run named as the pages name it, not by its id alone (a new-user round: 'run_4da32e8b1df3' in a PR)
    names = {run: client.get(f"/api/runs/{run}").json()["name"] for run in (finished.erm, finished.mr2)}
    assert f"| {names[finished.erm]} ({finished.erm}) | " in resp.text
    assert f"base {names[finished.mr2]} ({finished.mr2}): " in resp.text
    assert resp.headers["content-disposition"] == f'attachment; filename="{finished.mr2}_vs_1_run.md"'
    resp = client.get("/api/compare/many.html", params={"base": finished.erm, "other": [finished.mr2]})
    assert resp.status_code == 200 and resp.text.startswith("<!DOCTYPE html>")
    assert f"<td>{html.escape(names[finished.mr2])} ({finished.mr2})</td>" in resp.text
    assert f"<title>mr2probe compare: {finished.erm} vs 1 run</title>" in resp.text  # one run, not "1 runs"
    assert resp.headers["content-disposition"] == f'attachment; filename="{finished.erm}_vs_1_run.html"'


def test_several_runs_give_each_delta_s_spread_over_retraining_as_the_pair_does(fresh_finished):
    """GET /api/compare/many gave each run's delta and test interval but not how far retraining moves it, which
    GET /api/compare gives: each cell carries the pairwise seed_spread (probe.seed_spread: paired seed by seed, the
    runs having trained the same seeds 0, 1, 2), each row how the seeds were taken; none for the worst class."""
    from probe.predictions import load_pair
    from probe.seed_spread import paired_seed_spread, per_seed_metrics

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    cache, runs = client.get("/api/caches").json()[0]["id"], []
    for probe in (ERM, MR2):  # the fixture's runs train one seed: no spread to give
        job = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache,
                                             "config": dict(probe, seeds=[0, 1, 2])}).json()
        job = wait_job(client, job["id"])
        assert job["status"] == "succeeded", job
        runs.append(job["result"]["run_ids"][0])
    body = client.get("/api/compare/many", params={"base": runs[0], "other": [runs[1]]}).json()
    pair = body["comparisons"][0]
    folders = [store.get_run(run)["path"] for run in runs]
    classes = len(pair["per_class"])
    a, b = (per_seed_metrics(p, classes, pair["grouping"]["groups"]) for p in load_pair(*folders, (classes, classes)))
    row = body["rows"][0]
    assert row["seed_pairing"] == pair["seed_pairing"] == "same seeds" and len(a["overall"]) == 3
    for key in ("overall", "balanced", "hard"):
        assert row["metrics"][key]["seed_spread"] == paired_seed_spread(a[key], b[key]), key
        assert row["metrics"][key]["seed_spread"] == pair["metrics"][key]["seed_spread"], key
    assert row["metrics"]["worst_class"]["seed_spread"] is None


def test_a_comparison_is_computed_once_until_a_run_s_files_change(fresh_finished, monkeypatch):
    """The run page asks for its comparison on every view and the exports again: 3.4-5.2 s each at 1,000 classes
    (a many-classes round). The service keeps the last few, keyed by the files' identity: the same answer, computed
    once, a warning added to one answer not kept for the next, a rewritten report compared afresh."""
    import os

    import probe

    finished, calls, real = fresh_finished, [], probe.compare_reports
    monkeypatch.setattr(probe, "compare_reports", lambda *a, **k: calls.append(1) or real(*a, **k))
    pair = {"base": finished.erm, "other": finished.mr2}
    first = finished.client.get("/api/compare", params=pair).json()
    assert finished.client.get("/api/compare", params=pair).json() == first and len(calls) == 1
    assert finished.client.get("/api/compare.md", params=pair).status_code == 200 and len(calls) == 1
    for _ in range(2):  # the self-comparison's warning is added to a copy, once
        same = finished.client.get("/api/compare", params={"base": finished.erm, "other": finished.erm}).json()
        assert same["warnings"].count(f"run {finished.erm} is compared with itself: every difference is 0") == 1
    assert len(calls) == 2
    report = finished.settings.runs_dir / finished.mr2 / "report.json"
    stat = report.stat()
    os.utime(report, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert finished.client.get("/api/compare", params=pair).json() == first and len(calls) == 3


def test_a_run_rewritten_while_its_comparison_reads_it_is_compared_afresh_next_time(fresh_finished, monkeypatch):
    """The comparison kept was keyed by the files' identity taken after their reading: a report rewritten in between
    was kept under its new identity with what had been read before, and served stale from then on (a review). Now
    the rewritten run is read again at once (probe.rundir.read_run), and kept as such."""
    import json

    import app.routes.reports as reports

    finished, real, rewritten = fresh_finished, reports._report, []
    path = finished.settings.runs_dir / finished.mr2 / "report.json"

    def read_then_rewrite(store, run_id):
        report = real(store, run_id)
        if run_id == finished.mr2 and not rewritten:  # train --force into it, between the reading and the keying
            data = json.loads(path.read_text())
            data["timing"]["total_seconds"] = 12345.0
            path.write_text(json.dumps(data))
            rewritten.append(1)
        return report

    monkeypatch.setattr(reports, "_report", read_then_rewrite)
    pair = {"base": finished.erm, "other": finished.mr2}
    first = finished.client.get("/api/compare", params=pair).json()
    assert rewritten and first["cost"]["other_seconds"] == 12345.0
    assert finished.client.get("/api/compare", params=pair).json()["cost"]["other_seconds"] == 12345.0


def test_probe_job_with_reference_and_reused_extraction(fresh_finished):
    finished = fresh_finished
    client = finished.client
    cache_id = finished.job["result"]["cache_id"]
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "reference_run": finished.erm,
                                          "config": dict(MR2, head="cosine")})
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    assert resp.json()["url"] == f"/api/jobs/{resp.json()['id']}"
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded" and len(job["result"]["run_ids"]) == 1
    run = client.get(f"/api/runs/{job['result']['run_ids'][0]}").json()
    assert run["head"] == "cosine" and run["reference_run"] == finished.erm and run["cache_id"] == cache_id
    # The recommended disparity-aware method by name: the stored report names the preset and its evidence.
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "reference_run": finished.erm,
                                          "config": dict(FAST_PROBE, preset="disparity", head="cosine")})
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded"
    report = client.get(f"/api/reports/{job['result']['run_ids'][0]}").json()
    requested = report["selection"]["requested"] or report["config"]  # requested: the run kept the reference
    assert report["selection"]["preset"]["name"] == "disparity" and requested["select"] == "hard"
    # The job's message says which decision the run made (a run that kept the reference reads like a copy of it).
    note = {"no_safe_improvement": "(no safe improvement found: the run is the reference (ERM) configuration)",
            "improved": "(hard classes raised beyond noise on validation)"}[report["selection"]["verdict"]]
    assert job["messages"][-1]["text"].endswith(note), job["messages"]
    summary = report["summary"]  # in percent, as every view (it said 0.7642; a new-user round)
    from probe.numbers import percent  # the one rule of every view

    from probe.numbers import interval_text

    assert job["messages"][-1]["text"].startswith(
        f"run {report['run_id']}: overall {percent(summary['overall'])} % {interval_text(summary['overall_ci'])}, "
        f"hard {percent(summary['hard'])} % {interval_text(summary['group_ci']['hard'])}"), job["messages"]
    # The runs list names the loss the run is (the reference's where it kept it), not only the one it tried, and so
    # do its loss and head fields (a cosine request against the linear ERM reference that kept it ships a linear
    # head, a cross-entropy one: the row said cosine, then group_dro; new-user rounds).
    run = client.get(f"/api/runs/{job['result']['run_ids'][0]}").json()
    assert run["loss"] == report["config"]["loss"] and run["head"] == report["config"]["head"], run
    if report["config"]["loss"] != "group_dro":
        assert run["name"] == "disparity: ce/linear (kept: group_dro/cosine found no safe improvement; 5 epochs)", run
    else:
        assert run["name"] == "disparity: group_dro/cosine (5 epochs)", run
    # Extracting the same data set with the same options reuses the cache file (and its row).
    resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": finished.dataset["id"]})
    assert resp.status_code == 202
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["cache_id"] == cache_id
    assert any("reused" in m["text"] for m in job["messages"])


def test_an_encoders_warning_reaches_the_jobs_messages(fresh_finished, monkeypatch):
    """Random weights were warned of in the server log alone, beside a job that succeeded (a new-user round)."""
    import feature_cache

    real = feature_cache.create_encoder

    def warned(*args, **kwargs):
        encoder = real(*args, **kwargs)
        encoder.warning = "this encoder has random weights"
        return encoder

    monkeypatch.setattr(feature_cache, "create_encoder", warned)
    client = fresh_finished.client
    job = wait_job(client, client.post("/api/jobs", json={"kind": "extract",
                                                         "dataset_id": fresh_finished.dataset["id"]}).json()["id"])
    assert job["status"] == "succeeded"
    assert "warning: this encoder has random weights" in [m["text"] for m in job["messages"]]


def test_cancel_running_extraction_leaves_no_cache(fresh_finished):
    finished = fresh_finished
    client = finished.client
    caches_before = client.get("/api/caches").json()
    big = tiny_zip_bytes(20, 4, root="bigger")
    ds = client.post("/api/datasets", files={"file": ("bigger.zip", big)}).json()
    resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "options": {"batch_size": 2}})
    job_id = resp.json()["id"]

    def started():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job["status"] == "running" and job["progress"] > 0

    wait_for(started, 120, interval=0.02, what="first chunk written")
    resp = client.delete(f"/api/jobs/{job_id}")
    assert resp.status_code == 200
    job = wait_job(client, job_id)
    assert job["status"] == "cancelled" and job["result"].get("cache_id") is None
    cache_dir = finished.settings.caches_dir / ds["id"]
    assert list(cache_dir.rglob("*.h5")) == [] and list(cache_dir.rglob("*.partial")) == []
    assert list(cache_dir.rglob("*.lock")) == []
    assert client.get("/api/caches").json() == caches_before
    assert client.delete(f"/api/jobs/{job_id}").status_code == 409
    assert client.post(f"/api/jobs/{job_id}/resume").status_code == 409


def test_cancel_queued_job_and_resume_rules(finished):
    client = finished.client
    assert client.delete(f"/api/jobs/{finished.job['id']}").status_code == 409  # already succeeded
    resp = client.post(f"/api/jobs/{finished.job['id']}/resume")
    assert resp.status_code == 409 and "only a job that is interrupted or failed" in resp.json()["detail"]


@pytest.mark.parametrize("body,fragment", [
    ({"kind": "train", "dataset_id": "x"}, "kind"),
    ({"kind": "extract"}, "dataset_id"),
    ({"kind": "extract", "dataset_id": "x", "options": {"max_per_class": 0}}, "max_per_class"),
    # strict, as ProbeConfig: true was stored as 1 and 1.0 taken for 1 (an attack round)
    ({"kind": "extract", "dataset_id": "x", "options": {"max_per_class": True}}, "max_per_class"),
    ({"kind": "pipeline", "dataset_id": "x", "options": {"seed": 1.0}, "probes": [{}]}, "seed"),
    ({"kind": "probe", "cache_id": "x", "config": {"loss": "nope"}}, "Unknown loss 'nope'"),
    ({"kind": "probe", "cache_id": "x", "config": {"preset": "fair"}}, "Unknown preset 'fair'"),
    ({"kind": "pipeline", "dataset_id": "x", "probes": []}, "probes"),
])
def test_invalid_job_requests_are_422(finished, body, fragment):
    resp = finished.client.post("/api/jobs", json=body)
    assert resp.status_code == 422
    assert fragment in str(resp.json()["detail"])


@pytest.mark.parametrize("path", [
    "/api/jobs/job_missing", "/api/datasets/ds_missing", "/api/caches/cache_missing", "/api/runs/run_missing",
    "/api/reports/run_missing", "/api/reports/run_missing.csv", "/api/compare?base=run_missing&other=run_missing",
    "/api/reports/run_missing.html", "/api/reports/run_missing.md", "/api/compare.html?base=run_missing&other=x",
])
def test_unknown_ids_are_404_naming_the_id(finished, path):
    resp = finished.client.get(path)
    assert resp.status_code == 404
    assert "_missing' not found" in resp.json()["detail"]


def test_unknown_references_at_submission_are_404(finished):
    client = finished.client
    resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": "ds_missing"})
    assert resp.status_code == 404 and resp.json()["detail"] == "data set 'ds_missing' not found"
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": finished.job["result"]["cache_id"],
                                          "reference_run": "run_missing"})
    assert resp.status_code == 404 and "run 'run_missing'" in resp.json()["detail"]
    assert client.delete("/api/jobs/job_missing").status_code == 404
    assert client.post("/api/jobs/job_missing/resume").status_code == 404


# -- security, health, errors ----------------------------------------------------------------------------
def test_token_protects_every_api_route_but_health(tmp_path):
    app = create_app(make_settings(tmp_path, api_token="s3cret"))
    with TestClient(app) as client:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["auth_required"] is True
        operations = [(method.upper(), path) for path, item in app.openapi()["paths"].items()
                      for method in item if path.startswith("/api") and path != "/api/health"]
        assert len(operations) >= 13
        for method, path in operations:
            resp = client.request(method, path.replace("{", "").replace("}", ""))
            assert resp.status_code == 401, (method, path)
            assert resp.headers["www-authenticate"] == "Bearer"
            # and the API's document says so for each (a client generator learns the 401 and its body)
            documented = app.openapi()["paths"][path][method.lower()]["responses"]
            schema = documented["401"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}
        assert "401" not in app.openapi()["paths"]["/api/health"]["get"]["responses"]
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).json() == {"detail": "invalid bearer token"}
        assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/runs/nope", headers={"Authorization": "Bearer s3cret"}).status_code == 404
        assert client.get("/").status_code == 200  # the page itself; its data calls need the token


def test_the_middlewares_refusals_are_documented_where_they_are_answered(tmp_path):
    """An untrusted Host header (400, every route) and a body over MR2PROBE_MAX_JSON_BYTES (413, every operation
    taking a JSON body) were answered but not documented (an integration round: a generated client knew neither)."""
    app = create_app(make_settings(tmp_path, max_json_bytes=64), start_worker=False)
    with TestClient(app) as client:
        error = {"$ref": "#/components/schemas/ErrorOut"}
        with_body = 0
        for path, item in app.openapi()["paths"].items():
            for method, op in item.items():
                url = path.replace("{", "").replace("}", "")
                documented = op["responses"]
                assert documented["400"]["content"]["application/json"]["schema"] == error, (method, path)
                resp = client.request(method, url, headers={"Host": "evil.example"})
                assert resp.status_code == 400 and "is not a host this server answers to" in resp.text, (method, path)
                if "application/json" not in op.get("requestBody", {}).get("content", {}):
                    continue
                with_body += 1
                assert documented["413"]["content"]["application/json"]["schema"] == error, (method, path)
                resp = client.request(method, url, json={"name": "x" * 100})
                assert resp.status_code == 413 and "MR2PROBE_MAX_JSON_BYTES" in resp.text, (method, path)
        assert with_body == 4  # POST /api/datasets (by path), POST /api/caches, POST /api/jobs, PATCH /api/runs/{id}
        upload = app.openapi()["paths"]["/api/datasets"]["post"]["responses"]
        assert "MR2PROBE_MAX_UPLOADS" in upload["429"]["description"] and upload["429"]["content"]


# Names a client may send: ones the server takes and ones it refuses (control, text-direction, astral format and
# private-use characters, a lone surrogate), and the joiners, selectors and tags real text needs.
SAMPLE_NAMES = ("abc", "Run 1", "my run", "a\x01b", "a\U000110bdb", "a\u202eb", "a\nb", "a\tb", "a\u200db", "😀",
                "葛\U000e0100", "🏴\U000e0067\U000e0062\U000e007f", "\U000e0001x", "x\U0010fffd", "x\U0001d173",
                "\ud800x", "x\udfff", " ", "\u3000", " a\u00a0")
_NODE_MATCH = ("const {patterns, samples} = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
               "process.stdout.write(JSON.stringify(patterns.map(p => { const r = new RegExp(p, 'u');"
               " return samples.map(s => r.test(s)); })));")


def _patterns(node, where=""):
    """``(where, pattern)`` of every ``pattern`` in a JSON Schema document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns(value, f"{where}/{i}")


def test_every_published_pattern_is_ecma_262_and_means_what_the_server_checks(tmp_path):
    """JSON Schema's patterns are ECMA-262: the name patterns held Python's \\U000110bd escapes, on which node and
    Ajv threw under the u flag (and without it refused "abc"; an integration round). Each compiles with node, and
    on sample names the name, encoder and note patterns answer as the server's own checks do."""
    import json
    import shutil
    import subprocess

    from app.schemas import DatasetRegister, ExtractJob, RunUpdate

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        spec = client.get("/openapi.json").json()
    found = dict(_patterns(spec))
    assert len(found) >= 15
    patterns = sorted(set(found.values()))
    out = subprocess.run(["node", "-e", _NODE_MATCH], input=json.dumps({"patterns": patterns,
                                                                       "samples": SAMPLE_NAMES}),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    node = dict(zip(patterns, json.loads(out.stdout)))

    def server_takes(build):
        try:
            build()
            return True
        except ValueError:
            return False

    schemas = spec["components"]["schemas"]
    fields = {
        "data set name": (found["/paths//api/datasets/post/requestBody/content/application/json/schema/properties/"
                                "name/anyOf/0"], lambda s: DatasetRegister(path="x", name=s)),
        "encoder": (schemas["ExtractJob"]["properties"]["encoder"]["pattern"],
                    lambda s: ExtractJob(kind="extract", dataset_id="d", encoder=s)),
        "run name": (schemas["RunUpdate"]["properties"]["name"]["pattern"], lambda s: RunUpdate(name=s)),
        "note": (schemas["RunUpdate"]["properties"]["note"]["pattern"], lambda s: RunUpdate(note=s)),
    }
    for what, (pattern, build) in fields.items():
        wanted = [server_takes(lambda: build(sample)) for sample in SAMPLE_NAMES]
        assert node[pattern] == wanted, (what, [ascii(s) for s, a, b in zip(SAMPLE_NAMES, node[pattern], wanted)
                                                if a != b])
        assert wanted[:3] == [True] * 3 and wanted[3:6] == [False] * 3  # the samples do tell them apart
    for pattern in patterns:  # and Python's re (the schema's other readers: schemathesis, hypothesis) reads them alike
        assert node[pattern] == [re.search(pattern, sample) is not None for sample in SAMPLE_NAMES], pattern


def test_health_and_openapi(finished):
    health = finished.client.get("/api/health").json()
    assert health["status"] == "ok" and health["auth_required"] is False and health["jobs"]["succeeded"] >= 1
    schema = finished.client.get("/openapi.json").json()
    for path in ("/api/datasets", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/resume",
                 "/api/reports/{run_id}", "/api/reports/{run_id}.csv", "/api/reports/{run_id}.html",
                 "/api/reports/{run_id}.md", "/api/compare", "/api/compare.html", "/api/compare.md", "/api/health"):
        assert path in schema["paths"], path
    assert "multipart/form-data" in schema["paths"]["/api/datasets"]["post"]["requestBody"]["content"]
    assert "ProbeConfig" in schema["components"]["schemas"]


def test_unexpected_errors_are_json_500_without_trace(tmp_path, caplog):
    app = create_app(make_settings(tmp_path))

    class Broken:
        def __getattr__(self, name):  # whichever store call the listing makes first
            raise RuntimeError("disk on fire at /secret/path")

    app.dependency_overrides[get_store] = lambda: Broken()
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/api/runs")
    assert resp.status_code == 500
    assert resp.json() == {"detail": "internal server error (RuntimeError); see the server log"}
    assert "Traceback" not in resp.text and "/secret/path" not in resp.text
    assert "disk on fire" in caplog.text  # logged server-side


def test_dashboard_pages_are_served_offline(finished):
    for path in ("/", f"/runs/{finished.mr2}"):
        resp = finished.client.get(path)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in resp.headers["content-security-policy"]
        assert "http://" not in resp.text and "https://" not in resp.text
    for asset in ("app.js", "charts.js", "style.css", "index.html"):
        resp = finished.client.get(f"/static/{asset}")
        assert resp.status_code == 200
        # /static/index.html is the whole dashboard too: the same policy on every static file
        assert resp.headers["content-security-policy"] == finished.client.get("/").headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "no-cache"  # checked again after an upgrade, never a stale script
        text = resp.text.replace('"http://www.w3.org/2000/svg"', "")  # the SVG namespace name, not a URL fetched
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_api_docs_are_served_from_local_assets(finished):
    """/docs and /redoc work offline: their HTML loads Swagger UI / ReDoc from this server, never a CDN."""
    client = finished.client
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        resp = client.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        srcs = re.findall(r'(?:src|href)="([^"]+)"', resp.text)
        assert srcs and all(s.startswith("/") for s in srcs), srcs  # same origin only
        assert f"/static-offline-docs/{asset}" in srcs
        js = client.get(f"/static-offline-docs/{asset}")
        assert js.status_code == 200 and len(js.content) > 100_000
    assert "/openapi.json" in client.get("/docs").text


def test_extraction_job_with_cpu_encoding_workers_writes_the_main_process_cache(tmp_path, tiny_zip, finished,
                                                                                monkeypatch):
    """The service extracts in a job thread of the server process. With the default workers on a CPU, worker
    processes fork from that thread and encode; their cache holds the features the shared service's extraction
    (``extract_workers=0``: the main process) wrote for the same images."""
    module = importlib.import_module("feature_cache.extract")
    monkeypatch.setattr(module, "CPU_WORKERS_MIN_IMAGES", 0)
    monkeypatch.setattr(module, "available_memory", lambda: None)  # whatever this machine has free
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # 2 workers
    try:
        with TestClient(create_app(make_settings(tmp_path / "state", extract_workers=None))) as client:
            dataset = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")}).json()
            resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": dataset["id"]})
            job = wait_job(client, resp.json()["id"])
            assert job["status"] == "succeeded", job
            ours = open_cache(client.app.state.store.get_cache(job["result"]["cache_id"])["path"])
    finally:
        torch.set_num_threads(threads)
    shared = open_cache(finished.client.app.state.store.get_cache(finished.job["result"]["cache_id"])["path"])
    assert ours.fingerprint == shared.fingerprint and ours.path != shared.path
    for split in ("train", "val", "test"):
        (a, ya), (b, yb) = ours.load(split), shared.load(split)
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)  # float16 storage; 1-thread kernels round alike
        np.testing.assert_array_equal(ya, yb)
        assert ours.sources(split) == shared.sources(split)


def test_a_cancel_that_lands_while_a_cache_is_reused_is_honoured(fresh_finished, monkeypatch):
    """An extraction that reuses a finished cache takes a moment: a cancel then said "cancellation requested" and
    the job ended succeeded (an attack round). It ends cancelled; the cache and its file stay as they were."""
    import feature_cache

    from app.status import JobStatus

    client = fresh_finished.client
    store, runner = client.app.state.store, client.app.state.runner
    real = feature_cache.extract

    def extract_then_cancel(*args, **kwargs):
        result = real(*args, **kwargs)
        for job in store.list_jobs(JobStatus.running):
            runner.cancel(job["id"])
        return result

    monkeypatch.setattr(feature_cache, "extract", extract_then_cancel)
    caches = client.get("/api/caches").json()
    job = wait_job(client, client.post("/api/jobs", json={"kind": "extract",
                                                          "dataset_id": fresh_finished.dataset["id"]}).json()["id"])
    assert job["status"] == "cancelled", job
    assert client.get("/api/caches").json() == caches and Path(store.get_cache(caches[0]["id"])["path"]).is_file()


def test_every_operation_says_what_it_does(tmp_path):
    """Several operations carried FastAPI's made-up summaries ('Get Dataset', 'Report Html'), and the HTML export
    declared text/markdown too (a new-user round)."""
    with TestClient(create_app(make_settings(tmp_path / "state"))) as client:
        spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            made_up = " ".join(w.capitalize() for w in op["operationId"].split("_api_")[0].split("_"))
            assert op.get("summary") and op["summary"] != made_up, (method, path, op.get("summary"))
    html = spec["paths"]["/api/reports/{run_id}.html"]["get"]["responses"]["200"]["content"]
    assert list(html) == ["text/html"]


def test_every_download_documents_its_body(tmp_path):
    """The downloads (probe.zip, the thumbnail PNG, CSV, HTML, Markdown) declared their media type with no schema:
    a generated client could not type their bodies (an integration round). Bytes for an archive or image, text for
    a text/ type."""
    spec = create_app(make_settings(tmp_path), start_worker=False).openapi()
    downloads = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for media, body in op["responses"].get("200", {}).get("content", {}).items():
                if media != "application/json":
                    downloads[(path, media)] = body.get("schema")
    assert len(downloads) == 10 and {media for _, media in downloads} == {
        "application/zip", "image/png", "text/csv", "text/html", "text/markdown"}
    for (path, media), schema in downloads.items():
        wanted = {"type": "string"} if media.startswith("text/") else {"type": "string", "format": "binary"}
        assert schema == wanted, (path, media, schema)


def test_a_compare_split_without_a_cache_is_refused(finished):
    """split=train without a cache compared the test predictions without a word (an attack round)."""
    client = finished.client
    resp = client.get(f"/api/compare?base={finished.erm}&other={finished.mr2}&split=train")
    assert resp.status_code == 422 and resp.json()["detail"].startswith("split='train' needs a cache")
    assert client.get(f"/api/compare.md?base={finished.erm}&other={finished.mr2}&split=val").status_code == 422
    assert client.get(f"/api/compare?base={finished.erm}&other={finished.mr2}&split=test").status_code == 200


def test_a_run_is_renamed_and_noted(fresh_finished):
    """What a user calls a run and why it matters (W&B's run name and notes): PATCH /api/runs/{id}, bounded."""
    client, run_id = fresh_finished.client, fresh_finished.mr2
    resp = client.patch(f"/api/runs/{run_id}", json={"name": "  candidate for prod  ", "note": "ships to\tA/B\nif ok"})
    assert resp.status_code == 200 and (resp.json()["name"], resp.json()["note"]) == ("candidate for prod",
                                                                                      "ships to\tA/B\nif ok")
    listed = {r["id"]: r for r in client.get("/api/runs").json()}[run_id]
    assert (listed["name"], listed["note"]) == ("candidate for prod", "ships to\tA/B\nif ok")
    assert client.patch(f"/api/runs/{run_id}", json={"note": ""}).json()["note"] == ""  # cleared, the name kept
    assert client.get(f"/api/runs/{run_id}").json()["name"] == "candidate for prod"
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"note": "x" * 2001}, {"note": "a\x00b"}, {"note": "a\u202eb"},
                 {"tags": ["x"]}, {"name": None}, {"note": None}, {"name": "a", "note": 3},
                 # what renders as nothing: a run that looks unnamed (an attack round)
                 *({"name": blank} for blank in ("\u2800", "\u00ad", "\ue000", "\u034f", "\u3164", "\u061c", "\u206a",
                                                 "\U0001d173", "\uffff"))):
        assert client.patch(f"/api/runs/{run_id}", json=body).status_code == 422, body
    # the joiners and selectors of real scripts and emoji stay (a review: Persian, Devanagari, Sinhala, Mongolian,
    # Japanese variation sequences, ZWJ emoji and tag flags were refused)
    for name in ("❤️ candidate", "کتاب\u200cخانه", "क्\u200dष", "ශ්\u200dරී", "ᠭ\u180b", "葛\U000e0100",
                 "\U0001F468\u200d\U0001F469\u200d\U0001F467", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"):
        assert client.patch(f"/api/runs/{run_id}", json={"name": name}).status_code == 200, name
    assert client.patch("/api/runs/run_missing", json={"note": "x"}).status_code == 404
    # a lone surrogate is no Unicode text: 422 naming it (the note answered 500 from the database; an attack round)
    resp = client.patch(f"/api/runs/{run_id}", content=b'{"note": "a\\ud800b"}',
                        headers={"content-type": "application/json"})
    assert resp.status_code == 422 and "U+D800 at position 2 is a lone surrogate" in resp.text
    assert client.get(f"/api/runs/{fresh_finished.erm}").json()["note"] == ""  # another run untouched
    # Windows line breaks are line breaks (CR LF was refused), and a refusal names the character and where, not the
    # pattern's whole character class (580 bytes of escapes; an attack round)
    assert client.patch(f"/api/runs/{run_id}", json={"note": "line1\r\nline2\rline3"}).json()["note"] == \
        "line1\nline2\nline3"
    resp = client.patch(f"/api/runs/{run_id}", json={"name": "x\ny"})
    assert resp.status_code == 422 and len(resp.text) < 300, resp.text
    assert "character U+000A at position 2 is not printable" in resp.text and "\\x00" not in resp.text
    resp = client.patch(f"/api/runs/{run_id}", json={"note": "a\u202eb"})
    assert "character U+202E at position 2 is not printable" in resp.text and "line breaks and tabs are allowed" in resp.text


def test_a_run_update_documents_the_strings_it_takes_not_null(tmp_path):
    """RunUpdate's name and note were documented ``anyOf: [string, null]`` while null is refused (an integration
    round): a client generated from the schema sent null. Plain optional strings, and null still a clear 422."""
    with TestClient(create_app(make_settings(tmp_path))) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["RunUpdate"]
        for key in ("name", "note"):
            field = schema["properties"][key]
            assert field["type"] == "string" and "anyOf" not in field and "default" not in field, field
            assert key not in schema.get("required", [])
            resp = client.patch("/api/runs/run_x", json={key: None})
            assert resp.status_code == 422 and f"{key} cannot be null: leave it out to keep it" in resp.text


def test_the_runs_list_names_ten_of_a_stored_worst_classs_ties():
    """A run stored before the ties were cut listed all 998 in the runs list (137 KB a run; a re-test)."""
    from app.schemas import RunOut

    names = [f"c{i}" for i in range(999)]
    row = {"id": "run_1", "job_id": None, "cache_id": "cache_1", "name": "r", "head": "linear", "loss": "ce",
           "reference_run": None, "created_at": "2026-12-01T00:00:00.000+00:00",
           "summary": {"overall": 0.5, "worst_class": {"name": "c0", "accuracy": 1.0, "tied_with": names[1:]},
                       "shipped_worst_class": None}}
    summary = RunOut(**row).summary
    assert summary["worst_class"]["tied_with"] == names[1:11] and summary["worst_class"]["tied_count"] == 998
    assert summary["worst_class"]["text"].endswith("and 988 more)")
    assert summary["shipped_worst_class"] is None and summary["overall"] == 0.5


def test_an_extraction_job_says_what_the_cli_says_of_the_data_set_before_it_extracts(tmp_path):
    """Class names alike but for case ('Cat' and 'cat'), test images copied from train and class folders that all
    hold the same subfolders were said by `mr2probe extract` before its extraction, and by an extraction job not
    at all, or only in its runs' reports (a new-user round)."""
    from app_testutils import wait_job
    from testdata import image_bytes

    members = {f"{split}/{name}/{i}.png": image_bytes(label, i, 12, "PNG") for split in ("train", "test")
               for label, name in enumerate(("Cat", "cat")) for i in range(2)}
    with TestClient(create_app(make_settings(tmp_path))) as client:
        ds = client.post("/api/datasets", files={"file": ("alike.zip", _zip(members))}).json()
        job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
        texts = [m["text"] for m in job["messages"]]
        assert job["status"] == "succeeded", job
        assert any(t.startswith("Class names that differ only in case, spacing or Unicode form: 'Cat' and 'cat'.")
                   for t in texts), texts
        assert any(t.startswith("4 of the 4 test images have the same content as a train or val image") for t in texts)


def test_jobs_are_listed_page_by_page_with_their_total(tmp_path):
    """GET /api/jobs takes ?offset= and says X-Total-Count (of the status asked), as the other listings do: with
    1,115 jobs, the jobs past the newest 1,000 could not be listed at all (an operator round)."""
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        store = client.app.state.store
        dataset = store.add_dataset(name="d", source="path", path=str(tmp_path), class_names=["a"],
                                    counts={"train": [1], "test": [1]}, fingerprint="f", skipped=0)
        jobs = [store.add_job("extract", {"dataset_id": dataset["id"], "encoder": "effnet-lite0"})["id"]
                for _ in range(5)]
        for job in jobs[:2]:
            store.cancel_queued(job)
        newest_first = jobs[::-1]
        got = client.get("/api/jobs", params={"limit": 2, "offset": 2})
        assert [j["id"] for j in got.json()] == newest_first[2:4] and got.headers["X-Total-Count"] == "5"
        assert [j["id"] for j in client.get("/api/jobs", params={"offset": 4}).json()] == newest_first[4:]
        assert client.get("/api/jobs", params={"offset": 5}).json() == []
        cancelled = client.get("/api/jobs", params={"status": "cancelled", "limit": 1, "offset": 1})
        assert [j["id"] for j in cancelled.json()] == [jobs[0]] and cancelled.headers["X-Total-Count"] == "2"
        assert client.get("/api/jobs", params={"status": "queued"}).headers["X-Total-Count"] == "3"
        for bad in ({"offset": -1}, {"offset": 10**9 + 1}, {"limit": 1001}):
            assert client.get("/api/jobs", params=bad).status_code == 422


@pytest.mark.parametrize("table", ["datasets", "caches", "runs", "jobs"])
def test_a_listing_s_total_and_rows_agree_while_a_row_is_deleted_between_them(tmp_path, monkeypatch, table):
    """A listing counted its rows (X-Total-Count) and read them in two reads: a run deleted in between gave 30 runs
    under an X-Total-Count of 29 while clients read the lists under load (a load round). Both are one snapshot."""
    import sqlite3

    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        store = client.app.state.store
        datasets = [store.add_dataset(name=f"d{i}", source="path", path=str(tmp_path / f"d{i}"), class_names=["a"],
                                      counts={"train": [1], "test": [1]}, fingerprint=f"f{i}", skipped=0)["id"]
                    for i in range(3)]
        caches = _two_caches(store, tmp_path)
        for i in range(3):
            store.add_run(run_id=f"run_{i}", job_id=None, cache_id=caches[0], name="r", head="linear", loss="ce",
                          reference_run=None, path=str(tmp_path / f"run_{i}"), summary={})
            store.add_job("extract", {"dataset_id": datasets[0], "encoder": "effnet-lite0"})
        counted = store.count

        def count_then_another_deletes(*args, **kwargs):
            total = counted(*args, **kwargs)
            other = sqlite3.connect(store.path, isolation_level=None)  # another thread's connection, as the worker's
            try:
                other.execute(f"DELETE FROM {table} WHERE rowid = (SELECT MAX(rowid) FROM {table})")
            finally:
                other.close()
            return total

        monkeypatch.setattr(store, "count", count_then_another_deletes)
        got = client.get(f"/api/{table}")
        assert got.status_code == 200, got.text
        assert len(got.json()) == int(got.headers["X-Total-Count"]) >= 2
        assert len(client.get(f"/api/{table}").json()) == int(got.headers["X-Total-Count"]) - 1  # deleted meanwhile


def _two_caches(store, tmp_path) -> list[str]:
    """The ids of two caches of one data set, rows alone (no file): what the runs listings filter and sort by."""
    dataset = store.add_dataset(name="d", source="path", path=str(tmp_path), class_names=["a"],
                                counts={"train": [1], "test": [1]}, fingerprint="f", skipped=0)
    return [store.add_cache(dataset_id=dataset["id"], encoder="e", path=str(tmp_path / f"{i}.h5"), fingerprint=str(i),
                            num_features=2, class_names=["a"], counts={}, job_id=None)["id"] for i in range(2)]


def test_runs_are_listed_by_cache(tmp_path):
    """GET /api/runs?cache_id= lists one cache's runs (X-Total-Count: theirs), through an index: the run page read
    every run of the server for the few it can be compared with (an operator round with ~500 runs)."""
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        store = client.app.state.store
        caches = _two_caches(store, tmp_path)
        runs = [store.add_run(run_id=f"run_{i}", job_id=None, cache_id=caches[i % 2], name="r", head="linear",
                              loss="ce", reference_run=None, path=str(tmp_path / f"run_{i}"), summary={})["id"]
                for i in range(5)]
        got = client.get("/api/runs", params={"cache_id": caches[0], "limit": 2})
        assert got.status_code == 200, got.text
        assert [r["id"] for r in got.json()] == ["run_4", "run_2"] and got.headers["X-Total-Count"] == "3"
        assert [r["id"] for r in client.get("/api/runs", params={"cache_id": caches[0], "offset": 2}).json()] == \
            ["run_0"]
        assert [r["id"] for r in client.get("/api/runs", params={"cache_id": caches[1]}).json()] == ["run_3", "run_1"]
        assert client.get("/api/runs").headers["X-Total-Count"] == str(len(runs))
        nothing = client.get("/api/runs", params={"cache_id": "cache_gone"})
        assert nothing.json() == [] and nothing.headers["X-Total-Count"] == "0"
        for bad in ("", "c" * 65):
            assert client.get("/api/runs", params={"cache_id": bad}).status_code == 422
        # the lookups by cache and by data set go through their indexes, not a scan of the table
        plans = {sql: " ".join(row["detail"] for row in store.rows(f"EXPLAIN QUERY PLAN {sql}", ("x",)))
                 for sql in ("SELECT * FROM runs WHERE cache_id = ? ORDER BY rowid DESC LIMIT 5",
                             "SELECT * FROM caches WHERE dataset_id = ? ORDER BY rowid")}
        assert all("USING INDEX" in plan and "TEMP B-TREE" not in plan for plan in plans.values()), plans


def test_runs_are_listed_best_first_by_a_metric(tmp_path):
    """GET /api/runs?sort=METRIC lists the runs highest first by a summary metric (the worst class by its accuracy),
    those without it last: past a listing's cut the best runs were found only by reading every page (an operator
    round with 1,291 runs, 500 a page)."""
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        store = client.app.state.store
        caches = _two_caches(store, tmp_path)
        summaries = [{"overall": 0.5, "hard": 0.2, "worst_class": {"name": "a", "accuracy": 0.4}},
                     {"overall": 0.9, "hard": 0.1, "worst_class": {"name": "a", "accuracy": 0.1}}, {},
                     {"overall": 0.7, "hard": 0.3, "worst_class": {"name": "a", "accuracy": 0.2}}]
        for i, summary in enumerate(summaries):
            store.add_run(run_id=f"run_{i}", job_id=None, cache_id=caches[i % 2], name="r", head="linear", loss="ce",
                          reference_run=None, path=str(tmp_path / f"run_{i}"), summary=summary)

        def ids(**params):
            got = client.get("/api/runs", params=params)
            assert got.status_code == 200, got.text
            return [r["id"] for r in got.json()]

        assert ids(sort="overall") == ["run_1", "run_3", "run_0", "run_2"]
        assert ids(sort="hard", limit=2) == ["run_3", "run_0"] and ids(sort="hard", offset=2) == ["run_1", "run_2"]
        assert ids(sort="worst_class") == ["run_0", "run_3", "run_1", "run_2"]
        assert ids(sort="overall", cache_id=caches[1]) == ["run_1", "run_3"]
        assert ids() == ids(sort="newest") == ["run_3", "run_2", "run_1", "run_0"]
        assert client.get("/api/runs", params={"sort": "name"}).status_code == 422
        # the lowest first (the dashboard's second click on a column of a list past its cut), those without it last
        assert ids(sort="overall", order="asc") == ["run_0", "run_3", "run_1", "run_2"]
        assert ids(sort="worst_class", order="asc", limit=1) == ["run_1"]


def test_several_runs_against_one_base_read_each_report_once(fresh_finished, monkeypatch):
    """GET /api/compare/many read the base's report once per run compared and again for the runs' warnings, and
    each other run's twice: each is read once a request."""
    import app.routes.reports as reports

    client, base = fresh_finished.client, fresh_finished.erm
    cache_id = client.get(f"/api/runs/{base}").json()["cache_id"]
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "reference_run": base,
                                          "config": dict(FAST_PROBE, loss="focal")})
    focal = wait_job(client, resp.json()["id"])["result"]["run_ids"][0]
    real, read = reports._report, []
    monkeypatch.setattr(reports, "_report", lambda store, run_id: read.append(run_id) or real(store, run_id))
    resp = client.get("/api/compare/many", params={"base": base, "other": [fresh_finished.mr2, focal]})
    assert resp.status_code == 200, resp.text
    assert sorted(read) == sorted([base, fresh_finished.mr2, focal])


def test_the_base_of_several_runs_compared_has_its_own_intervals(finished):
    """GET /api/compare/many gave the base run's own accuracies bare (base_scores) where every other value it answers
    has a 95 % interval: base_ci has the report's own (overall_ci, group_ci, the worst class's accuracy_ci), and
    the Markdown's line of the base says them."""
    from probe.report import interval_text

    client = finished.client
    body = client.get("/api/compare/many", params={"base": finished.erm, "other": [finished.mr2]}).json()
    report = client.get(f"/api/reports/{finished.erm}").json()
    summary, worst = report["summary"], body["comparisons"][0]["worst_classes"]["base"]
    own = {"overall": summary["overall_ci"], "balanced": summary["group_ci"]["balanced"],
           "hard": summary["group_ci"]["hard"],
           "worst_class": next(row["accuracy_ci"] for row in report["per_class"] if row["name"] == worst)}
    assert set(body["base_ci"]) == set(body["base_scores"]) == set(own)
    for key, interval in own.items():
        assert interval is not None and body["base_ci"][key] == pytest.approx(interval), key
    md = client.get("/api/compare/many.md", params={"base": finished.erm, "other": [finished.mr2]}).text
    assert f" % {interval_text(own['overall'])}, balanced " in md


def test_a_probe_job_that_ran_fewer_folds_than_asked_is_named_by_both(fresh_finished):
    """A probe asked for cv 20 on a data set whose smallest class has fewer train + val images runs fewer folds
    (with a warning), yet the job read "ce/linear (5 epochs; cv 20)" and so did its run: both say the folds run."""
    client = fresh_finished.client
    cache_id = fresh_finished.job["result"]["cache_id"]
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": {**ERM, "cv": 20}})
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    [run_id] = job["result"]["run_ids"]
    report = client.get(f"/api/reports/{run_id}").json()
    folds = report["selection"]["cv"]["folds"]
    assert 2 <= folds < 20 and report["config"]["cv"] == 20
    assert job["what"] == f"probe on cache {cache_id}: ce/linear (5 epochs; cv {folds} of 20 asked)"
    assert client.get(f"/api/runs/{run_id}").json()["name"] == f"ce/linear (5 epochs; cv {folds} of 20 asked)"


def test_a_served_report_carries_its_confused_pairs_and_calibration_accuracy_with_intervals(finished):
    """GET /api/reports serves the most confused pairs the run page lists, each share with its interval over the
    class's images, and the calibration's accuracy with the interval of the run's shipped accuracy (the same
    figure: the first seed's), which the CLI, the exports and the dashboard all read (a dashboard round)."""
    report = finished.client.get(f"/api/reports/{finished.erm}").json()  # the reference confuses a class
    counts, seeds = np.array(report["confusion"]["counts"]), len(report["seeds"]["values"])
    cells = [(i, j) for i in range(3) for j in range(3) if i != j and counts[i, j]]
    rates = {(i, j): counts[i, j] / counts[i].sum() for i, j in cells}
    order = sorted(cells, key=lambda c: (-rates[c], -counts[c], c))
    pairs = report["confusion"]["pairs"]
    assert pairs and [(p["true"], p["predicted"], p["count"], p["predictions"]) for p in pairs] == [
        (i, j, int(counts[i, j]), int(counts[i].sum())) for i, j in order]
    assert [p["rate"] for p in pairs] == pytest.approx([rates[c] for c in order], abs=1e-15)
    from scipy.stats import binomtest

    for p in pairs:  # under 30 images: the continuity-corrected Wilson interval, as accuracy_ci
        if p["count"] % seeds == 0:
            ci = binomtest(p["count"] // seeds, p["predictions"] // seeds).proportion_ci(method="wilsoncc")
            assert p["rate_ci"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    shipped = report["summary"]["shipped_overall_ci"] or report["summary"]["overall_ci"]
    assert report["calibration"]["accuracy_ci"] == pytest.approx(shipped, abs=1e-12)
