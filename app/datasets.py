"""Getting data sets into the service: streamed uploads and server-side paths under the data root.

Archive safety (path escapes, bombs, limits) and layout detection are ``feature_cache.open_dataset``'s
job; here we stream bytes to disk under a size limit, keep registrations inside the data root and record
what ``open_dataset`` found.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from feature_cache.datasets import ARCHIVE_SUFFIXES, SPLITS, classes_without, dataset_counts, how_to_add  # torch-free
from feature_cache.defaults import DEFAULT_VAL_FRACTION
from probe.names import listed

from .skipped import group_reasons, recorded_files
from .status import NO_ROOM, NoSpace, UploadStalled
from .store import Store, new_id

logger = logging.getLogger(__name__)



class UploadTooLarge(Exception):
    """The request body passed ``max_upload_bytes`` (the API answers 413)."""


def _in_units(size: int) -> str:
    """``size`` bytes as a reader counts them: "125.0 MiB", "2.50 GiB"."""
    return f"{size / 2 ** 20:,.1f} MiB" if size < 2 ** 30 else f"{size / 2 ** 30:,.2f} GiB"


def upload_too_large(limit: int, size: int | None = None) -> UploadTooLarge:
    """The 413 of an upload over ``limit`` bytes, ``size`` its declared length where the request gave one. Its
    sizes in MiB or GiB beside the bytes: "upload of 2684354560 bytes is over the limit of 2147483648 bytes" left a
    photographer's 2.5 GiB of photos to count digits, and nothing said what to do instead (a new-user round)."""
    what = "upload" if size is None else f"upload of {size} bytes ({_in_units(size)})"
    return UploadTooLarge(f"{what} is over the limit of {limit} bytes ({_in_units(limit)}, MR2PROBE_MAX_UPLOAD_BYTES):"
                          " register the folder or archive by its path on the server instead (under "
                          "MR2PROBE_DATA_ROOT), or have the server's limit raised")


class PathOutsideRoot(PermissionError):
    """A server-side path that is not under the configured data root (the API answers 403)."""


class UploadError(ValueError):
    """A malformed upload or registration request (the API answers 422)."""


class PathMissing(UploadError):
    """A server-side path that does not exist under the data root (the API answers 422)."""


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, reduced to safe characters, keeping its archive suffix."""
    base = re.split(r"[\\/]", name or "")[-1]
    # letters and digits of any script stay ('ünï€😀.zip' was '_n_.zip'; an attack round); nothing else does
    base = re.sub(r"[^\w.-]+", "_", base)
    base = "upload" + base if base.startswith(".") or not base else base  # a hidden name; ".tar.xz" kept its suffix
    if not base.lower().endswith(ARCHIVE_SUFFIXES):
        raise UploadError(f"uploaded file {name!r} is not an archive; accepted: {', '.join(ARCHIVE_SUFFIXES)}")
    return base[-120:]


MAX_FIELD_BYTES = 4096  # a text field of the upload form (only ``name`` is read)
# RFC 6266's extended parameter, filename*=charset'[language]'percent-encoded (RFC 5987/8187), quoted or not
_EXTENDED_FILENAME = re.compile(rb"""(?:^|;)\s*filename\*\s*=\s*"?([^'";]*)'[^'";]*'([^";\s]*)"?""", re.IGNORECASE)


def part_filename(disposition: bytes, plain: bytes | None) -> str | None:
    """A form part's file name from its Content-Disposition header: ``filename*=`` (RFC 5987 encoded, which
    RFC 6266 says to prefer) when given, else the plain ``filename`` (python_multipart's reading of it); None when
    neither. A part with only ``filename*=UTF-8''caf%C3%A9.zip`` was said to have no filename (an extremes
    round)."""
    from urllib.parse import unquote_to_bytes

    extended = _EXTENDED_FILENAME.search(disposition)
    if extended is None:
        return None if plain is None else plain.decode("utf-8", "replace")
    charset = extended.group(1).decode("ascii", "replace").strip() or "utf-8"
    try:
        return unquote_to_bytes(extended.group(2)).decode(charset, "replace")
    except (LookupError, UnicodeError):  # unknown, or a codec that cannot decode with "replace" ('idna')
        raise UploadError(f"the file name's filename* gives charset {charset[:40]!r}, which this service cannot "
                          "decode; use UTF-8") from None


