"""Safe, random-access readers for the places a labelled image set can live.

Every reader exposes ``names()`` (posix paths of the regular files, relative to the reader's root),
``read(name) -> bytes``, ``content_id(name) -> str`` (a cheap content digest used by the data set
fingerprint) and ``dirs()`` (directory entries, so empty class folders can be reported); the folder, file-list and
tar readers also ``check(name, data)``, raising :class:`~feature_cache.errors.FileChanged` for bytes that are not
those the content id counted (an extraction's reads, ``LabelledImages.load_image``).

- :class:`DirectoryReader` — a folder on disk; symlinks that leave the folder are skipped and listed (``unsafe``).
- :class:`ZipReader` — members are read **directly from the archive** with :mod:`zipfile` (nothing is
  extracted to disk). The central directory is validated when the reader is built: no absolute paths,
  no ``..`` components (symlink members are skipped, never followed), and the :class:`ArchiveLimits` on member count, total
  uncompressed size, per-member size and compression ratio (decompression bombs); reads are bounded by
  the declared size, and the CRC is checked by :mod:`zipfile`. A breach raises
  :class:`~feature_cache.errors.UnsafeArchive`. Each process opens its own handle, so the reader can be
  shared with DataLoader workers.
- :class:`TarReader` — ``.tar``, ``.tar.gz`` / ``.tgz`` (also ``.bz2`` / ``.xz``). Only regular files and
  folders are read, and a hard link to a regular member listed before it, as that member: other links are skipped
  (listed in ``unsafe``, never followed), device / FIFO members raise ``UnsafeArchive``, as do
  absolute or ``..`` names and the :class:`ArchiveLimits`. A compressed tar cannot be read at random, so
  it is first **decompressed (not extracted)** into one temporary ``.tar`` file next to the system temp
  folder — streaming, and aborted as soon as the size or ratio limit is crossed — and members are then
  read in place by their byte offset; the temporary file is deleted when the reader is garbage
  collected or the process exits. Nothing is ever written under a member's own name.
- :class:`FileListReader` — an explicit list of files under one folder (CSV manifests).
"""
from __future__ import annotations

import bisect
import contextlib
import copy
import errno
import hashlib
import os
import re
import stat
import tarfile
import tempfile
import threading
import weakref
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.files import writer_alive
from probe.names import UNPRINTABLE_CHARACTERS, listed

from .errors import FileChanged, UnsafeArchive

__all__ = ["ArchiveLimits", "DirectoryReader", "FileListReader", "TarReader", "ZipReader", "check_member_name"]


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits that make an archive unsafe to read (checked before any member is decompressed).

    Attributes:
        max_members: most entries (files + folders) in the archive.
        max_total_bytes: most uncompressed bytes over all members.
        max_member_bytes: most uncompressed bytes for one member.
        max_ratio: most uncompressed/compressed size ratio for one member larger than ``ratio_floor``.
        ratio_floor: members smaller than this many bytes are exempt from the ratio check (tiny files
            compress extremely well without being dangerous).
    """

    max_members: int = 2_000_000
    max_total_bytes: int = 64 * 2**30
    max_member_bytes: int = 256 * 2**20
    max_ratio: float = 200.0
    ratio_floor: int = 1 * 2**20

    def __post_init__(self) -> None:
        for field in ("max_members", "max_total_bytes", "max_member_bytes", "max_ratio"):
            if getattr(self, field) <= 0:
                raise ValueError(f"ArchiveLimits.{field} must be > 0, got {getattr(self, field)}.")

    def expands_too_much(self, uncompressed: int, compressed: int) -> bool:
        """The ratio rule of a possible decompression bomb: over ``ratio_floor`` bytes and over ``max_ratio`` times
        the ``compressed`` size (one rule for zip members, compressed tar archives and gzip idx files)."""
        return uncompressed > self.ratio_floor and uncompressed > self.max_ratio * max(compressed, 1)

    def too_many_members(self, label: str) -> UnsafeArchive:
        """The refusal of an archive of more than ``max_members`` entries."""
        return UnsafeArchive(f"{label}: more than {self.max_members} members (ArchiveLimits.max_members).")


# Why a file whose name holds them is skipped: a name with a newline forged lines in the server's log and the job's
# messages, one with an escape sequence reached the terminal through `mr2probe failures` (an attack round).
UNPRINTABLE_NAME = "its name holds control or text-direction characters, or bytes that are not UTF-8 (shown escaped)"
# A name whose bytes are not UTF-8 (a Latin-1 "café.jpg" in a GNU tar or a folder) reads with surrogate escapes, which
# no UTF-8 text (a fingerprint, a log, the database) can hold: one such image answered 500 to its whole data set's
# registration (an attack round). Python's re only: pydantic's Rust patterns take no surrogates.
_NOT_UTF8 = re.compile("[\ud800-\udfff]")


def unprintable(name: str) -> bool:
    """Whether ``name`` holds a character of ``probe.names.UNPRINTABLE`` or bytes that are not UTF-8."""
    return bool(UNPRINTABLE_CHARACTERS.search(name) or _NOT_UTF8.search(name))


EMPTY_FILE = "empty file (0 bytes)"  # skipped at registration: 400,000 of them counted as images (an attack round)


def printable(name: str) -> str:
    """``name`` with each of ``probe.names.UNPRINTABLE``'s characters escaped (``\\n``, ``\\x1b``, ``\\u202e``):
    how a skipped file's name reaches logs, job messages and terminals."""
    escaped = UNPRINTABLE_CHARACTERS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), name)
    return _NOT_UTF8.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}" if ord(m.group()) >= 0xDC80
                         else m.group().encode("unicode_escape").decode("ascii"), escaped)


