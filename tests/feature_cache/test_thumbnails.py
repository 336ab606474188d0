"""Thumbnails: listed samples only (folder and zip), PNG of bounded size, everything else refused unread."""
from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from fc_testutils import write_image
from feature_cache import open_dataset
from feature_cache.thumbnails import Thumbnailer


def _png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def test_listed_sources_from_a_folder(tree):
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    assert _png_size(thumbs.png("train/ant/000.png")) == (12, 12)  # small images are not enlarged
    write_image(tree / "train" / "bee" / "big.png", 1, 99, size=300)
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    assert _png_size(thumbs.png("train/bee/big.png")) == (128, 128)
    assert _png_size(thumbs.png("train/bee/big.png", size=40)) == (32, 32)  # the kept size at most 40 (THUMBNAIL_SIZES)
    with pytest.raises(ValueError, match="size must lie in 8..512"):
        thumbs.png("train/bee/big.png", size=4096)


@pytest.mark.parametrize("source", ["../outside.png", "/etc/passwd", "train/ant/../../../outside.png",
                                    "train/ant/missing.png", "notes.txt", "train/ant", ""])
def test_unlisted_sources_are_refused(tree, source):
    (tree / "notes.txt").write_text("not an image")
    (tree.parent / "outside.png").write_bytes(b"secret")
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    assert source not in thumbs
    with pytest.raises(KeyError, match="is not a sample of this data set"):
        thumbs.png(source)


def test_zip_members_and_skipped_files(tree, tmp_path):
    (tree / "train" / "cat" / "notes.txt").write_text("not an image")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tree.parent).as_posix())
    data = open_dataset(archive, val_fraction=0.0)
    thumbs = Thumbnailer(data)
    source = data.splits["test"][0].source
    assert _png_size(thumbs.png(source)) == (12, 12)
    skipped = [s for s, _ in data.skipped]
    assert any(name.endswith("notes.txt") for name in skipped)
    for name in skipped:  # a file the data set skipped is not a sample
        with pytest.raises(KeyError):
            thumbs.png(name)


def test_a_preview_never_decodes_more_than_its_pixel_bound_and_is_made_once(tree, monkeypatch):
    """A 12,000 × 12,000 PNG (420 KB zipped) decoded 432 MB for each request of its preview (an attack round): its
    header is read, its pixels refused past the one bound of every decode (datasets.MAX_DECODED_PIXELS, in
    decode_opened's words: the preview had its own check and message); a preview asked for again is not decoded
    again."""
    from feature_cache import datasets

    Image.new("L", (400, 300)).save(tree / "train" / "bee" / "wide.png")
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    monkeypatch.setattr(datasets, "MAX_DECODED_PIXELS", 400 * 300 - 1)
    with pytest.raises(Image.DecompressionBombError,
                       match="^400 x 300 = 120,000 pixels, over the 119,999 an image may decode to"):
        thumbs.png("train/bee/wide.png")
    monkeypatch.setattr(datasets, "MAX_DECODED_PIXELS", 400 * 300)
    opened = []
    from feature_cache import thumbnails  # decoded once: the file is read again, to be kept by its content

    monkeypatch.setattr(thumbnails, "decode_opened", lambda *a, real=thumbnails.decode_opened: opened.append(a)
                        or real(*a))
    first = thumbs.png("train/bee/wide.png")
    assert _png_size(first) == (128, 96) and thumbs.png("train/bee/wide.png") == first and len(opened) == 1
    assert _png_size(thumbs.png("train/bee/wide.png", size=64)) == (64, 48) and len(opened) == 2


def test_the_previews_kept_are_bounded_in_bytes(tree, monkeypatch):
    """256 previews of 512 px held 160 MB a data set (a review): the kept ones are bounded in bytes, oldest out."""
    from feature_cache import thumbnails
    from feature_cache.datasets import content_digest

    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    one = len(thumbs.png("train/ant/000.png"))
    monkeypatch.setattr(thumbnails, "_KEPT_BYTES", 2 * one)
    for name in ("train/ant/001.png", "train/ant/002.png", "train/ant/003.png"):
        thumbs.png(name)
    assert thumbs._bytes <= 2 * one + max(map(len, thumbs._made.values())) and len(thumbs._made) <= 3
    digests = [content_digest((tree / "train" / "ant" / f"00{i}.png").read_bytes()) for i in range(4)]
    assert len(set(digests)) == 4 and (digests[0], 128) not in thumbs._made  # the oldest went first (kept by content)
    assert (digests[3], 128) in thumbs._made


def test_a_file_rewritten_in_place_is_shown_as_it_is_now_or_refused_against_its_digest(tree):
    """Previews are kept by the file's content, not its name: a file rewritten with another picture of the same
    size and modification time is shown as it is now (the kept preview of its old bytes was served); with the
    digest a cache recorded of the old bytes, it is refused with FileChanged naming it."""
    import os

    from feature_cache.datasets import content_digest
    from feature_cache.errors import FileChanged

    path = tree / "train" / "ant" / "000.png"
    old, stat = path.read_bytes(), path.stat()
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    before = thumbs.png("train/ant/000.png")
    assert thumbs.png("train/ant/000.png", digest=content_digest(old)) == before
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (255, 0, 255)).save(buf, format="PNG")
    assert len(buf.getvalue()) <= len(old)
    path.write_bytes(buf.getvalue() + b"\0" * (len(old) - len(buf.getvalue())))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = thumbs.png("train/ant/000.png")
    assert now != before and Image.open(io.BytesIO(now)).convert("RGB").getpixel((0, 0)) == (255, 0, 255)
    with pytest.raises(FileChanged, match="'train/ant/000.png' changed since its features were extracted"):
        thumbs.png("train/ant/000.png", digest=content_digest(old))


