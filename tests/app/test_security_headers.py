"""The security headers of every answer: no page of another site may frame this server's pages (the API's
documentation included), and no body is read as another type than it is sent as."""
from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app

from app_testutils import make_settings


def test_every_answer_forbids_framing_and_sniffing(tmp_path):
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as client:
        answers = {path: client.get(path) for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json",
                                                      "/api/health", "/api/runs/run_x", "/launch/choices")}
        answers["refused host"] = client.get("/api/health", headers={"Host": "attacker.example"})
        answers["dashboard"] = client.get("/")
    assert answers["/docs"].status_code == 200 and answers["refused host"].status_code == 400
    for what, resp in answers.items():
        assert resp.headers["x-frame-options"] == "DENY", what
        assert resp.headers["x-content-type-options"] == "nosniff", what
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], what
    # the dashboard keeps its own, stricter policy: one policy header, not a second one added
    assert answers["dashboard"].headers["content-security-policy"].startswith("default-src 'self'")
    assert answers["dashboard"].headers.get_list("content-security-policy") == \
        [answers["dashboard"].headers["content-security-policy"]]