class _MultipartSink:
    """python_multipart callbacks: the part named ``field`` goes to a file in ``dest_dir``, text fields to memory."""

    def __init__(self, dest_dir: Path, field: str) -> None:
        self.dest_dir, self.field = dest_dir, field
        self.headers: dict[bytes, bytes] = {}
        self.header_field, self.header_value = b"", b""
        self.name: str | None = None
        self.file: Any = None
        self.path: Path | None = None
        self.buf = bytearray()
        self.fields: dict[str, str] = {}
        self.ended = False  # the closing boundary was read

    def callbacks(self) -> dict[str, Any]:
        return {"on_header_field": self.on_header_field, "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end, "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end, "on_end": self.on_end}

    def on_end(self) -> None:
        self.ended = True

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = disp.get(b"name", b"").decode("utf-8", "replace")
        if not self.name:  # skipped without a word, as unknown fields were (an attack round)
            raise UploadError("a form part without a name (its Content-Disposition needs name=...): this form takes "
                              f"{self.field}, name, unlabelled")
        filename = part_filename(self.headers.get(b"content-disposition", b""), disp.get(b"filename"))
        if filename is not None and self.name != self.field:
            raise UploadError(f"the archive goes in a form part named '{self.field}'; got a file in "
                              f"{self.name[:40]!r}")
        if self.name == self.field and filename is None:  # it was read as a text field "longer than 4096 bytes"
            raise UploadError(f"the '{self.field}' part has no filename, so it is not a file upload: send the archive "
                              f"as a file (curl -F {self.field}=@archive.zip)")
        if self.name == self.field and filename is not None:
            if self.path is not None:
                raise UploadError(f"send exactly one '{self.field}' part")
            self.path = self.dest_dir / safe_filename(filename)
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed in on_part_end / close()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.file.write(data[start:end])
            return
        self.buf += data[start:end]
        if len(self.buf) > MAX_FIELD_BYTES:
            raise UploadError(f"form field {self.name[:40]!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.file is not None:
            self.close()
        elif self.name:
            if self.name in self.fields:  # the last one silently won (an attack round): which did the client mean?
                raise UploadError(f"form field {self.name[:40]!r} is given twice; send it once")
            try:  # refused, as the same bytes in JSON are: 'bad\xed\xa0\x80name' was stored mangled (an attack round)
                self.fields[self.name] = bytes(self.buf).decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(f"form field {self.name[:40]!r} is not UTF-8 text") from None
        self.headers, self.name, self.buf = {}, None, bytearray()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def stream_multipart_file(content_type: str, body: AsyncIterator[bytes], dest_dir: Path,
                                limit: int, field: str = "file",
                                text_fields: tuple[str, ...] = ("name", "unlabelled")) -> tuple[Path, dict[str, str]]:
    """Write the multipart part named ``field`` straight to ``dest_dir`` chunk by chunk.

    Args:
        content_type: the request's ``Content-Type`` (must be ``multipart/form-data`` with a boundary).
        body: the raw request body, as chunks.
        dest_dir: created; the file keeps its (sanitised) uploaded name.
        limit: largest accepted body in bytes.
        text_fields: the other fields the form takes.

    Returns:
        The written file and the other (small) form fields.

    Raises:
        UploadTooLarge: the body passed ``limit`` (whatever was written is removed by the caller).
        UploadError: not multipart, no ``field`` part, a text field over ``MAX_FIELD_BYTES`` or a bad file name, a
            field the form does not take (``unlabeled=true`` went unnoticed, as unknown JSON fields do not), a body
            that ends before its closing boundary (cut short, it was registered; both an attack round).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(content_type.encode("latin-1", "replace"))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadError("expected multipart/form-data with a 'file' part, or JSON {\"path\": ...}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    sink = _MultipartSink(dest_dir, field)
    received = 0
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise upload_too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except (UploadTooLarge, UploadError, UploadStalled):
        raise
    except OSError as exc:  # writing the file: not the body's fault (a full disk was a 422 'malformed multipart body')
        if exc.errno not in NO_ROOM:
            raise
        logger.warning("upload to %s failed after %d bytes: %s", dest_dir, received, exc)
        raise NoSpace(f"{NO_ROOM[exc.errno][0]}: the upload could not be stored ({received:,} bytes received, "
                      f"nothing kept); {NO_ROOM[exc.errno][1]}") from None
    except Exception as exc:  # python_multipart raises its own errors on malformed bodies
        raise UploadError(f"malformed multipart body: {exc}") from exc
    finally:
        sink.close()
    if not sink.ended:
        raise UploadError("malformed multipart body: it ends before its closing boundary (was the upload cut short?)")
    if sink.path is None:
        raise UploadError(f"multipart body has no '{field}' file part")
    unknown = sorted(set(sink.fields) - set(text_fields))
    if unknown:
        raise UploadError(f"unknown form field {unknown[0]!r}: this form takes {', '.join((field, *text_fields))}")
    logger.info("upload of %d bytes written to %s", received, sink.path)
    return sink.path, sink.fields


def upload_name(value: str | None) -> str | None:
    """The upload form's ``name`` field, checked like the JSON ``name`` (1-200 characters, no control characters)."""
    from pydantic import TypeAdapter, ValidationError

    from .field_errors import constraints_of, refusal
    from .schemas import Name

    if value is None:
        return None
    try:
        return TypeAdapter(Name).validate_python(value)
    except ValidationError as exc:
        # its length or type in every field's words (app.field_errors; pydantic's "String should have at most 200
        # characters" named no value), its own check's (a character not printable) as it says it
        error = exc.errors()[0]
        said = refusal("name", value, constraints_of(TypeAdapter(Name).json_schema(), {})) \
            if error["type"] != "value_error" else None
        raise UploadError(said or f"name: {error['msg'].removeprefix('Value error, ')}") from None


_FLAGS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}


