"""uvicorn's HTTP/1.1 protocol (h11) answering the requests it refuses itself with the service's JSON error body.

A request that h11 cannot parse never reaches the application: uvicorn answered it ``400`` with the plain text
``Invalid HTTP request received.`` (a URL and headers longer than one 64 KB read, a malformed chunked body), where
every other error of the service is JSON ``{"detail": "..."}``. uvicorn takes a protocol class for its ``http``
setting; this one words that answer as the service does, with h11's status (431 for a request head too long) and
its reason.
"""
from __future__ import annotations

import json
import sys
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["JSONErrorsH11Protocol", "refusal"]

MAX_REASON = 200  # characters of h11's reason kept (it may quote the bytes it refused)


def refusal(exc: BaseException | None) -> tuple[int, str]:
    """The status and ``detail`` of the answer to a request h11 refused with ``exc`` (None: not known)."""
    if not isinstance(exc, h11.RemoteProtocolError):
        return 400, "invalid HTTP request"
    if exc.error_status_hint == 431:  # h11's only 431: an incomplete request head past its buffer
        return 431, "invalid HTTP request: its URL and headers are too long"
    reason = str(exc)
    reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 1] + "…"
    return exc.error_status_hint, f"invalid HTTP request: {reason}"


class JSONErrorsH11Protocol(H11Protocol):
    """:class:`uvicorn.protocols.http.h11_impl.H11Protocol` whose refusals of unparseable requests are JSON."""

    def send_400_response(self, msg: str) -> None:
        # called inside uvicorn's ``except h11.RemoteProtocolError``: the exception being handled says why
        status, detail = refusal(sys.exc_info()[1])
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"x-content-type-options", b"nosniff"), (b"connection", b"close")]
        reason = HTTPStatus(status).phrase.encode()
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
