"""What a client reads of an error: server-side absolute paths replaced by names, the length bounded (the server
log keeps the full text). The API's error answers and the jobs' ``error`` field both go through it."""
from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Settings

__all__ = ["ClientMessages", "ERROR_GIVEN", "MAX_DETAIL", "given_spans"]

MAX_DETAIL = 2000  # characters of an error message a client gets
# the key of a failed job's result that keeps its error's given spans (:func:`given_spans`): the error, written
# cleaned, is cleaned again as it is read (that of an older version was not), and lost them
ERROR_GIVEN = "error_given"


def given_spans(exc: BaseException) -> tuple[str, ...]:
    """The spans of ``exc``'s message that quote the user's own words (``feature_cache.UnsafeArchive.given``: an
    absolute member name was shown as '<server path>', an extremes round); none for other errors."""
    return tuple(getattr(exc, "given", ()))


_JOINERS = "=:,;|("  # what joins two words with no space between ("x=/etc/y", "a;/opt/y")
_OPENERS = " \t\n[" + _JOINERS  # what comes before a quote that opens a quoted name
_ABSOLUTE_START = re.compile(r"(?:^|[\[" + re.escape(_JOINERS) + r"]|[-=]>)/")  # an absolute path inside a word
_WEB = re.compile(r"https?:$")  # what comes before the "//" of a web address, kept


class ClientMessages:
    """Messages for clients: server-side absolute paths replaced by names (the server log keeps them)."""

    # an absolute path not already under a named root ("<data dir>/runs/x" keeps its tail)
    # ("/etc" alone too: a one-part path is a server path as well; "//opt/x" too); a route of this API ("/api/...")
    # and a web address ("http://host/x") are kept. It starts a message, or follows a space, a quote, a bracket,
    # one of _JOINERS or "->": a "/" inside a relative name the user gave ('test/Shirt (plain)/a.png',
    # 'train/Coat ❄/b.png') is no server path, nor, inside a quoted name, the rest of such a name ('train/Cat /a.png',
    # 'train/runs=/a.png': :meth:`_server_path`)
    _ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"\[" + re.escape(_JOINERS) + r"])|(?<=[-=]>))/+(?!api/)"
                           r"(?:[^\s'\"/:,;()\[\]]+/)*[^\s'\"/:,;()\[\]]+/?")

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
        """What replaces the absolute-looking path ``match``: inside a quoted name it may be the rest of a relative
        name whose folder ends in a space ("'train/Cat /a.png'"; an extremes round read 'train/Cat <server path>') or
        in one of _JOINERS or "->" ("'train/runs=/a.png'", "'train/data(/b.png'"), so there it is kept where it
        continues a relative path: after a space, a quoted name that does not start with "/" ("'Cat /x.png'",
        "'a /etc/x'"); after a joiner, a word with a folder and no absolute path ("mocov2:/w/x.pth", "(/a" and a top
        folder 'runs=' read as such a key: a server path). Outside quotes it is a server path: "x a/b /opt/y",
        "a/b=/etc/y" and "a/b;/opt/y" join a name and a server path. Decided from the text alone: a check of the
        server's file system let a client learn which top folders exist ('a /etc/x' and 'a /nothere/x' were answered
        apart)."""
        start = match.start()
        if start == 0:
            return "<server path>"
        if match.group().startswith("//") and _WEB.search(text[:start]):
            return match.group()
        if not text[start - 1].isspace():  # after a joiner, "->", "[" or a quote: the word it ends
            word = text[:start].rsplit(None, 1)[-1] if text[:start].strip() else ""
            quote = _open_quote(word)  # inside a quoted name: one token
            return match.group() if quote >= 0 and _continues_relative(word[quote + 1:]) else "<server path>"
        before = text[:start].rstrip()
        quote = _open_quote(before)  # inside a quoted name: how it starts
        return match.group() if quote >= 0 and before[quote + 1:quote + 2] not in ("", "/") else "<server path>"


def _open_quote(text: str) -> int:
    """The index of the quote that opens a quoted name still open at the end of ``text``, else -1. A quote opens one
    where it starts ``text`` or follows one of _OPENERS; the same quote closes it where no letter or digit follows
    (an apostrophe inside a name, "'Men's", or a quote of the other kind, "\"Men's", does not; nor one escaped,
    "\\'"). The last quote was taken for the open one: a name's closing quote after a space or "=" ("'x ': /opt/y",
    "'x=' at /opt/y") showed the server path after it, and an apostrophe hid the rest of a name ("\"a/Men's /b\"")."""
    opened = -1
    for i, char in enumerate(text):
        if char not in "'\"":
            continue
        if opened < 0:
            opened = i if i == 0 or text[i - 1] in _OPENERS else -1
        elif char == text[opened] and text[i - 1] != "\\" and not text[i + 1:i + 2].isalnum():
            opened = -1
    return opened


def _continues_relative(word: str) -> bool:
    """Whether ``word`` (what comes before a "/" in a message) is a relative path that the "/" continues: a folder
    in it ("train/Cat ", "train/runs="), and no absolute path ("k=/a", "P=/a:"; "x=" or "mocov2:" alone is no
    folder, and the path after it a server's)."""
    word = word.lstrip("[" + _JOINERS)
    return "/" in word and not _ABSOLUTE_START.search(word)
