"""feature_cache: run a frozen image encoder once over a labelled data set and cache the features (HDF5).

Public API (see docs/ARCHITECTURE.md): encoders (:func:`create_encoder`), data sets
(:func:`open_dataset`), extraction (:func:`extract`) and the cache file (:func:`open_cache`,
:func:`write_cache`; format in :mod:`feature_cache.store`).

Public names are listed below with the module that defines each and imported on first use (PEP 562), as in
``probe``: the torch-free modules (``archives``, ``datasets``, ``errors``, ``fingerprint``, ``idx``, ``manifest``)
load without torch, so the service reads their definitions (the split names, the archive suffixes) without it.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from probe.lazy import lazy_names

# public name -> defining module (relative to this package)
_EXPORTS: dict[str, str] = {
    "ArchiveLimits": "archives",
    **dict.fromkeys(["UNLABELLED", "LabelledImages", "Sample", "open_dataset", "open_images"], "datasets"),
    **dict.fromkeys(["ENCODERS", "Encoder", "EncoderSpec", "check_encoder", "create_encoder", "list_encoders",
                     "weights_file_argument"], "encoders"),
    **dict.fromkeys(["CacheMismatch", "DatasetError", "ExtractionBusy", "ExtractionCancelled", "MissingWeights",
                     "NoClassFolders", "UnsafeArchive"], "errors"),
    "extractor_fingerprint": "fingerprint",
    **dict.fromkeys(["ExtractionPlan", "ExtractResult", "discard_partial", "extract", "plan_extraction",
                     "skipped_summary", "rotated_note"], "extract"),
    **dict.fromkeys(["SCHEMA_VERSION", "FeatureCache", "open_cache", "orphaned_temporaries", "write_cache"], "store"),
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals())


class _Package(types.ModuleType):
    """``feature_cache.extract`` is the function :func:`feature_cache.extract.extract`, as when this package imported
    it eagerly: importing the submodule of that name binds the module there, and ``from feature_cache import
    extract`` then gave a module to call. A property of the package's class outranks that binding."""

    @property
    def extract(self) -> Any:
        return self.__dict__.get("_extract") or importlib.import_module(".extract", __name__).extract

    @extract.setter
    def extract(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):  # the import system binding the submodule: the function stays
            self.__dict__["_extract"] = value  # anything else set here (a test's stand-in) is taken


sys.modules[__name__].__class__ = _Package
