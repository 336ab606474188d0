"""A refused server path is answered in the client's own words: its path quoted as given, never rewritten by the
cleaning of server paths (which read '<data root>X/a' for '/srv/rootX/a' and told a client which of the paths it
tried were the server's home, Python or data folder)."""
from __future__ import annotations

import sys
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app

from app_testutils import make_settings, tiny_zip_bytes


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
