"""Which files a data set's registration skipped, and why: recorded with the data set (bounded) and served by
GET /api/datasets/{id}/skipped; a data set registered before they were recorded answers with its count and a note.
Only the count was kept: an upload's .HEIC photos and the files beside its class folders went without a name."""
from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store import SCHEMA, Store

from app_testutils import make_settings, tiny_zip_bytes, unzip

HEIC = "an image format that is not read (extension '.heic'): convert it to JPEG or PNG"
EXTRA = {"train/cat/IMG_1.HEIC": b"x", "train/cat/IMG_2.HEIC": b"x", "train/cat/IMG_3.HEIC": b"x",
         "train/cat/IMG_4.HEIC": b"x", "train/notes.txt": b"x", "README.txt": b"x", ".DS_Store": b"x"}


def _upload(client, extra=EXTRA):
    resp = client.post("/api/datasets", files={"file": ("photos.zip", tiny_zip_bytes(2, 1, extra=extra))})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_an_uploads_skipped_files_are_listed_with_their_reasons(tmp_path):
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client)
        assert ds["skipped"] == 7
        body = client.get(f"/api/datasets/{ds['id']}/skipped").json()
        assert body["reasons"] == [
            {"reason": HEIC, "count": 4, "examples": ["tiny/train/cat/IMG_1.HEIC", "tiny/train/cat/IMG_2.HEIC",
                                                      "tiny/train/cat/IMG_3.HEIC"]},
            {"reason": "hidden or metadata file", "count": 1, "examples": ["tiny/.DS_Store"]},
            {"reason": "not inside a class folder", "count": 1, "examples": ["tiny/train/notes.txt"]},
            {"reason": "outside the split folders ('tiny/train', 'tiny/test')", "count": 1,
             "examples": ["tiny/README.txt"]}]
        assert (body["dataset_id"], body["total"], body["recorded"], body["kept"], body["note"]) == (
            ds["id"], 7, True, 7, None)
        assert (body["limit"], body["offset"], len(body["items"])) == (100, 0, 7)
        page = client.get(f"/api/datasets/{ds['id']}/skipped?limit=2&offset=3").json()
        assert page["items"] == body["items"][3:5] and page["total"] == 7 and page["reasons"] == body["reasons"]
        assert {"name": "tiny/train/cat/IMG_4.HEIC", "reason": HEIC} in body["items"]
        assert client.get(f"/api/datasets/{ds['id']}/skipped?offset=7").json()["items"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "offset=5001", "limit=x", "reason=a",
                                   "limit=1&limit=2"])
def test_its_parameters_are_bounded(tmp_path, query):
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client, {"a.txt": b"x"})
        resp = client.get(f"/api/datasets/{ds['id']}/skipped?{query}")
        assert resp.status_code == 422, resp.text
        assert client.get("/api/datasets/ds_nope/skipped").json() == {"detail": "data set 'ds_nope' not found"}
        assert client.get("/api/datasets/ds_nope/skipped").status_code == 404


def test_it_needs_the_token_and_is_documented(tmp_path):
    app = create_app(make_settings(tmp_path, api_token="s3cret"), start_worker=False)
    with TestClient(app) as client:
        assert client.get("/api/datasets/x/skipped").status_code == 401
        operation = app.openapi()["paths"]["/api/datasets/{dataset_id}/skipped"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SkippedOut"}
        assert {p["name"]: (p["schema"]["minimum"], p["schema"]["maximum"]) for p in operation["parameters"]
                if p["in"] == "query"} == {"limit": (1, 1000), "offset": (0, 5000)}


def test_the_files_kept_and_the_reasons_grouped_are_bounded(tmp_path, monkeypatch):
    import app.skipped

    monkeypatch.setattr(app.skipped, "MAX_KEPT", 5)
    monkeypatch.setattr(app.skipped, "MAX_REASONS", 2)
    extra = {f"train/cat/{i:02d}.txt": b"x" for i in range(9)}
    extra.update({"train/cat/a.doc": b"x", "train/cat/b.doc": b"x", "train/cat/c.pdf": b"x"})
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client, extra)
        body = client.get(f"/api/datasets/{ds['id']}/skipped").json()
        assert (body["total"], body["kept"], len(body["items"])) == (12, 5, 5)
        assert [(r["reason"], r["count"]) for r in body["reasons"]] == [
            ("not an image file (extension '.txt')", 9), ("not an image file (extension '.doc')", 2)]
        assert body["note"] == ("the first 5 of 12 skipped files are listed; the reasons count every one; 1 file "
                                "skipped for a reason past the 2 most frequent are not grouped")


