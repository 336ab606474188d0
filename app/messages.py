"""What a client reads of an error: server-side absolute paths replaced by names, the length bounded (the server
log keeps the full text). The API's error answers and the jobs' ``error`` field both go through it."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .config import Settings

__all__ = ["ClientMessages", "MAX_DETAIL"]

MAX_DETAIL = 2000  # characters of an error message a client gets


class ClientMessages:
    """Messages for clients: server-side absolute paths replaced by names (the server log keeps them)."""

    # an absolute path not already under a named root ("<data dir>/runs/x" keeps its tail)
    # ("/etc" alone too: a one-part path is a server path as well); a route of this API ("/api/...") is kept. It
    # starts a message, or follows a space, a quote, a bracket, "=", ":" or ",": a "/" inside a relative name the
    # user gave ('test/Shirt (plain)/a.png', 'train/Coat ❄/b.png') is no server path
    _ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))/(?!api/)(?:[^\s'\"/:,;()\[\]]+/)*[^\s'\"/:,;()\[\]]+/?")

    def __init__(self, settings: Settings) -> None:
        roots = [(settings.data_root, "<data root>"), (settings.data_dir, "<data dir>"),
                 (Path(sys.prefix), "<python>"), (Path.home(), "~")]
        self.roots = sorted(((str(Path(r).resolve()), name) for r, name in roots if r is not None),
                            key=lambda item: -len(item[0]))

    def clean(self, text: str) -> str:
        for root, name in self.roots:
            if len(root) > 1:
                text = text.replace(root, name)
        text = self._ABSOLUTE.sub("<server path>", text)
        return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "…"