def upload_flag(field: str, value: str | None) -> bool:
    """A yes / no field of the upload form (``unlabelled``): true / false, 1 / 0 or on / off; absent is false."""
    if value is None:
        return False
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise UploadError(f"{field}: must be true or false, got {value[:40]!r}")
    return flag


def is_unlabelled(row: dict[str, Any]) -> bool:
    """A data set or cache row of unlabelled images (registered with ``unlabelled``): images a finished run's
    probe predicts, nothing to train or score on. Its one class is ``feature_cache.UNLABELLED`` (a labelled data
    set has at least 2 classes)."""
    from feature_cache import UNLABELLED

    return list(row["class_names"]) == [UNLABELLED]


def open_registered(path: str | Path, unlabelled: bool, fingerprint: bool = True, **split: Any) -> Any:
    """The ``LabelledImages`` of a registered data set (``unlabelled``: :func:`is_unlabelled` of its row):
    ``feature_cache.open_images`` for unlabelled images (one ``test`` split, every image), else
    ``feature_cache.open_dataset`` with ``split``'s options (``fingerprint`` False: its listing alone)."""
    from feature_cache import open_dataset, open_images

    return open_images(path) if unlabelled else open_dataset(path, fingerprint=fingerprint, **split)


def resolves_elsewhere(stored: Path) -> bool:
    """Whether the resolved path ``stored`` (as registered) now resolves to another path, or to none: a folder or
    file replaced by a symlink, or by a symlink loop (Path.resolve's RuntimeError was a 500; a new-user round)."""
    try:
        return stored.resolve() != stored
    except (OSError, RuntimeError):
        return True