# The zip "version made by" systems whose tools write "\\" between folders (MS-DOS / FAT, HPFS, NTFS, VFAT)
_WINDOWS_ZIP_SYSTEMS = frozenset({0, 6, 11, 14})


def check_member_name(name: str, archive: str, backslash_separates: bool = False) -> str:
    """Return the normalised posix member name, or raise ``UnsafeArchive`` on a path escape (a "\\" read as a
    separator there, whatever wrote it). ``backslash_separates``: a "\\" in the name returned is a folder separator
    (a Windows tool's zip), else a character of the name, as in a tar (GNU tar keeps it: a folder 'back\\slash'
    tarred is one class, as on disk) and in a zip made on Linux or macOS."""
    if "\x00" in name:
        raise UnsafeArchive(f"{archive}: member name {name!r} contains a NUL byte.", given=(repr(name),))
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path; archives must use relative paths.",
                            given=(repr(name),))
    if ".." in posix.split("/"):
        raise UnsafeArchive(f"{archive}: member {name!r} escapes the archive root with '..'.", given=(repr(name),))
    return "/".join(p for p in (posix if backslash_separates else name).split("/") if p not in ("", "."))


SYMLINKED_FOLDER = "symlinked folder, not followed (copy the images in)"
# Opening a FIFO for reading waits for a writer, forever; a socket or a device is no image either.
NOT_REGULAR = "not a regular file (a FIFO, socket, device or folder)"
_LINK_STARTS = ("symlink", "symbolic link", "hard link")  # how every reason for a skipped link starts


def is_link_or_special(reason: str) -> bool:
    """Whether a skipped file's ``reason`` is one of the readers' for a link or a special file (not a user's folder
    name that holds the word: "outside the split folders (weblinks/...)" was counted as a link; a review)."""
    return reason.startswith(_LINK_STARTS) or reason == NOT_REGULAR


def archive_link(kind: str, target: str | None = None) -> str:
    """Why a link member of an archive is skipped: never followed, whatever it points to (an archive made of a
    folder de-duplicated with hard links was refused whole, where the folder itself was read; an outside round)."""
    to = "" if target is None else f" to {target[:120]!r}"
    return f"{kind} link{to} inside the archive, not followed (put the file itself in)"


def is_special(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) exists and is not a regular file: a FIFO, socket, device or folder. A
    path that cannot be examined (a broken link) is not special: it is listed, and skipped when it does not read."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


# Photo formats that cameras and phones write and that are not read here: "not an image file" of an iPhone's .HEIC
# photos misled (a new-user round); they are named as images to convert.
UNREAD_IMAGE_FORMATS = frozenset({".heic", ".heif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf",
                                  ".raw", ".psd", ".svg", ".jxl"})
UNREAD_IMAGE = "an image format that is not read"  # how the reason for one of them starts
# The reason recorded for a file that fails to decode, before the decoder's message (feature_cache.extract).
DECODE_FAILURE = "cannot decode image"
UNDECODED_NAMED = 3  # files named in a cache's line of those that failed to decode; the rest counted


def undecoded_line(skipped: Sequence[Any]) -> str | None:
    """The files of a cache's ``skipped`` attribute (``[source, reason]``) that failed to decode, in one line that
    every run trained on the cache says (``feature_cache.store.FeatureCache.data_warnings``): the extraction printed
    them and the runs never did. None when none failed; an entry of another form (a cache made by hand) is passed
    over."""
    failed = [str(entry[0]) for entry in skipped if isinstance(entry, (list, tuple)) and len(entry) == 2
              and str(entry[1]).startswith(DECODE_FAILURE)]
    if not failed:
        return None
    one = len(failed) == 1
    return (f"{len(failed)} file{'' if one else 's'} could not be decoded and {'is' if one else 'are'} not in the "
            f"cache: {listed(failed, UNDECODED_NAMED)}")


