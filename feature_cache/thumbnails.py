"""Small previews of single samples of a labelled data set (the dashboard's failure gallery).

Only a source that the opened data set lists (any split) can be read: the name is looked up in the set of
listed sources, never joined to a path, so ``..``, absolute paths, skipped files and anything else the data set
does not list are refused with :class:`KeyError` before any byte is read.
"""
from __future__ import annotations

import io

from .datasets import LabelledImages, Sample

__all__ = ["THUMBNAIL_SIZE", "Thumbnailer"]

THUMBNAIL_SIZE = 128  # longest side in pixels; smaller images are not enlarged


class Thumbnailer:
    """PNG thumbnails of the samples of one data set (the listed sources are indexed once)."""

    def __init__(self, data: LabelledImages):
        self.data = data
        self._listed = {s.source for samples in data.splits.values() for s in samples}

    def __contains__(self, source: str) -> bool:
        return source in self._listed

    def png(self, source: str, size: int = THUMBNAIL_SIZE) -> bytes:
        """The sample ``source`` as PNG bytes, longest side at most ``size`` pixels.

        Raises:
            KeyError: the data set does not list ``source``.
            ValueError: ``size`` is not in 8..512.
            OSError: the file no longer decodes.
        """
        if source not in self._listed:
            raise KeyError(f"{source!r} is not a sample of this data set")
        if not 8 <= size <= 512:
            raise ValueError(f"size must lie in 8..512 pixels, got {size}.")
        image = self.data.load_image(Sample(source, -1))
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        image.thumbnail((size, size))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()
