"""CSV manifests: ``path,label[,split]`` rows, paths relative to the CSV file's folder.

- The header row is required (any column order, case-insensitive, a space or hyphen read as ``_``). It must name
  a path column — one of ``path``, ``filepath``, ``file_path``, ``file``, ``filename``, ``image``,
  ``image_path`` — and a label column — one of ``label``, ``class``, ``class_name``, ``target``, ``category``.
  An optional ``split`` column (``train`` / ``val`` / ``test``; also ``subset``) gives the split, otherwise the
  product splits the set itself (stratified, seeded). Integer labels take their names from a names column
  (``NAME_COLUMNS``: ``label_name``, ``class_name``, ...) where there is one. Other columns are ignored.
- A path is normalised (``cat/../cat/x.jpg`` is ``cat/x.jpg``); one that is absolute or climbs out of the
  manifest's folder (``..``) raises :class:`~feature_cache.errors.UnsafeArchive`; a listed file that does not
  exist, is no regular file (a FIFO, socket or device), a symlink resolving outside the folder, a non-image file
  or a repeated row is skipped and listed.
"""
from __future__ import annotations

import codecs
import csv
import posixpath
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from probe.names import class_name

from .archives import (EMPTY_FILE, NOT_REGULAR, UNPRINTABLE_NAME, FileListReader, unprintable,
                       check_member_name, is_special, not_an_image, printable)
from .errors import DatasetError, UnsafeArchive

__all__ = ["read_manifest", "read_manifest_pair", "MANIFEST_PAIR", "has_manifest_pair", "label_forms"]

# A folder holding both files is read as one data set: every row of the first is training data (validation is
# carved from it), every row of the second is test data.
MANIFEST_PAIR = ("train.csv", "test.csv")

_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Accepted header names of each column, in order of preference (the first one present is used).
PATH_COLUMNS = ("path", "filepath", "file_path", "file", "filename", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "class_name", "target", "category")
SPLIT_COLUMNS = ("split", "subset")
# A column naming the classes of integer labels (Kaggle's and Hugging Face's exports: ``label`` 0..9 beside
# ``label_name``): where one is present besides the label column, a row whose label is an integer takes its name.
# Only columns that say they name the labels: ``name`` (often the file's), ``category`` and ``class`` (often a coarser
# grouping, several labels to one) beside integer labels refused manifests that had read as they are (a review).
NAME_COLUMNS = ("label_name", "class_name", "label_text")


def _header_name(cell: str) -> str:
    """A header cell as the column names above spell it: case-insensitive, spaces and hyphens as underscores
    (``Image Path`` and ``file-path`` name ``image_path`` and ``file_path``)."""
    return re.sub(r"[\s-]+", "_", cell.strip().lower())


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    """Index of the first of ``names`` present in ``header``, else None."""
    return next((header.index(name) for name in names if name in header), None)


class _Labels:
    """Each row's class name: its label, or, for an integer label beside a names column (``NAME_COLUMNS``), that
    column's name, the same for every row of that integer (a manifest of ``label`` 0..9 and ``label_name`` had
    classes '0'..'9', its names unread; a new-user round). ``named`` (integer label → its name and where it was
    first named) is shared by a train and a test manifest read together: each file's names held alone, test.csv's
    label 0 named 'dog' where train.csv's was 'cat' swapped the two classes' test images without a word, and a
    test.csv without the names column had classes '0', '1' beside train.csv's 'cat', 'dog' (a review); its integers
    take the names the other file gave them (test.csv's read first where only it has the column: read_manifest_pair)."""

    def __init__(self, path: Path, header: list[str], col_label: int, named: dict[str, tuple[str, Path, int]]):
        self.path, self.col_label, self.named = path, col_label, named
        self.col_name = next((header.index(n) for n in NAME_COLUMNS if n in header and header.index(n) != col_label),
                             None)
        self.numbers = {name: number for number, (name, *_) in named.items()}  # name → the integer label it names

    def __call__(self, row: list[str], line: int) -> str:
        label = row[self.col_label].strip()
        if not re.fullmatch(r"[+-]?\d+", label) or (self.col_name is None and str(int(label)) not in self.named):
            return class_name(label)
        number = str(int(label))
        if self.col_name is None:  # named by the manifest read with this one
            return self.named[number][0]
        name = class_name(row[self.col_name].strip())
        if not name:
            raise DatasetError(f"{self.path}: row {line}: label {label} has an empty name in the names column.")
        first, where, row_first = self.named.setdefault(number, (name, self.path, line))
        other = self.numbers.setdefault(name, number)
        if name != first or other != number:
            at = f"row {row_first}" if where == self.path else f"{where.name} row {row_first}"
            said = (f"label {label} is named {name!r} here but {first!r} at {at}" if name != first else
                    f"labels {other} and {label} are both named {name!r}")
            raise DatasetError(f"{self.path}: row {line}: {said}: each integer label needs one name of its own in the "
                               "names column.")
        return name


