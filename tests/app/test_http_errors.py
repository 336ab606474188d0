"""Requests the HTTP parser refuses before the application sees them are answered in the service's JSON, on a real
uvicorn server started with the options ``mr2probe serve`` uses (TestClient never parses raw HTTP)."""
from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest
import uvicorn

from app.commands.serve import uvicorn_options
from app.main import create_app

from app_testutils import free_port, make_settings, wait_for


@pytest.fixture
def served(tmp_path):
    settings = make_settings(tmp_path, allowed_hosts=["127.0.0.1"])
    options = {**uvicorn_options(settings), "port": free_port(), "log_level": "warning", "access_log": False}
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, what="uvicorn started")
    try:
        yield settings, options["port"]
    finally:
        server.should_exit = True
        thread.join(30)


def _answer(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """The status line, headers and body of the server's answer to the raw ``request`` (read until it closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while part := conn.recv(65536):
            answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, body


def test_a_request_the_parser_refuses_is_a_json_4xx_and_the_server_goes_on(served):
    """uvicorn answered a URL and headers past its 64 KB read, a malformed chunked body and a garbled request line
    with a plain-text 400 'Invalid HTTP request received.' (a security review): JSON like every other error."""
    settings, port = served
    long_head = f"GET /api/health?x={'a' * 40_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()  # never ends
    bad_chunk = (b"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: multipart/form-data; boundary=b\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    cases = {long_head: ("431", "its URL and headers are too long"), bad_chunk: ("400", "illegal chunk header"),
             b"GARBAGE\r\n\r\n": ("400", "illegal request line")}
    for request, (code, reason) in cases.items():
        status, headers, body = _answer(port, request)
        assert status.split()[1] == code, (status, body)
        assert headers["content-type"] == "application/json", headers
        detail = json.loads(body)["detail"]
        assert detail.startswith("invalid HTTP request: ") and reason in detail, detail
    assert not any(settings.uploads_dir.glob("*/*"))  # the refused upload left nothing behind
    assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).status_code == 200
