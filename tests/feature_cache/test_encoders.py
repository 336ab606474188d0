"""Encoder registry: the common interface for every family, open_clip and MoCo v2 loading (random weights)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet50

from feature_cache import ENCODERS, Encoder, EncoderSpec, MissingWeights, create_encoder, list_encoders
from feature_cache import encoders as encoders_module
from feature_cache.encoders import file_sha256, is_torchscript_archive
from fc_testutils import randomise_batch_norms

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """Registers tiny open_clip configs `tiny-vit-test` and `tiny-vit-test-quickgelu`."""
    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / "tiny-vit-test.json").write_text(json.dumps(TINY))
    (folder / "tiny-vit-test-quickgelu.json").write_text(json.dumps({**TINY, "quick_gelu": True}))
    open_clip.add_model_config(folder)
    return "tiny-vit-test"


@pytest.fixture(scope="module")
def moco_checkpoint(tmp_path_factory):
    """A checkpoint in the official MoCo v2 format, with a random ResNet-50 query encoder."""
    torch.manual_seed(0)
    model = randomise_batch_norms(resnet50(weights=None))
    state = {f"module.encoder_q.{k}": v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    state.update({
        "module.encoder_q.fc.0.weight": torch.randn(2048, 2048), "module.encoder_q.fc.0.bias": torch.zeros(2048),
        "module.encoder_q.fc.2.weight": torch.randn(128, 2048), "module.encoder_q.fc.2.bias": torch.zeros(128),
        "module.encoder_k.conv1.weight": torch.randn(64, 3, 7, 7), "module.queue": torch.randn(128, 16),
    })
    path = tmp_path_factory.mktemp("moco") / "moco_v2_test.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": state}, path)
    model.fc = nn.Identity()
    return path, model.eval()


def build(name, tiny_clip, moco_checkpoint):
    name = name.replace("CKPT", str(moco_checkpoint[0]))
    torch.manual_seed(0)
    return create_encoder(name, device="cpu")


@pytest.mark.parametrize("name", ["effnet-lite0", "openclip:tiny-vit-test", "mocov2:CKPT"])
def test_every_encoder_honours_the_interface(name, tiny_clip, moco_checkpoint):
    encoder = build(name, tiny_clip, moco_checkpoint)
    spec = encoder.spec
    assert isinstance(encoder, Encoder) and isinstance(spec, EncoderSpec)
    assert spec.name == name.replace("CKPT", str(moco_checkpoint[0]))
    assert encoder.num_features == spec.num_features
    assert spec.default_head in ("linear", "cosine") and len(spec.mean) == len(spec.std) == 3
    # The fingerprint's weights digest: the weights file's bytes, or the random weights' state dict.
    if spec.weights:
        assert encoder.weights_sha256 == hashlib.sha256(Path(spec.weights).read_bytes()).hexdigest()
    else:
        digest = hashlib.sha256()
        for key, value in encoder.model.state_dict().items():
            digest.update(key.encode() + str(tuple(value.shape)).encode() + value.cpu().contiguous().numpy().tobytes())
        assert encoder.weights_sha256 == digest.hexdigest()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8), "L")
    x = torch.stack([encoder.transform(image), encoder.transform(image.convert("RGB").rotate(90))])
    assert x.shape == (2, 3, spec.image_size, spec.image_size) and x.dtype == torch.uint8
    features = encoder.encode(x)
    # encode normalises a uint8 batch as torchvision's ToTensor + Normalize would, and takes float as normalised
    from torchvision import transforms as T
    reference = torch.stack([T.Normalize(spec.mean, spec.std)(T.ToTensor()(image.numpy().transpose(1, 2, 0)))
                             for image in x])
    torch.testing.assert_close(encoder.normalize(x), reference, rtol=0, atol=2e-6)
    assert encoder.normalize(x).is_contiguous(memory_format=torch.channels_last)  # the layout the forward runs in
    # collate_images' channels-last batches take the row-wise path, channel-first ones the broadcast: the same values
    by_rows = encoder.normalize(x.contiguous(memory_format=torch.channels_last))
    by_channel = encoder.normalize(x.contiguous())
    torch.testing.assert_close(by_rows, by_channel, rtol=0, atol=0)
    assert by_rows.is_contiguous(memory_format=torch.channels_last)
    assert encoder.normalize(reference) is reference
    torch.testing.assert_close(features, encoder.encode(encoder.normalize(x)), rtol=0, atol=0)
    assert features.shape == (2, spec.num_features) and features.dtype == torch.float32
    assert not features.requires_grad and torch.isfinite(features).all()
    if spec.normalized:
        torch.testing.assert_close(features.norm(dim=1), torch.ones(2))
    json.dumps(spec.preprocess())


def test_registry_lists_the_patterns():
    assert list_encoders() == ["effnet-lite0", "openclip:ARCH[:WEIGHTS]", "mocov2:CHECKPOINT"]
    assert set(ENCODERS) == {"effnet-lite0", "openclip", "mocov2"}
    with pytest.raises(KeyError, match=r"Unknown encoder 'clip-b32'; available: effnet-lite0, "
                                       r"openclip:ARCH\[:WEIGHTS\], mocov2:CHECKPOINT"):
        create_encoder("clip-b32")
    # the closest names and how to list them all: every one of ~140 had filled the launch form (a dashboard round)
    with pytest.raises(KeyError, match=r"Unknown open_clip architecture 'ViT-Q-99'; closest: ViT-.* in all: ") as err:
        create_encoder("openclip:ViT-Q-99")
    assert len(err.value.args[0]) < 300
    # nothing close: the names listed are examples, not "closest" (a dashboard round)
    with pytest.raises(KeyError, match=r"Unknown open_clip architecture 'qqqqqqqqqq'; e\.g\. [^;]* in all: "):
        create_encoder("openclip:qqqqqqqqqq")
    with pytest.raises(ValueError, match="effnet-lite0 takes no ':' argument"):
        create_encoder("effnet-lite0:x")


def test_overrides_merge_over_registry_defaults():
    encoder = create_encoder("effnet-lite0", interpolation="bilinear", default_head=None)
    assert encoder.spec.interpolation == "bilinear" and encoder.spec.default_head == "linear"
    assert encoder.spec.preprocess()["interpolation"] == "bilinear"
    with pytest.raises(ValueError, match="interpolation must be one of bicubic, bilinear, nearest, got 'lanczos'"):
        create_encoder("effnet-lite0", interpolation="lanczos")


def test_open_clip_without_weights_warns_that_they_are_random(tiny_clip, tmp_path, caplog):
    encoder = create_encoder(f"openclip:{tiny_clip}")
    warned = [r for r in caplog.records if r.name == "feature_cache.encoders" and r.levelname == "WARNING"]
    assert len(warned) == 1 and "has no WEIGHTS: the model has random weights" in warned[0].getMessage()
    assert encoder.warning == warned[0].getMessage()  # what the cache, job messages and reports repeat
    caplog.clear()
    path = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(tiny_clip).state_dict(), path)
    assert create_encoder(f"openclip:{tiny_clip}:{path}").warning is None
    assert not [r for r in caplog.records if r.name == "feature_cache.encoders" and r.levelname == "WARNING"]


def test_open_clip_random_weights_are_the_same_at_every_build(tiny_clip):
    """openclip:ARCH without weights drew new random weights at each build: every `mr2probe extract --encoder
    openclip:ARCH` had other features and fingerprint, and the same command was refused on its own --out ('holds
    another cache ... weights_sha256') and could not resume. Seeded, and the caller's random state untouched."""
    torch.manual_seed(123)
    first = create_encoder(f"openclip:{tiny_clip}")
    after = torch.rand(3)
    torch.manual_seed(7)
    second = create_encoder(f"openclip:{tiny_clip}")
    assert first.weights_sha256 == second.weights_sha256
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # the build drew nothing from the caller's generator
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(first.encode(x), second.encode(x))

def test_open_clip_random_weights_leave_the_caller_s_cuda_generators_as_they_were(tiny_clip, monkeypatch):
    """The seeded build of random weights reset every CUDA generator to seed 0 (torch.manual_seed), which its
    fork_rng(devices=[]) does not restore: on a GPU host the caller's CUDA random state was not left as it was."""
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    first = create_encoder(f"openclip:{tiny_clip}")
    assert reseeded == []
    assert create_encoder(f"openclip:{tiny_clip}").weights_sha256 == first.weights_sha256


def test_open_clip_local_checkpoint_is_loaded(tiny_clip, tmp_path):
    torch.manual_seed(1)
    reference = open_clip.create_model(tiny_clip, pretrained=None).eval()
    path = tmp_path / "tiny.pt"
    torch.save(reference.state_dict(), path)
    torch.manual_seed(2)  # a different random init that the checkpoint must overwrite
    encoder = create_encoder(f"openclip:{tiny_clip}:{path}", precision="fp32")  # exact comparison below
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference.encode_image(x, normalize=True)
    torch.testing.assert_close(encoder.encode(x), expected)
    spec = encoder.spec
    assert encoder.weights_sha256 == file_sha256(path) and spec.weights == str(path.resolve())
    assert (spec.num_features, spec.image_size, spec.default_head, spec.normalized, spec.feature_kind) == (
        16, 32, "cosine", True, "embedding")
    assert spec.mean == open_clip.OPENAI_DATASET_MEAN and spec.resize_mode == "shortest"
    assert not any(isinstance(m, open_clip.transformer.QuickGELU) for m in encoder.model.modules())


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_quick_gelu_for_quickgelu_archs_openai_tags_and_torchscript(tiny_clip, tmp_path, monkeypatch):
    def has_quick_gelu(encoder):
        return any(isinstance(m, open_clip.transformer.QuickGELU) for m in encoder.model.modules())

    assert has_quick_gelu(create_encoder(f"openclip:{tiny_clip}-quickgelu"))
    path = tmp_path / "tagged.pt"
    torch.save(open_clip.create_model(tiny_clip).state_dict(), path)
    # A pretrained tag found in the local cache: its config (QuickGELU, mean/std) is applied.
    monkeypatch.setattr(encoders_module, "_open_clip_tag_file",
                        lambda arch, tag: (path, {"quick_gelu": True, "mean": (0.5,) * 3, "std": (0.25,) * 3}))
    tagged = create_encoder(f"openclip:{tiny_clip}:openai")
    assert has_quick_gelu(tagged) and tagged.spec.mean == (0.5,) * 3 and tagged.spec.std == (0.25,) * 3
    scripted = tmp_path / "jit.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), scripted)
    assert is_torchscript_archive(scripted) and not is_torchscript_archive(path)


def test_open_clip_never_downloads(tiny_clip):
    with pytest.raises(MissingWeights, match=r"openclip:RN50:openai: the weights are not on this machine .*"
                                             r"nothing is downloaded"):
        create_encoder("openclip:RN50:openai")
    with pytest.raises(MissingWeights, match=r"checkpoint /no/such/weights.pt does not exist"):
        create_encoder(f"openclip:{tiny_clip}:/no/such/weights.pt")
    with pytest.raises(MissingWeights, match="'nosuchtag' is neither a file nor a pretrained tag"):
        create_encoder("openclip:RN50:nosuchtag")


def test_open_clip_is_built_offline_and_leaves_the_caller_s_environment_as_it_was(tiny_clip, monkeypatch):
    """The build set HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE in the caller's os.environ for good (and so in every
    subprocess it started later), then while open_clip built, which left the build online where huggingface_hub
    was imported before (it reads them once, when imported): now its offline flag, for the build alone, and the
    caller's environment and flag left as they were."""
    from huggingface_hub import constants

    seen = []
    create_model = open_clip.create_model

    def recording(*args, **kwargs):
        seen.append((constants.is_offline_mode(), os.environ.get("HF_HUB_OFFLINE")))
        return create_model(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", recording)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    create_encoder(f"openclip:{tiny_clip}")
    assert seen == [(True, None)] and constants.is_offline_mode() is False
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a caller offline of its own stays so
    create_encoder(f"openclip:{tiny_clip}")
    assert seen[-1] == (True, None) and constants.is_offline_mode() is True


# A fresh process builds openclip:tiny-vit-test (random weights), huggingface_hub imported before (argv "before") or
# first by the build ("inside": the tiny config registered as open_clip is first imported, in the build); prints
# whether the hub was offline during the build and after it.
HUB_ORDER = """
import json, os, sys, tempfile
sys.path.insert(0, {repo!r})
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "tiny-vit-test.json"), "w") as f:
    json.dump({tiny!r}, f)
if sys.argv[1] == "before":
    import huggingface_hub.constants
assert ("huggingface_hub.constants" in sys.modules) == (sys.argv[1] == "before")
from feature_cache import create_encoder
import feature_cache.encoders as encoders
during = []
weights = encoders._open_clip_weights

def registering(*args, **kwargs):
    import open_clip
    from huggingface_hub import constants
    open_clip.add_model_config(folder)
    during.append(constants.is_offline_mode())
    return weights(*args, **kwargs)

encoders._open_clip_weights = registering
create_encoder("openclip:tiny-vit-test", device="cpu")
from huggingface_hub import constants
print(during, constants.is_offline_mode(), "HF_HUB_OFFLINE" in os.environ)
"""


@pytest.mark.parametrize("order", ["before", "inside"])
def test_the_hub_is_offline_for_the_build_alone_whenever_it_was_first_imported(order):
    """huggingface_hub reads HF_HUB_OFFLINE once, when first imported: set for the build, the variable left a process
    whose first import was the build's offline for good (a later hub call refused), and the build of one that
    imported it before online."""
    script = HUB_ORDER.format(repo=str(Path(encoders_module.__file__).parents[1]), tiny=TINY)
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    proc = subprocess.run([sys.executable, "-c", script, order], capture_output=True, text=True, timeout=300,
                          env={**env, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[True]", "False", "False"]


def test_mocov2_checkpoint_is_converted(moco_checkpoint):
    path, reference = moco_checkpoint
    # Exact comparison below: fp32 in the reference memory order (channels-last reorders the sums), no folding.
    encoder = create_encoder(f"mocov2:{path}", precision="fp32", channels_last=False, fuse=False)
    assert isinstance(encoder.model.fc, nn.Identity) and encoder.num_features == 2048
    assert encoder.spec.default_head == "linear" and not encoder.spec.normalized
    assert encoder.spec.preprocess()["resize"] == 256 and encoder.spec.preprocess()["crop"] == [224, 224]
    torch.testing.assert_close(encoder.model.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(encoder.model.bn1.running_var, reference.bn1.running_var)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(encoder.encode(x), expected)
    fused = create_encoder(f"mocov2:{path}", precision="fp32", channels_last=False)
    assert fused.fused == (53, 1)  # every BatchNorm of ResNet-50; a block's one ReLU serves its 3 convolutions
    torch.testing.assert_close(fused.encode(x), expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_mocov2_errors_name_the_file(tmp_path):
    with pytest.raises(MissingWeights, match=r"MoCo v2 checkpoint /no/moco.pth does not exist; copy the official"):
        create_encoder("mocov2:/no/moco.pth")
    with pytest.raises(MissingWeights, match="mocov2 needs a checkpoint: mocov2:/path/to/"):
        create_encoder("mocov2")
    with pytest.raises(MissingWeights, match=f"MoCo v2 checkpoint {tmp_path} is a folder; give the checkpoint file"):
        create_encoder(f"mocov2:{tmp_path}")
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="no 'module.encoder_q.\\*' keys; not a MoCo v2 checkpoint"):
        create_encoder(f"mocov2:{bad}")
    # and already when the name is checked (a service request, before its job): the keys, tensors not read
    from feature_cache import check_encoder

    with pytest.raises(ValueError, match="no 'module.encoder_q.\\*' keys; not a MoCo v2 checkpoint"):
        check_encoder(f"mocov2:{bad}")


def test_mocov2_weights_are_loaded_at_the_check_as_at_the_build(tmp_path):
    """MoCo v2 weights were barely checked at a request: a safetensors file, a TorchScript archive, a legacy
    pickle and a state dict of other shapes were accepted, and their job failed (the last as retryable, with a
    traceback in the CLI; found by the fourth attack round). The check now loads the checkpoint into a ResNet-50 on
    the meta device as the build does on the CPU: the same ValueError from both, and a legacy-format checkpoint
    that fits passes both."""
    import struct

    from safetensors.torch import save_file

    from feature_cache import check_encoder
    from testdata import write_mocov2_checkpoint

    malformed, other, script = tmp_path / "bad.safetensors", tmp_path / "other.safetensors", tmp_path / "ts.pt"
    malformed.write_bytes(struct.pack("<Q", 10) + b'{"a":[1,2,')
    save_file({"x": torch.zeros(2)}, other)
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), script)
    wrong = tmp_path / "wrongshape.pth"
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(2)}}, wrong)
    what = re.escape("not a MoCo v2 checkpoint (moco_v2_800ep_pretrain.pth.tar): give the torch.save checkpoint "
                     "of the MoCo v2 release.")
    refused = {malformed: rf"^{re.escape(str(malformed))} is a safetensors file, {what}$",
               other: rf"^{re.escape(str(other))} is a safetensors file, {what}$",
               script: rf"^{re.escape(str(script))} is a TorchScript archive, {what}$",
               wrong: rf"^{re.escape(str(wrong))}: MoCo v2 state dict does not fit torchvision resnet50: size "
                      r"mismatch for conv1\.weight: copying a param with shape torch\.Size\(\[2\]\) from "
                      r"checkpoint, the shape in current model is torch\.Size\(\[64, 3, 7, 7\]\)\.$"}
    for path, message in refused.items():
        for attempt in (check_encoder, create_encoder):  # the request's check, and the job's build
            with pytest.raises(ValueError, match=message):
                attempt(f"mocov2:{path}")
    legacy = write_mocov2_checkpoint(tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)
    assert check_encoder(f"mocov2:{legacy}").num_features == 2048
    assert create_encoder(f"mocov2:{legacy}", device="cpu").num_features == 2048


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tiny_clip, tmp_path):
    """A text file or a truncated checkpoint given as weights: a ValueError naming the file, not an IndexError
    from the unpickler or its advice to load with weights_only=False; by its first bytes, already when the name
    is checked (a request, before its job), where nothing is loaded."""
    from feature_cache import check_encoder

    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    good = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(tiny_clip).state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])  # a zip cut short: no central directory
    for name, what in ((f"mocov2:{text}", "a MoCo v2 checkpoint"), (f"openclip:{tiny_clip}:{text}",
                       f"an open_clip checkpoint of {tiny_clip}"), (f"openclip:{tiny_clip}:{cut}", "an open_clip")):
        path = name.rsplit(":", 1)[1]
        for attempt in (check_encoder, create_encoder):
            with pytest.raises(ValueError, match=f"^{re.escape(path)} is not {re.escape(what)}.*: a PyTorch "
                                                 r"checkpoint \(torch.save archive or pickle\)"):
                attempt(name)
        assert "root:x" not in str(pytest.raises(ValueError, check_encoder, name).value)
    # a zip that is no checkpoint passes the first bytes and is refused when loaded
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=r"is not a MoCo v2 checkpoint .*that torch can read safely \(weights only\)"):
        create_encoder(f"mocov2:{other}")