def check_under_root(named: str, stored: Path, data_root: Path | None, held: str) -> None:
    """The rule for what was registered by path (a data set, a cache file): its stored resolved path ``stored`` lies
    under the server's data root as it is now. A data root narrowed (or unset) since the registration leaves it
    outside, where registering it again is refused; read still, it was served from there (an attack round).
    ``named``: what the message names ("data set 'x'", "cache 'x'"); ``held``: what the root must hold again.

    Raises PathOutsideRoot (403)."""
    if data_root is None:  # 'widen the root' named none to widen: `mr2probe serve` after `mr2probe demo`, say
        raise PathOutsideRoot(f"{named} was registered by its path on the server, and this server has no data root "
                              f"(MR2PROBE_DATA_ROOT, or serve --data-root): serve with a data root that holds {held} "
                              "to read it again")
    root = Path(data_root).resolve()
    if stored != root and root not in stored.parents:
        raise PathOutsideRoot(f"{named} lies outside the server's data root (MR2PROBE_DATA_ROOT, narrowed since its "
                              f"registration): widen the root to hold {held} again, or register its files anew under "
                              "the root")


def check_in_place(row: dict[str, Any], data_root: Path | None) -> None:
    """A data set registered by path is still where it was registered, under the server's data root now: its path
    was stored resolved under the data root, so a path that now resolves elsewhere has had its folder (or one above
    it) replaced by a symlink, which would lead thumbnails and extractions out of the data root (found by an outside
    attack round); and a data root narrowed (or unset) since its registration leaves it outside, where registering
    it again is refused (its thumbnails and extractions still read there; an attack round).

    Raises PathOutsideRoot (403). Uploads live in the server's own data folder and are not checked."""
    if row.get("source") != "path":
        return
    stored = Path(row["path"])
    check_under_root(f"data set {row['id']!r}", stored, data_root, "its folder")
    if resolves_elsewhere(stored):
        raise PathOutsideRoot(f"data set {row['id']!r} is no longer where it was registered: its folder (or one above "
                              "it) is now a symlink; register the data set again")


def check_files(row: dict[str, Any], data_root: Path | None) -> None:
    """A registered data set's files are still there, where it was registered.

    Raises PathMissing (its path is gone: 422) or PathOutsideRoot (moved behind a symlink, or outside
    ``data_root``: 403, :func:`check_in_place`)."""
    if not Path(row["path"]).exists():
        raise PathMissing(f"data set {row['id']!r} has no files on the server any more (removed or moved since it was "
                          "registered); register it again")
    check_in_place(row, data_root)


def dataset_problem(row: dict[str, Any], data_root: Path | None) -> str | None:
    """Why no job can read a data set's files now (:func:`check_files`), else None: what the API lists beside each
    data set, as beside each cache, so that a picker leaves it out (a data set removed from the server was still
    offered; an attack round). Its classes are checked when a job is requested (a file listing)."""
    try:
        check_files(row, data_root)
    except (PathMissing, PathOutsideRoot) as exc:
        return str(exc)
    return None


def open_for_extraction(row: dict[str, Any], options: dict[str, Any], data_root: Path | None,
                        fingerprint: bool = True) -> Any:
    """A registered data set (its row) opened with an extraction's split options (``val_fraction``, ``seed``,
    ``max_per_class``; the API's defaults where absent): what the extract step encodes, and a request checks before
    its job (:func:`kept_problem`). Raises PathMissing or PathOutsideRoot for a data set removed or moved since its
    registration (:func:`check_files`): a job whose data set was removed during its queue wait failed with 'data set
    /server/path does not exist.', naming no data set; ``data_root``: the server's, which it must lie under."""
    check_files(row, data_root)
    return open_registered(row["path"], is_unlabelled(row), fingerprint,
                           val_fraction=options.get("val_fraction", DEFAULT_VAL_FRACTION), seed=options.get("seed", 0),
                           max_per_class=options.get("max_per_class"))


def kept_problem(counts: dict[str, list[int]], class_names: list[str], drop: list[str],
                 layout: str | None = None, location: str | None = None) -> str | None:
    """Why a train job leaving out the classes ``drop`` (its ``drop_classes``, checked as names before) cannot run on
    splits of ``counts``: :func:`classes_without_message` of the classes it keeps (``layout``, ``location``: the
    data set's), or
    None. The names are matched as the request's check and the run match them (``probe.splits.kept_classes``: a
    name in decomposed Unicode names its composed class); matched exactly, such a name left its class in, and the
    pipeline the request took failed after its queue wait, saying the data set had changed (an attack round)."""
    from probe.splits import kept_classes

    kept = kept_classes(drop, class_names)
    return classes_without_message({split: [c[k] for k in kept] for split, c in counts.items()},
                                   [class_names[k] for k in kept], layout=layout, location=location)


