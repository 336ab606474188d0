"""The offline dashboard: ``/`` (jobs, runs, data sets) and ``/runs/{run_id}`` (one report, ``?compare=``).

Pages are static HTML + vanilla JS + SVG served from the package (``app/static``); they read the JSON API.
A Content-Security-Policy of ``'self'`` keeps the browser from loading anything from another host.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def _page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/")
def home() -> FileResponse:
    return _page()


@router.get("/runs/{run_id}")
def run_page(run_id: str) -> FileResponse:
    return _page()
