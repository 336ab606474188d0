"""Content fingerprints: a cache is found again only for the very same data, encoder and parameters.

- :func:`dataset_fingerprint` — sha256 over the class names and, per given split, every sample's
  (source, label, content id) in sorted order. The content id is the file's sha256 for folders and the
  member's CRC-32 + size for zip archives (both change when the bytes change).
- :func:`cache_fingerprint` — sha256 over the data set fingerprint, the encoder name, the weights'
  sha256, the preprocessing, the feature kind / normalisation, the split parameters (val fraction,
  seed, max per class, ...), the stored dtype, the cache schema version and the compute precision —
  the last only when it is not ``fp32``, so that caches written before the precision was recorded (fp32
  on a CPU) keep their fingerprint and are still found.
- :func:`extractor_fingerprint` — sha256 over what makes two caches' features comparable, whatever images
  they hold: the encoder, its weights, the preprocessing and the feature kind / normalisation (not the
  stored dtype nor the compute precision: bf16 features approximate fp32 ones). A probe trained on one
  cache applies to another cache's features only when the two agree (``probe.deploy``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["dataset_fingerprint", "cache_fingerprint", "extractor_fingerprint"]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dataset_fingerprint(
    class_names: list[str], splits: Mapping[str, Iterable[tuple[str, int, str]]]
) -> str:
    """Hex sha256 of the data set content: ``splits[name]`` yields (source, label, content_id)."""
    digest = hashlib.sha256()
    digest.update(_canonical({"class_names": list(class_names)}))
    for split in sorted(splits):
        digest.update(split.encode() + b"\n")
        for source, label, content in splits[split]:
            digest.update(f"{source}\t{label}\t{content}\n".encode())
    return digest.hexdigest()


def cache_fingerprint(
    *,
    dataset: str,
    encoder: str,
    weights_sha256: str,
    preprocess: Mapping[str, Any],
    feature_kind: str,
    normalized: bool,
    split_params: Mapping[str, Any],
    dtype: str,
    schema_version: int,
    precision: str = "fp32",
) -> str:
    """Hex sha256 of everything that decides a cache's contents (``precision`` counted unless ``fp32``)."""
    payload = {
        "dataset": dataset,
        "encoder": encoder,
        "weights_sha256": weights_sha256,
        "preprocess": dict(preprocess),
        "feature_kind": feature_kind,
        "normalized": bool(normalized),
        "split_params": dict(split_params),
        "dtype": dtype,
        "schema_version": schema_version,
    }
    if precision != "fp32":
        payload["precision"] = precision
    return hashlib.sha256(_canonical(payload)).hexdigest()


def extractor_fingerprint(*, encoder: str, weights_sha256: str, preprocess: Mapping[str, Any], feature_kind: str,
                          normalized: bool) -> str:
    """Hex sha256 of the feature extractor alone: encoder, weights, preprocessing, feature kind and normalisation."""
    payload = {"encoder": encoder, "weights_sha256": weights_sha256, "preprocess": dict(preprocess),
               "feature_kind": feature_kind, "normalized": bool(normalized)}
    return hashlib.sha256(_canonical(payload)).hexdigest()