def changed_since_registration(row: dict[str, Any], data: Any) -> str | None:
    """What changed in a data set's files since its registration (``row``), as a job message, or None; a change of
    its classes raises ``feature_cache.DatasetError``: a request was checked against the registered classes (a
    pipeline's per-class options, their count) and its data set row would list others. An outside round's job
    extracted a data set with a class folder removed, and one with images swapped between classes, without a word.
    """
    from feature_cache import DatasetError

    registered, found = list(row["class_names"]), list(data.class_names)
    if found != registered:
        raise DatasetError(f"data set {row['id']!r} changed since it was registered: its classes are now "
                           f"{_names(found)} (registered: {_names(registered)}); register it again")
    if row.get("fingerprint") and getattr(data, "fingerprint", None) not in (None, "", row["fingerprint"]):
        return (f"data set {row['id']!r} changed since it was registered (images added, removed or edited): this "
                "job extracts its files as they are now; the data set's counts are those of its registration")
    return None


def refused_path(kind: type[Exception], path: str, why: str) -> Exception:
    """``kind`` (PathOutsideRoot, PathMissing) saying "path '<path>' <why>", the path quoted as the client gave it
    and kept so in what it reads (its ``given`` span: app.messages.given_spans). Cleaned as a server path, it read
    '<data root>X/a' for '/srv/rootX/a', '../..~/.ssh/x' for '../../root/.ssh/x', and told a client which of the
    paths it tried were the server's home, Python or data folder (a security review)."""
    quoted = repr(path[:200])
    exc = kind(f"path {quoted} {why}")
    exc.given = (quoted,)
    return exc


URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # file://, s3://, http://: a URL, never a path


def resolve_under_root(path: str, root: Path | None, managed: tuple[Path, ...] = ()) -> Path:
    """Resolve ``path`` (absolute or relative to ``root``) and check that it stays under ``root``, outside the
    folders and files the service manages (``managed``: ``Settings.managed_paths``, its uploads, caches, runs and
    database; a data root inside the data folder keeps its own folders).

    Raises:
        PathOutsideRoot: no data root is configured, the resolved path leaves it (symlinks included), lies in
            ``managed`` (its uploads, caches and runs, which the service deletes: a cache file registered there
            went with its data set's deletion, an attack round). A hard link is the file itself, wherever its other
            names lie: making one under the data root takes the right to write there (README "Security").
        PathMissing: the path is a URL (``s3://``, ``file://``: :data:`URL_SCHEME`), does not exist (or cannot be
            a path here: too long, a NUL byte), or is neither a regular file nor a folder.
    """
    scheme = URL_SCHEME.match(path)
    if scheme:  # 's3://b/k' read as the relative folders 's3:', 'b': "does not exist under the data root" (a round)
        raise refused_path(PathMissing, path, f"is a URL ({scheme.group(0)}), not a server path: the service reads "
                           "only files on its own disk, under its data root; copy them there and give that path")
    if root is None:
        raise PathOutsideRoot("registering server-side paths is disabled: set MR2PROBE_DATA_ROOT")
    root = Path(root).resolve()
    candidate = Path(path)
    try:
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        exists, usable = resolved.exists(), resolved.is_file() or resolved.is_dir()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise refused_path(PathMissing, path, f"cannot be opened here ({type(exc).__name__})") from None
    except RuntimeError:  # a symlink loop (Python < 3.13): a 500 (a new-user round)
        raise refused_path(PathMissing, path, "cannot be opened here (a symlink loop)") from None
    if resolved != root and root not in resolved.parents:
        raise refused_path(PathOutsideRoot, path, "is outside the data root")
    owned = [Path(p).resolve() for p in managed]
    # in one of them, or holding one: a data set at the data root walked the service's runs and quoted them (an
    # attack round)
    if any(resolved == own or own in resolved.parents or resolved in own.parents for own in owned):
        raise refused_path(PathOutsideRoot, path, "lies in or holds the service's own data (its uploads, caches and "
                           "runs, which it deletes): register files of your own, elsewhere under the data root")
    if not exists:
        raise refused_path(PathMissing, path, "does not exist under the data root")
    if not usable:  # a FIFO, a socket, a device: reading one blocks or fails, never a data set
        raise refused_path(PathMissing, path, "is neither a file nor a folder (a FIFO, socket or device)")
    return resolved


