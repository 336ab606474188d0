"""A weights file named by path counts by its content, not where it lies: the same checkpoint at another path (a
relative path, a server's resolved one, a moved file) is the same extractor and the same cache (a maintainer round:
a probe trained on a cache of `mocov2:/abs/m.pth` was refused on one of `mocov2:m.pth`, "other weights")."""
from __future__ import annotations

import shutil

import pytest

from feature_cache import open_cache, write_cache
from feature_cache.extract import plan_extraction
from feature_cache.fingerprint import WEIGHTS_FILE_FIELD, cache_fingerprint, extractor_fingerprint, extractor_name

from fc_testutils import make_tree
from testdata import write_mocov2_checkpoint


@pytest.mark.parametrize("name, identity", [
    ("effnet-lite0", "effnet-lite0"),
    ("mocov2:/srv/data/moco.pth.tar", "mocov2:<weights file>"),
    ("mocov2:moco.pth", "mocov2:<weights file>"),
    ("mocov2:C:\\w\\moco.pth", "mocov2:<weights file>"),  # a drive letter's ':' is the path's
    ("openclip:ViT-B-32:/srv/w/clip.bin", "openclip:ViT-B-32:<weights file>"),
    ("openclip:ViT-B-32:clip.pt", "openclip:ViT-B-32:<weights file>"),
    ("openclip:ViT-B-32:laion2b_s34b_b79k", "openclip:ViT-B-32:laion2b_s34b_b79k"),  # a pretrained tag names weights
    ("openclip:ViT-B-32", "openclip:ViT-B-32"),
])
def test_extractor_name_leaves_out_the_weights_path_alone(name, identity):
    assert extractor_name(name) == identity
    assert set(WEIGHTS_FILE_FIELD) == {"mocov2", "openclip"}


def test_the_fingerprints_count_the_weights_by_content():
    common = dict(weights_sha256="a" * 64, preprocess={"image_size": 224}, feature_kind="pooled", normalized=False)
    here, there = (extractor_fingerprint(encoder=name, **common) for name in ("mocov2:/a/m.pth", "mocov2:b/m.pth"))
    assert here == there != extractor_fingerprint(encoder="mocov2:/a/m.pth", **{**common, "weights_sha256": "b" * 64})
    # as reports recorded it before: the path counted
    assert extractor_fingerprint(encoder="mocov2:/a/m.pth", as_named=True, **common) != here
    assert extractor_fingerprint(encoder="effnet-lite0", as_named=True, **common) == \
        extractor_fingerprint(encoder="effnet-lite0", **common)
    rest = dict(dataset="d", split_params={}, dtype="float16", schema_version=1, **common)
    assert cache_fingerprint(encoder="mocov2:/a/m.pth", **rest) == cache_fingerprint(encoder="mocov2:m.pth", **rest)


def test_one_checkpoint_at_two_paths_plans_one_cache(tmp_path, monkeypatch):
    data = make_tree(tmp_path / "data", {"a": 2, "b": 2})
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    first = write_mocov2_checkpoint(tmp_path / "w1" / "moco.pth.tar")
    moved = shutil.copy(first, tmp_path / "w2" / "renamed.pth")
    monkeypatch.chdir(tmp_path / "w2")
    plans = [plan_extraction(data, name, tmp_path / "caches", device="cpu", precision="fp32")
             for name in (f"mocov2:{first}", "mocov2:renamed.pth")]
    assert plans[0].fingerprint == plans[1].fingerprint and plans[0].path == plans[1].path
    assert [plan.attrs["encoder"] for plan in plans] == [f"mocov2:{first}", "mocov2:renamed.pth"]  # as given
    assert moved


def test_a_cache_says_its_extractor_as_older_reports_recorded_it(tmp_path):
    import numpy as np

    attrs = dict(fingerprint="f" * 64, encoder="mocov2:/a/m.pth", weights_sha256="a" * 64, preprocess={"image_size": 224},
                 feature_kind="pooled", normalized=False)
    features = {split: (np.ones((2, 4), np.float32), np.array([0, 1]), [f"{split}/0.png", f"{split}/1.png"])
                for split in ("train", "val", "test")}
    path = write_cache(tmp_path / "c.h5", features, class_names=["x", "y"], attrs=attrs)
    source = open_cache(path).provenance()
    keys = {k: v for k, v in attrs.items() if k != "fingerprint"}
    assert source["extractor"] == extractor_fingerprint(**keys)
    assert source["extractor_as_named"] == extractor_fingerprint(**keys, as_named=True) != source["extractor"]
    named = write_cache(tmp_path / "e.h5", features, class_names=["x", "y"], attrs={**attrs, "encoder": "effnet-lite0"})
    assert open_cache(named).provenance()["extractor_as_named"] is None  # no path in the name: the same


def test_every_family_whose_name_takes_a_weights_file_is_listed():
    """A family added with a weights-file field but not in WEIGHTS_FILE_FIELD got past the service's data-root check
    on its weights (202 for a path outside the root; a maintainer round)."""
    from feature_cache.encoders import ENCODERS, weights_file_argument

    for family, entry in ENCODERS.items():
        fields = entry.pattern.replace("[", "").replace("]", "").split(":")
        at = [i for i, field in enumerate(fields) if field in ("CHECKPOINT", "WEIGHTS")]
        assert WEIGHTS_FILE_FIELD.get(family) == (at[0] if at else None), family
        if at:
            name = ":".join(fields[:at[0]] + ["/outside/w.pth"]).replace("ARCH", "ViT-B-32")
            assert weights_file_argument(name) == (name[:-len("/outside/w.pth")], "/outside/w.pth")
