"""Cheap checks the service runs before it queues work: check_encoder (no model built), discard_partial (only
when no extraction holds the lock) and a cache that lacks a root attribute (CacheMismatch naming it)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from feature_cache import (ENCODERS, CacheMismatch, MissingWeights, check_encoder, discard_partial, open_cache,
                           write_cache)
from feature_cache.extract import _exclusive
from testdata import write_mocov2_checkpoint


def test_check_encoder_resolves_without_building(monkeypatch, tmp_path):
    for family, entry in ENCODERS.items():
        monkeypatch.setitem(ENCODERS, family, type(entry)(entry.pattern, entry.spec, build=None, check=entry.check))
    spec = check_encoder("effnet-lite0")
    assert (spec.name, spec.num_features, spec.default_head) == ("effnet-lite0", 1280, "linear")
    clip = check_encoder("openclip:ViT-B-16")
    assert (clip.num_features, clip.default_head, clip.normalized) == (512, "cosine", True)
    assert check_encoder("openclip:ViT-L-14").num_features == 768
    checkpoint = write_mocov2_checkpoint(tmp_path / "moco.pth.tar")  # loaded into a ResNet-50 on the meta device
    assert check_encoder(f"mocov2:{checkpoint}").num_features == 2048
    # a file of its own: the checkpoint above is the process's one (testdata), hard-linked into later tests, and
    # written over it broke the app's weights-path tests that ran after this one in a process
    bad = tmp_path / "bad" / "moco.pth.tar"
    bad.parent.mkdir()
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(1)}}, bad)  # passed before
    with pytest.raises(ValueError, match=r"^\S+moco.pth.tar: MoCo v2 state dict does not fit torchvision resnet50: "
                                         r"size mismatch for conv1\.weight"):
        check_encoder(f"mocov2:{bad}")
    with pytest.raises(KeyError, match="Unknown encoder 'resnet'; available: effnet-lite0"):
        check_encoder("resnet")
    with pytest.raises(KeyError, match="Unknown open_clip architecture 'ViT-Z-99'"):
        check_encoder("openclip:ViT-Z-99")
    with pytest.raises(MissingWeights, match="does not exist"):
        check_encoder(f"mocov2:{tmp_path / 'missing.pth'}")
    with pytest.raises(MissingWeights, match="mocov2 needs a checkpoint"):
        check_encoder("mocov2")
    with pytest.raises(ValueError, match="takes no ':' argument"):
        check_encoder("effnet-lite0:x")


def test_discard_partial_leaves_a_running_extraction_alone(tmp_path):
    final = tmp_path / "c.h5"
    partial, lock = tmp_path / "c.h5.partial", tmp_path / "c.h5.lock"
    partial.write_bytes(b"half")
    held, release = threading.Event(), threading.Event()

    def extraction():
        with _exclusive(final):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=extraction)
    worker.start()
    held.wait(10)
    try:
        assert discard_partial(final) is False and partial.exists() and lock.exists()
    finally:
        release.set()
        worker.join()
    lock.write_text("pid 1")  # as a killed process leaves it
    assert discard_partial(final) is True and not partial.exists() and not lock.exists()
    assert discard_partial(final) is True  # nothing there: nothing to do


def test_a_missing_root_attribute_is_named(tmp_path):
    x = np.zeros((2, 4), dtype=np.float32)
    splits = {s: (x, np.array([0, 1]), ["a", "b"]) for s in ("train", "val", "test")}
    cache = open_cache(write_cache(tmp_path / "c.h5", splits, ["a", "b"], {"encoder": "e", "fingerprint": "f"}))
    assert cache.encoder == "e" and cache.class_names == ["a", "b"]
    with pytest.raises(CacheMismatch, match="c.h5 lacks the root attribute 'default_head'"):
        cache.default_head
    with pytest.raises(CacheMismatch, match="lacks the root attribute 'normalized'"):
        cache.normalized