def _not_utf8(path: Path) -> str:
    """The message for a manifest that does not decode as UTF-8, naming the first bad byte and its line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {number}): save it as UTF-8."
    return f"{path} is not UTF-8 text: save it as UTF-8."  # pragma: no cover - the text reader failed on it


def _check_utf16(path: Path) -> None:
    """Refuse UTF-16 (or UTF-32) text: it decodes as UTF-8 only as NUL-padded nonsense, so say what it is."""
    with open(path, "rb") as handle:
        start = handle.read(4096)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DatasetError(f"{path} is UTF-16 text, not UTF-8: save it as UTF-8 (in Excel: CSV UTF-8).")
    if b"\x00" in start:
        raise DatasetError(f"{path} holds NUL bytes (UTF-16 text without a byte-order mark, or not text at all): "
                           "save it as UTF-8 text (in Excel: CSV UTF-8).")


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The manifest's rows with the line each ends on; text that is not UTF-8 (a byte-order mark is fine) or
    not CSV is a :class:`DatasetError` naming the file and the line."""
    _check_utf16(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise DatasetError(_not_utf8(path)) from exc
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise DatasetError(f"{path}: line {reader.line_num} has a field longer than the CSV reader's limit "
                                   f"of {csv.field_size_limit()} characters: is it a manifest of path,label "
                                   "rows?") from exc
            raise DatasetError(f"{path}: line {reader.line_num} is not valid CSV ({exc}).") from exc


def _row_split(path: Path, line: int, cell: str, split: str | None) -> str:
    """The split a row's split column gives, which must be ``split`` where the file is one (one of a pair,
    ``MANIFEST_PAIR``): a train.csv whose split column set val and test rows apart was read as training data
    throughout without a word (a review). Refused, not warned of: training on the images a user held out would
    spoil every figure measured on them, and a warning scrolls by before an hours-long extraction."""
    given = _SPLITS.get(cell.strip().lower(), "")
    if not given:
        raise DatasetError(f"{path}: row {line}: split {cell!r} is not one of train, val, test.")
    if split is not None and given != split:
        raise DatasetError(f"{path}: row {line}: split {cell!r} in {path.name} of a {' / '.join(MANIFEST_PAIR)} "
                           f"pair, every row of which is {split} data (validation images are carved from "
                           f"{MANIFEST_PAIR[0]}): leave the row out, or the split column.")
    return given


def read_manifest(
    path: Path, image_extensions: frozenset[str], *, split: str | None = None, seen: set[str] | None = None,
    named: dict[str, tuple[str, Path, int]] | None = None,
) -> tuple[FileListReader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]:
    """Parse a manifest → (reader, {split: {class: [files]}}, skipped, layout).

    ``split`` puts every row in that split (a split column must then say that split: ``_row_split``); ``seen``
    is shared by manifests read together, so a file listed twice is skipped once as a repeat, and so is
    ``named``, so that an integer label has one name in both (``_Labels``).
    """
    root = path.resolve().parent
    skipped: list[tuple[str, str]] = []
    given: dict[str, dict[str, list[str]]] = {}
    seen = set() if seen is None else seen
    with closing(_rows(path)) as rows:
        header = [_header_name(h) for h in next(rows, (1, []))[1]]
        col_path, col_label = _column(header, PATH_COLUMNS), _column(header, LABEL_COLUMNS)
        if col_path is None or col_label is None:
            raise DatasetError(
                f"{path}: the first row must be a header naming a path column ({', '.join(PATH_COLUMNS)}) "
                f"and a label column ({', '.join(LABEL_COLUMNS)}), and optionally a split column "
                f"({', '.join(SPLIT_COLUMNS)}: train / val / test); got {header}."
            )
        named = {} if named is None else named
        col_split, labels = _column(header, SPLIT_COLUMNS), _Labels(path, header, col_label, named)
        for line, row in rows:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise DatasetError(f"{path}: row {line} has {len(row)} columns, the header has {len(header)}.")
            raw, label = row[col_path].strip(), labels(row, line)
            try:  # normalised first: 'train/cat/../cat/x.jpg' stays inside, 'cat/../../x.jpg' is still refused
                name = check_member_name(posixpath.normpath(raw.replace("\\", "/")) if raw else raw, path.name)
            except UnsafeArchive as exc:
                # in a manifest's words, not an archive's ("archives must use relative paths"; an attack round)
                raise UnsafeArchive(f"{path}: row {line}: path {raw!r} escapes the manifest's folder: its paths are "
                                    "relative to it, with no absolute path, '..' out of it or NUL byte.",
                                    given=(repr(raw),)) from exc
            if not label:
                raise DatasetError(f"{path}: row {line}: empty label for {raw!r}.")
            row_split = split or "train"
            if col_split is not None:
                row_split = _row_split(path, line, row[col_split], split)
            classes = given.setdefault(row_split, {})
            classes.setdefault(label, [])
            if unprintable(name):
                skipped.append((printable(name), UNPRINTABLE_NAME))
            elif name in seen:
                skipped.append((name, "repeated row in the manifest"))
            elif is_special(root / name):  # a FIFO would block its reader
                skipped.append((name, NOT_REGULAR))
            elif not (root / name).is_file():
                skipped.append((name, "listed in the manifest but not found"))
            elif not (root / name).resolve().is_relative_to(root):
                skipped.append((name, "symlink pointing outside the manifest folder"))
            elif (root / name).stat().st_size == 0:
                skipped.append((name, EMPTY_FILE))
            elif Path(name).suffix.lower() not in image_extensions:
                skipped.append((name, not_an_image(name)))
            else:
                classes[label].append(name)
            seen.add(name)
    if not given:
        raise DatasetError(f"{path}: the manifest lists no images.")
    names = [f for classes in given.values() for files in classes.values() for f in files]
    layout = "manifest-splits" if col_split is not None else "single-tree"
    if split is None and col_split is not None and not ({"train", "test"} <= set(given) or set(given) == {"test"}):
        raise DatasetError(f"{path}: a 'split' column must give at least train and test rows (or test rows only: "
                           f"new labelled images to score a probe on), got {sorted(given)}.")
    return FileListReader(root, names), {s: {c: sorted(f) for c, f in cl.items()} for s, cl in given.items()}, skipped, layout


def _read_names(path: Path, named: dict[str, tuple[str, Path, int]]) -> bool:
    """Put in ``named`` the integer labels that ``path``'s names column names (``_Labels``), reading no image;
    whether it has such a column. A row the full read refuses is left to it."""
    with closing(_rows(path)) as rows:
        header = [_header_name(h) for h in next(rows, (1, []))[1]]
        col_label = _column(header, LABEL_COLUMNS)
        labels = None if col_label is None else _Labels(path, header, col_label, named)
        if labels is None or labels.col_name is None:
            return False
        for line, row in rows:
            if len(row) >= len(header) and row[col_label].strip():
                labels(row, line)
    return True


def label_forms(paths: list[Path]) -> dict[str, set[str]]:
    """Each class name of the manifests ``paths`` → its labels as written there (the label and names columns'
    cells; an integer label beside a names column is no name): more than one where the manifest writes one name in
    two Unicode forms ('café' composed and decomposed), which ``class_name`` reads as one, or with white space at an
    end ('cat ' and 'cat'), which a label loses."""
    forms: dict[str, set[str]] = {}
    for path in paths:
        with closing(_rows(path)) as rows:
            header = [_header_name(h) for h in next(rows, (1, []))[1]]
            label, names = _column(header, LABEL_COLUMNS), _column(header, NAME_COLUMNS)
            numbered = names is not None and names != label
            for _, row in rows:
                cells = [row[c] for c in {label, names} - {None} if c < len(row)
                         and not (c == label and numbered and re.fullmatch(r"\s*[+-]?\d+\s*", row[c]))]
                for cell in cells:
                    forms.setdefault(class_name(cell.strip()), set()).add(cell)
    return forms


def has_manifest_pair(folder: Path) -> bool:
    """Whether ``folder`` holds a train and a test manifest (``MANIFEST_PAIR``)."""
    return all((folder / name).is_file() for name in MANIFEST_PAIR)


def read_manifest_pair(
    folder: Path, image_extensions: frozenset[str]
) -> tuple[FileListReader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]:
    """A train and a test manifest given together (``folder/train.csv``, ``folder/test.csv``) → one data set."""
    seen: set[str] = set()
    named: dict[str, tuple[str, Path, int]] = {}  # integer label → its name, one in both files (_Labels)
    train_csv, test_csv = (folder / name for name in MANIFEST_PAIR)
    # test.csv's names column names train.csv's bare integer labels too: read first, its classes 'cat', 'dog' were
    # refused as having no training images beside train.csv's '0', '1' (a review)
    if not _read_names(train_csv, named):
        _read_names(test_csv, named)
    _, train, skipped, _ = read_manifest(train_csv, image_extensions, split="train", seen=seen, named=named)
    _, test, test_skipped, _ = read_manifest(test_csv, image_extensions, split="test", seen=seen, named=named)
    given = {**train, **test}
    names = [f for classes in given.values() for files in classes.values() for f in files]
    return FileListReader(folder, names), given, skipped + test_skipped, "manifest-pair"