def test_crafted_open_clip_weights_are_a_clear_error_at_the_check_and_the_build(tiny_clip, tmp_path):
    """A pickle of a list and a safetensors file with a malformed header gave a 500 with a traceback
    (AttributeError, SafetensorError; found by the fourth attack round): a ValueError naming the file now, at the
    request's check and the job's build."""
    import struct

    from feature_cache import check_encoder

    listed, broken = tmp_path / "list.pth", tmp_path / "bad.safetensors"
    torch.save([1, 2, 3], listed)
    broken.write_bytes(struct.pack("<Q", 10) + b'{"a":[1,2,')
    for path, error in ((listed, "AttributeError: 'list' object has no attribute 'items'"),
                        (broken, "SafetensorError: Error while deserializing header: invalid JSON in header")):
        for attempt in (check_encoder, create_encoder):
            with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not an open_clip checkpoint of "
                                                 rf"{tiny_clip} that torch can read safely \(weights only\): "
                                                 rf"{re.escape(error)}"):
                attempt(f"openclip:{tiny_clip}:{path}")


def test_open_clip_weights_of_another_architecture_are_refused_at_the_check(tiny_clip, tmp_path, recwarn):
    """Weights of another architecture: refused when the name is checked (a request, before its job), naming
    the misfit; the architecture's own weights pass as a torch.save archive and as safetensors, with no warning
    per tensor from the check's meta model."""
    from safetensors.torch import save_file

    from feature_cache import check_encoder

    own = open_clip.create_model(tiny_clip).state_dict()
    good, good_st = tmp_path / "tiny.pt", tmp_path / "tiny.safetensors"
    torch.save({"state_dict": {f"module.{k}": v for k, v in own.items()}}, good)  # open_clip's wrappers
    save_file({k: v.contiguous() for k, v in own.items()}, good_st)
    wider = {**TINY, "vision_cfg": {**TINY["vision_cfg"], "width": 2 * TINY["vision_cfg"]["width"]}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "tiny-vit-wide.json").write_text(json.dumps(wider))
    open_clip.add_model_config(tmp_path / "cfg")
    other = tmp_path / "wide.pt"
    torch.save(open_clip.create_model("tiny-vit-wide").state_dict(), other)
    recwarn.clear()
    for path in (good, good_st):
        assert check_encoder(f"openclip:{tiny_clip}:{path}").num_features == TINY["embed_dim"]
    assert not [w for w in recwarn if "meta parameter" in str(w.message)]
    for attempt in (check_encoder, create_encoder):  # the request's check, and the job's build
        with pytest.raises(ValueError, match=rf"^{re.escape(str(other))} does not fit the open_clip architecture "
                                             rf"{tiny_clip}: size mismatch for visual\.") as refused:
            attempt(f"openclip:{tiny_clip}:{other}")
        assert len(str(refused.value)) < 700


