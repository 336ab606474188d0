"""The FastAPI application: ``create_app(settings)`` wires the store, the job worker, the routers and the edge
(trusted hosts, body limit, same-origin state changes, and the one table of exceptions → HTTP answers)."""
from __future__ import annotations

import logging
import sqlite3
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from . import __version__
from .config import Settings, get_settings
from .datadir import make_data_dir
from .datasets import AlreadyRegistered, PathOutsideRoot, UploadError, UploadTooLarge
from .deps import known_query_only, require_token
from .field_errors import operation_of, reword_errors
from .messages import ClientMessages, given_spans
from .middleware import BodyLimit, GZipUnlessRefused, HeadAsGet, SameOriginOnly, SecurityHeaders, TrustedHosts
from .routes import dashboard, datasets, health, jobs, reports
from .schemas import ERROR_RESPONSES, HOST_REFUSED
from .status import InvalidTransition, NoSpace, NotFound, QueueFull, UploadsBusy, UploadStalled
from .steps import JOB_KINDS
from .store import Store
from .cleanup import sweep_data_dir
from .validation import RequestInvalid
from .worker import JobRunner

logger = logging.getLogger(__name__)

STATIC_DIR = dashboard.STATIC_DIR


def create_app(settings: Settings | None = None, *, start_worker: bool = True) -> FastAPI:
    """Build the service for ``settings`` (default: from the environment).

    The job worker starts with the application's lifespan (``with TestClient(app)`` or uvicorn): it marks
    jobs that a previous process left running as interrupted and sweeps what such a process left behind
    (:func:`app.cleanup.sweep_data_dir`). ``start_worker=False`` serves read-only views without running jobs.
    """
    settings = settings or get_settings()
    make_data_dir(settings.data_dir)
    store = Store(settings.db_path, settings.data_root)
    runner = JobRunner(store, settings, JOB_KINDS)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_worker:
            runner.start(prepare=lambda: sweep_data_dir(store, settings))
        logger.info("mr2probe service ready (data dir %s, auth %s, hosts %s)", settings.data_dir,
                    "on" if settings.token else "off", ", ".join(settings.trusted_hosts))
        yield
        if start_worker:
            runner.stop()
        store.close()  # the WAL checkpointed and removed: the data directory is whole without its -wal file

    # Swagger UI and ReDoc from the assets bundled in the fastapi-offline wheel: /docs works with no network.
    app = FastAPIOffline(
        title="mr2probe",
        version=__version__,
        description="Linear probes on cached foundation-model features that report and reduce class-wise "
        "accuracy disparity (MR²). With MR2PROBE_API_TOKEN set, every /api route except /api/health needs "
        "`Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.store, app.state.runner = settings, store, runner
    app.dependency_overrides[get_settings] = lambda: settings

    protected = {"dependencies": [Depends(require_token), Depends(known_query_only)],
                 "responses": {401: ERROR_RESPONSES[401], **HOST_REFUSED}}
    # open: the docker healthcheck calls it without a token
    app.include_router(health.router, prefix="/api", dependencies=[Depends(known_query_only)],
                       responses=HOST_REFUSED)
    app.include_router(datasets.router, prefix="/api", **protected)
    app.include_router(jobs.router, prefix="/api", **protected)
    app.include_router(reports.router, prefix="/api", **protected)
    app.include_router(dashboard.router)
    app.mount("/static", dashboard.StaticWithPolicy(directory=STATIC_DIR), name="static")
    # Added last = runs first: the security headers (on every answer, refusals too), the Host check, HEAD as GET,
    # then the origin check, the body limit, and gzip.
    # A client that accepts gzip gets bodies over 1 KB compressed (a 1,000-class report.json was 777 KB and the
    # lists of data sets and caches 300 KB, each row holding its class names; a 1,000-class round); images are not.
    app.add_middleware(GZipUnlessRefused, minimum_size=1024)
    # only the data set upload streams a multipart body past the limit (to disk, under its own limit)
    app.add_middleware(BodyLimit, limit=settings.max_json_bytes,
                       streamed=(("POST", app.url_path_for("create_dataset")),))
    app.add_middleware(SameOriginOnly)
    app.add_middleware(HeadAsGet)
    app.add_middleware(TrustedHosts, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(SecurityHeaders)
    _add_error_handlers(app, settings)
    return app


# the words of sqlite3.OperationalError for a database that cannot take a write now (a lock, a read-only or full disk)
DATABASE_BUSY = ("locked", "readonly", "read-only", "disk is full", "disk I/O error")


def _error_table() -> dict[type[BaseException], tuple[int, str]]:
    """Every exception the API answers with a 4xx: (status, prefix of the detail). Most specific first."""
    from feature_cache import CacheMismatch, DatasetError, UnsafeArchive
    from feature_cache.errors import ImageChanged
    from probe.files import OutputBusy

    return {
        NotFound: (404, ""),
        InvalidTransition: (409, ""),
        QueueFull: (429, ""),
        UploadsBusy: (429, ""),
        UploadStalled: (408, ""),
        AlreadyRegistered: (409, ""),
        PathOutsideRoot: (403, ""),
        UploadTooLarge: (413, ""),
        NoSpace: (507, ""),
        ImageChanged: (409, ""),  # a thumbnail of a file other than its cache encoded (its digest)
        UnsafeArchive: (400, "refused: "),  # an archive or manifest: unsafe (a bomb, a path out) or unreadable
        UploadError: (422, ""),
        DatasetError: (422, ""),
        CacheMismatch: (422, ""),
        RequestInvalid: (422, ""),
        OutputBusy: (409, ""),  # a run a writer kept replacing while it was read (probe.rundir.read_run)
    }


def _jsonable_errors(errors: list[dict[str, Any]], messages: ClientMessages) -> list[dict[str, Any]]:
    """Validation errors a JSON response can carry: no input echo (it may be huge, bytes or NaN)."""
    out = []
    for error in errors[:50]:
        loc = [part if isinstance(part, (int, str)) else str(part) for part in error.get("loc", ())]
        msg = messages.clean(str(error.get("msg", "")))
        out.append({"loc": [p[:100] if isinstance(p, str) else p for p in loc], "msg": msg,
                    "type": str(error.get("type", ""))})
    return out


_UNPARSED_BODY = "There was an error parsing the body"  # FastAPI's 400 detail for a body it could not decode


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """The ``Allow`` of a 405: every method some route answers on the path (RFC 9110). Starlette's router names the
    first route whose path matched, so ``PUT /api/jobs`` said ``Allow: POST`` though ``GET`` is served too (an
    attack round); ``HEAD`` wherever ``GET`` (:class:`app.middleware.HeadAsGet`)."""
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": "GET" if method == "HEAD" else method})[0]
                      == Match.FULL for route in request.app.router.routes)]
    return ", ".join(allowed)