def not_an_image(name: str) -> str:
    """Why a file whose extension is no image format read here is skipped (every layout says it the same way), the
    extension in lower case: '.HEIC' and '.heic' were two reasons, and a list of the most frequent hid the rest (a
    dashboard round)."""
    suffix = Path(name).suffix.lower()
    if suffix in UNREAD_IMAGE_FORMATS:
        return f"{UNREAD_IMAGE} (extension {suffix!r}): convert it to JPEG or PNG"
    return f"not an image file (extension {suffix or 'none'!r})"


def changed(name: str) -> FileChanged:
    """The refusal of a read whose bytes are not those the data set's listing counted (its content id)."""
    return FileChanged(f"{name!r} holds other bytes than when the data set was opened (changed since)")


class _FolderFiles:
    """Files under a folder on disk, read through :func:`read_inside` (the subclass lists ``_files``, sorted, and
    ``_dirs``, paths relative to ``root``).

    :meth:`content_id` (the sha256 the data set's fingerprint counts) keeps the first 8 bytes of each file's digest,
    8 bytes a file, and :meth:`check` refuses bytes read since that no longer match them (:class:`FileChanged`):
    an image rewritten while an extraction ran was encoded into the cache named by the fingerprint of its old
    content (a review)."""

    root: Path
    _files: list[str]
    _dirs: list[str]
    _digests: Any = None  # numpy uint64 per file of ``_files``, 0 where content_id was not read

    def names(self) -> list[str]:
        return list(self._files)

    def dirs(self) -> list[str]:
        return list(self._dirs)

    def read(self, name: str) -> bytes:
        return read_inside(self.root, name)

    def check(self, name: str, data: bytes) -> None:
        """Raise :class:`FileChanged` when ``data``, read from ``name``, are not the bytes its content id counted
        (nothing to check where none was taken)."""
        at = self._slot(name) if self._digests is not None else None
        if at is not None and self._digests[at] and self._digests[at] != _short_digest(hashlib.sha256(data)):
            raise changed(name)

    def content_id(self, name: str) -> str:
        digest = hashlib.sha256(read_inside(self.root, name))
        at = self._slot(name)
        if at is not None:
            if self._digests is None:
                import numpy as np

                self._digests = np.zeros(len(self._files), dtype=np.uint64)
            self._digests[at] = _short_digest(digest)
        return digest.hexdigest()

    def _slot(self, name: str) -> int | None:
        """The index of ``name`` in the sorted ``_files``, or None."""
        at = bisect.bisect_left(self._files, name)
        return at if at < len(self._files) and self._files[at] == name else None

    def size(self, name: str) -> int:
        return os.stat(self.root / name).st_size

    def __str__(self) -> str:
        return str(self.root)


def _file_identity(handle: Any) -> tuple[int, int, int, int]:
    """(device, inode, size, modification time) of an open file: another file, or the same one rewritten, differs."""
    info = os.fstat(handle.fileno())
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _short_digest(digest: Any) -> int:
    """The first 8 bytes of a sha256 as an integer: what :class:`_FolderFiles` keeps to check a file's reads."""
    return int.from_bytes(digest.digest()[:8], "little")


class DirectoryReader(_FolderFiles):
    """Files under a folder on disk (symlinks resolving outside the folder are skipped, symlinked folders are not
    followed; both are listed in ``unsafe``)."""

    kind = "directory"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist.")
        self._files: list[str] = []
        self._dirs: list[str] = []
        self.unsafe: list[tuple[str, str]] = []
        for current, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel_dir = Path(current).relative_to(self.root).as_posix()
            for d in sorted(dirnames):
                rel = d if rel_dir == "." else f"{rel_dir}/{d}"
                if (Path(current) / d).is_symlink():  # not walked: listed, so that an empty class says why
                    self.unsafe.append((rel, SYMLINKED_FOLDER))
                self._dirs.append(rel)
            for f in filenames:
                rel = f if rel_dir == "." else f"{rel_dir}/{f}"
                full = Path(current) / f
                if full.is_symlink() and (problem := _symlink_problem(full, self.root)):
                    self.unsafe.append((rel, problem))
                    continue
                if is_special(full):
                    self.unsafe.append((rel, NOT_REGULAR))
                    continue
                self._files.append(rel)
        self._files.sort()
        self._dirs.sort()


SYMLINK_LOOP = "symlink loop (it leads back to itself), not followed"


def _symlink_problem(link: Path, root: Path) -> str | None:
    """Why the symlink ``link`` under the resolved folder ``root`` is not read, or None when it leads to a file in it.
    A link that leads back to itself (``a.png`` → ``b.png`` → ``a.png``) made ``Path.resolve`` raise RuntimeError
    (Python < 3.13): a trace from `mr2probe extract` and a 500 at the data set's registration (a new-user round)."""
    try:
        target = link.resolve()
    except (OSError, RuntimeError):
        return SYMLINK_LOOP
    if not target.is_relative_to(root):
        return "symlink pointing outside the data folder"
    try:
        os.stat(link)
    except OSError as exc:  # an editor's leftover: a 500 at registration (an attack round)
        return SYMLINK_LOOP if exc.errno == errno.ELOOP else "symlink to nothing (its target does not exist)"
    return None


