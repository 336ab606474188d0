"""Small previews of single samples of a labelled data set (the dashboard's failure gallery).

Only a source that the opened data set lists (any split) can be read: the name is looked up in the set of
listed sources, never joined to a path, so ``..``, absolute paths, skipped files and anything else the data set
does not list are refused with :class:`KeyError` before any byte is read.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict

from .datasets import LabelledImages, Sample, decode_opened, to_rgb
from .errors import ImageChanged

__all__ = ["THUMBNAIL_SIZE", "THUMBNAIL_SIZES", "Thumbnailer", "changed_since_extraction", "listing_digest"]

THUMBNAIL_SIZE = 128  # longest side in pixels; smaller images are not enlarged
# The sizes a preview is made at: a size asked is read as the largest of these not over it (steps of at most 1.5x).
# Each size asked was made and kept apart: 505 sizes of one image made 505 previews, each decoding it again and
# pushing the others out (a review).
THUMBNAIL_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# Previews kept per data set (a gallery page asks for the same ones again), at most this many bytes: counted in
# entries, 256 previews of 512 px (~630 KB each) held 160 MB a data set (a review).
_KEPT_BYTES = 16 * 1024 * 1024


class Thumbnailer:
    """PNG thumbnails of the samples of one data set (the listed sources are indexed once)."""

    def __init__(self, data: LabelledImages):
        self.data = data
        self._listed = {s.source for samples in data.splits.values() for s in samples}
        self._made: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()  # by (content digest, size)
        self._lock = threading.Lock()  # the service's request threads share one Thumbnailer per data set
        self._bytes = 0

    def __contains__(self, source: str) -> bool:
        return source in self._listed

    def png(self, source: str, size: int = THUMBNAIL_SIZE, digest: bytes | None = None) -> bytes:
        """The sample ``source`` as PNG bytes, longest side at most ``size`` pixels (the largest of
        :data:`THUMBNAIL_SIZES` not over it), made of the bytes read now and kept by their content: a file rewritten
        since (same name, same size) is shown as it is now.

        Args:
            digest: the :func:`~feature_cache.datasets.content_digest` a cache recorded of ``source`` (its
                ``digests``): the file's bytes must still be those (else
                :class:`~feature_cache.errors.ImageChanged`, nothing shown).

        Raises:
            KeyError: the data set does not list ``source``.
            ValueError: ``size`` is not in 8..512.
            ImageChanged: the file's bytes are not those of ``digest`` (:func:`changed_since_extraction`).
            OSError: the file no longer decodes.
            PIL.Image.DecompressionBombError: it would decode to more than ``datasets.MAX_DECODED_PIXELS``.
        """
        if source not in self._listed:
            raise KeyError(f"{source!r} is not a sample of this data set")
        if not THUMBNAIL_SIZES[0] <= size <= THUMBNAIL_SIZES[-1]:
            raise ValueError(f"size must lie in {THUMBNAIL_SIZES[0]}..{THUMBNAIL_SIZES[-1]} pixels, got {size}.")
        size = max(s for s in THUMBNAIL_SIZES if s <= size)
        image, found = self.data.open_with_digest(Sample(source, -1))
        if digest is not None and found != digest:
            raise ImageChanged(changed_since_extraction(source))
        # kept by content, not by name: a preview kept by (source, size) showed the old picture of a file replaced
        # by another of the same name until the data set's top folder changed (a review)
        key = (found, size)
        with self._lock:
            made = self._made.get(key)
            if made is not None:
                self._made.move_to_end(key)
                return made
        made = _png(image, size)
        with self._lock:
            if key not in self._made:
                self._made[key] = made
                self._bytes += len(made)
            while self._bytes > _KEPT_BYTES and len(self._made) > 1:
                self._bytes -= len(self._made.popitem(last=False)[1])
        return made


def changed_since_extraction(source: str) -> str:
    """Why the preview of ``source`` is not shown: its file's bytes differ from those its cache encoded."""
    return (f"the image {source!r} changed since its features were extracted: the file there now is not the image "
            "the cache encoded (nor the one a run on it scored); extract the data set again to see it as it is now")


def _png(image, size: int) -> bytes:
    """The opened ``image`` decoded as an extraction decodes, under the same pixel bound and in its words (a JPEG at
    1/2 .. 1/8 of its size, any image reduced while at least twice the preview), as PNG bytes of at most ``size``
    pixels a side: a 12,000 × 12,000 PNG of zeros, 420 KB zipped, decoded 432 MB for each request of its 128-pixel
    preview, eight at once 14 s and 1.7 GB (an attack round)."""
    image = decode_opened(image, (size, size))
    image = image if image.mode == "L" else to_rgb(image)
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def listing_digest(root: str | os.PathLike) -> bytes | None:
    """A digest of what the folder ``root`` lists: the path of every entry under it, and the size and modification time
    of each file at its top (a manifest pair's train.csv and test.csv: a row added grows its file, a row's path changed
    to another of the same length rewrites it; a symlinked one's target's), symlinked folders not followed; None where
    ``root`` is not a folder (an archive: its own modification time tells a change). Digests are compared for equality
    only: an index of the data set made at the same digest lists what it would list now, whatever the files' times
    say (a manifest row added for an old file, a network share's skewed clock). Names from the directory scans alone
    below the top: a size for each of 50,000 files tripled the cost (one lstat each)."""
    if not os.path.isdir(root):
        return None
    digest = hashlib.sha256()
    folders = [(os.fspath(root), "")]
    while folders:
        folder, prefix = folders.pop()
        listed = []
        try:
            with os.scandir(folder) as scan:
                for entry in sorted(scan, key=lambda entry: entry.name):
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, f"{prefix}{entry.name}/"))
                        listed.append(f"{entry.name}/")
                    else:
                        stamp = "" if prefix else f"/{_top_stamp(entry)}"
                        listed.append(entry.name + stamp)
        except OSError as exc:  # a folder unreadable or gone while scanned: its state, as far as it was read
            listed.append(f"/{type(exc).__name__}")
        # NUL-separated, "/" before a size or an error: neither is in a name ('a\nb' and 'a', 'b' read the same)
        digest.update("\0".join([prefix, *listed, "", ""]).encode("utf-8", "surrogateescape"))
    return digest.digest()


def _top_stamp(entry: os.DirEntry) -> str:
    """The size and modification time (ns) of a file at the listed folder's top, through a symlink (a manifest
    ``test.csv`` linked to ``manifests/v1/test.csv``, relinked to v2 or grown, kept its link's size: no re-index, its
    new rows' thumbnails 404); the link's own where it leads nowhere or loops."""
    try:
        stat = entry.stat(follow_symlinks=True)
    except OSError:
        stat = entry.stat(follow_symlinks=False)
    return f"{stat.st_size}/{stat.st_mtime_ns}"