def _add_error_handlers(app: FastAPI, settings: Settings) -> None:
    messages = ClientMessages(settings)
    table = _error_table()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # each field's refusal names it, the value and what it accepts (app.field_errors)
        spec = request.app.openapi()
        errors = _jsonable_errors(reword_errors(list(exc.errors()), operation_of(spec, request.scope["path"],
                                                                                 request.method), spec), messages)
        sent = request.headers.get("content-type", "")
        if "json" not in sent.lower():
            # a JSON body sent as text/plain, or with no Content-Type (FastAPI reads none as JSON: Python's requests
            # with data=, curl --data-binary without -H), got "Input should be a valid dictionary" (attack rounds)
            said = f"sent Content-Type {sent[:100]!r}" if sent else "sent no Content-Type"
            for error in errors:
                if error["loc"] == ["body"]:
                    error["msg"] = f"the body must be JSON sent as Content-Type: application/json; this request {said}"
        return JSONResponse({"detail": errors}, status_code=422)

    async def _mapped(request: Request, exc: Exception) -> JSONResponse:
        for kind, (status, prefix) in table.items():
            if isinstance(exc, kind):
                text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                shown = messages.clean(text, given_spans(exc))
                if shown != text:
                    logger.info("%s %s: %s %s", request.method, request.url.path, status, text)
                return JSONResponse({"detail": prefix + shown}, status_code=status)
        raise exc  # pragma: no cover - only table entries are registered

    for kind in table:
        app.add_exception_handler(kind, _mapped)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # a route's own 4xx (a missing file, a cache of other features) may quote a server path: cleaned too
        detail = messages.clean(exc.detail) if isinstance(exc.detail, str) else exc.detail
        if exc.status_code == 400 and detail == _UNPARSED_BODY and exc.__cause__ is not None:
            # FastAPI's words for a JSON body json.loads refused past its decode errors (not UTF-8, an integer of
            # 5,000 digits, nesting too deep): which, said (an attack round)
            cause = exc.__cause__
            why = "nested too deep" if isinstance(cause, RecursionError) else str(cause).split(";")[0][:200]
            return JSONResponse({"detail": f"the request body is not JSON this service reads: {why}"},
                                status_code=422)
        headers = exc.headers
        if exc.status_code == 405 and headers and "Allow" in headers:
            # a mounted app's 405 (the static files) comes with its own Allow, which the routes cannot see
            headers = {**headers, "Allow": _allowed_methods(request) or headers["Allow"]}
            detail = f"{request.method} is not a method of {request.url.path}; it answers {headers['Allow']}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(sqlite3.OperationalError)
    async def _database(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # another process holding the database (sqlite3 ... 'BEGIN EXCLUSIVE', a backup tool), a read-only or full
        # disk: the request's write was refused whole, after the store's wait; it was a 500 "internal server error
        # (OperationalError)" that did not say the request may simply be sent again (a failure round)
        if not any(word in str(exc) for word in DATABASE_BUSY):
            return await _internal(request, exc)
        logger.error("%s %s: the database refused the request: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"the service's database refused this request ({exc}: another process holds "
                                       "it, or its disk is read-only or full); nothing was changed, send it again "
                                       "later"}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The trace stays in the server log; the client gets one clear line.
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the server log"},
                            status_code=500)


__all__ = ["create_app"]