def test_open_clip_cache_records_cosine_head_and_normalisation(tiny_clip, tree, tmp_path):
    from feature_cache import extract, open_cache

    torch.manual_seed(0)
    result = extract(tree, f"openclip:{tiny_clip}", tmp_path / "caches", workers=0, show_progress=False)
    cache = open_cache(result.path)
    assert (cache.default_head, cache.normalized, cache.num_features) == ("cosine", True, 16)
    assert cache.attrs["feature_kind"] == "embedding" and cache.attrs["encoder"] == "openclip:tiny-vit-test"
    assert cache.attrs["preprocess"]["resize"] == 32 and cache.attrs["preprocess"]["crop"] == [32, 32]
    features, _ = cache.load("train")
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=2e-3)
    # random weights: the cache says so, and so does every report of a probe on it (the warning was in the server
    # log alone, beside a job that succeeded at 38 %; a new-user round)
    warning = cache.provenance("c.h5")["warning"]
    assert warning.startswith(f"openclip:{tiny_clip} has no WEIGHTS: the model has random weights")
    from probe import ProbeConfig, run_probe

    data = {split: cache.load(split) for split in ("train", "test")}
    report = run_probe(data, cache.class_names, ProbeConfig(epochs=5, seeds=[0], cv=0, lr_grid=[0.05],
                                                            wd_grid=[0.0]), features=cache.provenance("c.h5"))
    assert report.warnings[0] == warning and report.features.warning == warning
    # the same features when 2 worker processes encode (the CPU default from 2,000 images)
    torch.manual_seed(0)  # the same random weights
    in_workers = extract(tree, f"openclip:{tiny_clip}", None, out=tmp_path / "w.h5", workers=2, show_progress=False)
    assert open_cache(in_workers.path).fingerprint == cache.fingerprint
    np.testing.assert_allclose(open_cache(in_workers.path).load("train")[0], features, rtol=0, atol=1e-3)


