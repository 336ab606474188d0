"""The FastAPI application: ``create_app(settings)`` wires the store, the job worker and the routers."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .config import Settings, get_settings
from .db import InvalidTransition, NotFound, Store
from .deps import require_token
from .routes import dashboard, datasets, health, jobs, reports
from .worker import JobRunner

logger = logging.getLogger(__name__)

try:
    __version__ = version("mr2probe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

STATIC_DIR = dashboard.STATIC_DIR


def create_app(settings: Settings | None = None, *, start_worker: bool = True) -> FastAPI:
    """Build the service for ``settings`` (default: from the environment).

    The job worker starts with the application's lifespan (``with TestClient(app)`` or uvicorn) and marks
    jobs that a previous process left running as interrupted. ``start_worker=False`` serves read-only
    views without running jobs.
    """
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_path)
    runner = JobRunner(store, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_worker:
            runner.start()
        logger.info("mr2probe service ready (data dir %s, auth %s)", settings.data_dir,
                    "on" if settings.token else "off")
        yield
        if start_worker:
            runner.stop()

    app = FastAPI(
        title="mr2probe",
        version=__version__,
        description="Linear probes on cached foundation-model features that report and reduce class-wise "
        "accuracy disparity (MR²). With MR2PROBE_API_TOKEN set, every /api route except /api/health needs "
        "`Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.store, app.state.runner = settings, store, runner
    app.dependency_overrides[get_settings] = lambda: settings

    protected = [Depends(require_token)]
    app.include_router(health.router, prefix="/api")  # open: the docker healthcheck calls it without a token
    app.include_router(datasets.router, prefix="/api", dependencies=protected)
    app.include_router(jobs.router, prefix="/api", dependencies=protected)
    app.include_router(reports.router, prefix="/api", dependencies=protected)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidTransition)
    async def _conflict(request: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The trace stays in the server log; the client gets one clear line.
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the server log"},
                            status_code=500)