def is_test_set(counts: dict[str, list[int]]) -> bool:
    """A labelled test set alone (``feature_cache.open_dataset``: a ``test/`` folder and no other split): new
    images to extract and score shipped probes on, no train or val image to train one."""
    total = {split: sum(counts.get(split) or []) for split in SPLITS}
    return not total["train"] and not total["val"] and bool(total["test"])


UNKNOWN_LAYOUT = "unknown"  # a cache recorded before caches kept their data set's layout: advice in neutral words


def classes_without_message(counts: dict[str, list[int]], class_names: list[str],
                            training: bool = True, layout: str | None = None,
                            location: str | None = None) -> str | None:
    """Why a train job cannot run on splits whose ``counts`` leave a class without a train or test image (a probe
    is trained and scored on every class), naming the classes and the fix (add images, or ``drop_classes``); None if
    every class has both, and for unlabelled images (:func:`is_unlabelled`: no class, only extracted). Without
    ``training`` (registration, extraction: the CLI extracts such a data set too) the same classes as a warning, and
    None for a labelled test set alone (:func:`is_test_set`). ``layout``: the data set's (``params["layout"]``,
    None where not opened, :data:`UNKNOWN_LAYOUT` for a cache recorded before its layout was) and ``location`` (the
    path it was opened from): a manifest's fix is rows in its CSV files, not class folders (:func:`_how_to_add`)."""
    if is_unlabelled({"class_names": class_names}) or (not training and is_test_set(counts)):
        return None
    if is_test_set(counts):
        return (f"it holds test images only ({sum(counts['test'])}), a labelled set to score finished runs' probes "
                "on (extract it alone, then score a run on its cache): a probe needs train images")
    empty = classes_without(counts, class_names)
    if not empty:
        return None
    one = len(empty) == 1
    subject = f"class {_names(empty)} has" if one else f"classes {_names(empty)} have"
    them = "it" if one else "them"
    add = _how_to_add(counts, class_names, layout, location, them)
    drop = f'"drop_classes": {json.dumps(empty, ensure_ascii=False)}'
    said = (f"{subject} no train or no test image once split (images per class: "
            f"{_split_sizes(counts, class_names, empty)}); a probe is trained and scored on every class: ")
    if training:
        return said + f"{add}, or leave {them} out of the job with {drop}"
    return said + (f"every train job on it must leave {them} out with {drop} (the launch form's \"Leave out "
                   f"classes\") (or {add}; extracting keeps {them})")


def _how_to_add(counts: dict[str, list[int]], class_names: list[str], layout: str | None,
                location: str | None, them: str) -> str:
    """How to give classes the train or test images ``counts`` lack them in: images in the data set for a cache that
    does not record its layout (:data:`UNKNOWN_LAYOUT`), else ``feature_cache.datasets.how_to_add``'s words of the
    data set's layout opened from ``location`` (a manifest's rows, class folders). ``them``: the classes' pronoun
    ("it" for one class: "images of them ... leave it out" read for one)."""
    gaps = [split for split in ("train", "test") if classes_without(counts, class_names, (split,))]
    if layout == UNKNOWN_LAYOUT:
        return f"add {' or '.join(gaps)} images of {them} to the data set the cache was extracted from"
    return how_to_add(gaps, layout, location)


class AlreadyRegistered(ValueError):
    """The directory, with the same content, is registered already under another name (HTTP 409)."""


