"""ASGI middleware at the service's edge: trusted ``Host`` headers, a size limit on request bodies, same-origin
state changes, HEAD answered as GET without its body, and the security headers of every answer; every refusal a
JSON ``{"detail"}``.

The Host check (:class:`TrustedHosts`: Starlette's ``TrustedHostMiddleware`` rule, the header must be one of
``Settings.trusted_hosts``) and the origin check keep a browser page on another site from driving a token-less
local server (DNS rebinding, cross-site form posts).
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
NO_FRAMING = "frame-ancestors 'none'"  # no page of another site may show this server's pages in a frame


def media_type(headers: Headers) -> str:
    """A request's media type: its ``Content-Type`` without parameters, lower-cased (RFC 9110 media types are
    case-insensitive; 'Application/JSON' was read as multipart by the upload route, and 'Multipart/Form-Data' was held
    to the JSON body limit here)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


class _RepeatedKey(ValueError):
    pass


def reads_as_json(headers: Headers) -> bool:
    """Whether FastAPI reads a request's body as JSON: ``application/json`` or any ``application/*+json``
    (``application/merge-patch+json``), whatever the case and parameters."""
    kind = media_type(headers)
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _once_each(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen = dict(pairs)
    if len(seen) != len(pairs):  # the first repeat in one pass (a scan of the keys before each was quadratic)
        keys: set[str] = set()
        raise _RepeatedKey(next(key for key, _ in pairs if key in keys or keys.add(key)))
    return seen


def repeated_key(body: bytes) -> str | None:
    """The first key a JSON ``body`` repeats within one object, else None (and None for a body that is not JSON,
    which the route refuses in its own words). Python's JSON reader keeps the last of two values silently:
    ``{"path": "a", "path": "b"}`` registered 'b' and ``{"kind": "extract", "kind": "probe"}`` ran a probe (an
    attack round), where the sender may have meant either."""
    try:
        json.loads(body, object_pairs_hook=_once_each)
    except _RepeatedKey as exc:
        return str(exc.args[0])
    except (ValueError, RecursionError):
        return None
    return None


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse (413) a request body over ``limit`` bytes before anything parses it, whatever its content type, and
    (422) a JSON body that repeats a key in one object (:func:`repeated_key`). Only
    a multipart upload to one of ``streamed`` ((method, path) pairs: the data set upload) is exempt: it is streamed
    to disk under its own limit (``MR2PROBE_MAX_UPLOAD_BYTES``), after the token check."""

    def __init__(self, app: ASGIApp, limit: int, streamed: tuple[tuple[str, str], ...] = ()) -> None:
        self.app, self.limit, self.streamed = app, limit, frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or ((scope["method"], scope["path"]) in self.streamed
                               and media_type(headers) == "multipart/form-data"):
            await self.app(scope, receive, send)
            return
        too_large = (f"request body over the limit of {self.limit} bytes (MR2PROBE_MAX_JSON_BYTES); "
                     "upload data sets as multipart/form-data")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _reply(send, 413, too_large)
            return
        chunks, size = [], 0
        while True:  # read it all (it is small) so that the limit holds without a Content-Length too
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _reply(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        repeated = repeated_key(body) if reads_as_json(headers) else None
        if repeated is not None:
            await _reply(send, 422, f"the JSON body gives the key {repeated[:100]!r} twice in one object: give each "
                         "key once (which value was meant is not guessed)")
            return

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class SameOriginOnly:
    """Refuse (403) a state-changing request that a browser sends from another origin.

    Browsers send ``Origin`` (and ``Sec-Fetch-Site``) with cross-site requests; a request with neither (curl,
    the CLI, scripts) passes. ``Origin`` must name the host the request was sent to.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            headers = Headers(scope=scope)
            site = headers.get("sec-fetch-site")
            origin = headers.get("origin")
            if site is not None and site not in ("same-origin", "none"):
                await _reply(send, 403, f"cross-origin request refused (Sec-Fetch-Site: {site[:40]})")
                return
            if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() !=
                                       headers.get("host", "").lower()):
                await _reply(send, 403, "cross-origin request refused (Origin does not match Host)")
                return
        await self.app(scope, receive, send)


class TrustedHosts:
    """Starlette's ``TrustedHostMiddleware`` check of the ``Host`` header (``Settings.trusted_hosts``, patterns
    such as ``*.example.com``), its refusal a JSON 400 naming the setting like every other refusal, not Starlette's
    plain-text "Invalid host header". (The service has no WebSocket route: other scopes pass.)"""

    _PASSED = "mr2probe.trusted_host"

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        self.app = app
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=allowed_hosts, www_redirect=False)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[self._PASSED] = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def drop(message: Message) -> None:  # Starlette's own refusal: replaced below
            return None

        await self.check(scope, receive, drop)
        if scope.pop(self._PASSED, False):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        await _reply(send, 400, f"Host header {host[:100]!r} is not a host this server answers to; the trusted "
                                "hosts are the listening host, localhost and MR2PROBE_ALLOWED_HOSTS")


def refuses_gzip(headers: Headers) -> bool:
    """Whether ``Accept-Encoding`` names gzip with ``q=0``, which refuses it (RFC 9110 §12.5.3); Starlette's
    ``GZipMiddleware`` looks for the word alone and gzipped for ``gzip;q=0`` (an operator round)."""
    for item in headers.get("accept-encoding", "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            weights = [p.strip()[2:] for p in params.split(";") if p.strip().lower().startswith("q=")]
            try:
                return bool(weights) and float(weights[0]) == 0.0
            except ValueError:
                return False
    return False


class GZipUnlessRefused(GZipMiddleware):
    """Starlette's ``GZipMiddleware`` for a client that accepts gzip: bodies of ``minimum_size`` bytes or more
    gzipped (images excepted), nothing for one whose ``Accept-Encoding`` gives gzip ``q=0``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and refuses_gzip(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class HeadAsGet:
    """Answer ``HEAD`` like ``GET`` without the body (RFC 9110: the same status and headers), on every route; the
    routes declare ``GET`` only, and a ``HEAD`` (link checkers, monitors, ``curl -I``) got 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class SecurityHeaders:
    """Headers every answer carries: ``X-Content-Type-Options: nosniff`` (no body read as another type than it is
    sent as), and no framing by another site (``X-Frame-Options: DENY``, and :data:`NO_FRAMING` as the
    Content-Security-Policy of an answer without one). The dashboard's pages had both, but /docs and /redoc had
    neither: a page of any site could frame /docs of a token-less local server and have its visitor click "Execute"
    on a DELETE, whose request is then same-origin (a security review)."""

    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"content-security-policy", NO_FRAMING.encode()))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in self.HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
