"""CSV manifests: ``path,label[,split]`` rows, paths relative to the CSV file's folder.

- The header row is required and must name ``path`` and ``label`` (any order, case-insensitive); an
  optional ``split`` column (``train`` / ``val`` / ``test``) gives the split, otherwise the product splits
  the set itself (stratified, seeded).
- A path that is absolute or climbs out of the manifest's folder (``..``) raises
  :class:`~feature_cache.errors.UnsafeArchive`; a listed file that does not exist, a symlink resolving
  outside the folder, a non-image file or a repeated row is skipped and listed.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .archives import FileListReader, check_member_name
from .errors import DatasetError, UnsafeArchive

__all__ = ["read_manifest"]

_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def read_manifest(
    path: Path, image_extensions: frozenset[str]
) -> tuple[FileListReader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]:
    """Parse a manifest → (reader, {split: {class: [files]}}, skipped, layout)."""
    root = path.resolve().parent
    skipped: list[tuple[str, str]] = []
    given: dict[str, dict[str, list[str]]] = {}
    seen: set[str] = set()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "path" not in header or "label" not in header:
            raise DatasetError(
                f"{path}: the first row must be a header naming the columns 'path' and 'label' "
                f"(and optionally 'split'), got {header}."
            )
        col_path, col_label = header.index("path"), header.index("label")
        col_split = header.index("split") if "split" in header else None
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise DatasetError(f"{path}: row {line} has {len(row)} columns, the header has {len(header)}.")
            raw, label = row[col_path].strip(), row[col_label].strip()
            try:
                name = check_member_name(raw, path.name)
            except UnsafeArchive as exc:
                raise UnsafeArchive(f"{path}: row {line}: path {raw!r} escapes the manifest folder ({exc}).") from exc
            if not label:
                raise DatasetError(f"{path}: row {line}: empty label for {raw!r}.")
            split = "train"
            if col_split is not None:
                split = _SPLITS.get(row[col_split].strip().lower(), "")
                if not split:
                    raise DatasetError(
                        f"{path}: row {line}: split {row[col_split]!r} is not one of train, val, test."
                    )
            classes = given.setdefault(split, {})
            classes.setdefault(label, [])
            if name in seen:
                skipped.append((name, "repeated row in the manifest"))
            elif not (root / name).is_file():
                skipped.append((name, "listed in the manifest but not found"))
            elif not (root / name).resolve().is_relative_to(root):
                skipped.append((name, "symlink pointing outside the manifest folder"))
            elif Path(name).suffix.lower() not in image_extensions:
                skipped.append((name, f"not an image file (extension {Path(name).suffix or 'none'!r})"))
            else:
                classes[label].append(name)
            seen.add(name)
    if not given:
        raise DatasetError(f"{path}: the manifest lists no images.")
    names = [f for classes in given.values() for files in classes.values() for f in files]
    layout = "manifest-splits" if col_split is not None else "single-tree"
    if col_split is not None and not {"train", "test"} <= set(given):
        raise DatasetError(f"{path}: a 'split' column must give at least train and test rows, got {sorted(given)}.")
    return FileListReader(root, names), {s: {c: sorted(f) for c, f in cl.items()} for s, cl in given.items()}, skipped, layout
