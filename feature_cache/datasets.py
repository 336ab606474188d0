"""Labelled image sets: find the classes and splits, subset and split them reproducibly.

:func:`open_dataset` turns a path into :class:`LabelledImages` — ``class_names``, ``splits``
(``train`` / ``val`` / ``test`` lists of :class:`Sample`), ``skipped`` ((source, reason) pairs that
were left out) and ``fingerprint`` (content of the data set, see :mod:`feature_cache.fingerprint`).

Layouts (class folders, in a folder or a .zip archive):

- ``ROOT/train/<class>/…`` and ``ROOT/test/<class>/…`` (optionally ``ROOT/val/<class>/…``; ``valid`` and
  ``validation`` also name it), where ROOT may be nested under top folders (the CIFAR-10 zip has
  ``cifar10/train/<class>/NNNN.jpg``): the folder holding ``train`` and ``test`` (or ``val``) is used, and
  files beside its split folders are listed in ``skipped``. Split folders in two places (``partA/train`` and
  ``partB/train``) raise :class:`~feature_cache.errors.DatasetError` naming them: which to use is the user's
  choice. With ``train`` + ``val`` only, ``test`` is carved from ``train`` (``test_fraction``); ``val`` + ``test``
  without ``train`` is refused (no training images), as a manifest of val and test rows is.
- ``ROOT/<class>/…`` without a split: the product carves ``test`` (``test_fraction``) stratified and
  seeded.
- ``ROOT/test/<class>/…`` alone (no ``train`` or ``val``; or a manifest whose split column says ``test`` on every
  row): a labelled test set, every image in ``test``, ``train`` and ``val`` empty: new images to score a shipped
  probe on (``mr2probe predict --features``), not to train one.

Subsetting and splitting (all deterministic given ``seed``):

1. ``max_per_class`` keeps at most that many samples of each class in each given split (``train`` and
   ``test``; also ``val`` when the data set has one), chosen by a seeded permutation per class.
2. When there is no given ``val`` split, ``val`` is carved from ``train``: per class,
   ``round(n_k · val_fraction)`` samples (at least 1 when ``val_fraction > 0`` and the class has ≥ 2
   samples, never all of them), chosen by a seeded permutation.
3. Every split is listed in sorted source order.

Files whose extension is not an image format are skipped up front; files that fail to decode are
skipped by the extractor; both end up in ``skipped``. A class with no images, or fewer than two classes,
raises :class:`~feature_cache.errors.DatasetError`; so does, at extraction, a class whose every ``train``
(or ``test``) file fails to decode (:func:`feature_cache.extract.check_decodable`).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from probe.names import MAX_NAME, class_name, listed
from probe.seen import SPLIT_FOLDERS

from .archives import (EMPTY_FILE, SYMLINKED_FOLDER, UNPRINTABLE_NAME, ArchiveLimits, unprintable,
                       DirectoryReader, TarReader, ZipReader, not_an_image, printable)
from .defaults import DEFAULT_VAL_FRACTION, MAX_SEED
from .errors import DatasetError, NoClassFolders
from .fingerprint import dataset_fingerprint
from .idx import find_idx_files, open_idx
from .manifest import MANIFEST_PAIR, has_manifest_pair, label_forms, read_manifest, read_manifest_pair

__all__ = ["Sample", "LabelledImages", "open_dataset", "open_images", "IMAGE_EXTENSIONS", "SPLITS", "SPLIT_FOLDERS",
           "UNLABELLED", "ARCHIVE_SUFFIXES", "TAR_SUFFIXES"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# .jfif and .jpe are JPEG files under the names browsers on Windows save them with, .apng a PNG, .avif what browsers
# save now: each was skipped as "not an image file" while Pillow reads it (a new-user round, half of a class of web
# downloads gone). An AVIF that this Pillow cannot decode is listed as such, with the decoder's words.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".gif", ".webp", ".avif", ".tif", ".tiff", ".ppm",
     ".pgm", ".pbm", ".pnm"}
)
# A folder read as a split is one of SPLIT_FOLDERS (any case; probe.seen's, which sets them aside to match the same
# file moved from one split folder to another)
# The one class name of an unlabelled image set (open_images): a shipped probe predicts its images, nothing trains on
# them. Parentheses keep it apart from any folder name a labelled set could give a class.
UNLABELLED = "(unlabelled)"
UNLABELLED_LAYOUT = "unlabelled"


def labelled_layout(params: dict[str, Any] | None) -> bool:
    """Whether split parameters (``LabelledImages.params``, a cache's ``split_params``) describe a labelled set."""
    return (params or {}).get("layout") != UNLABELLED_LAYOUT


class Reader(Protocol):
    def names(self) -> list[str]: ...
    def dirs(self) -> list[str]: ...
    def read(self, name: str) -> bytes: ...
    def content_id(self, name: str) -> str: ...
    def size(self, name: str) -> int: ...


@dataclass(frozen=True)
class Sample:
    """One labelled image: ``source`` is its path inside the data set, ``label`` its class index."""

    source: str
    label: int


@dataclass
class LabelledImages:
    """A labelled image set split into ``train`` / ``val`` / ``test``.

    Attributes:
        class_names: sorted class names; a label is an index into this list.
        splits: split name → samples, each list in sorted source order.
        skipped: (source, reason) for every file left out.
        fingerprint: hex digest of the data set's content (before subsetting / splitting).
        params: the subsetting / splitting parameters (part of the cache fingerprint).
        reader: where the bytes come from (picklable into DataLoader workers).
        location: the path it was opened from.
        given_splits: the splits the data set itself holds (folders or manifest rows), before any is carved.
        duplicates: a warning of files with the same content in test and in train or val, or under two classes
            (:func:`duplicates_warning`); None when there are none, or no content was read (``fingerprint=False``).
        test_fingerprint: hex digest of the content of the test split the data set gives (its own test folder or
            manifest rows): two versions of a data set that differ only in train or val have the same one; "" where
            test is carved out of the data set, or no content was read.
    """

    class_names: list[str]
    splits: dict[str, list[Sample]]
    skipped: list[tuple[str, str]]
    fingerprint: str
    params: dict[str, Any]
    reader: Any = field(repr=False)
    location: str = ""
    given_splits: tuple[str, ...] = ()
    duplicates: str | None = None  # duplicates_warning's, from the content ids of the fingerprint (None without it)
    test_fingerprint: str = ""  # the digest of the given test split alone; "" where test is carved or none read

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def val_given(self) -> bool:
        """Whether its ``val`` split is its own (a val/ folder, manifest rows), not carved: ``val_fraction`` unused."""
        return "val" in self.given_splits

    @property
    def labelled(self) -> bool:
        """False for :func:`open_images`' unlabelled set (one ``test`` split, no class)."""
        return labelled_layout(self.params)

    def counts(self) -> dict[str, int]:
        return {name: len(samples) for name, samples in self.splits.items()}

    def load_image(self, sample: Sample):
        """Decode one sample into a PIL image, as the data set's fingerprint counted it (raises on a corrupt file,
        which callers skip, and :class:`~feature_cache.errors.FileChanged` for a file rewritten since)."""
        return self.load_with_digest(sample)[0]

    def load_with_digest(self, sample: Sample, decode_size: tuple[int, int] | None = None) -> tuple[Any, bytes]:
        """:meth:`load_image`'s image and the :func:`content_digest` of the bytes it was decoded from (of its pixels
        for readers holding decoded pixels: idx), read once: what an extraction records of each row.
        ``decode_size``: see :func:`decode_opened` (an extraction passes its transform's)."""
        image, digest = self.open_with_digest(sample, checked=True)
        return decode_opened(image, decode_size), digest

    def open_with_digest(self, sample: Sample, checked: bool = False) -> tuple[Any, bytes]:
        """:meth:`open_image`'s image and the :func:`content_digest` of the bytes it was opened from (of its pixels
        for readers holding decoded pixels: idx), read once: the digest a cache recorded of it where unchanged."""
        image, data = self._opened(sample, checked)
        return image, content_digest(image.tobytes() if data is None else data)

    def open_image(self, sample: Sample, checked: bool = False):
        """One sample as a PIL image whose header is read and whose pixels are not decoded yet (its size known
        before the cost of decoding it: ``Image.draft`` can still shrink a JPEG's decode). ``checked``: its bytes
        must be those its content id counted (the reader's ``check``, where it has one)."""
        return self._opened(sample, checked)[0]

    def _opened(self, sample: Sample, checked: bool) -> tuple[Any, bytes | None]:
        """:meth:`open_image`'s image and the file bytes it was opened from (None for readers holding decoded
        pixels: idx)."""
        if hasattr(self.reader, "image"):  # readers holding decoded pixels (idx)
            return self.reader.image(sample.source), None
        data = self.reader.read(sample.source)
        if checked and hasattr(self.reader, "check"):
            self.reader.check(sample.source, data)
        return _image_of(data), data

CONTENT_DIGEST_SIZE = 16  # bytes of an image's content digest (BLAKE2b), a cache's ``digests`` row


def content_digest(data: bytes) -> bytes:
    """The BLAKE2b digest (:data:`CONTENT_DIGEST_SIZE` bytes) of an image file's bytes: the same image, whatever
    its name or data set, has the same one (a cache's ``digests``)."""
    return hashlib.blake2b(data, digest_size=CONTENT_DIGEST_SIZE).digest()


# The most pixels an image may decode to (after a JPEG's draft, decode_opened; the dashboard's previews too). PIL only
# warns below twice its own Image.MAX_IMAGE_PIXELS (89.5 Mpx): a 12,000 x 12,000 16-bit PNG of zeros (0.3 MB) then
# took 25 s and +1.9 GiB of one extraction worker's memory (an 8-bit one +1.6 GiB), each worker of a pool at once.
# 50 Mpx is a large camera's photo; a 100-Mpx JPEG still decodes (at 1/4 or 1/8 of its size).
MAX_DECODED_PIXELS = 50_000_000


def decode_opened(image, decode_size: tuple[int, int] | None = None):
    """Decode an opened PIL image (its header read) and return it. ``decode_size`` ((width, height), the least size
    a decode may shrink to: an extraction's is twice its resize's, ``ImageTransform.decode_size``): an image at least
    twice as large decodes reduced, so that the resize still does the last downscale (:func:`reduce_to`): a JPEG at
    the largest power-of-two reduction (1/2, 1/4, 1/8, libjpeg's DCT scaling through ``Image.draft``) that keeps it
    at least that large (a 12-megapixel photo in a fifth of the time, without its 128 MiB of whole-decode memory),
    then any image by the largest integer factor that does; smaller images decode as they are, pixel for pixel.

    Raises:
        PIL.Image.DecompressionBombError: the image would decode to more than :data:`MAX_DECODED_PIXELS` pixels
            (raised before any pixel is decoded).
    """
    from PIL import Image

    if decode_size is not None:
        image.draft("RGB", decode_size)  # no-op for other formats; "RGB" keeps a JPEG's own mode
    width, height = image.size
    if width * height > MAX_DECODED_PIXELS:
        raise Image.DecompressionBombError(
            f"{width} x {height} = {width * height:,} pixels, over the {MAX_DECODED_PIXELS:,} an image may decode to "
            "(a decompression bomb?); shrink it to use it")
    image.load()
    return image if decode_size is None else reduce_to(image, decode_size)


def reduce_to(image, size: tuple[int, int]):
    """A decoded PIL image averaged over blocks of k x k pixels (``Image.reduce``), k the largest integer that keeps
    it at least ``size`` ((width, height)); the image itself when k < 2. A PNG or TIFF just under
    :data:`MAX_DECODED_PIXELS` then costs the transform (:func:`to_rgb`, the tensor, the resize) a small image's
    memory, not several copies of its whole size (bench/README.md "Large photos"). Averaged as :func:`to_rgb` then
    reads the pixels: 8-bit RGB and greyscale as they are, 16-bit greyscale as 32-bit integers (its values), every
    other mode (palette, alpha, CMYK, 32-bit integers, floats) made RGB first (``reduce`` would average alpha
    premultiplied, blackening the colours ``to_rgb`` keeps under transparent pixels)."""
    factor = min(image.width // size[0], image.height // size[1])
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode not in ("RGB", "L"):
        image = to_rgb(image)
    return image.reduce(factor)


def decode_image(data: bytes, decode_size: tuple[int, int] | None = None):
    """A decoded PIL image of an image file's bytes (:func:`decode_opened`)."""
    return decode_opened(_image_of(data), decode_size)


def _image_of(data: bytes):
    """A PIL image of an image file's bytes, its header read (not yet decoded). A JPEG over PIL's decompression-bomb
    bound (twice ``Image.MAX_IMAGE_PIXELS``: 179 Mpx) is opened all the same: it decodes reduced (decode_opened's
    draft), and every decode is held to :data:`MAX_DECODED_PIXELS`. A 200-megapixel phone photo (16,320 x 12,240,
    a Galaxy S23 Ultra's) was refused as a decompression bomb where its extraction decodes 2,040 x 1,530 pixels."""
    from PIL import Image, JpegImagePlugin, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # its message names the BytesIO object, with its memory address
        raise UnidentifiedImageError("not an image format Pillow can read") from None
    except Image.DecompressionBombError:
        if not data.startswith(b"\xff\xd8\xff"):  # not a JPEG (or MPO: jpeg_factory reads either, as Image.open)
            raise
        return JpegImagePlugin.jpeg_factory(io.BytesIO(data))


# ------------------------------------------------------------------------------------ layout


def _split_roots(names: list[str]) -> list[tuple[tuple[str, ...], dict[str, set[str]]]]:
    """The prefixes P with P/train/… and P/test/… (or P/val/…) files → [(P, {split: its folders' names})],
    shallowest first, leaving out one inside another's split folder (``train/cat/test/`` is a class's subfolder);
    else those with P/test/… alone (a labelled test set: new images to score a shipped probe on). A split has more
    than one folder where names differ in case or alias (``Train/`` and ``train/``, ``val/`` and ``validation/``)."""
    candidates: dict[tuple[str, ...], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name in names:
        parts = name.split("/")
        for depth, part in enumerate(parts[:-2]):  # a split folder must hold class folders
            split = SPLIT_FOLDERS.get(part.lower())
            if split:
                candidates[tuple(parts[:depth])][split].add(part)
    # two split folders of any kind: val/ and test/ without train/ read as the classes "test" and "val" (a review)
    found = [(prefix, splits) for prefix, splits in candidates.items() if len(splits) >= 2]
    found = found or [(prefix, splits) for prefix, splits in candidates.items() if set(splits) == {"test"}]
    found.sort(key=lambda item: (len(item[0]), item[0]))
    inside = {outer + (folder,) for outer, folders in found for names in folders.values() for folder in names}
    return [(prefix, splits) for prefix, splits in found
            if not any(prefix[:depth] in inside for depth in range(1, len(prefix) + 1))]


def _split_dirs(prefix: tuple[str, ...], folders: dict[str, str]) -> list[tuple[str, ...]]:
    """The split folders of a split root, in train, val, test order."""
    return [prefix + (folders[split],) for split in SPLITS if split in folders]


def _one_split_root(reader: Reader, image_names: list[str]) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """The split root of a reader's images (see :func:`_split_roots`) with its one folder per split, or None for a
    single tree. Split folders in several places are refused: taking one would drop the others' images and classes
    without a word; so are two folders of one split (only the first was read, the others' images skipped, counted
    and not named, and the data set registered with what was left: an attack round, 1 training image per class)."""
    roots = _split_roots(image_names)
    if len(roots) > 1:
        kinds = "train/test" if "train" in roots[0][1] else "/".join(sorted(roots[0][1], key=SPLITS.index))
        places = listed(["/".join(prefix) or "the top folder" for prefix, _ in roots], 5)
        raise DatasetError(
            f"{reader}: found {kinds} folders in {len(roots)} places ({places}): register one of them, or "
            f"arrange the images in one tree (train/<class>/…, test/<class>/…)."
        )
    if not roots:
        return None
    prefix, folders = roots[0]
    for split, names in sorted(folders.items()):
        if len(names) > 1:
            raise DatasetError(f"{reader}: folders {' and '.join(f'{n}/' for n in sorted(names))} both name the "
                               f"{split} split: merge them into one folder (only one of them would be read).")
    return prefix, {split: next(iter(names)) for split, names in folders.items()}


def _common_root(names: list[str]) -> tuple[str, ...]:
    """Deepest folder that contains every file, stopping so that files still sit in class folders. Images loose in
    that folder beside two or more folders of images (``photos/cover.jpg`` beside ``photos/cat/``, ``photos/dog/``)
    leave it the root, those images skipped as not inside a class folder: going up a level made ``photos`` the one
    class, and a zip of such a folder was refused as one class folder, "if these are unlabelled images, ..."
    (a new-user round), where the folder itself read as cat and dog. Beside one folder that holds the class folders
    (``photos/cover.jpg`` beside ``photos/images/cat/``, ``photos/images/dog/``) the root is that folder's: it was
    ``photos``'s parent, ``photos`` the one class and the data set refused."""
    return _root_of(list(names))


def _root_of(names: list[str]) -> tuple[str, ...]:
    """:func:`_common_root` on the names as strings, without splitting each into a list: the folders every file
    shares are those of the longest common prefix of the smallest and the largest name, cut to the shallowest
    file's folders. Splitting and transposing every name spent most of its time in the garbage collector's passes
    over a million new lists (on 1.28 M synthetic names, 7.2 s before and 0.46 s after, side by side)."""
    if not names:
        return ()
    depth = min(name.count("/") for name in names)  # the shallowest file's number of folders
    prefix = os.path.commonprefix([min(names), max(names)]).split("/")[:-1][:depth]
    below = [name for name in names if name.count("/") > len(prefix)]
    if len(below) < len(names) and len({_part(name, len(prefix)) for name in below}) == 1:
        inner = _root_of(below)
        if _folders_below(below, inner) >= 2:
            return inner
    # Files must be at least one folder (the class) below the root.
    while prefix and depth <= len(prefix):
        if _folders_below(names, tuple(prefix)) >= 2:
            break
        prefix.pop()
    return tuple(prefix)


def _part(name: str, index: int) -> str:
    """The ``index``-th part of a '/'-separated name (which has more than ``index`` parts)."""
    return name.split("/", index + 1)[index]


def _folders_below(names: list[str], root: tuple[str, ...]) -> int:
    """How many folders directly in ``root`` hold files (``names``: the files' '/'-separated names)."""
    head = "".join(f"{part}/" for part in root)
    return len({_part(name, len(root)) for name in names if name.startswith(head) and name.count("/") > len(root)})


def _is_under(name: str, folder: tuple[str, ...]) -> bool:
    head = "/".join(folder)
    return not folder or name == head or name.startswith(head + "/")


# Folders that file systems, NAS boxes and archivers add beside a user's own (any case): macOS's resource forks in a
# zip, a Synology's thumbnails in every folder (@eaDir/IMG_1.JPG/SYNOPHOTO_THUMB_XL.jpg: each photo again, under
# its class, counted as training and test images without a word; a new-user round), a QNAP's and a Synology's
# recycle bins, Windows's recycle bin and volume information on a USB stick (each became a class of its own).
METADATA_FOLDERS = frozenset({"__macosx", "@eadir", "#recycle", "#snapshot", "@recycle", "$recycle.bin",
                              "system volume information"})


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part.lower() in METADATA_FOLDERS for part in name.split("/"))


def _class_folders(
    reader: Reader, names: list[str], prefix: tuple[str, ...], skipped: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """Map class folder name → sorted image files under ``prefix/<class>/`` (recursively)."""
    classes: dict[str, list[str]] = {}
    depth = len(prefix)
    for directory in reader.dirs():
        parts = directory.split("/")
        if len(parts) == depth + 1 and tuple(parts[:depth]) == prefix and not _is_hidden(directory):
            classes.setdefault(class_name(parts[depth]), [])
    for name in names:
        parts = name.split("/")
        if tuple(parts[:depth]) != prefix:
            continue
        if len(parts) < depth + 2:
            skipped.append((name, "not inside a class folder"))
            continue
        if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append((name, not_an_image(name)))
            continue
        classes.setdefault(class_name(parts[depth]), []).append(name)
    return {k: sorted(v) for k, v in classes.items()}


# ------------------------------------------------------------------------------ subsetting


def _by_class(samples: list[Sample]) -> dict[int, list[Sample]]:
    groups: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.label].append(sample)
    return groups


def _subset(samples: list[Sample], max_per_class: int | None, rng: np.random.Generator) -> list[Sample]:
    if max_per_class is None:
        return samples
    kept: list[Sample] = []
    for label, group in sorted(_by_class(samples).items()):
        if len(group) > max_per_class:
            order = rng.permutation(len(group))[:max_per_class]
            group = [group[i] for i in sorted(order)]
        kept.extend(group)
    return sorted(kept, key=lambda s: s.source)


def _carve(samples: list[Sample], fraction: float, rng: np.random.Generator) -> tuple[list[Sample], list[Sample]]:
    """Stratified, seeded split → (rest, carved) with ``round(n_k·fraction)`` carved per class."""
    rest: list[Sample] = []
    carved: list[Sample] = []
    for label, group in sorted(_by_class(samples).items()):
        n = len(group)
        k = int(round(n * fraction))
        if fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        chosen = set(rng.permutation(n)[:k].tolist())
        for i, sample in enumerate(group):
            (carved if i in chosen else rest).append(sample)
    key = lambda s: s.source  # noqa: E731
    return sorted(rest, key=key), sorted(carved, key=key)


def _idx_order(given: dict[str, dict[str, list[str]]]) -> list[str]:
    order: list[str] = []
    for classes in given.values():
        order.extend(c for c in classes if c not in order)
    return order


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")


# -------------------------------------------------------------------------------- entry point


Discovery = tuple[Reader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# the archives a data set may be (TarReader, ZipReader): what the service takes as an upload too (it refused a
# .tar.xz upload that the same file, registered as a server path, read; a review)
ARCHIVE_SUFFIXES = (".zip", *TAR_SUFFIXES)


def _empty(reader: Reader, name: str) -> bool:
    """Whether a listed file holds no byte (a reader without sizes, e.g. idx, never lists one)."""
    try:
        return hasattr(reader, "size") and reader.size(name) == 0
    except OSError:  # gone since the listing: the extraction says so
        return False


def _listed(reader: Reader) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """A reader's files → (names but hidden ones, image names among them, skipped (source, reason) so far).
    Raises DatasetError when there is no image file."""
    skipped = [(printable(name), why) for name, why in getattr(reader, "unsafe", [])]
    names = []
    for name in reader.names():
        if _is_hidden(name):
            skipped.append((printable(name), "hidden or metadata file"))
        elif unprintable(name):
            skipped.append((printable(name), UNPRINTABLE_NAME))
        elif _empty(reader, name):  # 400,000 empty .png files registered as images (an attack round)
            skipped.append((name, EMPTY_FILE))
        else:
            names.append(name)
    image_names = [n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    if not image_names:
        raise DatasetError(
            f"{reader}: no image files found (accepted extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})."
            # class folders that are symlinks said no more (a README round); nor did a folder of .HEIC photos, or a
            # zip of zips, name a file it holds (a new-user round)
            + _skipped_summary(skipped + [(name, not_an_image(name)) for name in names])
        )
    return names, image_names, skipped


def _class_folder_layout(reader: Reader) -> Discovery:
    """Find split and class folders among a reader's files (see module docstring)."""
    names, image_names, skipped = _listed(reader)
    located = _one_split_root(reader, image_names)
    given: dict[str, dict[str, list[str]]] = {}
    if located:
        prefix, folders = located
        for split, folder in folders.items():
            given[split] = _class_folders(reader, names, prefix + (folder,), skipped)
        used = _split_dirs(prefix, folders)
        # each folder quoted, as other messages quote names: 'a b/train' reads unambiguously in a list
        reason = f"outside the split folders ({', '.join(repr('/'.join(folder)) for folder in used)})"
        skipped += [(name, reason) for name in names if not any(_is_under(name, folder) for folder in used)]
        return reader, given, skipped, "split-folders"
    root = _common_root(image_names)
    skipped += [(name, "not inside a class folder") for name in names if not _is_under(name, root)]
    given["train"] = _class_folders(reader, names, root, skipped)
    return reader, given, skipped, "single-tree"


def _file_reader(path: Path, limits: ArchiveLimits | None) -> Reader | None:
    """The reader of a folder, .zip or tar archive's files; None for another kind of file."""
    name = path.name.lower()
    if path.is_dir():
        return DirectoryReader(path)
    if not path.exists():
        raise FileNotFoundError(f"data set {path} does not exist.")
    if name.endswith(".zip"):
        return ZipReader(path, limits)
    if name.endswith(TAR_SUFFIXES):
        return TarReader(path, limits)
    return None


def _discover(path: Path, limits: ArchiveLimits | None) -> Discovery:
    """Pick the reader for ``path`` — one branch per supported format."""
    name = path.name.lower()
    if path.is_dir() and find_idx_files(path):
        return open_idx(path, limits)
    if path.is_dir() and has_manifest_pair(path):
        return read_manifest_pair(path, IMAGE_EXTENSIONS)
    reader = _file_reader(path, limits)
    if reader is not None:
        return _class_folder_layout(reader)
    if name.endswith(".csv"):
        return read_manifest(path, IMAGE_EXTENSIONS)
    if "-idx" in name and "-ubyte" in name:
        return open_idx(path.parent, limits)
    raise DatasetError(
        f"Unsupported data set {path}; accepted: a folder of class folders, a .zip or "
        f"{'/'.join(TAR_SUFFIXES)} archive of one, a .csv manifest (path,label) or a folder of idx files."
    )


def group_skipped(skipped: list[tuple[str, str]], examples: int = 3,
                  most: int | None = None) -> list[dict[str, Any]]:
    """``(name, reason)`` pairs of skipped files → ``[{"reason", "count", "examples"}]``, the most frequent reason
    first (ties: the first found first), at most ``most`` of them (None: all), each with the first ``examples``
    names: what a refusal says (:func:`_skipped_summary`) and the service records (``app.skipped``)."""
    counts = Counter(reason for _, reason in skipped)
    named: dict[str, list[str]] = {}
    for name, reason in skipped:
        first = named.setdefault(reason, [])
        if len(first) < examples:
            first.append(name)
    order = sorted(named, key=lambda reason: -counts[reason])  # stable: ties keep the order found
    return [{"reason": reason, "count": counts[reason], "examples": named[reason]} for reason in order[:most]]


def _skipped_summary(skipped: list[tuple[str, str]], shown: int = 3) -> str:
    """Why files were skipped, the most frequent reasons first with a count and an example each, or "": an empty
    class whose images were all skipped (symlinks out of a manifest's folder) said only that it had none (a README
    round)."""
    if not skipped:
        return ""
    # the names are escaped already (archives.printable): repr() wrote 'ca\\x07t' for a folder ca\x07t (a round)
    reasons = "; ".join(f"{g['reason']}: {g['count']:,} (e.g. '{g['examples'][0]}')"
                        for g in group_skipped(skipped, examples=1, most=shown))
    return f" Skipped {len(skipped):,}: {reasons}."


_NAMED = 10  # the classes a refusal names; the rest counted (probe.names.listed)
# How a CSV manifest is given as a data set: the refusal and the warning of one left unread in a folder or archive
GIVE_MANIFEST = "mr2probe extract --data FILE.csv, or its path registered as a folder or CSV on the server"


def _unread_manifest(path: Path, skipped: list[tuple[str, str]]) -> str:
    """The sentence of a refusal of ``path`` read as class folders that holds a CSV file, skipped: how to read it as
    the manifest instead, or "". A folder holding its manifest was read as class folders, the CSV unmentioned (a
    new-user round); a zip of the same files, uploaded, still said nothing of it (a review)."""
    # the shallowest first: a notes.csv inside a class folder ('cat/notes.csv') was named before the top folder's
    # labels.csv, sorted ahead of it by name (a review)
    found = sorted((source for source, _ in skipped if source.lower().endswith(".csv")),
                   key=lambda source: (source.count("/"), source))
    if not found:
        return ""
    where = path / found[0] if path.is_dir() else f"{found[0]} in {path.name}, once unpacked"
    return f" A manifest here is read only when named itself: {where} ({GIVE_MANIFEST})."


def _class_names(path: Path, given: dict[str, dict[str, list[str]]], layout: str,
                 skipped: list[tuple[str, str]] = ()) -> list[str]:
    """Class names of the discovered splits, checked: training images (or a test split alone), ≥ 2 classes (one is
    enough for a test split alone), no empty class folder."""
    if "train" not in given and set(given) != {"test"}:
        folders = f" ({' and '.join(f'{split}/' for split in SPLITS if split in given)} folders, no train/ folder)"
        raise DatasetError(f"{path}: no training images found{folders if layout == 'split-folders' else ''}; a "
                           "labelled set to score a trained probe on goes in a test/ folder alone.")
    found = set().union(*[set(c) for c in given.values()])
    if layout == "idx":  # keep the label order of the files (T-shirt/top = 0, ...)
        class_names = [c for c in _idx_order(given) if c in found]
    else:
        class_names = sorted(found)
    _check_printable(path, class_names)  # before any message names them; a folder of skipped files reads empty
    if len(class_names) < 2 and not (set(given) == {"test"} and class_names):
        # a labelled test set alone scores a trained probe: new images of the one class it fails on are such a set
        # images in no class folder, or directly in the one top folder ('incoming/a.png': that folder zipped)
        loose = layout == "single-tree" and (not class_names or any(
            f.split("/")[:-1] == class_names for classes in given.values() for f in classes[class_names[0]]))
        # a zip of new images to predict, uploaded without its unlabelled flag, read as a one-class data set with no
        # word of how to read it (a new-user round)
        raise (NoClassFolders if loose else DatasetError)(
            f"{path}: found {len(class_names)} class folder(s) ({', '.join(class_names) or 'none'}); "
            "a probe needs at least 2 classes."
            + _unread_manifest(path, skipped)
            + (" If these are unlabelled images, for a trained probe to predict, read them as such (`mr2probe "
               "extract --unlabelled`)." if loose else "")
        )
    empty: dict[str, list[str]] = {}  # class → the splits where its folder holds no image
    for split, classes in given.items():
        for name in (c for c, files in classes.items() if not files):
            empty.setdefault(name, []).append(split)
    if empty:
        where = listed([f"{name!r} (in {' and '.join(repr(s) for s in sorted(splits, key=SPLITS.index))})"
                        for name, splits in sorted(empty.items())], _NAMED, sep="; ")
        linked = sorted(source for source, reason in skipped if reason == SYMLINKED_FOLDER)
        manifest = layout.startswith("manifest") or path.suffix.lower() == ".csv"  # a manifest has no class folders
        what = ("class(es) {where} have no images in the manifest's rows; add rows or images" if manifest
                else "class folder(s) {where} contain no images; add images or remove the folder").format(where=where)
        raise DatasetError(f"{path}: {what}."
                           + (f" Symlinked folders are not followed: {', '.join(linked[:5])}." if linked else "")
                           + _skipped_summary(skipped))
    missing = [c for c in class_names if "train" in given and c not in given["train"]]
    if missing:
        untested = [c for c in class_names if "test" in given and c not in given["test"]]
        raise DatasetError(_untrained(path, layout, missing, untested))
    return class_names


def _untrained(path: Path, layout: str, missing: list[str], untested: list[str]) -> str:
    """The refusal of classes ``missing`` training images, ``untested`` those without test images, of a data set at
    ``path``; a manifest pair's names the file that lacks each (its class names only in test.csv were said to have
    'no training images', train.csv's same classes numbered '0', '1' 'no test images either': a review)."""
    if layout != "manifest-pair":
        return (f"{path}: class(es) {listed(missing, _NAMED)} have no training images."
                + (f" Class(es) {listed(untested, _NAMED)} have no test images either." if untested else ""))
    train, test = MANIFEST_PAIR
    said = (f"{path}: class(es) {listed(missing, _NAMED)} are in {test} but not in {train}: a probe needs training "
            "images of every class it is tested on")
    if not untested:
        return said + f"; add their rows to {train} or leave their rows out of {test}."
    return (said + f", and class(es) {listed(untested, _NAMED)} are in {train} but not in {test}: are the labels "
            "written alike in both files?")


def _split(pools: dict[str, list[Sample]], max_per_class: int | None, val_fraction: float,
           test_fraction: float, rng: np.random.Generator) -> dict[str, list[Sample]]:
    """Subset every given split, then carve the missing ``test`` and ``val`` (module docstring, 1–3)."""
    for split in SPLITS:
        if split in pools:
            pools[split] = _subset(pools[split], max_per_class, rng)
    if set(pools) == {"test"}:  # a labelled test set alone: every image stays in test
        return {"train": [], "val": [], "test": pools["test"]}
    if "test" not in pools:
        pools["train"], pools["test"] = _carve(pools["train"], test_fraction, rng)
    splits = {"train": pools["train"]}
    if "val" in pools:
        splits["val"] = pools["val"]
    else:
        splits["train"], splits["val"] = _carve(pools["train"], val_fraction, rng)
    splits["test"] = pools["test"]
    return {name: splits[name] for name in SPLITS}


# PIL modes of more than 8 bits a channel (16-bit PNG and TIFF greyscale, 32-bit integers and floats): their
# convert("RGB") clips every value above 255, which left a 16-bit image white (an outside round)
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image):
    """A PIL image of any mode as 8-bit RGB. By a fixed rule per mode, whatever the image's values: 16-bit and
    32-bit integer greyscale are 16-bit values scaled by 255/65535 (as torchvision's ``to_dtype`` scales a 16-bit
    PNG; 32-bit ones clipped to 0..65535 first), floats are 0..1 scaled by 255 (NaN as 0), both rounded and clipped;
    alpha and palette transparency are dropped, not composited (PIL's ``convert``); the EXIF orientation is not
    applied (the pixels as stored, as torchvision's readers give them). Integer arithmetic, floats in float32 in
    place: a 16-megapixel 16-bit image costs a few times its own size, not 16 times."""
    if image.mode == "RGB":
        return image
    if image.mode not in _WIDE_MODES:
        return image.convert("RGB")
    from PIL import Image

    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.multiply(values, 255.0, dtype=np.float32)
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        grey = np.rint(scaled, out=scaled).astype(np.uint8)
    else:  # 16-bit (any byte order) or 32-bit integers: round(v * 255 / 65535) in 32-bit integers
        wide = np.clip(values, 0, 65535).astype(np.int32) if values.dtype.itemsize > 2 else values.astype(np.int32)
        wide *= 255
        wide += 32767
        wide //= 65535
        grey = wide.astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def dataset_counts(data: LabelledImages) -> dict[str, list[int]]:
    """Images per class for each split of a ``LabelledImages`` (class order)."""
    num_classes = len(data.class_names)
    counts: dict[str, list[int]] = {}
    for split, samples in data.splits.items():
        tally = Counter(int(s.label) for s in samples)
        counts[split] = [tally.get(k, 0) for k in range(num_classes)]
    return counts


def classes_without(counts: dict[str, list[int]], class_names: list[str],
                    splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Classes with no image in one of ``splits`` (``counts``: split → images per class, in class order)."""
    return [name for k, name in enumerate(class_names)
            if any(not counts.get(split) or counts[split][k] == 0 for split in splits)]


def how_to_add(gaps: list[str], layout: str | None, location: str | os.PathLike | None = None) -> str:
    """How to give classes the images of the splits ``gaps`` (``"train"``, ``"test"``) they lack, in the words of
    the data set's ``layout`` (``params["layout"]``) opened from ``location``: rows of a manifest (with the split
    column's value where it has one; a single CSV was told to add a class folder under test/, which it has none
    of: a follow-up round), else images in class folders."""
    either = " or ".join(gaps)
    manifest = Path(location).name if location and str(location).lower().endswith(".csv") else None
    if layout == "manifest-pair":
        files = dict(zip(("train", "test"), MANIFEST_PAIR))
        return f"add their rows to {' or '.join(files[split] for split in gaps)}"
    if layout == "manifest-splits":
        return f"add their rows to {manifest or 'the manifest'} with {either} in its split column"
    if manifest:  # a manifest without a split column: its rows are split as a folder without splits is
        return f"add their rows to {manifest} (at least 2 images of each class, to be split into train and test)"
    folders = " or ".join(f"{split}/" for split in gaps)
    return f"add images (a class folder under {folders}, or at least 2 images in a data set without splits)"


def unused_val_share(data: LabelledImages, option: str, value: float | None) -> str | None:
    """The warning for a val share asked for (``option`` set to ``value``; None: not asked) that does nothing on
    ``data``, whose val split is its own (``val_given``), else None: the CLI's, torchrun's and a job's words."""
    if value is None or not data.val_given:
        return None
    return (f"{option} {value} is unused: the data set has a val split of its own ({len(data.splits['val']):,} "
            "images), used as it is; no share of train is carved out")


def carved_test_note(data: LabelledImages) -> str | None:
    """What a labelled ``data`` without a test split of its own (no test/ folder or manifest rows) gets instead: a
    share of each class carved out as test, which the extraction said nowhere (a new-user round: 4 test images of a
    36-image set, the report's every test figure on them); None when its test split is its own, or unlabelled."""
    fraction = data.params.get("test_fraction")
    if not data.labelled or "test" in data.given_splits or fraction is None:
        return None
    source = "its train/ folder" if data.params.get("layout") == "split-folders" else "its images"
    return (f"the data set has no test split of its own: {len(data.splits.get('test', [])):,} images, "
            f"{fraction:g} of each class of {source} (seed {data.params.get('seed')}), are carved out as test, "
            "where every test figure of a run on it is measured; give it a test/ folder to choose them")


def _same_bytes(groups, read) -> list[list]:
    """``groups`` of (split, sample) pairs whose content ids match, each split again by the sha256 of its files'
    bytes (``read``: source → bytes): a zip's content id is a CRC-32 and a size, which distinct images share by
    chance once there are hundreds of thousands; only the candidates are read."""
    confirmed = []
    for group in groups:
        by_bytes: dict[bytes, list] = defaultdict(list)
        for split, sample in group:
            by_bytes[hashlib.sha256(read(sample.source)).digest()].append((split, sample))
        confirmed.extend(g for g in by_bytes.values() if len(g) > 1)
    return confirmed


def _worth_naming(group) -> bool:
    """Whether (split, sample) pairs of one content would be named: in test and in train or val, or under two
    classes."""
    in_test = sum(split == "test" for split, _ in group)
    return 0 < in_test < len(group) or len({sample.label for _, sample in group}) > 1


def duplicates_warning(class_names: list[str], splits: dict[str, list[Sample]], contents: dict[str, Any],
                       shown: int = 3, read=None) -> str | None:
    """A caution naming files of the same content (``contents``: source → a key of its content id, the
    fingerprint's: a folder file's sha256, a zip member's CRC-32 and size, a tar member's sha256) that sit in
    ``test`` and in ``train`` or ``val`` (the test figures then score images the probe trained or was selected on),
    or under two classes (one image, two labels); None when there are none. Only the samples of ``splits`` are
    looked at (what ``max_per_class`` kept). ``read`` (source → bytes), when given, confirms the matches by the
    files' bytes (:func:`_same_bytes`). A test/ folder copied from train/ read 100 % without a word (a new-user
    round)."""
    where: dict[Any, list[tuple[str, Sample]]] = defaultdict(list)
    for split, samples in splits.items():
        for sample in samples:
            where[contents[sample.source]].append((split, sample))
    leaked: list[str] = []
    mixed: list[str] = []
    # only a group that would be named is read: copies inside one split and one class (no leak, no second label)
    # are left unread, as a large zip's many of them were each decompressed for nothing
    candidates = [group for group in where.values() if len(group) > 1 and _worth_naming(group)]
    for group in candidates if read is None else _same_bytes(candidates, read):
        in_test = [s for split, s in group if split == "test"]
        if in_test and len(in_test) < len(group):
            seen = next(s for split, s in group if split != "test")
            # quoted, as other messages quote a file's name: unquoted, a client message read 'test/Cat /x.png' as a
            # name and a server path ('test/Cat <server path>', app.messages)
            leaked.extend(f"{s.source!r} = {seen.source!r}" for s in in_test)
        if len({s.label for _, s in group}) > 1:
            # one file of each class: the group's first few could all be of one class, naming no second label
            each: dict[int, Sample] = {}
            for _, s in group:
                each.setdefault(s.label, s)
            mixed.append(" = ".join(f"{s.source!r} ({class_names[s.label]!r})" for s in list(each.values())[:shown]))
    if not leaked and not mixed:
        return None
    parts = []
    if leaked:
        test = len(splits.get("test", []))
        parts.append(f"{len(leaked):,} of the {test:,} test images {'has' if len(leaked) == 1 else 'have'} the same "
                     "content as a train or val image "
                     f"({listed(sorted(leaked), shown, sep='; ')}): test figures on them measure images the probe "
                     "trained or was selected on")
    if mixed:
        parts.append(f"{len(mixed):,} file content(s) sit under more than one class "
                     f"({listed(sorted(mixed), shown, sep='; ')}): one image, two labels")
    return "; ".join(parts) + "; remove the copies"


# Folder names of a split that the reader does not take as one (it takes SPLIT_FOLDERS): read as class folders, they
# made a probe tell training from test images (Kaggle's cats and dogs: training_set/training_set/cats/, a new-user
# round). Compared lower-case, "-" and " " read as "_".
SPLIT_LIKE_NAMES = frozenset({"training", "testing", "train_set", "training_set", "test_set", "testing_set",
                              "val_set", "valid_set", "validation_set", "train_data", "test_data", "train_images",
                              "test_images", "trainset", "testset", "valset"})


def split_named_classes_warning(class_names: list[str]) -> str | None:
    """A caution when class folders are named like splits (``training_set/``, ``test_set/``, ``testing/``), which the
    reader does not take as split folders (only train, test, val, valid, validation): their images are labelled by
    the split they sit in; None otherwise."""
    named = [name for name in class_names if re.sub(r"[-\s]", "_", name.strip().lower()) in SPLIT_LIKE_NAMES]
    if not named:
        return None
    return (f"class folder(s) {', '.join(map(repr, named[:5]))} are named like splits, which are read only as train/, "
            "val/ (valid/, validation/) and test/: their images are labelled by the folder's name; rename the split "
            "folders train/ and test/, with a folder per class in each (and no folder between)")


def nested_classes_warning(data: LabelledImages, shown: int = 5) -> str | None:
    """A caution when every class folder holds the same two or more subfolders and no image of its own
    (``batch1/cat/``, ``batch1/dog/``, ``batch2/cat/``, ``batch2/dog/``): the classes are then likely those
    subfolders, one level down, and the images are labelled by the wrong folder (batch1, batch2) without a word
    (class folders are read recursively; a new-user round); None otherwise, and for an unlabelled set."""
    if not data.labelled or data.num_classes < 2:
        return None
    # each class's folder once (as unicode_forms_warning): per image, the 1.28M paths of ImageNet's layout took 4.4 s
    # of every extraction; each folder as the list of its parts (an image's path less its file name)
    places = {(sample.label, sample.source[:sample.source.rfind("/") + 1])
              for split in data.splits.values() for sample in split}
    if not places:
        return None
    parts = [(data.class_names[label], place.split("/")[:-1]) for label, place in places]
    depths: set[int] | None = None  # the levels at which every folder so far names its own class
    for name, p in parts:
        levels = range(len(p)) if depths is None else [i for i in depths if i < len(p)]
        depths = {i for i in levels if class_name(p[i]) == name}
        if not depths:  # a manifest's labels are no folders
            return None
    depth = min(depths)
    inner: dict[str, set[str]] = {}
    for name, p in parts:
        if len(p) <= depth + 1:  # an image in the class folder itself
            return None
        inner.setdefault(name, set()).add(class_name(p[depth + 1]))
    folders = set.union(*inner.values())
    if len(inner) < data.num_classes or len(folders) < 2 or any(f != folders for f in inner.values()):
        return None
    return (f"every class folder ({listed(sorted(inner), shown)}) holds the same subfolders "
            f"({listed(sorted(folders), shown)}) and no image of its own: if those subfolders are the classes, "
            "each image is labelled by the folder above them instead; arrange the images as <class>/<images> "
            "(class folders are read with all their subfolders)")


def unread_manifest_warning(data: LabelledImages, shown: int = 3) -> str | None:
    """A caution when a folder or archive read as class folders holds a CSV file, which was skipped: a Kaggle-style
    export (``labels.csv`` beside ``images/...``) was labelled by its folders' names, the manifest's labels unread and
    only counted among the skipped files (a new-user round); None otherwise, and for a data set read from a manifest
    (its CSV is the data set, not a skipped file)."""
    if not data.labelled or str(data.location).lower().endswith(".csv"):
        return None
    found = sorted({source for source, _ in data.skipped if source.lower().endswith(".csv")})
    if not found:
        return None
    were, one = ("were", "one") if len(found) > 1 else ("was", "it")
    return (f"{listed([repr(f) for f in found], shown)} {were} not read: the labels are the class folders' names "
            f"({listed([repr(c) for c in data.class_names], 5)}). If {one} is a CSV manifest of the labels, give that "
            f"file itself as the data set ({GIVE_MANIFEST}): a manifest inside a folder or archive of images is not "
            "read")


def _manifests(data: LabelledImages) -> list[Path]:
    """The CSV manifests ``data`` was read from (a manifest, or a folder of a train and a test one); [] otherwise."""
    location, layout = Path(getattr(data, "location", "")), getattr(data, "params", {}).get("layout")
    if layout == "manifest-pair":
        return [location / name for name in MANIFEST_PAIR]
    return [location] if location.suffix.lower() == ".csv" else []


def _folder_forms(data: LabelledImages) -> dict[str, set[str]]:
    """Each class name → the names of the folders its images sit in that read as it (``class_name``)."""
    # each folder once: per image, 1.28M images (ImageNet's layout) took 4.3 s of a registration (a review)
    folders = {(sample.label, sample.source.rpartition("/")[0]) for split in data.splits.values() for sample in split}
    forms: dict[str, set[str]] = {}
    for label, folder in folders:
        name = data.class_names[label]
        forms.setdefault(name, set()).update(part for part in folder.split("/") if class_name(part) == name)
    return forms


def unicode_forms_warning(data: LabelledImages, shown: int = 3) -> str | None:
    """A caution when one class's images sit in folders whose names are one name in two Unicode forms ('café'
    composed, NFC, and decomposed, NFD, as macOS writes names), or carry a manifest's labels written so or with white
    space at an end ('cat ' and 'cat': ``feature_cache.manifest.label_forms``): they are read as one class
    (``probe.names.class_name``) and nothing said so (an extremes round; a manifest's labels, an odd-data-sets
    round); None otherwise."""
    if not data.labelled:
        return None
    manifests = _manifests(data)
    forms = label_forms(manifests) if manifests else _folder_forms(data)
    merged = [(name, sorted(found)) for name, found in forms.items() if len(found) > 1]
    if not merged:
        return None
    said = "; ".join(f"{' and '.join(map(ascii, found))} as {name!r}" for name, found in merged[:shown])
    more = f" (and {len(merged) - shown} more)" if len(merged) > shown else ""
    what = ("labels of the manifest written alike in two forms (Unicode composed and decomposed, or with white space "
            "at an end)" if manifests else
            "class folders named alike in two Unicode forms (composed, and decomposed as macOS writes names)")
    return f"{what} are read as one class: {said}{more}"


MAX_CLASS_NAME = MAX_NAME  # characters, as the service's names (probe.names.MAX_NAME)


def _check_printable(path: Path, class_names: list[str]) -> None:
    """DatasetError naming the first class name (folder name or label) longer than :data:`MAX_CLASS_NAME`
    characters (shortened), else the class names that hold ``probe.names.UNPRINTABLE`` characters, or only spaces
    (a blank row in every table; found by an outside attack round)."""
    long = next((name for name in class_names if len(name) > MAX_CLASS_NAME), None)
    if long is not None:
        raise DatasetError(f"{path}: class name {ascii(long[:60] + '...')} is {len(long)} characters long; class "
                           f"names are at most {MAX_CLASS_NAME}: shorten that folder name (or label).")
    bad = [name for name in class_names if unprintable(name)]
    if bad:
        raise DatasetError(f"{path}: class name(s) {', '.join(ascii(name) for name in bad[:5])} hold control or "
                           "text-direction characters, or bytes that are not UTF-8, which would reach terminals, "
                           "reports and pages as they are; rename those folders (or labels).")
    blank = [name for name in class_names if not name.strip()]
    if blank:
        raise DatasetError(f"{path}: class name(s) {', '.join(map(repr, blank[:5]))} are blank (spaces only); "
                           "rename those folders (or labels).")


def open_dataset(
    path: str | Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    max_per_class: int | None = None,
    limits: ArchiveLimits | None = None,
    test_fraction: float = 0.2,
    fingerprint: bool = True,
) -> LabelledImages:
    """Open a labelled image set and split it into ``train`` / ``val`` / ``test`` (see module docstring).

    Args:
        path: folder, .zip or .tar(.gz) archive of class folders, .csv manifest, or folder of idx files.
        val_fraction: fraction of each class's train samples carved into ``val`` (when none is given; unused and
            recorded as :data:`DEFAULT_VAL_FRACTION` in ``params`` otherwise).
        seed: seed of every random choice (subsetting, carving).
        max_per_class: keep at most this many samples per class in each given split.
        limits: archive safety limits (defaults: :class:`ArchiveLimits`).
        test_fraction: fraction carved into ``test`` when the data set has no train/test folders.
        fingerprint: False skips the content digest of every file (a folder's is the sha256 of each whole file):
            the listing alone, its ``fingerprint`` "" (what a service checks of a data set before a job exists).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeArchive: the archive breaks a safety rule.
        DatasetError: no usable layout, an empty class, or fewer than two classes.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}.")
    if not 0 <= seed <= MAX_SEED:  # numpy's 'expected non-negative integer' named neither the seed nor its value
        raise ValueError(f"seed must be in [0, {MAX_SEED}], got {seed}.")
    path = Path(path)
    reader, given, skipped, layout = _discover(path, limits)
    class_names = _class_names(path, given, layout, skipped)
    index = {name: i for i, name in enumerate(class_names)}
    pools = {
        split: sorted(
            (Sample(f, index[c]) for c, files in classes.items() for f in files), key=lambda s: s.source
        )
        for split, classes in given.items()
    }
    contents: dict[str, int] = {}  # source → a 64-bit key of its content id, for duplicates_warning
    given_test: list[tuple[str, int, str]] = []  # the given test split's rows of the digest: its own digest

    def content_ids(samples: list[Sample], keep: list | None = None):
        for sample in samples:
            content = reader.content_id(sample.source)
            contents[sample.source] = hash(content)
            if keep is not None:
                keep.append((sample.source, sample.label, content))
            yield sample.source, sample.label, content

    digest = "" if not fingerprint else dataset_fingerprint(class_names, {
        split: content_ids(samples, given_test if split == "test" else None) for split, samples in pools.items()})
    test_digest = dataset_fingerprint(class_names, {"test": given_test}) if given_test else ""
    splits = _split(pools, max_per_class, val_fraction, test_fraction, np.random.default_rng(seed))
    duplicates = duplicates_warning(class_names, splits, contents, read=reader.read) if contents else None
    del contents
    params = {
        "layout": layout,
        # unused where the data set gives its val split: recorded as the default then, so that a share asked for in
        # vain names no other extraction (the cache fingerprint; caches written before keep theirs)
        "val_fraction": DEFAULT_VAL_FRACTION if "val" in given else val_fraction,
        "test_fraction": test_fraction if "test" not in given else None,
        "seed": seed,
        "max_per_class": max_per_class,
    }
    logger.info(
        "data set %s: %d classes, %s, %d skipped",
        path, len(class_names), {k: len(v) for k, v in splits.items()}, len(skipped),
    )
    return LabelledImages(class_names, splits, skipped, digest, params, reader, str(path),
                          tuple(split for split in SPLITS if split in given), duplicates, test_digest)


def open_images(path: str | Path, *, limits: ArchiveLimits | None = None) -> LabelledImages:
    """Every image file under ``path`` (a folder, .zip or tar archive; any folders, none needed), unlabelled: the
    new images a shipped probe predicts (``mr2probe extract --unlabelled``, then ``mr2probe predict``).

    One split, ``test``, in sorted source order (``train`` and ``val`` empty); every sample's label is 0, the one
    class :data:`UNLABELLED`; ``params["layout"]`` is ``"unlabelled"`` (:attr:`LabelledImages.labelled` False),
    which the cache records. Non-image and hidden files are skipped as in :func:`open_dataset`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeArchive: the archive breaks a safety rule.
        DatasetError: no image file, or ``path`` is neither a folder nor an archive.
    """
    path = Path(path)
    reader = _file_reader(path, limits)
    if reader is None:
        raise DatasetError(f"Unsupported image set {path}; unlabelled images come as a folder, a .zip or a "
                           f"{'/'.join(TAR_SUFFIXES)} archive.")
    names, image_names, skipped = _listed(reader)
    images = set(image_names)
    skipped += [(name, not_an_image(name)) for name in names if name not in images]
    samples = [Sample(name, 0) for name in sorted(images)]
    fingerprint = dataset_fingerprint(
        [UNLABELLED], {"test": [(s.source, s.label, reader.content_id(s.source)) for s in samples]})
    logger.info("unlabelled images %s: %d, %d skipped", path, len(samples), len(skipped))
    return LabelledImages([UNLABELLED], {"train": [], "val": [], "test": samples}, skipped, fingerprint,
                          {"layout": UNLABELLED_LAYOUT}, reader, str(path), ("test",))