def _same_file(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (False when either is gone)."""
    import filecmp

    try:
        return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def register_dataset(store: Store, path: Path, *, name: str | None, source: str, dataset_id: str | None = None,
                     unlabelled: bool = False) -> tuple[dict[str, Any], bool]:
    """Open the data set with ``feature_cache.open_dataset`` (which validates it) and record it under ``name``
    (``None``: the file or folder name); with ``unlabelled``, every image file under ``path``
    with ``feature_cache.open_images`` (any folders, no classes). Returns the row and whether it is new: the same
    folder with the same content, or an upload of the same content and classes, is the data set already there.

    A data set where a class has no train or no test image is registered as the CLI extracts it, its warnings saying
    so (:func:`classes_without_message`): a train job on it must leave those classes out (``drop_classes``).

    Raises:
        feature_cache.UnsafeArchive, feature_cache.DatasetError: the data set is refused.
        AlreadyRegistered: the same directory and content under another name than the ``name`` given.
    """
    from feature_cache import NoClassFolders

    try:
        data = open_registered(path, unlabelled)
    except NoClassFolders as exc:  # the library names its CLI flag; a client of the service asks with its own
        raise NoClassFolders(f"{exc} Here: unlabelled=true with the upload or registration (the dashboard's "
                             "\"unlabelled images\" box) extracts them for a finished run to predict.") from None
    counts = dataset_counts(data)
    skipped = list(getattr(data, "skipped", []) or [])
    values = dict(name=name or path.name, source=source, path=str(path),
                  class_names=list(data.class_names), counts=counts, fingerprint=getattr(data, "fingerprint", None),
                  skipped=len(skipped), dataset_id=dataset_id, val_given=bool(getattr(data, "val_given", False)),
                  skipped_reasons=group_reasons(skipped), skipped_files=recorded_files(skipped),
                  data_warnings=registration_warnings(data, counts))
    # the same content is one data set (its caches are reused); an upload's the same archive bytes too: a zip's
    # fingerprint reads the CRC32 and size its own index claims, so a crafted zip of other images matched one
    # uploaded before and its copy was removed (an attack round)
    same = (lambda row: _same_file(Path(row["path"]), path)) if source == "upload" else None
    row, created = store.find_or_add_dataset(same=same, **values)
    if not created and name is not None and row["name"] != name:
        what = "this archive" if source == "upload" else "this folder" if path.is_dir() else "this file"
        raise AlreadyRegistered(f"{what}, with the same content, is registered already as {row['name']!r} (id "
                                f"{row['id']}): use that data set (its caches are reused), or "
                                f"{'upload' if source == 'upload' else 'register'} it without a name")
    logger.info("data set %s %s: %d classes, %s", row["id"], "registered" if created else "already registered",
                len(row["class_names"]), {k: sum(v) for k, v in counts.items()})
    return row, created


def registration_warnings(data: Any, counts: dict[str, list[int]]) -> list[str]:
    """What an extraction of a data set as registered (the default split) warns of it before it starts
    (``feature_cache.options.cautions``' warnings): the registration answer carries them, for the launch form to
    show before a job is launched; they were said only in the extraction job's messages."""
    from feature_cache.options import cautions

    small = classes_without_message(counts, list(data.class_names), training=False, layout=data.params.get("layout"),
                                    location=str(data.location))
    return ([small] if small else []) + [text for kind, text in cautions(data, "options.val_fraction", None, counts)
                                         if kind == "warning"]


def _names(classes: list[str], shown: int = 5) -> str:
    return listed([repr(c) for c in classes], shown)


def _split_sizes(counts: dict[str, list[int]], class_names: list[str], classes: list[str], shown: int = 5) -> str:
    index = {name: k for k, name in enumerate(class_names)}
    return "; ".join(f"{c!r} " + ", ".join(f"{split} {counts[split][index[c]]}" for split in counts)
                     for c in classes[:shown])


def new_upload_dir(uploads_dir: Path) -> tuple[str, Path]:
    dataset_id = new_id("ds")
    return dataset_id, uploads_dir / dataset_id


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
