"""FastAPI dependencies: settings, the store, the job runner and the bearer-token check; and the bounded thread
slots of the routes whose work is heavy (:func:`in_slot`)."""
from __future__ import annotations

import functools
import secrets
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from fastapi import Depends, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .config import Settings, get_settings
from .store import Store
from .worker import JobRunner

_bearer = HTTPBearer(auto_error=False, description="the API token (MR2PROBE_API_TOKEN), when one is set")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


def _query_names(dependant: Any, lists: bool = False) -> frozenset[str]:
    """The query parameters a route takes: its own and those of its dependencies (FastAPI's ``Dependant`` tree);
    ``lists``: only those that take a list (``other=a&other=b``), which may repeat."""
    names = {param.alias for param in dependant.query_params
             if not lists or typing.get_origin(param.field_info.annotation) in (list, tuple, set)}
    for sub in dependant.dependencies:
        names |= _query_names(sub, lists)
    return frozenset(names)


def known_query_only(request: Request) -> None:
    """Refuse (422, as a validation error naming each) a query parameter the route does not take, and one given
    more than once unless it takes a list: FastAPI ignores the first (``DELETE /api/caches/{id}?dryRun=true``
    deleted for real) and keeps the last value of the second (``?dry_run=true&dry_run=false`` deleted; attack
    rounds)."""
    from collections import Counter

    from fastapi.exceptions import RequestValidationError

    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    given = Counter(key for key, _ in request.query_params.multi_items())
    takes = ", ".join(sorted(known)) or "none"
    errors = [{"loc": ("query", key[:100]), "type": "repeated_parameter",
               "msg": f"query parameter {key[:100]!r} is given {n} times: give each parameter once"}
              for key, n in given.items() if n > 1 and key not in _query_names(dependant, lists=True)]
    errors += [{"loc": ("query", key[:100]), "type": "unknown_parameter",
                "msg": f"unknown query parameter {key[:100]!r}: this route takes {takes}"}
               for key in sorted(set(given) - known)]
    if errors:
        raise RequestValidationError(errors[:20])


def require_token(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    settings: Settings = Depends(get_settings),
) -> None:
    """With a configured token, refuse requests without ``Authorization: Bearer <token>`` (401)."""
    expected = settings.token
    if expected is None:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


async def in_slot(request: Request, name: str, slots: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread once one of the app's ``slots`` slots called ``name`` is free: the other
    requests wait for a slot without holding a thread, so that a burst of heavy requests (scoring a cache,
    decoding images) can take neither every worker thread (and /api/health with them) nor unbounded memory."""
    limiter = getattr(request.app.state, name, None)
    if limiter is None:  # made in the event loop, on first use (no await in between: no race)
        limiter = anyio.CapacityLimiter(slots)
        setattr(request.app.state, name, limiter)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter)


LIST_LIMIT = 500  # rows a listing returns unless asked: the newest first
MAX_LIST_LIMIT = 5000
# the OpenAPI of a listing's header
TOTAL_COUNT = {"X-Total-Count": {"schema": {"type": "integer"}, "description": "every row the list holds, whatever "
                                 "its limit and offset"}}


@dataclass(frozen=True)
class Page:
    """A listing's window, newest first (``?limit=&offset=``); the route sets ``X-Total-Count``, every row's count:
    a listing cut at 500 rows said nothing of the older ones (an operator round with 512 runs)."""

    limit: int
    offset: int

    def total(self, response: Response, store: Store, table: str) -> None:
        set_total(response, store.count(table))


def set_total(response: Response, total: int) -> None:
    """A listing's ``X-Total-Count``: every row it holds (of the filter asked), whatever its limit and offset."""
    response.headers["X-Total-Count"] = str(total)


def offset_query(description: str = "rows to skip, newest first"):
    """A listing's ``?offset=`` (the rows to skip), bounded as every other parameter."""
    return Query(0, ge=0, le=10**9, description=description)


OffsetQuery = offset_query()


def page(limit: int = Query(LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="rows to return, newest first"),
         offset: int = OffsetQuery) -> Page:
    return Page(limit, offset)