def read_inside(root: Path, name: str) -> bytes:
    """The bytes of the file ``name`` under the resolved folder ``root``, refused (PermissionError) where the path
    now leads outside it: a listed folder or file replaced by a symlink after the listing (a listing is kept,
    e.g. for thumbnails, and an extraction reads for hours) would otherwise serve any file on the machine. Checked
    on the path resolved, then on the file opened (where ``/proc`` names it): a symlink swapped in between the two
    was read wherever it led (a security review)."""
    try:
        path = (root / name).resolve()
    except RuntimeError:  # a symlink loop made since the listing (Python < 3.13)
        raise OSError(f"{name!r} is now a {SYMLINK_LOOP}; it is not read") from None
    if root not in path.parents:
        raise _left_folder(name)
    with open_regular(path, name) as handle:
        opened = _opened_path(handle)
        if opened is not None and root not in opened.parents:
            raise _left_folder(name)
        return handle.read()


def _left_folder(name: str) -> PermissionError:
    return PermissionError(f"{name!r} now leads outside the data folder (replaced by a symlink since it was listed); "
                           "it is not read")


def _opened_path(handle) -> Path | None:
    """The path of the file open as ``handle``, as the kernel names it (Linux: ``/proc/self/fd``), else None."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
    except OSError:
        return None


def open_regular(path: Path, name: str):
    """The regular file ``path`` opened for binary reading; anything else (a FIFO, socket or device swapped in
    after the listing) raises OSError naming ``name``, without blocking: it is checked before opening, and opened
    non-blocking and checked again, should it be swapped between the two."""
    refused = OSError(f"{name!r} is {NOT_REGULAR}; it is not read")
    if is_special(path):
        raise refused
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise refused
    return handle


_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
_UNICODE_PATH = 0x7075  # Info-ZIP Unicode Path extra field: version 1, CRC-32 of the stored name, UTF-8 name


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as its writer meant it.

    Python decodes a name stored without the UTF-8 flag as cp437, the zip format's default; but Info-ZIP's ``zip``
    and most tools on Linux and macOS store UTF-8 bytes without setting that flag, and a class folder named
    ``čaj`` would come out as ``─ìaj``. Such a name is read from its Info-ZIP Unicode Path extra field when one is
    present and matches the stored bytes, else decoded as UTF-8 when its bytes are valid UTF-8 (text in cp437 is
    practically never also valid UTF-8), else left as cp437.
    """
    if info.flag_bits & _UTF8_FLAG or info.filename.isascii():
        return info.filename
    stored = info.filename.encode("cp437")  # the bytes as stored: cp437 maps every byte to one character
    extra, at = info.extra, 0
    while at + 4 <= len(extra):
        kind, size = int.from_bytes(extra[at:at + 2], "little"), int.from_bytes(extra[at + 2:at + 4], "little")
        data = extra[at + 4:at + 4 + size]
        if kind == _UNICODE_PATH and size > 5 and data[0] == 1 and int.from_bytes(data[1:5], "little") == \
                zlib.crc32(stored):
            try:
                return data[5:].decode("utf-8")
            except UnicodeDecodeError:
                break
        at += 4 + size
    try:
        return stored.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


_CENTRAL_HEADER = 46  # bytes of a zip central directory entry before its name, extra field and comment


def _zip_entries_over(handle, limit: int) -> bool:
    """Whether the zip file open as ``handle`` lists more than ``limit`` entries in its central directory, counted
    without a Python object per entry: ``zipfile.ZipFile`` builds a ZipInfo for every entry before any limit can be
    checked (and its loop reads the directory's bytes whatever count the end record declares), so that a 259 MB
    upload listing 5 M entries took 2.3 GB and 46 s to refuse, and one of 2 GiB would take some 19 GB (a security
    review). Where the directory cannot be read, False: ``zipfile`` then says what is wrong with it."""
    import struct

    end = zipfile._EndRecData(handle)
    if end is None:
        return False
    size, offset = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]
    if size <= limit * _CENTRAL_HEADER:  # too small to hold more: nothing to count (zipfile's own arithmetic below)
        return False
    start = end[zipfile._ECD_LOCATION] - size
    if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    handle.seek(start)
    count = read = 0
    while read < size:
        head = handle.read(_CENTRAL_HEADER)
        if len(head) < _CENTRAL_HEADER or head[:4] != zipfile.stringCentralDir:
            return False
        skip = sum(struct.unpack("<3H", head[28:34]))  # its name, extra field and comment
        handle.seek(skip, os.SEEK_CUR)
        read += _CENTRAL_HEADER + skip
        count += 1
        if count > limit:
            return True
    return False


