"""``/api/datasets`` (upload or register, list, delete) and ``/api/caches`` (feature caches written by extract jobs,
or registered by path; list, delete)."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from feature_cache.datasets import CONTENT_DIGEST_SIZE  # torch-free
from feature_cache.thumbnails import THUMBNAIL_SIZE, THUMBNAIL_SIZES  # torch-free
from probe.names import MAX_NAME
from pydantic import ValidationError

from ..caches import REGISTERED, cache_problem, register_cache
from ..config import Settings, get_settings
from ..datasets import (
    ARCHIVE_SUFFIXES,
    PathOutsideRoot,
    check_in_place,
    dataset_problem,
    discard,
    is_unlabelled,
    new_upload_dir,
    open_registered,
    register_dataset,
    resolve_under_root,
    stream_multipart_file,
    upload_flag,
    upload_name,
    upload_too_large,
)
from ..deps import TOTAL_COUNT, Page, get_store, in_slot, page
from ..messages import ClientMessages
from ..middleware import media_type
from ..removal import delete
from ..schemas import (BODY_TOO_LARGE, DELETE_RESPONSES, DRY_RUN, ERROR_RESPONSES, HOST_REFUSED, CacheOut,
                       CacheRegister, DatasetOut, DatasetRegister, DeletedOut, ErrorOut, IdPath, SkippedOut, download)
from ..skipped import MAX_KEPT, MAX_TEXT, skipped_note
from ..status import NotFound, UploadsBusy, UploadStalled
from ..store import Store

logger = logging.getLogger(__name__)
router = APIRouter(tags=["datasets"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": f"an archive ({', '.join(ARCHIVE_SUFFIXES)}) of class "
                                        "folders"},
                               "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                               "unlabelled": {"type": "string", "enum": ["true", "false", "1", "0", "on", "off"],
                                              "description": "any folders, no classes: images a finished "
                                              "run's probe predicts (DatasetRegister.unlabelled)"}}}},
            "application/json": {"schema": DatasetRegister.model_json_schema()},
        },
    }
}


def _dataset_out(row: dict, settings: Settings) -> DatasetOut:
    from probe.decision import imbalance_ratio

    training = [sum(per) for per in zip(*(v for split, v in row["counts"].items() if split != "test"))]
    return DatasetOut(**{k: row[k] for k in DatasetOut.model_fields if k in row}, labelled=not is_unlabelled(row),
                      num_images=sum(sum(v) for v in row["counts"].values()), imbalance=imbalance_ratio(training),
                      warnings=json.loads(row.get("data_warnings") or "[]"),
                      problem=dataset_problem(row, settings.data_root))  # its messages name its id, never its path


@router.post(
    "/datasets", response_model=DatasetOut, status_code=status.HTTP_201_CREATED,
    summary="Upload an archive of class folders (multipart) or register a server-side directory (JSON)",
    openapi_extra=_UPLOAD_BODY,
    responses={**ERROR_RESPONSES, 200: {"model": DatasetOut, "description": "the folder, with the same content, "
                                        "registered already, or an archive of the same content and classes "
                                        "uploaded already (its new copy removed): that data set"},
               400: {"model": ErrorOut, "description": "archive or manifest refused: unsafe or unreadable; or "
                     + HOST_REFUSED[400]["description"]},
               408: {"model": ErrorOut, "description": "the upload stalled (nothing for "
                     "MR2PROBE_UPLOAD_IDLE_SECONDS, too slow, or past MR2PROBE_UPLOAD_MAX_SECONDS): nothing kept"},
               403: {"model": ErrorOut, "description": "path outside the data root"},
               409: {"model": ErrorOut, "description": "the folder or archive, with the same content, is registered "
                     "already under another name (200 and that data set when no name or its name is given)"},
               413: {"model": ErrorOut, "description": "upload over MR2PROBE_MAX_UPLOAD_BYTES, or a JSON body over "
                     "MR2PROBE_MAX_JSON_BYTES"},
               429: {"model": ErrorOut, "description": "MR2PROBE_MAX_UPLOADS uploads are streaming already: try again "
                     "when one has ended"},
               507: {"model": ErrorOut, "description": "the server's disk is full: the upload was not stored"}},
)
async def create_dataset(request: Request, response: Response, store: Store = Depends(get_store),
                         settings: Settings = Depends(get_settings)) -> DatasetOut:
    if media_type(request.headers) == "application/json":  # 'application/jsonx' was read as JSON (an attack round)
        row, created = await register_path(request, store, settings)
    else:
        row, created = await upload_archive(request, store, settings)
    if not created:
        response.status_code = status.HTTP_200_OK  # the data set registered already: nothing was created
    return _dataset_out(row, settings)


async def register_path(request: Request, store: Store, settings: Settings) -> tuple[dict, bool]:
    """JSON ``{"path", "name"}``: a directory or archive already on the server, under the data root."""
    try:
        body = DatasetRegister.model_validate_json(await request.body())
    except ValidationError as exc:
        # under "body", as FastAPI's own errors of a JSON body: ("path",) read as the URL's path (app.field_errors)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None
    path = resolve_under_root(body.path, settings.data_root, settings.managed_paths)
    return await run_in_threadpool(register_dataset, store, path, name=body.name, source="path",
                                   unlabelled=body.unlabelled)


async def upload_archive(request: Request, store: Store, settings: Settings) -> tuple[dict, bool]:
    """Multipart ``file`` (+ optional ``name``) streamed to ``uploads/<dataset id>/``; removed again on failure."""
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise upload_too_large(settings.max_upload_bytes, int(declared))
    state = request.app.state
    uploading = getattr(state, "uploading", 0)
    if uploading >= settings.max_uploads:  # checked and counted with no await between: no race in the event loop
        raise UploadsBusy(f"{uploading} uploads are streaming already (MR2PROBE_MAX_UPLOADS = {settings.max_uploads}):"
                          " try again when one has finished")
    state.uploading = uploading + 1
    try:
        return await _stream_upload(request, store, settings, content_type)
    finally:
        state.uploading -= 1


async def _stream_upload(request: Request, store: Store, settings: Settings, content_type: str) -> tuple[dict, bool]:
    """The upload itself (:func:`upload_archive`), its body read with an idle timeout."""
    from feature_cache import DatasetError, UnsafeArchive

    dataset_id, upload_dir = new_upload_dir(settings.uploads_dir)
    try:
        body = _until_idle(request.stream(), settings.upload_idle_seconds, settings.upload_min_rate,
                           settings.upload_max_seconds)
        path, fields = await stream_multipart_file(content_type, body, upload_dir, settings.max_upload_bytes)
        unlabelled = upload_flag("unlabelled", fields.get("unlabelled"))
        try:
            row, created = await run_in_threadpool(register_dataset, store, path,
                                                   name=upload_name(fields.get("name")), source="upload",
                                                   dataset_id=dataset_id, unlabelled=unlabelled)
        except (DatasetError, UnsafeArchive) as exc:
            # they name the server's copy, '<data dir>/uploads/<id of a data set never created>/x.zip' to the
            # client (a new-user round): the file name it uploaded instead
            renamed = type(exc)(str(exc).replace(str(path), path.name))
            renamed.__dict__.update(vars(exc))  # its given spans (UnsafeArchive)
            raise renamed from None
    except BaseException:
        discard(upload_dir)
        raise
    if not created:  # the same archive uploaded before: that data set, and this copy goes
        discard(upload_dir)
    return row, created


async def _until_idle(chunks: AsyncIterator[bytes], seconds: float, min_rate: int,
                      max_seconds: float = float("inf")) -> AsyncIterator[bytes]:
    """``chunks`` as they come, ended with :class:`UploadStalled` when none comes for ``seconds``, when, past
    ``seconds``, they average under ``min_rate`` bytes a second, or past ``max_seconds`` in all (an upload of one
    byte a second held its connection and folder open with no end, an attack round; one byte a minute held a slot
    for ever, a review; four at the minimum rate held every slot for 36 h, an attack round)."""
    iterator, start, received = chunks.__aiter__(), time.monotonic(), 0
    while True:
        try:
            with anyio.fail_after(seconds):
                chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadStalled(f"the upload sent nothing for {seconds:g} s (MR2PROBE_UPLOAD_IDLE_SECONDS): "
                                "ended, nothing kept") from None
        received += len(chunk)
        elapsed = time.monotonic() - start
        if elapsed > max_seconds:
            raise UploadStalled(f"the upload ran past MR2PROBE_UPLOAD_MAX_SECONDS = {max_seconds:g} s: ended, nothing "
                                "kept")
        if min_rate and elapsed > seconds and received < min_rate * elapsed:
            raise UploadStalled(f"the upload averaged {received / elapsed:,.0f} bytes a second over {elapsed:.0f} s, "
                                f"under MR2PROBE_UPLOAD_MIN_RATE = {min_rate:,}: ended, nothing kept")
        yield chunk


@router.get("/datasets", response_model=list[DatasetOut],
            summary="Registered data sets, newest first (X-Total-Count: all of them)",
            responses={200: {"headers": TOTAL_COUNT}})
def list_datasets(response: Response, window: Page = Depends(page), store: Store = Depends(get_store),
                  settings: Settings = Depends(get_settings)) -> list[DatasetOut]:
    with store.snapshot():
        window.total(response, store, "datasets")
        rows = store.list_datasets(window.limit, window.offset)
    return [_dataset_out(r, settings) for r in rows]


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, responses=ERROR_RESPONSES,
            summary="One registered data set")
def get_dataset(dataset_id: IdPath, store: Store = Depends(get_store),
                settings: Settings = Depends(get_settings)) -> DatasetOut:
    return _dataset_out(store.get_dataset(dataset_id), settings)


@router.get("/datasets/{dataset_id}/skipped", response_model=SkippedOut, responses=ERROR_RESPONSES,
            summary="The files the data set's registration left out, grouped by reason, and a page of them")
def skipped_files(dataset_id: IdPath,
                  limit: int = Query(100, ge=1, le=1000, description="files to list, in the order found"),
                  offset: int = Query(0, ge=0, le=MAX_KEPT, description="files to pass over first"),
                  store: Store = Depends(get_store)) -> SkippedOut:
    total, reasons, kept, items = store.skipped_files(dataset_id, limit, offset)
    return SkippedOut(dataset_id=dataset_id, total=total, recorded=reasons is not None, reasons=reasons or [],
                      kept=kept, limit=limit, offset=offset, items=[{"name": n, "reason": r} for n, r in items],
                      note=skipped_note(total, reasons, kept))


_CASCADE = Query(False, description="also delete what depends on it (a data set's caches, a cache's runs); "
                 "without it, a 409 names them")


@router.delete("/datasets/{dataset_id}", response_model=DeletedOut, responses=DELETE_RESPONSES,
               summary="Delete a data set and its uploaded files (a folder registered by path stays as it was)")
def delete_dataset(dataset_id: IdPath, cascade: bool = _CASCADE, dry_run: bool = DRY_RUN,
                   store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> DeletedOut:
    return DeletedOut(**delete(store, settings, "datasets", dataset_id, cascade, dry_run))


REGISTRATION_SLOTS = 2  # cache files checked at once (POST /api/caches)
# Thumbnails decoded at once, each in a thread of its own: one image can take a few hundred MB up to the bound of
# every decode (feature_cache.datasets.MAX_DECODED_PIXELS, a JPEG's counted after its 1/8 draft: a 692-byte JPEG
# declaring 56,000 x 56,000 decodes 7,000 x 7,000, 2.7 s and +188 MB), so a page of many thumbnails, or a burst of
# requests, waits for a slot instead of decoding them all at once.
THUMBNAIL_SLOTS = 4


@lru_cache(maxsize=4)
def _thumbnailer(path: str, modified: float, unlabelled: bool, reindexed: int):
    """One indexed data set per (path, modification time, re-indexes for files added since: :func:`_index`), and
    the digest of its folder's listing as the index began (``feature_cache.thumbnails.listing_digest``): opening a
    large archive is paid once, and without the content digest of every file (``fingerprint=False``), which a
    thumbnail never reads: a folder's is the sha256 of each whole file (digits' 1,797 PNGs: 0.14 -> 0.05 s). A data
    set that no longer reads as one (a class folder emptied since its registration) is kept as its error, for the
    same modification time: each tile of a failure gallery listed the whole folder again to fail alike (a
    many-classes round)."""
    from feature_cache import DatasetError
    from feature_cache.thumbnails import Thumbnailer, listing_digest

    listed = listing_digest(path)  # before the index lists it: a file added meanwhile reads as added
    try:
        return Thumbnailer(open_registered(path, unlabelled, fingerprint=False, val_fraction=0.0)), listed
    except DatasetError as exc:
        return exc, listed


_INDEXING: dict[tuple, threading.Lock] = {}  # a lock per data set being indexed, while it is
_INDEXING_GUARD = threading.Lock()
_REINDEXED: dict[tuple[str, bool], int] = {}  # (path, unlabelled) -> its re-indexes for files added since (_index)


def _indexed(path: str, modified: float, unlabelled: bool, reindexed: int):
    """:func:`_thumbnailer`, indexed once however many requests ask for it at once: the first indexes, the others
    wait for its index (six thumbnails of a 28,000-image folder after a restart each indexed it, 24 s each against
    6 s for one; a scale round)."""
    key = (path, modified, unlabelled, reindexed)
    with _INDEXING_GUARD:
        lock = _INDEXING.get(key)
        first = lock is None
        if first:
            lock = _INDEXING[key] = threading.Lock()
    try:
        with lock:
            return _thumbnailer(*key)
    finally:
        if first:  # only the request that made the lock drops it, and only that lock (a waiter's pop let a third
            with _INDEXING_GUARD:  # request index beside a second; a review)
                if _INDEXING.get(key) is lock:
                    del _INDEXING[key]


def _names_a_file(root: str, source: str) -> bool:
    """Whether ``source`` names a regular file in the folder ``root``: only such a source can be one an index made
    since would list (a missing file, '..' or an absolute source never re-indexes, nor costs a listing)."""
    parts = Path(source).parts
    if not parts or Path(source).is_absolute() or ".." in parts or not os.path.isdir(root):
        return False
    try:
        return stat.S_ISREG(os.stat(os.path.join(root, *parts)).st_mode)
    except (OSError, ValueError):
        return False


def _index(path: str, unlabelled: bool, source: str):
    """The data set's thumbnail index (:func:`_indexed`), indexed again once where ``source`` is a file it does not
    list and the folder's listing changed since it began (a file added inside a class folder, or a manifest row for
    an old file, leaves the top folder's modification time as it was: its thumbnail was a 404 until that changed;
    a review): by what the listing holds, not by the files' times, which a file copied with its times kept, a row
    added for an old file or a skewed clock left behind. A file the new index does not list either (not an image)
    finds the listing as that index saw it, and is not indexed for again."""
    from feature_cache import DatasetError
    from feature_cache.thumbnails import listing_digest

    reindexed = _REINDEXED.get((path, unlabelled), 0)
    thumbs, listed = _indexed(path, os.stat(path).st_mtime, unlabelled, reindexed)
    if isinstance(thumbs, DatasetError) or source in thumbs or not _names_a_file(path, source) \
            or listing_digest(path) == listed:
        return thumbs
    with _INDEXING_GUARD:  # requests missing it at once: one re-index
        if _REINDEXED.get((path, unlabelled), 0) == reindexed:
            _REINDEXED[(path, unlabelled)] = reindexed + 1
        reindexed = _REINDEXED[(path, unlabelled)]
    return _indexed(path, os.stat(path).st_mtime, unlabelled, reindexed)[0]


def _thumbnail_png(path: str, unlabelled: bool, source: str, size: int, digest: bytes | None) -> bytes:
    from PIL import Image

    from feature_cache import DatasetError

    try:
        thumbs = _index(path, unlabelled, source)
    except OSError:  # the data set left the disk
        raise NotFound("samples", source) from None
    if isinstance(thumbs, DatasetError):  # kept by _thumbnailer: raised afresh, without the last raise's trace
        raise thumbs.with_traceback(None)
    try:
        return thumbs.png(source, size, digest)  # ImageChanged: another picture than the cache's, a 409 (app.main)
    except KeyError:  # not a listed sample
        raise NotFound("samples", source) from None
    except PermissionError as exc:  # a listed file now a symlink out of the data set: 403 as every path out (422
        raise PathOutsideRoot(str(exc)) from None  # before; an attack round)
    except (OSError, zipfile.BadZipFile, RuntimeError, Image.DecompressionBombError) as exc:
        # a listed sample that does not decode: unreadable, damaged in its archive, encrypted, too many pixels
        raise DatasetError(f"sample {source[:200]!r} cannot be shown: {type(exc).__name__}: "
                           f"{str(exc)[:200]}") from None


DIGEST_QUERY = "digest"  # the thumbnail URL's query parameter: the image's content digest in its cache, as hex
DigestQuery = Query(None, alias=DIGEST_QUERY, pattern=f"^[0-9a-f]{{{2 * CONTENT_DIGEST_SIZE}}}$",
                    description="the image's content digest recorded by its cache (lower-case hex, as the API's "
                    "thumbnail URLs give it): where the file's bytes differ now, a 409 says so instead of showing "
                    "another picture than the one the cache encoded")


def thumbnail_url(dataset_id: str | None, source: str | None, digest: bytes | None = None) -> str | None:
    """The URL of the thumbnail of the data set's image ``source``, with the ``digest`` its cache recorded where
    known (the route then refuses a file changed since); None without a data set or a source."""
    if not dataset_id or source is None:
        return None
    query = {"source": source, **({DIGEST_QUERY: digest.hex()} if digest is not None else {})}
    return f"/api/datasets/{dataset_id}/thumbnail?{urlencode(query)}"


@router.get("/datasets/{dataset_id}/thumbnail", response_class=Response, responses={
    **ERROR_RESPONSES, 200: download("image/png", "a PNG, longest side <= size"),
    409: {"model": ErrorOut, "description": "the file's bytes are not those of `digest`: it changed since the "
          "extraction (extract the data set again)"}},
    summary="A small PNG of one sample the data set lists (only listed sources; anything else is a 404)")
async def thumbnail(request: Request, dataset_id: IdPath,
                    source: str = Query(..., min_length=1, max_length=MAX_TEXT),  # as long as a name recorded
                    size: int = Query(THUMBNAIL_SIZE, ge=THUMBNAIL_SIZES[0], le=THUMBNAIL_SIZES[-1],
                                      description="the longest side at most: the largest of "
                                      f"{', '.join(map(str, THUMBNAIL_SIZES))} not over it"),
                    digest: str | None = DigestQuery,
                    store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> Response:
    row = store.get_dataset(dataset_id)
    check_in_place(row, settings.data_root)
    png = await in_slot(request, "thumbnail_limiter", THUMBNAIL_SLOTS, _thumbnail_png, row["path"],
                        is_unlabelled(row), source, size, None if digest is None else bytes.fromhex(digest))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/caches", response_model=CacheOut, status_code=status.HTTP_201_CREATED,
    summary="Register a finished feature cache file on the server (extracted elsewhere, e.g. by mr2probe extract)",
    responses={**ERROR_RESPONSES, 200: {"model": CacheOut, "description": "the same file, or a cache of the same "
                                        "fingerprint (the same features), registered already: that cache"},
               403: {"model": ErrorOut, "description": "path outside the data root"}, **BODY_TOO_LARGE},
)
async def create_cache(request: Request, body: CacheRegister, response: Response, store: Store = Depends(get_store),
                       settings: Settings = Depends(get_settings)) -> CacheOut:
    path = resolve_under_root(body.path, settings.data_root, settings.managed_paths)
    # reading a split's labels and names takes memory with its rows: a few registrations at a time (a review)
    row, created = await in_slot(request, "registration_limiter", REGISTRATION_SLOTS, register_cache, store, path,
                                  settings.data_root)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _cache_out(row, settings)


LISTING_SLOTS = 2  # cache listings checking their files at once (a registered file is opened to be checked)


@router.get("/caches", response_model=list[CacheOut], summary="Feature caches, newest first (X-Total-Count: all of them)",
            responses={200: {"headers": TOTAL_COUNT}})
async def list_caches(request: Request, response: Response, window: Page = Depends(page),
                      store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> list[CacheOut]:
    messages = ClientMessages(settings)  # once per listing, not per row (a review)

    def listing() -> list[CacheOut]:  # each registered file is opened and checked: in bounded slots, off the loop
        with store.snapshot():
            window.total(response, store, "caches")
            rows = store.list_caches(window.limit, window.offset)
        return [_cache_out(r, settings, messages) for r in rows]

    return await in_slot(request, "listing_limiter", LISTING_SLOTS, listing)


@router.get("/caches/{cache_id}", response_model=CacheOut, responses=ERROR_RESPONSES,
            summary="One feature cache")
def get_cache(cache_id: IdPath, store: Store = Depends(get_store),
              settings: Settings = Depends(get_settings)) -> CacheOut:
    return _cache_out(store.get_cache(cache_id), settings)


@router.delete("/caches/{cache_id}", response_model=DeletedOut, responses=DELETE_RESPONSES,
               summary="Delete a feature cache and its file (a file registered by path stays as it was)")
def delete_cache(cache_id: IdPath, cascade: bool = _CASCADE, dry_run: bool = DRY_RUN,
                 store: Store = Depends(get_store), settings: Settings = Depends(get_settings)) -> DeletedOut:
    return DeletedOut(**delete(store, settings, "caches", cache_id, cascade, dry_run))


def _cache_out(row: dict, settings: Settings, messages: ClientMessages | None = None) -> CacheOut:
    """A cache as a client reads it: a registered file named relative to the data root (never the server's path),
    and what keeps its file from being read as it now (``app.caches.cache_problem``, server paths left out)."""
    messages = messages or ClientMessages(settings)
    file = None
    if row.get("source") == REGISTERED:
        root = settings.data_root
        path = Path(row["path"])
        file = str(path.relative_to(root.resolve())) if root and path.is_relative_to(root.resolve()) else path.name
    problem = cache_problem(row, settings.data_root)
    return CacheOut(**{k: v for k, v in row.items() if k != "path"}, labelled=not is_unlabelled(row), file=file,
                    problem=None if problem is None else messages.clean(problem))
