"""Content fingerprints: a cache is found again only for the very same data, encoder and parameters.

- :func:`dataset_fingerprint` — sha256 over the class names and, per given split, every sample's
  (source, label, content id) in sorted order. The content id is the file's sha256 for folders and the
  member's CRC-32 + size for zip archives (both change when the bytes change).
- :func:`cache_fingerprint` — sha256 over the data set fingerprint, the encoder name, the weights'
  sha256, the preprocessing, the feature kind / normalisation, the split parameters (val fraction,
  seed, max per class, ...), the stored dtype, the cache schema version and the compute precision —
  the last only when it is not ``fp32``, so that caches written before the precision was recorded (fp32
  on a CPU) keep their fingerprint and are still found; likewise the decoding rule (``decode``) unless
  :data:`FULL_DECODE`, every file decoded whole, the rule of the caches written before it was recorded.
- :func:`extractor_fingerprint` — sha256 over what makes two caches' features comparable, whatever images
  they hold: the encoder, its weights, the preprocessing and the feature kind / normalisation (not the
  stored dtype nor the compute precision: bf16 features approximate fp32 ones). A probe trained on one
  cache applies to another cache's features only when the two agree (``probe.deploy``).

Both take the encoder by :func:`extractor_name`: a weights file named by path (``mocov2:PATH``,
``openclip:ARCH:PATH``) counts by its content (``weights_sha256``), not where it lies, so the same checkpoint
at another path (a relative path, the server's resolved one, a moved file) is the same extractor and cache.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

__all__ = ["dataset_fingerprint", "cache_fingerprint", "extractor_fingerprint", "extractor_name",
           "WEIGHTS_FILE_FIELD", "FULL_DECODE"]

# Encoder families whose name carries a weights file's path, and which ':'-separated field of the name it is
# (``mocov2:PATH``, ``openclip:ARCH:PATH``): the one list (feature_cache.encoders.weights_file_argument, which keeps
# such paths under a service's data root, reads it too).
WEIGHTS_FILE_FIELD = {"mocov2": 1, "openclip": 2}
TAGGED_FAMILIES = frozenset({"openclip"})  # where that field may name a pretrained tag instead of a file
WEIGHTS_FILE = "<weights file>"  # what stands for the path in :func:`extractor_name`
FULL_DECODE = "full"  # a cache's decoding rule when it records none: every file decoded whole (encoders.DECODE_RULE)


def looks_like_path(text: str) -> bool:
    """Whether an encoder name's field reads as a file path by its spelling (a separator or a file suffix), not a
    pretrained tag: the rule that needs no file system (:func:`extractor_name` gives the same on every machine)."""
    return "/" in text or "\\" in text or bool(PurePosixPath(text).suffix)


def weights_field(encoder: str) -> tuple[str, str] | None:
    """``(prefix, field)`` of an encoder name whose family takes a weights file (:data:`WEIGHTS_FILE_FIELD`):
    ``mocov2:PATH`` → ``("mocov2:", PATH)``, ``openclip:ARCH:X`` → ``("openclip:ARCH:", X)`` (X a path or, for
    :data:`TAGGED_FAMILIES`, a pretrained tag); else None."""
    fields = encoder.split(":") if isinstance(encoder, str) else []
    at = WEIGHTS_FILE_FIELD.get(fields[0]) if fields else None
    if at is None or len(fields) <= at or not ":".join(fields[at:]):
        return None
    return ":".join(fields[:at]) + ":", ":".join(fields[at:])  # a Windows drive letter's ':' stays in the path


def spelled_as_tag(prefix: str, field: str) -> bool:
    """Whether a :func:`weights_field` reads as a pretrained tag by its spelling: a family of
    :data:`TAGGED_FAMILIES` and no path's look (``feature_cache.encoders`` also reads an existing file as a path)."""
    return prefix.split(":")[0] in TAGGED_FAMILIES and not looks_like_path(field)


def extractor_name(encoder: str) -> str:
    """``encoder`` with the weights file's path it names replaced by :data:`WEIGHTS_FILE` (``mocov2:/a/m.pth`` →
    ``mocov2:<weights file>``; an open_clip pretrained tag stays): what the fingerprints take, with the weights'
    sha256 beside it."""
    found = weights_field(encoder)
    if found is None or spelled_as_tag(*found):
        return encoder
    return found[0] + WEIGHTS_FILE


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
    decode: str = FULL_DECODE,
) -> str:
    """Hex sha256 of everything that decides a cache's contents (``precision`` counted unless ``fp32``, ``decode``
    unless :data:`FULL_DECODE`)."""
    payload = {
        "dataset": dataset,
        "encoder": extractor_name(encoder),
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
    if decode != FULL_DECODE:
        payload["decode"] = decode
    return hashlib.sha256(_canonical(payload)).hexdigest()


def extractor_fingerprint(*, encoder: str, weights_sha256: str, preprocess: Mapping[str, Any], feature_kind: str,
                          normalized: bool, as_named: bool = False) -> str:
    """Hex sha256 of the feature extractor alone: encoder (:func:`extractor_name`; with ``as_named``, the name as
    given, weights path and all, as reports recorded it before), weights, preprocessing, feature kind and
    normalisation."""
    payload = {"encoder": encoder if as_named else extractor_name(encoder), "weights_sha256": weights_sha256,
               "preprocess": dict(preprocess), "feature_kind": feature_kind, "normalized": bool(normalized)}
    return hashlib.sha256(_canonical(payload)).hexdigest()