class _ArchiveFiles:
    """What the zip and the tar reader share: the resolved archive, its limits, the folders and the skipped links
    it lists, and a handle to it that is this process's own (never pickled into a worker)."""

    def __init__(self, path: str | Path, limits: ArchiveLimits | None) -> None:
        self.path = Path(path).resolve()
        self.limits = limits or ArchiveLimits()
        if not self.path.is_file():
            raise FileNotFoundError(f"archive {path} does not exist.")
        self._dirs: list[str] = []
        self.unsafe: list[tuple[str, str]] = []  # link members: skipped, listed with why

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state

    def dirs(self) -> list[str]:
        return list(self._dirs)

    def __str__(self) -> str:
        return str(self.path)


class ZipReader(_ArchiveFiles):
    """Members of a .zip archive, validated up front and read in place (see module docstring)."""

    kind = "zip"

    def __init__(self, path: str | Path, limits: ArchiveLimits | None = None) -> None:
        super().__init__(path, limits)
        try:
            with open(self.path, "rb") as handle:
                if _zip_entries_over(handle, self.limits.max_members):
                    raise self.limits.too_many_members(self.path.name)
            archive = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise UnsafeArchive(f"{self.path.name}: not a readable zip archive ({exc}).") from exc
        self._infos: dict[str, zipfile.ZipInfo] = {}
        try:
            self._check(archive.infolist())
        except BaseException:
            archive.close()
            raise
        # Kept open for this process's reads: opening a ZipFile parses the whole central directory again
        # (0.7 s for CIFAR-10's 60,000 members, a tenth of a 1,200-image extraction).
        self._handle: zipfile.ZipFile | None = archive
        self._pid: int | None = os.getpid()
        self._identity = _file_identity(archive.fp)  # what another process's handle must open (_reopen)

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        lim, label = self.limits, self.path.name
        if len(infos) > lim.max_members:
            raise lim.too_many_members(label)
        total = 0
        for info in infos:
            member = zip_member_name(info)  # as the listing reads it (UTF-8 names flagged or not), in every message
            # a Linux or macOS zip's "\\" is a character of a name ('back\\slash' was read as back/slash)
            name = check_member_name(member, label, info.create_system in _WINDOWS_ZIP_SYSTEMS)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                self.unsafe.append((name or member, archive_link("symbolic")))
                continue
            if info.is_dir():
                if name:
                    self._dirs.append(name)
                continue
            if info.file_size > lim.max_member_bytes:
                raise UnsafeArchive(
                    f"{label}: member {member!r} is {info.file_size} bytes uncompressed, over the limit "
                    f"of {lim.max_member_bytes} (ArchiveLimits.max_member_bytes)."
                )
            if lim.expands_too_much(info.file_size, info.compress_size):
                raise UnsafeArchive(
                    f"{label}: member {member!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                    f"(limit {lim.max_ratio:.0f}x, ArchiveLimits.max_ratio): possible decompression bomb."
                )
            total += info.file_size
            if total > lim.max_total_bytes:
                raise UnsafeArchive(
                    f"{label}: more than {lim.max_total_bytes} bytes uncompressed "
                    "(ArchiveLimits.max_total_bytes): possible decompression bomb."
                )
            if name in self._infos:
                raise UnsafeArchive(f"{label}: member {name!r} appears twice.")
            self._infos[name] = info
        self._dirs.sort()

    def _archive(self) -> zipfile.ZipFile:
        # One handle per process: a ZipFile shares a file offset and must not cross a fork.
        if self._handle is None or self._pid != os.getpid():
            self._handle = self._reopen(self._handle)
            self._pid = os.getpid()
        return self._handle

    def _reopen(self, inherited: zipfile.ZipFile | None) -> zipfile.ZipFile:
        """This process's handle: the central directory another process parsed (``inherited``, from a fork)
        with a file object of its own, else a new ZipFile. A new ZipFile parses the directory again, 0.7 s for
        CIFAR-10 in every DataLoader worker, which an extraction's CPU workers pay before their first batch.
        The copy shares the parsed member list (read-only) and gets its own file, reference count and lock —
        the per-file state of ``zipfile.ZipFile.open`` (CPython 3.8–3.13); anything else falls back."""
        if inherited is not None and {"fp", "_fileRefCnt", "_lock", "filelist"} <= vars(inherited).keys():
            handle = copy.copy(inherited)
            handle.fp, handle._fileRefCnt, handle._lock = open(self.path, "rb"), 1, threading.RLock()
        else:
            handle = zipfile.ZipFile(self.path)
        if _file_identity(handle.fp) != self._identity:
            # the archive replaced or rewritten since it was listed: its members read at the listing's offsets were
            # "Bad magic number for file header" in every DataLoader worker, all skipped as failing to decode (a
            # review); the process that listed it still reads the file it opened, unless rewritten in place (read)
            handle.close()
            raise self._rewritten()
        return handle

    def _rewritten(self) -> FileChanged:
        return FileChanged(f"{self.path.name} was replaced or rewritten since the data set was opened")

    def names(self) -> list[str]:
        return sorted(self._infos)

    def read(self, name: str) -> bytes:
        """The member's bytes, checked by zipfile against the CRC the listing counted (its content id). A read that
        fails on a handle whose file was rewritten in place since it was opened raises :class:`FileChanged`: the
        handle of the process that listed the archive (an extraction with ``--workers 0``) is never reopened, and
        its reads at the listing's offsets were "Bad magic number" or "Bad CRC-32", skipped as undecodable images
        while the cache was written (a loose end). One ``fstat``, on a failed read only."""
        info, archive = self._infos[name], self._archive()
        try:
            with archive.open(info) as member:
                data = member.read(info.file_size + 1)  # bounded even if the header lies
        except Exception:
            if _file_identity(archive.fp) != self._identity:
                raise self._rewritten() from None
            raise
        if len(data) > info.file_size:
            raise UnsafeArchive(f"{self.path.name}: member {name!r} is larger than its declared size.")
        return data

    def content_id(self, name: str) -> str:
        info = self._infos[name]
        return f"{info.CRC:08x}:{info.file_size}"

    def size(self, name: str) -> int:
        return self._infos[name].file_size