def test_images_of_more_than_8_bits_a_channel_are_scaled_not_clipped(tmp_path):
    """A 16-bit greyscale PNG or TIFF (medical, microscopy, depth) became white: PIL's convert("RGB") clips every
    value above 255 (an outside round; cosine 0.25 to the 8-bit image's features). Scaled as torchvision scales a
    16-bit PNG (255/65535), a float image in 0..1 by 255; the encoder's transform and the previews alike."""
    import numpy as np
    from PIL import Image

    from feature_cache.datasets import to_rgb
    from feature_cache.encoders import ImageTransform

    grey = np.random.default_rng(0).integers(0, 256, (40, 30)).astype(np.uint8)
    eight = Image.fromarray(grey, mode="L")
    wide = {"png16": (grey.astype(np.uint16) * 257, "png"), "tif16": (grey.astype(np.uint16) * 257, "tiff"),
            "tif32": (grey.astype(np.int32) * 257, "tiff"), "float": (grey.astype(np.float32) / 255, "tiff")}
    transform = ImageTransform(ENCODERS["effnet-lite0"].spec)
    for name, (values, kind) in wide.items():
        Image.fromarray(values).save(tmp_path / f"{name}.{kind}")
        image = Image.open(tmp_path / f"{name}.{kind}")
        assert image.mode in ("I;16", "I", "F"), (name, image.mode)
        assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(eight.convert("RGB"))), name
        assert torch.equal(transform(image), transform(eight)), name
    # one rule per mode, whatever the values (a review: floats past 1 read as 0..255 scaled two images 255x apart):
    # floats are 0..1, clipped, NaN as 0; 32-bit integers are 16-bit values, clipped
    odd = Image.fromarray(np.array([[0.0, 0.5, 1.0, 3.0, -1.0, np.nan]], dtype=np.float32), mode="F")
    assert np.asarray(to_rgb(odd))[0, :, 0].tolist() == [0, 128, 255, 255, 0, 0]
    ints = Image.fromarray(np.array([[-5, 0, 257, 32896, 65535, 70000]], dtype=np.int32))
    assert ints.mode == "I" and np.asarray(to_rgb(ints))[0, :, 0].tolist() == [0, 0, 1, 128, 255, 255]
    assert to_rgb(eight.convert("RGB")).mode == "RGB" and np.asarray(to_rgb(eight))[..., 1].tolist() == grey.tolist()


