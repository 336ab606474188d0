"""What a client reads of an error: server-side absolute paths replaced by names, the length bounded (the server
log keeps the full text). The API's error answers and the jobs' ``error`` field both go through it."""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Settings

__all__ = ["ClientMessages", "MAX_DETAIL", "given_spans"]

MAX_DETAIL = 2000  # characters of an error message a client gets


def given_spans(exc: BaseException) -> tuple[str, ...]:
    """The spans of ``exc``'s message that quote the user's own words (``feature_cache.UnsafeArchive.given``: an
    absolute member name was shown as '<server path>', an extremes round); none for other errors."""
    return tuple(getattr(exc, "given", ()))


class ClientMessages:
    """Messages for clients: server-side absolute paths replaced by names (the server log keeps them)."""

    # an absolute path not already under a named root ("<data dir>/runs/x" keeps its tail)
    # ("/etc" alone too: a one-part path is a server path as well); a route of this API ("/api/...") is kept. It
    # starts a message, or follows a space, a quote, a bracket, "=", ":" or ",": a "/" inside a relative name the
    # user gave ('test/Shirt (plain)/a.png', 'train/Coat ❄/b.png') is no server path, nor, after a space, one whose
    # top folder is not on this server (:meth:`_server_path`)
    _ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))/(?!api/)(?:[^\s'\"/:,;()\[\]]+/)*[^\s'\"/:,;()\[\]]+/?")

    def __init__(self, settings: Settings) -> None:
        roots = [(settings.data_root, "<data root>"), (settings.data_dir, "<data dir>"),
                 (Path(sys.prefix), "<python>"), (Path.home(), "~")]
        self.roots = sorted(((str(Path(r).resolve()), name) for r, name in roots if r is not None),
                            key=lambda item: -len(item[0]))

    def clean(self, text: str, given: Sequence[str] = ()) -> str:
        """``text`` with its server paths replaced, but for the spans ``given``: words of the user's own that the
        message quotes (an archive's member name '/etc/passwd': an error's ``given``, :func:`given_spans`), which
        are no server path."""
        kept = sorted({span for span in given if span and span in text}, key=len, reverse=True)
        parts = re.split("(" + "|".join(map(re.escape, kept)) + ")", text) if kept else [text]
        text = "".join(part if i % 2 else self._redact(part) for i, part in enumerate(parts))
        return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "…"

    def _redact(self, text: str) -> str:
        for root, name in self.roots:
            if len(root) > 1:
                text = text.replace(root, name)
        return self._ABSOLUTE.sub(lambda match: self._server_path(match, text), text)

    @staticmethod
    def _server_path(match: re.Match, text: str) -> str:
        """What replaces the absolute-looking path ``match``: after a space it may be the rest of a relative name
        whose folder ends in a space ('train/Cat /a.png'; an extremes round read 'train/Cat <server path>'), so
        there it is a server path only when its top folder exists on this server."""
        path = match.group()
        after_space = match.start() > 0 and text[match.start() - 1].isspace()
        if after_space and not os.path.lexists("/" + path.strip("/").split("/")[0]):
            return path
        return "<server path>"