def test_a_listing_digest_changes_with_a_symlinked_manifest_s_target(tmp_path):
    """A manifest pair's test.csv linked to a versioned file: relinked to another version of the same path length,
    or its target grown, the digest (the thumbnail re-index's test) stayed as it was."""
    import os

    from feature_cache.thumbnails import listing_digest

    for version, rows in (("v1", "path,label\n"), ("v2", "path,label\na.png,cat\n")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "test.csv").write_text(rows)
    (tmp_path / "test.csv").symlink_to("v1/test.csv")
    first = listing_digest(tmp_path)
    (tmp_path / "test.csv").unlink()
    (tmp_path / "test.csv").symlink_to("v2/test.csv")
    relinked = listing_digest(tmp_path)
    with open(tmp_path / "v2" / "test.csv", "a") as manifest:
        manifest.write("b.png,dog\n")
    assert len({first, relinked, listing_digest(tmp_path)}) == 3
    os.symlink("loop", tmp_path / "loop")  # a link that loops, or leads nowhere, is read as the link it is
    (tmp_path / "gone").symlink_to("nothing")
    assert listing_digest(tmp_path) == listing_digest(tmp_path)


def test_a_listing_digest_tells_a_name_with_a_newline_from_two_names(tmp_path):
    """Entries were joined by newlines, which a name may hold: 'x\\ny' in a class folder and 'x' and 'y' there read
    as one listing, so the index was not made again for the new files."""
    from feature_cache.thumbnails import listing_digest

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "x\ny").write_bytes(b"")
    one = listing_digest(tmp_path)
    (tmp_path / "cat" / "x\ny").unlink()
    for name in ("x", "y"):
        (tmp_path / "cat" / name).write_bytes(b"")
    assert listing_digest(tmp_path) != one


def test_a_listing_digest_changes_with_a_manifest_row_rewritten_to_a_path_of_the_same_length(tmp_path):
    """A manifest's row changed from 'a.png' to 'b.png' leaves test.csv the size it was: the digest (sizes alone at the
    top) stayed as it was, so the thumbnail index was not made again and the new row's image was a 404."""
    import os

    from feature_cache.thumbnails import listing_digest

    manifest = tmp_path / "test.csv"
    manifest.write_text("path,label\na.png,cat\n")
    before = listing_digest(tmp_path)
    mtime = manifest.stat().st_mtime_ns
    manifest.write_text("path,label\nb.png,cat\n")
    os.utime(manifest, ns=(mtime + 10**9, mtime + 10**9))  # a rewrite's own time, whatever the clock's resolution
    assert listing_digest(tmp_path) != before
    assert listing_digest(tmp_path) == listing_digest(tmp_path)


def test_a_large_jpeg_s_preview_decodes_reduced_and_looks_as_its_whole_decode(tree, monkeypatch):
    """A thumbnail is at most 512 pixels a side: a JPEG's preview decodes at 1/2 .. 1/8 of its size (libjpeg's DCT
    scaling, ``Image.draft``, through decode_opened), not whole (a 6000 × 4000 photo's whole decode raised the peak
    memory by 93 MB, its 1/8 decode by 3 MB), and shows what the whole decode, made RGB and thumbnailed, shows."""
    import numpy as np

    from feature_cache import datasets

    y, x = np.mgrid[0:1536, 0:2048]
    noise = np.random.default_rng(0).integers(-20, 21, (1536, 2048, 3))
    pixels = np.stack([x // 8, y // 6, (x + y) % 256], -1) + noise
    path = tree / "train" / "bee" / "photo.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    decoded = []  # the size each decode had before its reduction and resize
    monkeypatch.setattr(datasets, "reduce_to", lambda image, size, real=datasets.reduce_to:
                        decoded.append(image.size) or real(image, size))
    preview = Image.open(io.BytesIO(Thumbnailer(open_dataset(tree, val_fraction=0.0)).png("train/bee/photo.jpg")))
    assert decoded == [(256, 192)]  # at 1/8: still at least the preview's 128 pixels a side
    whole = Image.open(path).convert("RGB")
    whole.thumbnail((128, 128))
    diff = np.abs(np.asarray(preview, dtype=int) - np.asarray(whole, dtype=int))
    assert preview.size == whole.size == (128, 96) and diff.mean() < 1 and diff.max() <= 8, (diff.mean(), diff.max())


def test_a_preview_is_made_at_one_of_a_few_sizes_whatever_size_is_asked(tree):
    """Each size asked was made and kept apart: 505 sizes (8..512) of one image made 505 previews, each decoding it
    again and pushing the others out. A size is read as the largest of THUMBNAIL_SIZES not over it: a preview still
    at most the size asked, of a dozen kinds an image."""
    from feature_cache.thumbnails import THUMBNAIL_SIZE, THUMBNAIL_SIZES

    Image.new("L", (400, 300)).save(tree / "train" / "bee" / "wide.png")
    thumbs = Thumbnailer(open_dataset(tree, val_fraction=0.0))
    shown = {size: _png_size(thumbs.png("train/bee/wide.png", size=size))[0] for size in range(8, 513)}
    assert len(thumbs._made) == len(THUMBNAIL_SIZES) == 12 and THUMBNAIL_SIZE in THUMBNAIL_SIZES
    assert THUMBNAIL_SIZES == (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    assert shown == {size: min(400, max(s for s in THUMBNAIL_SIZES if s <= size)) for size in range(8, 513)}
    assert shown[8] == 8 and shown[47] == 32 and shown[128] == 128 and shown[511] == 384 and shown[512] == 400