class FileListReader(_FolderFiles):
    """Given files under a folder (paths relative to it, already checked not to escape it)."""

    kind = "file-list"

    def __init__(self, root: str | Path, names: list[str]) -> None:
        self.root = Path(root).resolve()
        self._files = sorted(set(names))
        self._dirs: list[str] = []


# The most memory an .xz stream may ask of its decoder: its dictionary (xz -9 needs 65 MiB). A few bytes can ask
# for 1.5 GiB, which the decoder then fills as it writes, so that each upload of a small .tar.xz held up to that.
XZ_MEMORY_LIMIT = 128 * 2**20
# Concatenated compressed streams (`xz -c a b > c`, `cat a.gz b.gz`; one file is one stream): 125,000 empty xz
# streams in 4 MB took 11 s, growing with the square of the size, and 16 M empty gzip members in 330 MB would take
# minutes while nothing comes out to trip the size limits (attack rounds). Real archives hold one, or a few.
MAX_STREAMS = 64
_BLOCK = 1 << 20


class _GzipMember:
    """zlib's gzip decoder (its header parsed in C: Python's gzip module read a header's file name a byte at a time,
    4.6 s of CPU for a 20 MB name, in every member; attack rounds) with lzma's and bz2's decompressor interface."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""

    eof = property(lambda self: self._zlib.eof)
    unused_data = property(lambda self: self._zlib.unused_data)
    needs_input = property(lambda self: not self._tail)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._zlib.decompress(self._tail + data, max_length)
        self._tail = self._zlib.unconsumed_tail
        return out


def _decompressed_blocks(path: Path):
    """The uncompressed bytes of a gzip, bzip2 or xz file (by its magic number), in blocks of at most 1 MiB: at most
    :data:`MAX_STREAMS` streams, the null padding between them skipped, xz decoded under :data:`XZ_MEMORY_LIMIT`."""
    import bz2
    import lzma

    with open(path, "rb") as handle:
        magic = handle.read(6)
        handle.seek(0)
        kind, decoder_of = (("xz", lambda: lzma.LZMADecompressor(memlimit=XZ_MEMORY_LIMIT))
                            if magic[:6] == b"\xfd7zXZ\x00" else ("gzip", _GzipMember) if magic[:2] == b"\x1f\x8b"
                            else ("bzip2", bz2.BZ2Decompressor))
        decoder, data, streams = decoder_of(), b"", 1
        while True:
            if decoder.eof:  # a stream ended: another may follow, or only padding
                data = decoder.unused_data.lstrip(b"\0")  # stream padding: null bytes, of any length
                while not data:
                    if not (chunk := handle.read(_BLOCK)):
                        return
                    data = chunk.lstrip(b"\0")
                streams += 1
                if streams > MAX_STREAMS:
                    raise EOFError(f"more than {MAX_STREAMS} concatenated {kind} streams")
                decoder = decoder_of()
            elif decoder.needs_input:
                data = handle.read(_BLOCK)
                if not data:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            else:
                data = b""
            if block := decoder.decompress(data, max_length=_BLOCK):
                yield block


def _is_bzip2(magic: bytes) -> bool:
    """A bzip2 stream: "BZh", its block size 1-9, and its first block's magic number (π's digits). A plain tar whose
    first member's name starts with "BZh" ("BZhang-photos/") was read as bzip2 and refused (an attack round)."""
    # a block's magic (π), or the end-of-stream one (√π) of an empty first stream (a review: refused as plain)
    return magic[:3] == b"BZh" and magic[3:4] in b"123456789" and magic[4:10] in (b"\x31\x41\x59\x26\x53\x59",
                                                                                 b"\x17\x72\x45\x38\x50\x90")


