"""``/api/datasets`` (upload or register) and ``/api/caches`` (feature caches written by extract jobs)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from ..config import Settings, get_settings
from ..datasets import (
    PathOutsideRoot,
    UploadError,
    UploadTooLarge,
    discard,
    new_upload_dir,
    register_dataset,
    resolve_under_root,
    stream_multipart_file,
)
from ..db import Store
from ..deps import get_store
from ..schemas import ERROR_RESPONSES, CacheOut, DatasetOut, DatasetRegister, ErrorOut

logger = logging.getLogger(__name__)
router = APIRouter(tags=["datasets"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "zip / tar / tar.gz of class folders"},
                               "name": {"type": "string"}}}},
            "application/json": {"schema": DatasetRegister.model_json_schema()},
        },
    }
}


def _dataset_out(row: dict) -> DatasetOut:
    return DatasetOut(**{k: row[k] for k in DatasetOut.model_fields if k in row},
                      num_images=sum(sum(v) for v in row["counts"].values()))


@router.post(
    "/datasets", response_model=DatasetOut, status_code=status.HTTP_201_CREATED,
    summary="Upload an archive of class folders (multipart) or register a server-side directory (JSON)",
    openapi_extra=_UPLOAD_BODY,
    responses={**ERROR_RESPONSES, 400: {"model": ErrorOut, "description": "unsafe archive"},
               403: {"model": ErrorOut, "description": "path outside the data root"},
               413: {"model": ErrorOut, "description": "upload over the size limit"}},
)
async def create_dataset(request: Request, store: Store = Depends(get_store),
                         settings: Settings = Depends(get_settings)) -> DatasetOut:
    from feature_cache import DatasetError, UnsafeArchive

    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = DatasetRegister.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        try:
            path = resolve_under_root(body.path, settings.data_root)
        except PathOutsideRoot as exc:
            raise HTTPException(403, str(exc)) from None
        except FileNotFoundError as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            row = await run_in_threadpool(register_dataset, store, path, name=body.name or path.name, source="path")
        except UnsafeArchive as exc:
            raise HTTPException(400, f"unsafe archive: {exc}") from None
        except DatasetError as exc:
            raise HTTPException(422, str(exc)) from None
        return _dataset_out(row)

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise HTTPException(413, f"upload of {declared} bytes is over the limit of {settings.max_upload_bytes} "
                                 "bytes (MR2PROBE_MAX_UPLOAD_BYTES)")
    dataset_id, upload_dir = new_upload_dir(settings.uploads_dir)
    try:
        path, fields = await stream_multipart_file(content_type, request.stream(), upload_dir,
                                                   settings.max_upload_bytes)
        row = await run_in_threadpool(register_dataset, store, path, name=fields.get("name") or path.name,
                                      source="upload", dataset_id=dataset_id)
    except UploadTooLarge as exc:
        discard(upload_dir)
        raise HTTPException(413, str(exc)) from None
    except UnsafeArchive as exc:
        discard(upload_dir)
        raise HTTPException(400, f"unsafe archive: {exc}") from None
    except (UploadError, DatasetError) as exc:
        discard(upload_dir)
        raise HTTPException(422, str(exc)) from None
    except BaseException:
        discard(upload_dir)
        raise
    return _dataset_out(row)


@router.get("/datasets", response_model=list[DatasetOut], summary="Registered data sets, newest first")
def list_datasets(store: Store = Depends(get_store)) -> list[DatasetOut]:
    return [_dataset_out(r) for r in store.list_datasets()]


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, responses=ERROR_RESPONSES)
def get_dataset(dataset_id: str, store: Store = Depends(get_store)) -> DatasetOut:
    return _dataset_out(store.get_dataset(dataset_id))


@router.get("/caches", response_model=list[CacheOut], summary="Feature caches, newest first")
def list_caches(store: Store = Depends(get_store)) -> list[CacheOut]:
    return [CacheOut(**r) for r in store.list_caches()]


@router.get("/caches/{cache_id}", response_model=CacheOut, responses=ERROR_RESPONSES)
def get_cache(cache_id: str, store: Store = Depends(get_store)) -> CacheOut:
    return CacheOut(**store.get_cache(cache_id))
