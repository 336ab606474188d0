"""feature_cache: run a frozen image encoder once over a labelled data set and cache the features (HDF5).

Public API (see docs/ARCHITECTURE.md): encoders (:func:`create_encoder`), data sets
(:func:`open_dataset`), extraction (:func:`extract`) and the cache file (:func:`open_cache`,
:func:`write_cache`; format in :mod:`feature_cache.store`).
"""
from .archives import ArchiveLimits
from .datasets import UNLABELLED, LabelledImages, Sample, open_dataset, open_images
from .encoders import (ENCODERS, Encoder, EncoderSpec, check_encoder, create_encoder, list_encoders,
                       weights_file_argument)
from .errors import CacheMismatch, DatasetError, ExtractionBusy, ExtractionCancelled, MissingWeights, UnsafeArchive
from .fingerprint import extractor_fingerprint
from .extract import ExtractionPlan, ExtractResult, discard_partial, extract, plan_extraction, skipped_summary
from .store import SCHEMA_VERSION, FeatureCache, open_cache, orphaned_temporaries, write_cache

__all__ = [
    "ArchiveLimits",
    "CacheMismatch",
    "DatasetError",
    "ENCODERS",
    "Encoder",
    "EncoderSpec",
    "ExtractResult",
    "ExtractionPlan",
    "ExtractionBusy",
    "ExtractionCancelled",
    "FeatureCache",
    "LabelledImages",
    "MissingWeights",
    "SCHEMA_VERSION",
    "Sample",
    "UnsafeArchive",
    "check_encoder",
    "weights_file_argument",
    "create_encoder",
    "discard_partial",
    "extract",
    "extractor_fingerprint",
    "list_encoders",
    "open_cache",
    "open_dataset",
    "open_images",
    "UNLABELLED",
    "orphaned_temporaries",
    "plan_extraction",
    "skipped_summary",
    "write_cache",
]