def _compressed(magic: bytes) -> bool:
    """Whether a file whose first 10 bytes are ``magic`` is gzip, bzip2 or xz."""
    return magic[:2] == b"\x1f\x8b" or _is_bzip2(magic) or magic[:6] == b"\xfd7zXZ\x00"


# A compressed tar is decompressed to a temporary file (members are read by offset): named by the process that writes
# it, so that a process killed while it held one leaves a file the next service start removes
# (:func:`orphaned_decompressions`), and never filling the disk: 64 GiB may come out of a 330 MB upload within the
# archive limits, more than the disk of the machine it ran on (an attack round).
TEMPORARY_PREFIX = "mr2probe-"
MIN_FREE_DISK = 1 << 30  # bytes the decompression leaves free on the temporary folder's disk
DISK_CHECK_BYTES = 64 << 20  # how often it looks


def _check_disk_space(path: str, label: str) -> None:
    import shutil

    free = shutil.disk_usage(os.path.dirname(path)).free
    if free < MIN_FREE_DISK:
        raise UnsafeArchive(f"{label}: decompressing it would leave less than {MIN_FREE_DISK >> 30} GiB free on the "
                            f"disk of the temporary folder ({free >> 20} MiB left).")


def orphaned_decompressions(folder: str | Path | None = None) -> list[Path]:
    """Decompressed archives in ``folder`` (default: the temporary folder) whose writing process no longer runs: plain
    files of this user only (the temporary folder is shared: another user's, or a folder of that name, stopped the
    service's start when it tried to remove them; a review)."""
    found = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{TEMPORARY_PREFIX}*-*.tar"):
        pid = path.name[len(TEMPORARY_PREFIX):].split("-", 1)[0]
        try:
            info = path.lstat()
        except OSError:
            continue
        if (pid.isdigit() and stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
                and not writer_alive(int(pid), path)):
            found.append(path)
    return found


# The most bytes of one extended header (pax per member or global, Solaris pax, GNU long name or link; a path of
# 4,096 characters is 4 KiB), and of all of an archive's together: tarfile reads each whole into memory, and a
# 5.8 MB .tar.xz holding a 1 GiB pax comment took the service from 0.6 to 3.7 GB, at its registration and at each
# thumbnail (an attack round). Checked by tarfile's own parser (:func:`_limited_tarinfo`), which follows a pax
# "size" record where a walk of the ustar headers alone was led astray (a review).
MAX_EXTENDED_HEADER = 1 << 20
MAX_EXTENDED_TOTAL = 64 << 20


def _limited_tarinfo(label: str) -> type[tarfile.TarInfo]:
    """A ``tarinfo`` class for :func:`tarfile.open` that refuses (:class:`UnsafeArchive`) an extended header over
    :data:`MAX_EXTENDED_HEADER`, or all of them over :data:`MAX_EXTENDED_TOTAL`, before tarfile reads it."""
    read = [0]

    def check(size: int) -> None:
        read[0] += size
        if size > MAX_EXTENDED_HEADER:
            raise UnsafeArchive(f"{label}: a tar header of {size} bytes (a pax or long-name header; the limit is "
                                f"{MAX_EXTENDED_HEADER}).")
        if read[0] > MAX_EXTENDED_TOTAL:
            raise UnsafeArchive(f"{label}: more than {MAX_EXTENDED_TOTAL} bytes of pax or long-name headers.")

    class LimitedTarInfo(tarfile.TarInfo):
        def _proc_pax(self, archive):  # x, g and Solaris X headers
            check(self.size)
            return super()._proc_pax(archive)

        def _proc_gnulong(self, archive):  # GNU long names and link names
            check(self.size)
            return super()._proc_gnulong(archive)

    return LimitedTarInfo


def _remove(path: str, owner: int) -> None:
    if os.getpid() == owner and os.path.exists(path):
        os.unlink(path)


