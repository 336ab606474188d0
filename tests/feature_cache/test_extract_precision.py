"""Precision, channels-last, the worker pool and undecodable classes (allocator: tests/probe/test_allocator.py)."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from feature_cache import CacheMismatch, DatasetError, create_encoder, extract, open_cache, open_dataset
from feature_cache.encoders import cpu_has_native_bf16, resolve_precision
from feature_cache.extract import (CPU_WORKER_MEMORY, CPU_WORKERS_MIN_IMAGES, CUDA_DECODE_WORKERS, MAX_BATCH_SIZE,
                                   MAX_WORKERS, EncodingCollate, available_memory, check_batch_size, collate_images,
                                   cpu_batch_memory, resolve_workers)
from feature_cache.fingerprint import cache_fingerprint
from fc_testutils import make_tree, tiny_encoder
from testdata import MALLOC_FAULTS, REPO_ROOT

NO_BF16 = "this CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 is emulated here, not what users run"


def run(data, cache_dir, encoder=None, **kwargs):
    kwargs.setdefault("workers", 0)
    kwargs.setdefault("batch_size", 4)
    return extract(data, encoder or tiny_encoder(), cache_dir, show_progress=False, **kwargs)


def test_fp32_fingerprint_is_the_one_caches_had_before_precision_was_recorded():
    args = dict(dataset="d" * 64, encoder="effnet-lite0", weights_sha256="e" * 64, preprocess={"resize": [224, 224]},
                feature_kind="pooled", normalized=False, split_params={"seed": 0}, dtype="float16", schema_version=1)
    # Value computed with feature_cache/fingerprint.py of commit 5c3da43 (no precision argument).
    before = "5aec7beab1343a18c1a1443e5e2d2c7f503a1c90d354302db96786f8203a5224"
    assert cache_fingerprint(**args) == cache_fingerprint(**args, precision="fp32") == before
    assert cache_fingerprint(**args, precision="bf16") != before
    assert cache_fingerprint(**args, precision="fp16") not in (before, cache_fingerprint(**args, precision="bf16"))


def test_precision_is_recorded_and_bf16_reuses_the_fp32_cache_not_the_reverse(tree, tmp_path):
    bf16 = run(tree, tmp_path / "a", tiny_encoder(precision="bf16"))
    fp32 = run(tree, tmp_path / "a", tiny_encoder(precision="fp32"))  # a bf16 cache never answers fp32
    assert not bf16.reused and not fp32.reused and bf16.fingerprint != fp32.fingerprint
    assert open_cache(bf16.path).attrs["precision"] == "bf16"
    assert open_cache(fp32.path).attrs["precision"] == "fp32"
    features16, _ = open_cache(bf16.path).load("train")
    features32, _ = open_cache(fp32.path).load("train")
    assert not np.array_equal(features16, features32)  # bf16 really ran
    np.testing.assert_allclose(features16, features32, rtol=0.05, atol=0.02)
    # Where only the fp32 cache exists, a bf16 request takes it (the reference) without encoding anything.
    only32 = run(tree, tmp_path / "b", tiny_encoder(precision="fp32"))
    count = [0]
    again = run(tree, tmp_path / "b", tiny_encoder(counter=count, precision="bf16"))
    assert again.reused and count == [0] and again.path == only32.path and again.fingerprint == fp32.fingerprint
    assert [p.name for p in (tmp_path / "b").iterdir()] == [only32.path.name]
    # The same with an explicit --out; an fp32 request refuses an --out holding a bf16 cache.
    assert run(tree, None, tiny_encoder(precision="bf16"), out=only32.path).reused
    with pytest.raises(CacheMismatch, match="holds another cache"):
        run(tree, None, tiny_encoder(precision="fp32"), out=bf16.path)


def test_precision_errors_name_the_value(tree, tmp_path):
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        run(tree, tmp_path, precision="fp8")
    with pytest.raises(ValueError, match="precision 'fp16' needs a CUDA device, got cpu; on a CPU use bf16 or fp32"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision 'bf16' was requested but the encoder runs at 'fp32'"):
        run(tree, tmp_path, tiny_encoder(), precision="bf16")
    assert run(tree, tmp_path, tiny_encoder(), precision="fp32").encoded == 27
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    if torch.cuda.is_available():
        assert resolve_precision("auto", torch.device("cuda")) == "fp16"


@pytest.fixture(scope="module")
def effnet_batch(cifar_zip):
    """Eight CIFAR-10 test images (one per class of the first eight) and their features in fp32, contiguous,
    BatchNorm not folded: the model as loaded."""
    torch.set_num_threads(2)
    reference = create_encoder("effnet-lite0", precision="fp32", channels_last=False, fuse=False)
    data = open_dataset(cifar_zip, max_per_class=1)
    batch = torch.stack([reference.transform(data.load_image(sample)) for sample in data.splits["test"][:8]])
    return batch, reference.encode(batch)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_channels_last_and_bf16_features_match_fp32(effnet_batch, precision):
    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip(NO_BF16)
    batch, expected = effnet_batch
    encoder = create_encoder("effnet-lite0", precision=precision, channels_last=True)
    assert encoder.model.conv_stem.conv.weight.is_contiguous(memory_format=torch.channels_last)  # fused: conv + ReLU6
    got = encoder.encode(batch)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    cosine = torch.nn.functional.cosine_similarity(got, expected, dim=1)
    if precision == "fp32":  # channels-last only reorders the sums
        assert cosine.min() >= 0.99999, cosine
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)
    else:
        # Measured on these 8 images: min 0.994, mean 0.997 (2,000 CIFAR-10 test images: median 0.9975, 1st
        # percentile 0.9905); an ERM probe on bf16 features scores within 0.05 points of fp32 (README).
        assert cosine.min() >= 0.99 and cosine.mean() >= 0.995, cosine
        assert not torch.allclose(got, expected, rtol=1e-3, atol=1e-3)  # it did run in bfloat16


@pytest.fixture
def made(monkeypatch):
    """The keyword arguments of every DataLoader that feature_cache.extract makes."""
    made = []

    class CountingLoader(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    # The module, not the function of the same name that feature_cache exports.
    monkeypatch.setattr(importlib.import_module("feature_cache.extract"), "DataLoader", CountingLoader)
    return made


def test_one_dataloader_serves_every_split(tree, tmp_path, made):
    seen = []
    result = run(tree, tmp_path, workers=1, progress=lambda done, total: seen.append(done))
    assert len(made) == 1 and made[0]["num_workers"] == 1
    assert result.counts == {"train": 15, "val": 3, "test": 9}
    # Batches never straddle splits: chunks of 4 within train (15), val (3) and test (9).
    assert seen == [4, 8, 12, 15, 18, 22, 26, 27]


@pytest.fixture
def threads(monkeypatch):
    """torch.set_num_threads for the test, restored afterwards; the available memory is taken as unknown, so the
    automatic CPU workers follow the threads alone (the memory cap has its own test)."""
    monkeypatch.setattr(importlib.import_module("feature_cache.extract"), "available_memory", lambda: None)
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_workers_default_on_a_cpu_is_one_encoding_process_per_thread(tree, tmp_path, made, threads, monkeypatch,
                                                                      caplog):
    caplog.set_level("INFO", logger="feature_cache.extract")
    threads(2)
    extract(tree, tiny_encoder(), tmp_path, batch_size=4, show_progress=False)  # workers not given, 27 images
    assert made[0]["num_workers"] == 0 and made[0]["worker_init_fn"] is None  # under CPU_WORKERS_MIN_IMAGES
    assert made[0]["collate_fn"] is collate_images
    assert "27 images in 8 batches: decoding and encoding in this process (2 threads)" in caplog.messages
    monkeypatch.setattr(importlib.import_module("feature_cache.extract"), "CPU_WORKERS_MIN_IMAGES", 27)
    result = extract(tree, tiny_encoder(seed=1), tmp_path, batch_size=4, show_progress=False, tune_allocator=True)
    start = made[1]["worker_init_fn"]  # the allocator's settings, and the workers' end with this process
    assert made[1]["num_workers"] == 2 and start.func.__name__ == "_worker_start"
    assert start.keywords == {"parent": os.getpid(), "tune_allocator": True} and made[1].get("multiprocessing_context") in (
        "fork", None)
    assert isinstance(made[1]["collate_fn"], EncodingCollate)
    assert result.counts == {"train": 15, "val": 3, "test": 9}
    assert "27 images in 8 batches: 2 worker processes decoding and encoding (1 thread each)" in caplog.messages
    threads(1)  # one thread: decode and encode in this process, between forward passes
    extract(tree, tiny_encoder(seed=2), tmp_path, batch_size=4, show_progress=False)
    assert made[2]["num_workers"] == 0 and made[2]["collate_fn"] is collate_images
    assert "27 images in 8 batches: decoding and encoding in this process (1 thread)" in caplog.messages


def test_resolve_workers(threads, monkeypatch):
    threads(3)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert CPU_WORKERS_MIN_IMAGES == 2000
    assert [resolve_workers(None, cpu, 5000, batches) for batches in (None, 0, 1, 2, 5)] == [3, 0, 0, 2, 3]
    assert resolve_workers(None, cpu) == resolve_workers(None, cpu, 2000) == 3
    assert resolve_workers(None, cpu, 1999) == resolve_workers(None, cpu, 1999, 100) == 0
    # on CUDA: one worker per core but one, 2 to 8
    for cores, expected in ((None, 2), (1, 2), (3, 2), (4, 3), (9, 8), (64, 8)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert resolve_workers(None, cuda) == resolve_workers(None, cuda, 1, 1) == expected
    # 4 ranks of a torchrun on a 16-core node: 16 // 4 - 1 = 3 each; 8 ranks: 2 each (the floor)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert [resolve_workers(None, cuda, sharing=n) for n in (1, 4, 8)] == [8, 3, 2]
    assert CUDA_DECODE_WORKERS == 8
    assert resolve_workers(3, cpu, 1) == 3 and resolve_workers(1, cpu) == 1 and resolve_workers(0, cpu, 9000) == 0
    threads(1)
    assert resolve_workers(None, cpu, 9000, 100) == 0
    for count in (-1, MAX_WORKERS + 1, 100_000):  # 100,000 were accepted, and exhausted memory
        with pytest.raises(ValueError, match=rf"workers must be in \[0, {MAX_WORKERS}\], got {count}"):
            resolve_workers(count, cpu)
    assert resolve_workers(MAX_WORKERS, cpu) == MAX_WORKERS


def test_a_negative_worker_count_fails_before_any_file_is_written(tree, tmp_path):
    with pytest.raises(ValueError, match=r"workers must be in \[0, 64\], got -1"):
        run(tree, None, out=tmp_path / "c.h5", workers=-1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_available_memory_is_meminfo_lowered_to_the_room_under_a_cgroup_limit(tmp_path):
    gib = 1 << 30

    def machine(name, meminfo=None, v2=None, v1=None):
        root = tmp_path / name
        files = {}
        if meminfo is not None:
            files["proc/meminfo"] = f"MemTotal: 99 kB\nMemAvailable:   {meminfo // 1024} kB\nCached: 1 kB\n"
        for version, paths in (("v2", ("memory.max", "memory.current")),
                               ("v1", ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))):
            limit_usage = {"v2": v2, "v1": v1}[version]
            if limit_usage is not None:
                for path, value in zip(paths, limit_usage):
                    files[f"sys/fs/cgroup/{path}"] = f"{value}\n"
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        return available_memory(root)

    assert machine("none") is None
    assert machine("meminfo", meminfo=10 * gib) == 10 * gib
    assert machine("v2", meminfo=10 * gib, v2=(4 * gib, gib)) == 3 * gib
    assert machine("v2-unlimited", meminfo=10 * gib, v2=("max", gib)) == 10 * gib
    assert machine("v2-over", meminfo=10 * gib, v2=(gib, 2 * gib)) == 0
    assert machine("v1", meminfo=10 * gib, v1=(2 * gib, gib // 2)) == 3 * gib // 2
    assert machine("v1-unlimited", meminfo=10 * gib, v1=(9223372036854771712, gib)) == 10 * gib
    assert machine("cgroup-only", v2=(4 * gib, gib)) == 3 * gib


def test_resolve_workers_keeps_cpu_workers_within_half_the_available_memory(threads, monkeypatch):
    module = importlib.import_module("feature_cache.extract")
    assert available_memory() is not None  # Linux: MemAvailable
    threads(16)
    cpu = torch.device("cpu")
    for gib, expected in ((100, 16), (10, 5), (5, 2), (3, 0), (1, 0)):
        monkeypatch.setattr(module, "available_memory", lambda gib=gib: gib * CPU_WORKER_MEMORY)
        assert resolve_workers(None, cpu, 9000, 200) == expected, gib
    assert resolve_workers(4, cpu, 9000, 200) == 4  # an explicit count is the caller's
    monkeypatch.setattr(module, "available_memory", lambda: None)  # unknown: no cap
    assert resolve_workers(None, cpu, 9000, 200) == 16


def test_larger_batches_budget_more_memory_per_worker(threads, monkeypatch):
    module = importlib.import_module("feature_cache.extract")
    threads(16)
    cpu = torch.device("cpu")
    assert [cpu_batch_memory(b) // CPU_WORKER_MEMORY for b in (1, 64, 65, 128, 256, 1024)] == [1, 1, 2, 2, 4, 16]
    monkeypatch.setattr(module, "available_memory", lambda: 40 * CPU_WORKER_MEMORY)
    assert [resolve_workers(None, cpu, 9000, 200, b) for b in (32, 64, 128, 256, 512)] == [16, 16, 10, 5, 2]
    assert resolve_workers(None, cpu, 9000, 200, 1024) == 0  # one process (this one) encodes


def test_batch_sizes_out_of_bounds_or_beyond_memory_are_refused_before_any_file(tree, tmp_path, monkeypatch):
    module = importlib.import_module("feature_cache.extract")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for bad in (0, -1, MAX_BATCH_SIZE + 1):
        with pytest.raises(ValueError, match=rf"batch_size must be in \[1, 1024\], got {bad}"):
            check_batch_size(bad, cpu)
    monkeypatch.setattr(module, "available_memory", lambda: 3 * CPU_WORKER_MEMORY)
    check_batch_size(64, cpu)  # the default is never refused for memory
    check_batch_size(192, cpu)  # 3 GiB
    check_batch_size(1024, cuda)  # a GPU batch: the device's memory, not this machine's
    with pytest.raises(ValueError, match=r"batch_size 256 needs about 4 GiB per encoding process on a CPU "
                                         r"\(1 GiB per 64 images\), and 3.0 GiB are available: use at most 192"):
        check_batch_size(256, cpu)
    with pytest.raises(ValueError, match="use at most 192"):
        extract(tree, tiny_encoder(), None, out=tmp_path / "c.h5", batch_size=256, workers=0, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_cpu_workers_encode_their_batches_with_one_thread_each(tree, tmp_path, threads):
    def tagged(encoder):  # feature 0 of every image: the torch threads of the process that encoded it
        encode = encoder.encode

        def encode_tagged(images):
            features = encode(images).clone()  # encode returns an inference tensor
            features[:, 0] = torch.get_num_threads()
            return features

        encoder.encode = encode_tagged
        return encoder

    threads(2)
    in_workers = open_cache(run(tree, tmp_path / "w", tagged(tiny_encoder()), workers=2).path)
    in_main = open_cache(run(tree, tmp_path / "m", tagged(tiny_encoder()), workers=0).path)
    for split in ("train", "val", "test"):
        (a, ya), (b, yb) = in_workers.load(split), in_main.load(split)
        assert set(a[:, 0]) == {1.0} and set(b[:, 0]) == {2.0}
        np.testing.assert_array_equal(a[:, 1:], b[:, 1:])
        np.testing.assert_array_equal(ya, yb)
        assert in_workers.sources(split) == in_main.sources(split)


def test_collate_stacks_images_in_channels_last_memory_with_the_default_collations_values():
    from PIL import Image
    from torch.utils.data import default_collate

    rng = np.random.default_rng(0)
    transform = tiny_encoder().transform  # 16 × 16, bilinear squash
    decoded = [transform(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))) for h, w in
               ((5, 7), (16, 16), (40, 23))]
    assert decoded[0].permute(1, 2, 0).is_contiguous()  # the transform's HWC memory, which the collation keeps
    cropped = torch.from_numpy(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).permute(2, 0, 1)[:, 2:18, 1:17]
    failed = torch.zeros(3, 16, 16, dtype=torch.uint8)  # what _ImageDataset yields for an undecodable file
    digests = [bytes([i]) * 16 for i in range(4)]  # each file's content digest (zeros for one that failed)
    items = [(decoded[0], True, "", digests[0]), (cropped, True, "", digests[1]),
             (failed, False, "cannot decode", digests[2]), (decoded[2], True, "", digests[3])]
    images, ok, reasons, rows = collate_images(items)
    expected, expected_ok, expected_reasons, _ = default_collate(items)
    assert rows.dtype == np.uint8 and [bytes(row) for row in rows] == digests
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 16, 16)
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    assert torch.equal(images, expected) and not torch.equal(images[0], images[3])
    assert ok.tolist() == expected_ok.tolist() == [True, True, False, True] and ok.dtype == torch.bool
    assert reasons == list(expected_reasons) == ["", "", "cannot decode", ""]
    encoder = tiny_encoder()
    assert torch.equal(encoder.encode(images), encoder.encode(expected.contiguous()))


def test_class_with_no_decodable_training_image_is_an_error(tmp_path):
    root = make_tree(tmp_path / "data", {"ant": 4, "bee": 4, "cat": 4}, test_counts={"ant": 2, "bee": 2, "cat": 2})
    for path in (root / "train" / "cat").iterdir():
        path.unlink()
    for i in range(4):
        (root / "train" / "cat" / f"{i}.jpg").write_text("not a picture")
    with pytest.raises(DatasetError, match=r"no decodable image left for class\(es\) 'cat' in 'train'.*"
                                           r"'train/cat/\d\.jpg': cannot decode image"):
        run(root, tmp_path / "caches", workers=1)
    assert not list((tmp_path / "caches").iterdir())  # neither a cache nor a partial file


def test_the_undecodable_file_named_belongs_to_the_class_that_lost_its_images(tmp_path):
    root = make_tree(tmp_path / "data", {"ant": 4, "bee": 4, "cat": 4}, test_counts={"ant": 2, "bee": 2, "cat": 2})
    (root / "train" / "ant" / "broken.jpg").write_text("not a picture")  # ant keeps its 4 good images
    for path in (root / "train" / "cat").iterdir():
        path.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"'cat' in 'train'.*\(e\.g\. 'train/cat/") as raised:
        run(root, tmp_path / "caches", workers=1)
    assert "ant" not in str(raised.value)


def test_class_with_no_decodable_test_image_is_an_error(tmp_path):
    root = make_tree(tmp_path / "data", {"ant": 4, "bee": 4, "cat": 4}, test_counts={"ant": 2, "bee": 2, "cat": 2})
    for name in ("ant", "bee"):
        for path in (root / "test" / name).iterdir():
            path.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"class\(es\) 'ant', 'bee' in 'test'"):
        run(root, None, out=tmp_path / "c.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    (root / "test" / "ant" / "000.png").unlink()
    (root / "test" / "ant" / "001.png").unlink()
    make_tree(root, {"ant": 1, "bee": 2, "cat": 0}, splits=("test",))  # one readable image per class is enough
    assert run(root, None, out=tmp_path / "c.h5").counts["test"] == 2 + 1 + 2


def test_skipped_summary_names_photos_in_a_format_not_read_apart_from_metadata():
    """An iPhone's .HEIC photos were "N non-image or metadata files" in an extraction job's messages, with .DS_Store,
    and never named (a new-user round)."""
    from feature_cache import skipped_summary
    from feature_cache.archives import not_an_image

    skipped = [(f"cat/IMG_{i}.HEIC", not_an_image(f"cat/IMG_{i}.HEIC")) for i in range(4)]
    skipped += [("cat/.DS_Store", "hidden or metadata file")]
    assert skipped_summary(skipped) == ("5 files skipped: 4 images in a format not read, to convert to JPEG or PNG "
                                        "('cat/IMG_0.HEIC', 'cat/IMG_1.HEIC', 'cat/IMG_2.HEIC', ...), 1 non-image or "
                                        "metadata file")


def test_skipped_summary_counts_decode_failures_apart_and_names_a_few():
    from feature_cache import skipped_summary

    skipped = [("cat/notes.txt", "not an image file (extension '.txt')"), ("cat/.DS_Store", "hidden or metadata file")]
    skipped += [(f"dog/{i}.jpg", "cannot decode image: Truncated File Read") for i in range(4)]
    assert skipped_summary(skipped) == ("6 files skipped: 4 failed to decode ('dog/0.jpg', 'dog/1.jpg', "
                                        "'dog/2.jpg', ...), 2 non-image or metadata files")
    assert skipped_summary(skipped[2:3]) == "1 file skipped: 1 failed to decode ('dog/0.jpg')"
    assert skipped_summary(skipped[:1]) == "1 file skipped: 1 non-image or metadata file"
    assert skipped_summary([]) == ""
    # a skipped link is named as one, not as metadata (an attack round)
    link = ("cat/x.jpg", "symlink pointing outside the data folder")
    assert skipped_summary([link, skipped[0]]) == ("2 files skipped: 1 unsafe or unreadable link or special file "
                                                   "('cat/x.jpg' (symlink pointing outside the data folder)), "
                                                   "1 non-image or metadata file")
    # an archive's link is one; a reason naming a user's folder that holds the word, or a decoder's message, is not
    from feature_cache.archives import archive_link

    others = [("README.md", "outside the split folders ('weblinks/train', 'weblinks/test')"),
              ("dog/9.jpg", "cannot decode image: broken link in chunk")]
    assert skipped_summary([("t/l.png", archive_link("hard", "t/0.png")), *others]) == (
        "3 files skipped: 1 failed to decode ('dog/9.jpg'), 1 unsafe or unreadable link or special file "
        "('t/l.png' (hard link to 't/0.png' inside the archive, not followed (put the file itself in))), "
        "1 non-image or metadata file")


def test_a_library_call_leaves_the_callers_allocator_alone(tree, tmp_path, made, monkeypatch):
    """extract's allocator setting (probe.allocator: mallopt, for the rest of the process) is the caller's to ask
    for, as run_probe's: it was on by default, and a plain library call changed its caller's process for good."""
    module = importlib.import_module("feature_cache.extract")
    calls = []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(module, "release_freed_memory", lambda: calls.append("release"))
    run(tree, tmp_path / "a", workers=1)
    assert calls == [] and made[0]["worker_init_fn"].keywords["tune_allocator"] is False
    run(tree, tmp_path / "b", workers=1, tune_allocator=True)
    assert calls == ["keep", "release"] and made[1]["worker_init_fn"].keywords["tune_allocator"] is True


# extract called as a library in a fresh process, then the caller's own 64 MiB blocks: their page faults.
LIBRARY_CALL = MALLOC_FAULTS + textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}, {here!r}]
    from pathlib import Path
    from feature_cache import extract
    from fc_testutils import make_tree, tiny_encoder
    tree = make_tree(Path({data!r}), {{"a": 3, "b": 3}}, test_counts={{"a": 1, "b": 1}})
    extract(tree, tiny_encoder(), {caches!r}, workers=0, batch_size=4, show_progress=False)
    print(malloc_faults(64 << 20))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_a_library_call_leaves_the_callers_malloc_settings_as_they_were(tmp_path):
    script = LIBRARY_CALL.format(repo=str(REPO_ROOT), tests=str(REPO_ROOT / "tests"), here=str(REPO_ROOT / "tests"
                                 / "feature_cache"), data=str(tmp_path / "data"), caches=str(tmp_path / "caches"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 3 × 64 MiB blocks: ~49,000 pages faulted in with glibc's default allocator; < 1,000 had the extraction left
    # its mallopt settings in the caller's process (tests/probe/test_allocator.py)
    assert int(proc.stdout.split()[-1]) > 40_000, proc.stdout


def test_an_extraction_leaves_the_callers_random_numbers_as_they_were(tree, tmp_path):
    """The DataLoader drew its workers' base seed from torch's global generator, with or without workers: a caller's
    random numbers after an extraction differed from those after the same call that reused the cache."""
    for workers in (0, 2):
        encoder = tiny_encoder(seed=workers)  # seeds torch itself
        torch.manual_seed(123)
        state = torch.random.get_rng_state()
        assert not run(tree, tmp_path / str(workers), encoder, workers=workers).reused
        assert torch.equal(torch.random.get_rng_state(), state)
