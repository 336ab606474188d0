"""``GET /api/health``: liveness for the docker healthcheck (open even when a token is configured)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends

from ..config import Settings, get_settings
from ..store import Store
from ..deps import get_store
from ..schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Service liveness (no token needed)")
def health(store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> HealthOut:
    try:
        app_version = version("mr2probe")
    except PackageNotFoundError:
        app_version = "0.0.0"
    return HealthOut(status="ok", version=app_version, auth_required=settings.token is not None,
                     jobs=store.job_counts())