class TarReader(_ArchiveFiles):
    """Members of a tar archive (optionally compressed), validated and read by offset (see module doc)."""

    kind = "tar"

    def __init__(self, path: str | Path, limits: ArchiveLimits | None = None) -> None:
        super().__init__(path, limits)
        self._plain = self.path
        with open(self.path, "rb") as handle:
            magic = handle.read(10)
        if magic[:4] == b"PK\x03\x04":  # "not a readable tar archive (bad checksum)" of a zip (a review)
            raise UnsafeArchive(f"{self.path.name} is a zip archive, not a tar: give it a .zip name.")
        if _compressed(magic):
            self._plain = self._decompress()
        self._members: dict[str, tuple[int, int, str]] = {}  # name -> (offset, size, sha256)
        self._check()
        self._handle = None
        self._pid: int | None = None

    def _decompress(self) -> Path:
        import lzma

        lim, label = self.limits, self.path.name
        compressed = max(self.path.stat().st_size, 1)
        fd, name = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-", suffix=".tar")
        self._finalizer = weakref.finalize(self, _remove, name, os.getpid())
        total = 0
        try:
            with contextlib.closing(_decompressed_blocks(self.path)) as blocks, os.fdopen(fd, "wb") as target:
                for block in blocks:
                    if total // DISK_CHECK_BYTES != (total + len(block)) // DISK_CHECK_BYTES:
                        _check_disk_space(name, label)
                    total += len(block)
                    if total > lim.max_total_bytes:
                        raise UnsafeArchive(
                            f"{label}: more than {lim.max_total_bytes} bytes uncompressed "
                            "(ArchiveLimits.max_total_bytes): possible decompression bomb."
                        )
                    if lim.expands_too_much(total, compressed):
                        raise UnsafeArchive(
                            f"{label}: expands more than {lim.max_ratio:.0f}x (ArchiveLimits.max_ratio): "
                            "possible decompression bomb."
                        )
                    target.write(block)
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
            self._finalizer()
            raise UnsafeArchive(f"{label}: not a readable compressed tar archive ({exc}).") from exc
        except UnsafeArchive:
            self._finalizer()
            raise
        return Path(name)

    def _hard_link_target(self, info: tarfile.TarInfo, label: str) -> str | None:
        """The member a hard link names when it is a regular file listed before it (a tar's hard links always name
        an earlier member: a folder de-duplicated with hard links, then tarred), else None (skipped, not followed:
        a symbolic link, a link to a folder, to nothing in the archive, or out of it)."""
        if not info.islnk():
            return None
        try:
            target = check_member_name(info.linkname, label)
        except UnsafeArchive:
            return None
        return target if target in self._members else None

    def _check(self) -> None:
        lim, label = self.limits, self.path.name
        total = 0
        count = 0
        try:
            with tarfile.open(self._plain, "r:", tarinfo=_limited_tarinfo(label)) as archive:
                for info in archive:
                    count += 1
                    if count > lim.max_members:
                        raise lim.too_many_members(label)
                    name = check_member_name(info.name, label)
                    target = self._hard_link_target(info, label)
                    if target is not None:  # a hard link to a file listed before: that member's bytes, read again
                        if name in self._members:
                            raise UnsafeArchive(f"{label}: member {name!r} appears twice.")
                        self._members[name] = self._members[target]
                        total += self._members[target][1]
                        if total > lim.max_total_bytes:
                            raise UnsafeArchive(f"{label}: more than {lim.max_total_bytes} bytes in its members "
                                                "(ArchiveLimits.max_total_bytes).")
                        continue
                    if info.issym() or info.islnk():
                        self.unsafe.append((name, archive_link("symbolic" if info.issym() else "hard", info.linkname)))
                        continue
                    if info.isdir():
                        if name:
                            self._dirs.append(name)
                        continue
                    if not info.isfile():
                        raise UnsafeArchive(f"{label}: member {info.name!r} is not a regular file or folder.")
                    if info.size > lim.max_member_bytes:
                        raise UnsafeArchive(
                            f"{label}: member {info.name!r} is {info.size} bytes, over the limit of "
                            f"{lim.max_member_bytes} (ArchiveLimits.max_member_bytes)."
                        )
                    total += info.size
                    if total > lim.max_total_bytes:
                        raise UnsafeArchive(
                            f"{label}: more than {lim.max_total_bytes} bytes in its members "
                            "(ArchiveLimits.max_total_bytes)."
                        )
                    if name in self._members:
                        raise UnsafeArchive(f"{label}: member {name!r} appears twice.")
                    data = archive.extractfile(info).read(info.size)
                    self._members[name] = (info.offset_data, info.size, hashlib.sha256(data).hexdigest())
        except UnsafeArchive:
            raise
        except tarfile.TarError as exc:
            raise UnsafeArchive(f"{label}: not a readable tar archive ({exc}).") from exc
        except (ValueError, OverflowError) as exc:  # malformed pax records tarfile lets through (a GNU sparse map
            raise UnsafeArchive(f"{label}: not a readable tar archive (a malformed pax header).") from exc  # of junk)
        self._dirs.sort()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_finalizer", None)  # only the creating process deletes the temporary file
        return state

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = open(self._plain, "rb")
            self._pid = os.getpid()
        return self._handle

    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        offset, size, _ = self._members[name]
        return os.pread(self._file().fileno(), size, offset)

    def check(self, name: str, data: bytes) -> None:
        """Raise :class:`FileChanged` when ``data``, read from ``name``, are not the bytes the listing counted (a
        plain tar rewritten in place since)."""
        if hashlib.sha256(data).hexdigest() != self._members[name][2]:
            raise changed(name)

    def content_id(self, name: str) -> str:
        return self._members[name][2]

    def size(self, name: str) -> int:
        return self._members[name][1]