def test_the_weights_checks_leave_the_callers_warnings_filters_as_they_were(tiny_clip, moco_checkpoint, tmp_path,
                                                                            recwarn):
    """The checks of a MoCo v2 checkpoint and of open_clip safetensors load CPU tensors into a meta-device model, and
    torch warns of each copy (a no-op): a warnings filter added for the rest of the caller's process silenced it, the
    caller's own such warnings with it. The checks assign the tensors instead (no copy, no warning, no filter)."""
    import warnings

    from safetensors.torch import save_file

    from feature_cache import check_encoder

    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in open_clip.create_model(tiny_clip).state_dict().items()}, weights)
    before = list(warnings.filters)
    recwarn.clear()
    assert check_encoder(f"mocov2:{moco_checkpoint[0]}").num_features == 2048
    assert check_encoder(f"openclip:{tiny_clip}:{weights}").num_features == TINY["embed_dim"]
    assert warnings.filters == before
    assert not [w for w in recwarn if "meta parameter" in str(w.message)]


# A fresh process, logging not configured, builds openclip:tiny-vit-test (random weights), then configures its own
# logging; prints the root logger's handlers after the build, then logs a record of its own at INFO.
ROOT_LOGGER = """
import json, logging, os, sys, tempfile
sys.path.insert(0, {repo!r})
import open_clip
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "tiny-vit-test.json"), "w") as f:
    json.dump({tiny!r}, f)
open_clip.add_model_config(folder)
from feature_cache import create_encoder
create_encoder("openclip:tiny-vit-test", device="cpu")
print(logging.getLogger().handlers)
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="caller: %(message)s")
logging.getLogger("caller").info("configured")
"""


def test_an_open_clip_build_leaves_the_callers_root_logger_as_it_was():
    """open_clip logs with logging's module-level functions, which give the root logger a stderr handler
    (logging.basicConfig) in a process that has none: a build left it there for good, and the caller's own
    logging.basicConfig was then a no-op (its INFO records never shown)."""
    script = ROOT_LOGGER.format(repo=str(Path(encoders_module.__file__).parents[1]), tiny=TINY)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["[]", "caller: configured"]


def test_a_build_leaves_the_callers_random_numbers_as_they_were(tiny_clip, moco_checkpoint, tmp_path):
    """Every family builds its model with random initial weights before it loads the file's: the build drew them
    from torch's global generator, and the caller's random numbers after it differed (openclip without weights alone
    kept them)."""
    path = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(tiny_clip).state_dict(), path)
    for name in ("effnet-lite0", f"mocov2:{moco_checkpoint[0]}", f"openclip:{tiny_clip}:{path}",
                 f"openclip:{tiny_clip}"):
        torch.manual_seed(7)
        state = torch.random.get_rng_state()
        create_encoder(name, precision="fp32")
        assert torch.equal(torch.random.get_rng_state(), state), name