def test_deleting_the_data_set_deletes_its_skipped_files(tmp_path):
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client)
        assert client.delete(f"/api/datasets/{ds['id']}").status_code == 200
        conn = sqlite3.connect(make_settings(tmp_path).db_path)
        assert conn.execute("SELECT COUNT(*) FROM skipped_files").fetchone() == (0,)


def test_a_data_set_registered_before_gets_a_note_then_its_files_when_registered_again(tmp_path):
    """An older data directory's database gains the column and the table; its rows answer with the count and how
    to record the files: the same folder registered again (its id stays)."""
    root = tmp_path / "root"
    unzip(tiny_zip_bytes(2, 1, extra={"README.txt": b"x", "train/cat/IMG_1.HEIC": b"x"}), root)
    settings = make_settings(tmp_path / "state", data_root=root)
    settings.data_dir.mkdir(parents=True)
    old = SCHEMA[:SCHEMA.index("CREATE TABLE IF NOT EXISTS skipped_files")]
    conn = sqlite3.connect(settings.db_path)
    conn.executescript(old)
    conn.close()
    with TestClient(create_app(settings, start_worker=False)) as client:
        first = client.post("/api/datasets", json={"path": "tiny"}).json()
    store = Store(settings.db_path)
    with store._tx() as db:  # as an older version wrote it: the count, no reasons, no files
        db.execute("UPDATE datasets SET skipped_reasons = NULL WHERE id = ?", (first["id"],))
        db.execute("DELETE FROM skipped_files")
    with TestClient(create_app(settings, start_worker=False)) as client:
        body = client.get(f"/api/datasets/{first['id']}/skipped").json()
        assert (body["total"], body["recorded"], body["reasons"], body["kept"], body["items"]) == (2, False, [], 0, [])
        assert body["note"] == ("2 files skipped, but this data set was registered before the service recorded "
                                "which: register the same folder, or upload the same archive, again to record them "
                                "(its id, caches and runs stay)")
        again = client.post("/api/datasets", json={"path": "tiny"})
        assert again.status_code == 200 and again.json()["id"] == first["id"]
        body = client.get(f"/api/datasets/{first['id']}/skipped").json()
        assert body["recorded"] is True and body["kept"] == 2 and body["note"] is None
        assert [(r["reason"], r["examples"]) for r in body["reasons"]] == [
            (HEIC, ["train/cat/IMG_1.HEIC"]), ("outside the split folders ('train', 'test')", ["README.txt"])]


def test_an_older_database_gains_the_column_and_the_table(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA[:SCHEMA.index("CREATE TABLE IF NOT EXISTS skipped_files")])
    conn.execute("INSERT INTO datasets VALUES ('ds_1', 'd', 'path', '/x', '[]', '{}', NULL, 4, 't')")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.get_dataset("ds_1")["skipped_reasons"] is None
    assert store.skipped_files("ds_1", 10, 0) == (4, None, 0, [])


def test_an_uploads_csv_manifest_beside_its_folders_is_said_unread(tmp_path):
    """A Kaggle-style export (labels.csv beside the image folders) uploaded as an archive: its images are labelled
    by their folders, the CSV only counted among the skipped files; the registration answer (which the launch form
    shows) now says that the manifest was not read and how to have it read."""
    manifest = b"\xef\xbb\xbfimage,label\r\ntrain/cat/0.png,1\r\n"
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client, {"labels.csv": manifest})
        said = [w for w in ds["warnings"] if "'tiny/labels.csv' was not read" in w]
        assert len(said) == 1, ds["warnings"]
        assert "the labels are the class folders' names ('airplane', 'cat', 'ship')" in said[0]
        assert "give that file itself as the data set" in said[0] and str(tmp_path) not in said[0]
        plain = _upload(client, {"notes.txt": b"x"})
        assert not any("was not read" in w for w in plain["warnings"])


def test_several_unread_csv_files_are_said_unread_in_the_plural(tmp_path):
    """Two CSV files beside the class folders read "'tiny/a.csv', 'tiny/b.csv' was not read" (a review)."""
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        ds = _upload(client, {"a.csv": b"image,label\n", "b.csv": b"image,label\n"})
        assert any(w.startswith("'tiny/a.csv', 'tiny/b.csv' were not read: ") for w in ds["warnings"]), ds["warnings"]
