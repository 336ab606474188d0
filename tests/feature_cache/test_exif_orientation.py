"""Photos with an EXIF orientation: encoded as stored (not rotated), and said so by the extraction."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from feature_cache import ExtractionCancelled, extract, rotated_note
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


ROTATED = ["test/chien/tourné.png", "train/chat noir/portrait é.jpg"]  # photos()'s images tagged other than 1


def test_an_extraction_names_the_images_whose_exif_orientation_it_does_not_apply(tmp_path):
    result = extract(photos(tmp_path / "data"), tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0,
                     batch_size=3)
    assert sorted(result.rotated) == ROTATED
    assert sum(result.counts.values()) == 11 and not result.skipped  # encoded, as stored: not skipped
    note = rotated_note(result.rotated)
    assert note.startswith("2 images of the cache carry an EXIF orientation") and "test/chien/tourné.png" in note
    assert rotated_note([]) == ""
    again = extract(tmp_path / "data", tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0)
    # a reused cache says what the extraction that wrote it said: the note is the cache's, stored in it
    assert again.reused and sorted(again.rotated) == sorted(result.rotated)


def test_a_resumed_extraction_names_the_rotated_images_its_first_attempt_encoded(tmp_path):
    """A resumed extraction named only the images of its last attempt: those encoded before the stop are named too,
    from the partial file, and a cache written before the attribute still reads (none named)."""
    data, done = photos(tmp_path / "data"), [0]
    try:
        extract(data, tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0, batch_size=1,
                progress=lambda d, total: done.append(d), should_stop=lambda: done[-1] >= 5)
    except ExtractionCancelled:
        pass
    else:
        raise AssertionError("the first attempt was not stopped")
    resumed = extract(data, tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0, batch_size=1)
    assert not resumed.reused and resumed.encoded == 6 and sorted(resumed.rotated) == ROTATED
    with h5py.File(resumed.path, "r+") as h5:
        assert sorted(json.loads(h5.attrs["rotated"])) == ROTATED
        del h5.attrs["rotated"]  # as a cache written before the attribute
    older = extract(data, tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0)
    assert older.reused and older.rotated == []


def test_exif_that_does_not_parse_costs_no_image(tmp_path, monkeypatch):
    def damaged(self):
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(Image.Image, "getexif", damaged)
    result = extract(photos(tmp_path / "data"), tiny_encoder(), tmp_path / "caches", show_progress=False, workers=0)
    assert sum(result.counts.values()) == 11 and not result.skipped and result.rotated == []
