"""Large images at extraction: a JPEG's reduced (draft) decode, its record in the cache, and decompression bombs."""
from __future__ import annotations

import importlib
import io
import struct
import zipfile
import zlib

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from feature_cache import ExtractionCancelled, extract, open_cache, plan_extraction
from feature_cache.archives import DECODE_FAILURE
from feature_cache.datasets import MAX_DECODED_PIXELS, decode_image
from feature_cache.encoders import DECODE_RULE, ENCODERS, ImageTransform
from feature_cache.extract import _fingerprint, skipped_summary
from feature_cache.fingerprint import FULL_DECODE, cache_fingerprint
from fc_testutils import make_tree, tiny_encoder

extract_module = importlib.import_module("feature_cache.extract")  # the package's `extract` is the function


def jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A smooth random texture with fine noise, as a JPEG."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 50 + 2, width // 50 + 2, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def run(data, cache_dir, encoder=None, **kwargs):
    return extract(data, encoder or tiny_encoder(), cache_dir, show_progress=False, workers=0, batch_size=4, **kwargs)


def test_a_large_jpeg_decodes_at_the_largest_power_of_two_reduction_at_least_twice_the_resize():
    transform = ImageTransform(ENCODERS["effnet-lite0"].spec)
    assert transform.decode_size == (448, 448)  # effnet-lite0 resizes to 224 x 224
    data = jpeg(2000, 1500)
    assert decode_image(data, transform.decode_size).size == (1000, 750)  # 1/2: 1/4 would be 375 < 448 high
    assert decode_image(jpeg(4000, 3000), transform.decode_size).size == (1000, 750)  # 1/4
    assert decode_image(data).size == (2000, 1500)  # without a size, whole
    # the resize still does the last step: the features' input differs from the whole decode's by rounding only
    full, draft = transform(Image.open(io.BytesIO(data))).int(), transform(decode_image(data, (448, 448))).int()
    assert 0 < (full - draft).abs().max() <= 3


