"""A refused server path is answered in the client's own words: its path quoted as given, never rewritten by the
cleaning of server paths (which read '<data root>X/a' for '/srv/rootX/a' and told a client which of the paths it
tried were the server's home, Python or data folder)."""
from __future__ import annotations

import io
import shutil
import sys
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app

from app_testutils import ERM, make_settings, synthetic_cache, tiny_zip_bytes


def test_a_refused_path_is_quoted_as_the_client_gave_it(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    settings = make_settings(tmp_path / "state", data_root=root)
    outside = {f"{root}X/a": 403, f"{settings.data_dir}-old/a": 403, f"{Path.home()}/x": 403,
               f"{sys.prefix}/x.pth": 403, str(settings.caches_dir): 403, "../" * 40 + f"{Path.home()}/.ssh/x": 403,
               f"{root}/missing/x.pth": 422}
    with TestClient(create_app(settings, start_worker=False)) as client:
        ds = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
        for path, code in outside.items():
            for route in ("/api/datasets", "/api/caches"):
                resp = client.post(route, json={"path": path})
                assert resp.status_code == code and resp.json()["detail"].startswith(f"path {path!r} "), resp.text
            job = {"kind": "extract", "dataset_id": ds["id"], "encoder": f"mocov2:{path}"}
            resp = client.post("/api/jobs", json=job)
            assert resp.status_code == code and f"path {path!r} " in resp.json()["detail"], resp.text
        # what the server itself says of its paths is still cleaned
        (root / "empty").mkdir()
        resp = client.post("/api/datasets", json={"path": "empty"})
        assert resp.status_code == 422 and "<data root>/empty" in resp.text and str(root) not in resp.text, resp.text


def test_a_url_is_refused_as_not_a_path_on_every_path_field(tmp_path):
    """ws://, s3://, file://, http:// were read as relative folders ('s3:', 'bucket') and answered "does not exist
    under the data root", or registered a folder that happened to be named 's3:' (an attack round)."""
    root = tmp_path / "root"
    (root / "s3:" / "bucket").mkdir(parents=True)  # a URL must not reach a folder named like its scheme
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings, start_worker=False)) as client:
        ds = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
        for url, scheme in (("ws://host/x", "ws://"), ("s3://bucket", "s3://"), (f"file://{root}", "file://"),
                            ("http://example.org/a.h5", "http://"), ("HTTPS://h/x", "HTTPS://")):
            want = (f"path {url!r} is a URL ({scheme}), not a server path: the service reads only files on its own "
                    "disk, under its data root; copy them there and give that path")
            for route in ("/api/datasets", "/api/caches"):
                resp = client.post(route, json={"path": url})
                assert resp.status_code == 422 and resp.json() == {"detail": want}, resp.text
            job = {"kind": "extract", "dataset_id": ds["id"], "encoder": f"mocov2:{url}"}
            resp = client.post("/api/jobs", json=job)
            assert resp.status_code == 422 and want in resp.json()["detail"], resp.text


def test_a_data_set_outside_a_narrowed_data_root_is_refused(tmp_path):
    """A data set registered by path under a root the server no longer has (narrowed, or unset, at a restart) kept
    serving its thumbnails and extracting, where registering its folder again was a 403 (an attack round)."""
    root = tmp_path / "root"
    tiny = root / "old" / "tiny"
    with zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(2, 1))) as zf:
        zf.extractall(tiny)
    (root / "new").mkdir()
    with TestClient(create_app(make_settings(tmp_path / "state", data_root=root), start_worker=False)) as client:
        ds = client.post("/api/datasets", json={"path": "old/tiny"}).json()
        source = next(p.relative_to(tiny).as_posix() for p in sorted(tiny.rglob("*.png")))
        assert client.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": source}).status_code == 200
    narrowed_words, unset_words = _outside_root_words(f"data set {ds['id']!r}", "its folder")
    for narrowed, want in ((root / "new", narrowed_words), (None, unset_words)):
        settings = make_settings(tmp_path / "state", data_root=narrowed)
        with TestClient(create_app(settings, start_worker=False)) as client:
            resp = client.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": source})
            assert resp.status_code == 403 and resp.json() == {"detail": want}, resp.text
            resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]})
            assert resp.status_code == 403 and resp.json() == {"detail": want}, resp.text
            assert client.get(f"/api/datasets/{ds['id']}").json()["problem"] == want
            assert client.get("/api/jobs").json() == []


def test_a_cache_outside_a_narrowed_data_root_is_refused(tmp_path):
    """A cache file registered by path under a root the server no longer has (narrowed, or unset, at a restart) was
    still listed as readable and trained on, where a data set there was refused (an attack round); one the service
    wrote in its own data folder is not checked."""
    from app.caches import REGISTERED, file_stamp
    from app.store import Store

    root = tmp_path / "root"
    (root / "old").mkdir(parents=True)
    (root / "new").mkdir()
    settings = make_settings(tmp_path / "state", data_root=root)
    store = Store(settings.db_path)
    own = synthetic_cache(store, settings.caches_dir)  # the service's own file, in its data folder
    path = (root / "old" / "synthetic.h5").resolve()
    shutil.copy(own["path"], path)
    registered = store.add_cache(dataset_id=own["dataset_id"], encoder="synthetic", path=str(path),
                                 fingerprint="f" * 64, num_features=8, class_names=["a", "b", "c"],
                                 counts=own["counts"], job_id=None, source=REGISTERED, same_path=False,
                                 stamp=file_stamp(path))
    store.close()
    probe = {"kind": "probe", "cache_id": registered["id"], "config": ERM}
    with TestClient(create_app(settings, start_worker=False)) as client:
        assert client.get(f"/api/caches/{registered['id']}").json()["problem"] is None
        assert client.post("/api/jobs", json=probe).status_code == 202
    narrowed_words, unset_words = _outside_root_words(f"cache {registered['id']!r}", "its file")
    for narrowed, want in ((root / "new", narrowed_words), (None, unset_words)):
        settings = make_settings(tmp_path / "state", data_root=narrowed)
        with TestClient(create_app(settings, start_worker=False)) as client:
            listed = {row["id"]: row["problem"] for row in client.get("/api/caches").json()}
            assert listed == {own["id"]: None, registered["id"]: want}
            resp = client.post("/api/jobs", json=probe)
            assert resp.status_code == 403 and resp.json() == {"detail": want}, resp.text
            resp = client.post("/api/jobs", json=dict(probe, cache_id=own["id"]))
            assert resp.status_code == 202, resp.text


def _outside_root_words(named: str, held: str) -> tuple[str, str]:
    """The refusal of what was registered by path (``named``: "data set 'x'", "cache 'x'") on a server whose data
    root was narrowed since, and on one with no data root, word for word."""
    return (f"{named} lies outside the server's data root (MR2PROBE_DATA_ROOT, narrowed since its registration): "
            f"widen the root to hold {held} again, or register its files anew under the root",
            f"{named} was registered by its path on the server, and this server has no data root (MR2PROBE_DATA_ROOT, "
            f"or serve --data-root): serve with a data root that holds {held} to read it again")
