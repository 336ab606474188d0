"""Exceptions that callers of :mod:`feature_cache` are expected to catch.

Caller mistakes that need no special handling stay plain ``ValueError`` / ``KeyError``; these
subclasses exist because the app maps them to specific job states or HTTP answers.
"""
from __future__ import annotations

__all__ = [
    "DatasetError",
    "NoClassFolders",
    "DatasetChanged",
    "FileChanged",
    "UnsafeArchive",
    "CacheMismatch",
    "ExtractionCancelled",
    "ExtractionBusy",
    "MissingWeights",
]


class DatasetError(ValueError):
    """The data set cannot be used as given (empty class, a single class, unknown layout, ...)."""


class NoClassFolders(DatasetError):
    """Fewer than 2 classes where the images sit in no class folder or all directly in one folder: perhaps unlabelled
    images, which ``open_images`` reads. The service adds how its clients ask for that (an upload's flag)."""


class DatasetChanged(DatasetError):
    """Files of the data set were removed or moved while its features were extracted: the extraction stopped,
    keeping what it wrote; with the files back, the same request resumes it (a service job's Resume)."""

    retryable = True  # app.worker.retryable reads it: the job may succeed when resumed


class FileChanged(DatasetChanged):
    """A file of the data set read with other bytes than when the data set was opened and its content counted in the
    fingerprint (``feature_cache.archives``' folder and tar readers check an extraction's reads against it), or an
    archive replaced since (a zip a DataLoader worker reopens must be the file listed)."""


class ImageChanged(FileChanged):
    """A listed image whose bytes are not those its cache encoded (its recorded content digest): a thumbnail asked
    for with that digest is refused (the service's 409), not shown as the image a run on the cache scored."""


class UnsafeArchive(ValueError):
    """An archive breaks a safety rule (path escape, a member that is not a file, folder or link, size /
    member-count / ratio limit); link members are skipped, not refused.

    ``given``: spans of the message that quote the archive's own words (a member name as ``repr`` writes it), no
    server path even where they look like one ('/etc/passwd'): the service shows them as they are."""

    def __init__(self, message: str, given: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.given = given

    def __reduce__(self):  # pickled (a DataLoader worker's error) with its given spans
        return type(self), (str(self), self.given)


class CacheMismatch(ValueError):
    """An existing cache file does not belong to the request (different fingerprint or schema)."""


class ExtractionCancelled(Exception):
    """``should_stop()`` returned True; only a resumable ``*.partial`` file is left behind."""


class ExtractionBusy(RuntimeError):
    """Another process is extracting into the same cache file right now (its lock or its partial file is held)."""


class MissingWeights(FileNotFoundError):
    """An encoder's weights file is not on this machine (nothing is ever downloaded)."""