def saved(width: int, height: int, mode: str, form: str = "PNG", seed: int = 0) -> bytes:
    """An image of ``mode`` (``I;16``: 16-bit greyscale; ``RGBA``: its left half transparent) of
    :func:`jpeg`'s texture, saved as ``form``."""
    image = Image.open(io.BytesIO(jpeg(width, height, seed)))
    if mode in ("I;16", "F"):  # 16-bit values, floats in 0..1 (to_rgb's rules)
        grey = np.asarray(image.convert("L"))
        image = Image.fromarray(grey.astype(np.uint16) * 257 + 100 if mode == "I;16" else grey / np.float32(255))
    elif mode == "RGBA":
        image.putalpha(Image.fromarray(np.tile((np.arange(width) >= width // 2) * 255, (height, 1)).astype(np.uint8)))
    else:
        image = image.quantize(64) if mode == "P" else image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=form)
    return buf.getvalue()


OTHER_FORMATS = [("RGB", "PNG"), ("L", "PNG"), ("I;16", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("RGB", "TIFF"),
                 ("CMYK", "TIFF"), ("F", "TIFF")]


def test_images_smaller_than_four_times_the_resize_decode_pixel_for_pixel(cifar_zip):
    transform = ImageTransform(ENCODERS["effnet-lite0"].spec)
    with zipfile.ZipFile(cifar_zip) as archive:
        names = [n for n in archive.namelist() if n.endswith(".jpg")][:: 5000][:12]
        files = [archive.read(n) for n in names]
    files += [jpeg(895, 895), jpeg(1200, 800, seed=1)]  # 895 // 448 = 1; 800 // 448 = 1
    files += [saved(895, 895, mode, form) for mode, form in OTHER_FORMATS] + [saved(1800, 800, "RGB")]
    for data in files:
        whole = transform(Image.open(io.BytesIO(data)))
        assert torch.equal(transform(decode_image(data, transform.decode_size)), whole)


@pytest.mark.parametrize("mode, form", OTHER_FORMATS)
def test_a_large_image_of_another_format_decodes_averaged_down_to_at_least_twice_the_resize(mode, form):
    """A PNG or TIFF just under MAX_DECODED_PIXELS cost 0.5-0.7 GiB to transform whole (bench/README.md "Large
    photos"): it is averaged over blocks of the largest integer side (here 3) that keeps it at least decode_size,
    the resize doing the last step as for a JPEG's draft; pixels are averaged as to_rgb reads them (an RGBA's colour
    under its transparent pixels kept, not blackened by reduce's premultiplied alpha)."""
    transform = ImageTransform(ENCODERS["effnet-lite0"].spec)
    data = saved(2000, 1500, mode, form)
    decoded = decode_image(data, transform.decode_size)
    assert decoded.size == (667, 500)
    assert decode_image(data).size == (2000, 1500)  # without a size, whole
    whole, reduced = transform(Image.open(io.BytesIO(data))).int(), transform(decoded).int()
    # this texture's noise of sigma 6 left a mean gap of 0.6-0.9 grey levels (at most 12, the 64-colour palette's)
    assert (whole - reduced).abs().float().mean() < 1 and (whole - reduced).abs().max() <= 16


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_an_extraction_decodes_large_images_reduced_and_records_the_rule(tmp_path, suffix):
    root = make_tree(tmp_path / "data", {"ant": 2, "bee": 2})
    for seed, path in enumerate(sorted(root.rglob("*.png"))):  # 256 px: the tiny encoder resizes to 16, decodes to 32
        path.unlink()
        image = jpeg(256, 256, seed) if suffix == ".jpg" else saved(256, 256, "RGB", seed=seed)
        path.with_suffix(suffix).write_bytes(image)
    encoder = tiny_encoder()
    result = run(root, tmp_path / "cache", encoder)
    cache = open_cache(result.path)
    assert cache.attrs["decode"] == DECODE_RULE == "reduced-2x"
    features, _ = cache.load("test")
    files = sorted((root / "test").rglob("*" + suffix))
    assert [str(p.relative_to(root)) for p in files] == list(cache.sources("test"))

    def encoded(images):
        with torch.inference_mode():
            return encoder.encode(torch.stack([encoder.transform(image) for image in images])).numpy()

    draft = encoded(decode_image(p.read_bytes(), (32, 32)) for p in files)
    whole = encoded(Image.open(p) for p in files)
    np.testing.assert_allclose(features, draft, atol=2e-3)  # float16 storage
    assert not np.allclose(features, whole, atol=2e-3)


def test_the_decoding_rule_is_in_the_cache_fingerprint_and_older_fingerprints_are_unchanged():
    args = dict(dataset="d" * 64, encoder="effnet-lite0", weights_sha256="e" * 64, preprocess={"resize": [224, 224]},
                feature_kind="pooled", normalized=False, split_params={"seed": 0}, dtype="float16", schema_version=1)
    before = "5aec7beab1343a18c1a1443e5e2d2c7f503a1c90d354302db96786f8203a5224"  # commit 5c3da43's
    assert cache_fingerprint(**args) == cache_fingerprint(**args, decode=FULL_DECODE) == before
    assert cache_fingerprint(**args, decode=DECODE_RULE) != before


def test_a_cache_written_before_the_rule_is_reused_and_never_resumed_into(tree, tmp_path, monkeypatch):
    """A cache of files decoded whole (no ``decode`` attribute, the fingerprint without it) answers a request, as
    the fp32 cache answers a bf16 one; its interrupted partial file is not resumed under the other rule."""
    new = run(tree, tmp_path / "a")
    plan = plan_extraction(tree, tiny_encoder(), tmp_path / "a")
    old_fingerprint = _fingerprint(plan.data, plan.encoder, "float16", "fp32", FULL_DECODE)
    assert new.fingerprint == plan.fingerprint != old_fingerprint
    old = new.path.with_name(new.path.name.replace(new.fingerprint[:16], old_fingerprint[:16]))
    new.path.rename(old)
    with h5py.File(old, "r+") as h5:  # as a version before the rule wrote it
        del h5.attrs["decode"]
        h5.attrs["fingerprint"] = old_fingerprint
    count = [0]
    again = run(tree, tmp_path / "a", tiny_encoder(counter=count))
    assert again.reused and count == [0] and again.path == old
    assert run(tree, None, tiny_encoder(counter=count), out=old).reused and count == [0]  # an --out too
    assert [p.name for p in (tmp_path / "a").iterdir()] == [old.name]
    # a partial file the rule before left (files decoded whole) is started afresh, never finished under this rule
    out = tmp_path / "b" / "out.h5"
    with monkeypatch.context() as patch:
        patch.setattr(extract_module, "DECODE_RULE", FULL_DECODE)
        polls = iter(range(100))
        with pytest.raises(ExtractionCancelled):
            run(tree, None, out=out, should_stop=lambda: next(polls) >= 1)
    assert out.with_name("out.h5.partial").exists()
    count = [0]
    assert run(tree, None, tiny_encoder(counter=count), out=out).encoded == count[0] == 27
    assert open_cache(out).attrs["decode"] == DECODE_RULE


def png_header(width: int, height: int, bits: int = 16) -> bytes:
    """A greyscale PNG that declares ``width`` x ``height`` pixels and holds none: what a reader sees before it
    decodes (a decompression bomb's zipped zeros decode to all of them)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_an_image_over_the_pixel_bound_is_refused_before_it_decodes():
    """PIL only warns of a 10,000 x 9,000 16-bit PNG (under twice its 89.5 Mpx): it decoded to +1.3 GiB."""
    assert Image.open(io.BytesIO(png_header(10_000, 9_000))).size == (10_000, 9_000)  # PIL opens it
    with pytest.raises(Image.DecompressionBombError, match=r"10000 x 9000 = 90,000,000 pixels, over the 50,000,000"):
        decode_image(png_header(10_000, 9_000))
    assert MAX_DECODED_PIXELS == 50_000_000  # one bound: extraction and previews (feature_cache.thumbnails)
    # a JPEG's bound counts its reduced decode: a 51-Mpx photo decodes at 1/8
    big = Image.new("L", (8_200, 6_200), 90)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=50)
    del big
    assert decode_image(buf.getvalue(), (448, 448)).size == (1025, 775)


def test_an_extraction_skips_an_image_over_the_pixel_bound_naming_it(tmp_path):
    root = make_tree(tmp_path / "data", {"ant": 3, "bee": 3})
    (root / "train" / "ant" / "huge.png").write_bytes(png_header(9_000, 6_000, bits=8))  # 54 Mpx
    result = run(root, tmp_path / "cache")
    reasons = dict(result.skipped)
    assert reasons["train/ant/huge.png"] == (f"{DECODE_FAILURE}: 9000 x 6000 = 54,000,000 pixels, over the "
                                             "50,000,000 an image may decode to (a decompression bomb?); shrink it "
                                             "to use it")
    assert "1 failed to decode ('train/ant/huge.png')" in skipped_summary(result.skipped)
    cache = open_cache(result.path)
    assert sum(cache.split_sizes.values()) == 12 and "train/ant/huge.png" not in cache.sources("train")


def test_a_jpeg_over_pils_bomb_bound_decodes_reduced(monkeypatch):
    """PIL refuses past twice its MAX_IMAGE_PIXELS by the whole size (179 Mpx: a 200-Mpx phone photo); a JPEG's
    extraction decodes it reduced, held to MAX_DECODED_PIXELS. Lowered here, so that a 2000 x 1500 JPEG is past it."""
    data = jpeg(2000, 1500)
    under_the_bound = np.asarray(decode_image(data, (448, 448)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    decoded = decode_image(data, (448, 448))
    assert decoded.size == (1000, 750) and np.array_equal(np.asarray(decoded), under_the_bound)
    png = io.BytesIO()
    Image.new("L", (2000, 1500)).save(png, format="PNG")
    with pytest.raises(Image.DecompressionBombError, match="exceeds limit of 2000000 pixels"):
        decode_image(png.getvalue(), (448, 448))  # other formats keep PIL's bound
