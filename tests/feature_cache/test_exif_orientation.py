"""Photos with an EXIF orientation: encoded as stored (not rotated), and said so by the extraction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from feature_cache import extract, rotated_note
from fc_testutils import tiny_encoder


def photo(path: Path, seed: int, orientation: int | None = None) -> None:
    """A small JPEG (PNG for a .png path), with an EXIF orientation tag when given."""
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)


def photos(root: Path) -> Path:
    for s, split in enumerate(("train", "test")):
        for c, label in enumerate(("chat noir", "chien")):
            for i in range(2):
                photo(root / split / label / f"IMG {i} été.jpg", seed=10 * s + 4 * c + i)
    photo(root / "train" / "chat noir" / "portrait é.jpg", seed=7, orientation=6)  # a phone's portrait photo
    photo(root / "test" / "chien" / "tourné.png", seed=8, orientation=3)  # upside down, in a PNG's eXIf chunk
    photo(root / "test" / "chien" / "droit.jpg", seed=9, orientation=1)  # tagged upright: nothing to say
    return root


def test_an_extraction_names_the_images_whose_exif_orientation_it_does_not_apply(tmp_path):
    result = extract(photos(tmp_path / "data"), tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0,
                     batch_size=3)
    assert sorted(result.rotated) == ["test/chien/tourné.png", "train/chat noir/portrait é.jpg"]
    assert sum(result.counts.values()) == 11 and not result.skipped  # encoded, as stored: not skipped
    note = rotated_note(result.rotated)
    assert note.startswith("2 images encoded now carry an EXIF orientation") and "test/chien/tourné.png" in note
    assert rotated_note([]) == ""
    again = extract(tmp_path / "data", tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0)
    assert again.reused and again.rotated == []  # nothing encoded now: nothing said of this call


def test_exif_that_does_not_parse_costs_no_image(tmp_path, monkeypatch):
    def damaged(self):
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(Image.Image, "getexif", damaged)
    result = extract(photos(tmp_path / "data"), tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0)
    assert sum(result.counts.values()) == 11 and not result.skipped and result.rotated == []
