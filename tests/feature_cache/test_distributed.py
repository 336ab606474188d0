"""Sharded extraction over 2 CPU processes (gloo) merges into the same cache as one process."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from feature_cache import ExtractionBusy, distributed, extract, open_cache, open_dataset, open_images
from feature_cache.datasets import content_digest
from feature_cache.distributed import merge_shards, shard_bounds, shard_splits
from feature_cache.extract import _exclusive, plan_extraction, run_plan
from feature_cache.partial import _locked
from fc_testutils import distributed_main, distributed_worker, make_tree, tiny_encoder


def test_shard_bounds_cover_in_order():
    for n in (0, 1, 5, 27):
        for world in (1, 2, 3, 4):
            blocks = [shard_bounds(n, r, world) for r in range(world)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [e - s for s, e in blocks]
            assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(27, 0, 2) == (0, 14) and shard_bounds(27, 1, 2) == (14, 27)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        shard_bounds(5, 2, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_extraction_equals_single_process(tree, tmp_path):
    single = extract(tree, tiny_encoder(), None, out=tmp_path / "single.h5", workers=0, batch_size=4,
                     show_progress=False)
    out = tmp_path / "multi.h5"
    mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(out), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    assert ranks[0]["encoded"] == 27 and ranks[0]["counts"] == {"train": 15, "val": 3, "test": 9}
    merged, reference = open_cache(out), open_cache(single.path)
    assert merged.fingerprint == reference.fingerprint
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(merged.load(split)[0], reference.load(split)[0])
        np.testing.assert_array_equal(merged.load(split)[1], reference.load(split)[1])
        assert merged.sources(split) == reference.sources(split)
        np.testing.assert_array_equal(merged.digests(split), reference.digests(split))  # row-aligned, kept
    assert sorted(p.name for p in tmp_path.glob("multi.h5*")) == ["multi.h5"]  # shards removed
    # The merged cache is found again by its fingerprint.
    again = extract(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)
    assert again.reused and again.encoded == 0


def test_images_that_fail_to_decode_count_on_every_rank_as_in_one_process(tree, tmp_path):
    """Each shard was finalised without its decode failures: the merged cache listed none of them, and a class whose
    every train image failed was written without it (one process refuses it; an outside round)."""
    (tree / "train" / "ant" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    (tree / "test" / "cat" / "empty.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    single = extract(tree, tiny_encoder(), None, out=tmp_path / "single.h5", workers=0, batch_size=4,
                     show_progress=False)
    out = tmp_path / "multi.h5"
    mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(out), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1] and ranks[0]["counts"] == dict(single.counts)
    assert ranks[0]["skipped"] == sorted(map(list, single.skipped))
    assert {source for source, _ in single.skipped} == {"train/ant/broken.jpg", "test/cat/empty.png"}
    assert sorted(map(list, open_cache(out).attrs["skipped"])) == ranks[0]["skipped"]
    # every train image of a class failing: refused on every rank, no cache written
    for image in (tree / "train" / "bee").iterdir():
        image.write_bytes(b"broken")
    refused = tmp_path / "refused.h5"
    mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(refused), str(tmp_path)), nprocs=2, join=True)
    errors = [json.loads((tmp_path / f"rank{r}.json").read_text()).get("error") for r in range(2)]
    assert errors[0] == errors[1] and "'bee'" in errors[0] and "train" in errors[0]
    assert not refused.exists()


def test_a_rank_that_fails_to_encode_its_shard_has_every_rank_raise_its_error(tree, tmp_path):
    """Rank 1's DatasetChanged (a file of its block moved) while rank 0 encoded: rank 0 waited for it in the next
    collective, which failed with a trace of gloo's 'Connection closed by peer', and torchrun killed it (a review)."""
    out = tmp_path / "multi.h5"
    mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(out), str(tmp_path), 1), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["kind"] for r in ranks] == ["DatasetChanged", "DatasetChanged"] and ranks[0] == ranks[1]
    assert ranks[0]["error"] == "a file of rank 1's block was moved"
    assert not out.exists() and (tmp_path / "multi.h5.shard0-of-2.h5").exists()  # rank 0's finished shard kept
    assert not (tmp_path / "multi.h5.lock").exists()  # rank 0 let go of the cache's lock


def test_a_runtime_error_of_a_rank_is_one_line_and_exit_1_as_mr2probe_extract_says_it(tree, tmp_path):
    """A CUDA out-of-memory error (a RuntimeError) of one rank's encoding, raised on every rank: each rank printed
    its trace, where `mr2probe extract` prints one line and exits 1 (a review)."""
    argv = ["--data", str(tree), "--out", str(tmp_path / "c.h5"), "--device", "cpu", "--batch-size", "4",
            "--backend", "gloo"]
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path), oom), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [1, 1]
    errors = [[line for line in r["stderr"].splitlines() if ": error" in line] for r in ranks]
    assert errors == [["python -m feature_cache.distributed: error: CUDA out of memory. Tried to allocate 2.00 GiB"],
                      []]
    assert not any("Traceback" in r["stderr"] for r in ranks)


def _said(stderr: str) -> list[str]:
    """What a rank printed to stderr, its log records (``2026-01-01 12:00:00,000 INFO ...``) left out."""
    return [line for line in stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d \d\d:", line)]


def test_the_command_takes_unlabelled_and_no_progress_and_says_what_mr2probe_extract_says_on_rank_0(tmp_path):
    """torchrun's command had neither --unlabelled nor --no-progress, and printed neither the line of what it found
    before the extraction nor the files it skipped after it, as `mr2probe extract` does (a review): the same options,
    the same lines printed once, by rank 0, and the cache of one process row for row."""
    images = make_tree(tmp_path / "new", {"a": 2, "b": 3}, splits=())
    (images / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank runs (fc_testutils.distributed_main): oneDNN's sums over 2 threads differ
    try:  # from 1 thread's in the last bit of float16 (33 of 6,400 values on a 2-core machine)
        single = extract(open_images(images), "effnet-lite0", None, out=tmp_path / "single.h5", batch_size=4,
                         workers=0, device="cpu", show_progress=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "multi.h5"
    argv = ["--data", str(images), "--unlabelled", "--out", str(out), "--device", "cpu", "--batch-size", "2",
            "--workers", "0", "--no-progress", "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [0, 0] and _said(ranks[1]["stderr"]) == []
    assert _said(ranks[0]["stderr"]) == [
        "found 6 images (test 6), unlabelled", f"skipped 'b/broken.jpg': {dict(single.skipped)['b/broken.jpg']}"]
    merged, reference = open_cache(out), open_cache(single.path)
    assert merged.fingerprint == reference.fingerprint and merged.split_sizes["test"] == 5
    assert merged.attrs["split_params"] == {"layout": "unlabelled"} and merged.attrs["skipped"] == [
        list(s) for s in single.skipped]
    np.testing.assert_array_equal(merged.load("test")[0], reference.load("test")[0])
    assert merged.sources("test") == reference.sources("test")
    # split options with --unlabelled: refused as `mr2probe extract` refuses them, in one line on rank 0
    argv = ["--data", str(images), "--unlabelled", "--max-per-class", "2", "--out", str(tmp_path / "r.h5"),
            "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2] and _said(ranks[1]["stderr"]) == []
    assert _said(ranks[0]["stderr"]) == ["python -m feature_cache.distributed: error: --max-per-class and "
                                         "--val-fraction split a labelled set; --unlabelled keeps every image in one "
                                         "test split."]


def _merged_shards(tree, tmp_path, world_size: int, digested=lambda rank: True):
    """The data set of ``tree``, its extraction plan, the shard files and the cache merged from them: ``world_size``
    shards, each extracted in this process (``digested(rank)``: whether that shard's partial file keeps digests,
    False as in an older version's)."""
    data = open_dataset(tree)
    plan = plan_extraction(data, tiny_encoder(), None, out=tmp_path / "final.h5")
    shards = []
    for rank in range(world_size):
        partial, _ = run_plan(plan, splits=shard_splits(data.splits, rank, world_size), workers=0,
                              partial_path=tmp_path / f"s{rank}.partial", show_progress=False)
        partial.digested = partial.digested and digested(rank)
        shards.append(partial.finalize(tmp_path / f"s{rank}.h5", {}))
    return data, plan, shards, open_cache(merge_shards(shards, tmp_path / "final.h5", {"skipped": []}))


def test_merge_keeps_shard_order_and_each_rows_digest(tree, tmp_path):
    data, plan, shards, merged = _merged_shards(tree, tmp_path, 3)
    for split in ("train", "val", "test"):
        assert merged.sources(split) == [s.source for s in data.splits[split]]
        assert merged.load(split)[1].tolist() == [s.label for s in data.splits[split]]
        # each row's content digest stays beside its source through the shards and their merge
        assert [bytes(d) for d in merged.digests(split)] == [content_digest((tree / s.source).read_bytes())
                                                             for s in data.splits[split]]
    assert merged.fingerprint == plan.fingerprint
    assert not any(p.exists() for p in shards)


def test_an_out_file_of_other_settings_is_refused_on_every_rank(tree, tmp_path):
    """Rank 0 alone raised CacheMismatch: the other ranks waited in the next collective until torchrun killed them
    (SIGTERM), and the user read torchrun's failure report (a review)."""
    out = tmp_path / "other.h5"
    extract(tree, tiny_encoder(), None, out=out, dtype="float32", workers=0, show_progress=False)
    before = out.read_bytes()
    mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(out), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["kind"] for r in ranks] == ["CacheMismatch", "CacheMismatch"] and ranks[0] == ranks[1]
    assert "holds another cache" in ranks[0]["error"] and "dtype (there 'float32', requested 'float16')" in \
        ranks[0]["error"]
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.glob("other.h5*")) == ["other.h5"]


def test_the_command_prints_a_refusal_in_one_line_and_every_rank_exits_non_zero(tree, tmp_path):
    """`python -m feature_cache.distributed` as torchrun runs it: a refusal is one line on rank 0 (as `mr2probe extract:
    error: ...`), and every rank exits 2 (a caller's mistake), none killed."""
    out = tmp_path / "other.h5"
    extract(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)
    argv = ["--data", str(tree), "--out", str(out), "--device", "cpu", "--batch-size", "4", "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2]
    errors = [[line for line in r["stderr"].splitlines() if ": error" in line] for r in ranks]
    assert errors[1] == [] and len(errors[0]) == 1
    assert errors[0][0].startswith("python -m feature_cache.distributed: error: ")
    assert "holds another cache (encoder 'tiny-0'" in errors[0][0] and "Traceback" not in ranks[0]["stderr"]


def test_a_shard_partial_path_that_is_a_folder_is_a_callers_mistake(tree, tmp_path):
    """One rank's '<out>.shard1-of-2.h5.partial' a folder: IsADirectoryError, exit 1, where a folder given for a file
    is exit 2 elsewhere (a review); now refused in one line naming the folder, every rank exiting 2, nothing written."""
    out = tmp_path / "multi.h5"
    folder = tmp_path / "multi.h5.shard1-of-2.h5.partial"
    folder.mkdir()
    argv = ["--data", str(tree), "--out", str(out), "--device", "cpu", "--batch-size", "4", "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2]
    errors = [line for r in ranks for line in r["stderr"].splitlines() if ": error" in line]
    assert errors == [f"python -m feature_cache.distributed: error: {folder} is a folder, not the extraction's "
                      "resumable partial file: move or remove the folder and run the extraction again."]
    assert not out.exists() and folder.is_dir() and not any(folder.iterdir())


def test_a_cache_another_extraction_is_writing_is_refused_on_every_rank(tree, tmp_path):
    """The single-process extraction locks its cache (<final>.lock) and torchrun's did not: both wrote the same cache
    at once, one process and torchrun, or two torchruns (a review)."""
    out = tmp_path / "multi.h5"
    with _exclusive(out):  # `mr2probe extract --out multi.h5` (or another torchrun) running now
        mp.spawn(distributed_worker, args=(2, free_port(), str(tree), str(out), str(tmp_path)), nprocs=2, join=True)
        ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
        assert [r["kind"] for r in ranks] == ["ExtractionBusy", "ExtractionBusy"]
        assert f"{out} is being extracted by pid {os.getpid()}" in ranks[0]["error"]
        assert sorted(p.name for p in tmp_path.glob("multi.h5*")) == ["multi.h5.lock"]  # no shard written


def test_torchruns_extraction_holds_the_cache_lock_and_removes_killed_merges_copies(tree, tmp_path, monkeypatch):
    """While it runs, the single-process extraction of the same cache is refused (ExtractionBusy); the temporary copies
    that a killed merge (``.<final>.<pid>.tmp``, as large as the cache) or shard finalisation left are removed, as
    `mr2probe extract` removes its own (a review)."""
    out = tmp_path / "multi.h5"
    left = [tmp_path / ".multi.h5.999999.tmp", tmp_path / ".multi.h5.shard0-of-1.h5.999999.tmp"]
    writing = tmp_path / f".multi.h5.{os.getppid()}.tmp"  # a live writer's: not ours to remove
    for path in (*left, writing):
        path.write_bytes(b"x")
    seen = []

    def merge_under_lock(*args, **kwargs):
        with pytest.raises(ExtractionBusy, match="is being extracted by"):
            extract(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)
        seen.append(sorted(p.name for p in tmp_path.glob(".multi.h5*")))
        return merge_shards(*args, **kwargs)

    monkeypatch.setattr(distributed, "merge_shards", merge_under_lock)
    with one_process_group():
        result = distributed.extract_distributed(tree, tiny_encoder(), None, out=out, batch_size=4, workers=0,
                                                 show_progress=False)
    assert seen == [[writing.name]] and result.counts["train"] == 15
    assert sorted(p.name for p in tmp_path.glob("*multi.h5*")) == sorted(["multi.h5", writing.name])


def test_extract_distributed_plans_with_extracts_keywords(tree, tmp_path):
    """The plan keywords (dtype, seed, max_per_class, val_fraction) reach plan_extraction: the cache is the one
    `extract` writes with them (its fingerprint, dtype and counts)."""
    plan = {"dtype": "float32", "seed": 3, "max_per_class": 3, "val_fraction": 0.25}
    alone = extract(tree, tiny_encoder(), None, out=tmp_path / "alone.h5", workers=0, show_progress=False, **plan)
    with one_process_group():
        result = distributed.extract_distributed(tree, tiny_encoder(), None, out=tmp_path / "multi.h5", workers=0,
                                                 show_progress=False, **plan)
    assert result.fingerprint == alone.fingerprint and result.counts == alone.counts
    with h5py.File(result.path, "r") as h5:
        assert h5["train"]["features"].dtype == np.float32


@contextmanager
def one_process_group():
    """A gloo group of this process alone: extract_distributed as torchrun's only rank."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def stale_shards(folder):
    """Shard files of multi.h5 that a 4-process run killed part-way left."""
    stale = [folder / "multi.h5.shard0-of-4.h5.partial", folder / "multi.h5.shard2-of-4.h5",
             folder / "multi.h5.shard3-of-4.h5.partial"]
    for path in stale:
        path.write_bytes(b"x")
    return stale


def test_shards_of_a_run_with_another_number_of_processes_are_removed_once_the_cache_is_finished(
        tree, tmp_path, monkeypatch, caplog):
    """A 4-process run killed part-way, then a run with another number of processes: its shards stayed on disk for
    good, which no run resumes once the cache is finished (a review). Kept and named while the new run runs (a
    4-process run could still resume them); a .partial file a process holds open is never removed."""
    out = tmp_path / "multi.h5"
    stale = stale_shards(tmp_path)
    writing = _locked(tmp_path / "multi.h5.shard1-of-4.h5.partial", create=True)  # held open by a process
    others = [tmp_path / "other.h5.shard0-of-4.h5", tmp_path / "multi.h5.shard0-of-4.h5.txt"]
    for path in others:
        path.write_bytes(b"x")
    seen = []
    monkeypatch.setattr(distributed, "merge_shards",
                        lambda *a, **k: seen.append(all(p.exists() for p in stale)) or merge_shards(*a, **k))
    try:
        with one_process_group(), caplog.at_level("WARNING", logger="feature_cache.distributed"):
            distributed.extract_distributed(tree, tiny_encoder(), None, out=out, batch_size=4, workers=0,
                                            show_progress=False)
    finally:
        writing.close()
    assert seen == [True]  # until the merge
    assert "multi.h5: 4 shard files of an unfinished 4-process extraction (multi.h5.shard*-of-4.h5*)" in caplog.text
    assert "removed" in caplog.text and str(stale[0]) in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("multi.h5")) == [
        "multi.h5", "multi.h5.shard0-of-4.h5.txt", "multi.h5.shard1-of-4.h5.partial"]
    assert all(p.exists() for p in others)
    # a finished cache reused: the shards a killed run left since are removed as well
    stale = stale_shards(tmp_path)
    with one_process_group():
        again = distributed.extract_distributed(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)
    assert again.reused and not any(p.exists() for p in stale)


def test_an_out_file_that_cannot_be_written_is_named_not_its_lock_file(tree, tmp_path):
    """torchrun's --out /proc/x.h5 said "[Errno 2] No such file or directory: '/proc/x.h5.lock'", a file the user never
    named (`mr2probe extract` checks the folder first; a review)."""
    with one_process_group(), pytest.raises(FileNotFoundError) as refused:
        distributed.extract_distributed(tree, tiny_encoder(), None, out=Path("/proc/x.h5"), workers=0,
                                        show_progress=False)
    assert str(refused.value) == "[Errno 2] No such file or directory: '/proc/x.h5'"


def test_a_finished_cache_in_a_folder_this_user_cannot_write_is_reused(tree, tmp_path, monkeypatch):
    """Reusing a finished cache took its lock first, to remove stale shards: in a folder the user cannot write (a
    shared cache) the lock file could not be created and the run was refused, 'error: [Errno 13] Permission denied:
    CACHE.h5.lock' (a review), where `mr2probe extract` reuses it."""
    out = tmp_path / "shared.h5"
    extract(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)

    def read_only(final):
        raise PermissionError(13, "Permission denied", str(final.with_name(final.name + ".lock")))

    monkeypatch.setattr(distributed, "_exclusive", read_only)
    with one_process_group():
        again = distributed.extract_distributed(tree, tiny_encoder(), None, out=out, workers=0, show_progress=False)
    assert again.reused and again.path == out and again.encoded == 0


def test_the_single_process_extraction_of_the_cache_removes_the_shards_of_a_killed_torchrun(tree, tmp_path):
    """torchrun's run killed part-way, then `mr2probe extract --out` of the same cache finished it: its shards stayed
    for good (a review)."""
    stale = stale_shards(tmp_path)
    result = extract(tree, tiny_encoder(), None, out=tmp_path / "multi.h5", workers=0, show_progress=False)
    assert not result.reused and not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("multi.h5")) == ["multi.h5"]



def test_a_merge_records_this_runs_encoder_not_the_one_a_finished_shard_was_started_with(tree, tmp_path):
    """A shard finished by a killed run, the MoCo checkpoint moved since (same weights: same fingerprint): the merged
    cache recorded the shard's mocov2:OLD_PATH (a review)."""
    out = tmp_path / "multi.h5"
    old = plan_extraction(tree, tiny_encoder(name="mocov2:/old/moco.pth"), None, out=out)
    partial, _ = run_plan(old, workers=0, partial_path=tmp_path / "multi.h5.shard0-of-1.h5.partial",
                          show_progress=False)
    partial.finalize(tmp_path / "multi.h5.shard0-of-1.h5", {"skipped": []})
    with one_process_group():
        result = distributed.extract_distributed(tree, tiny_encoder(name="mocov2:/new/moco.pth"), None, out=out,
                                                 workers=0, show_progress=False)
    assert result.encoded == 0 and result.fingerprint == old.fingerprint  # the finished shard kept
    assert open_cache(out).attrs["encoder"] == "mocov2:/new/moco.pth"


def test_the_command_interrupted_says_so_in_one_line_and_that_it_resumes(tree, tmp_path, monkeypatch, capsys):
    """Ctrl-C, which torchrun hands to every rank, printed each rank's KeyboardInterrupt trace (a review): one line
    now, as `mr2probe extract` says it, and 130."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "extract_distributed", interrupted)
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    try:
        code = distributed.main(["--data", str(tree), "--out", str(tmp_path / "c.h5"), "--backend", "gloo"])
    except KeyboardInterrupt:
        pytest.fail("the interruption left main() as a KeyboardInterrupt (each rank's trace)")
    assert code == 130 and not dist.is_initialized()
    assert capsys.readouterr().err.strip().splitlines() == [
        "found 3 classes: 'ant', 'bee', 'cat'; 27 images (train 15, val 3, test 9)",  # before the extraction
        "python -m feature_cache.distributed: interrupted; the images encoded so far are kept: the same command with "
        "as many processes resumes"]


def test_the_command_warns_of_its_data_set_before_the_extraction_as_mr2probe_extract(tmp_path, monkeypatch, capsys):
    """torchrun's command said nothing of its data set before the extraction but an unused --val-fraction, where
    `mr2probe extract` warns of a class without test images, class names alike but for case, duplicate images and
    the rest (a review): the same lines, from the same code (feature_cache.options.said_before)."""
    data = make_tree(tmp_path / "data", {"Cat": 3, "ant": 3, "cat": 3}, test_counts={"Cat": 0, "ant": 1, "cat": 1})

    def interrupted(*args, **kwargs):  # the lines said before the extraction, and none of it
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "extract_distributed", interrupted)
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    assert distributed.main(["--data", str(data), "--out", str(tmp_path / "c.h5"), "--backend", "gloo"]) == 130
    assert capsys.readouterr().err.splitlines()[:-1] == [
        "found 3 classes: 'Cat', 'ant', 'cat'; 11 images (train 6, val 3, test 2)",
        "warning: 1 class without any test image (Cat): a probe needs test images of every class; add images (a "
        "class folder under test/, or at least 2 images in a data set without splits), or drop it before training.",
        "warning: Class names that differ only in case, spacing or Unicode form: 'Cat' and 'cat'. Where such names "
        "are one class, its images are split between them: rename the folders or labels."]


def test_a_cap_per_class_that_leaves_no_validation_image_is_refused_before_the_extraction_as_mr2probe_extract(
        tmp_path, monkeypatch, capsys):
    """`mr2probe extract --max-per-class 1` is refused (its cache held no validation image, and train refused it);
    torchrun's command went on and encoded that cache (a review of the merged rounds): the same refusal, exit 2,
    before any image is encoded."""
    data = make_tree(tmp_path / "data", {"cat": 2, "dog": 2, "eel": 2})  # train/ and test/, 2 a class in each
    calls = []
    monkeypatch.setattr(distributed, "extract_distributed", lambda *a, **k: calls.append(1))
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    argv = ["--data", str(data), "--out", str(tmp_path / "c.h5"), "--backend", "gloo", "--max-per-class", "1"]
    assert distributed.main(argv) == 2 and calls == []
    assert capsys.readouterr().err.splitlines() == [
        "python -m feature_cache.distributed: error: --max-per-class 1 leaves no validation image (train 3, val 0, "
        "test 3): a probe carves one from a class of 2 train images or more; give --max-per-class 2 or more"]


def test_a_data_set_that_does_not_open_is_one_line_on_rank_0_and_every_rank_exits_2(tmp_path):
    """Each rank raised its own FileNotFoundError: a trace from each, and the rank that exited first had torchrun
    kill the other (SIGTERM; a review)."""
    argv = ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c.h5"), "--device", "cpu",
            "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2] and ranks[1]["stderr"] == ""
    assert ranks[0]["stderr"].splitlines() == [
        f"python -m feature_cache.distributed: error: data set {tmp_path / 'missing'} does not exist."]


def test_destroy_process_group_frees_the_group_an_extraction_ran_in(tmp_path):
    """torch.distributed.nn, imported by torchvision during the extraction (after init_process_group), took the
    default group as its functions' default argument: the gloo group outlived destroy_process_group, with its
    threads, until the interpreter's teardown (a spawned rank aborted there about once in 35 runs, 'terminate called
    without an active exception'). A fresh interpreter: this one imported torchvision long ago."""
    script = f"""
import gc, socket, sys, weakref
from pathlib import Path
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
import torch.distributed as dist
from feature_cache.distributed import extract_distributed
from fc_testutils import make_tree, tiny_encoder
tree = make_tree(Path({str(tmp_path / "data")!r}), {{"a": 2, "b": 2}}, test_counts={{"a": 1, "b": 1}})
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{{port}}", rank=0, world_size=1)
group = weakref.ref(dist.distributed_c10d._get_default_group())
assert "torchvision" not in sys.modules
extract_distributed(tree, tiny_encoder(), None, out={str(tmp_path / "c.h5")!r}, workers=0, show_progress=False)
dist.destroy_process_group()
gc.collect()
print("torchvision" in sys.modules, group() is None)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(distributed.__file__).parents[1]),
                                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]  # the extraction imported torchvision; the group is gone


def test_a_refused_rank_that_torchrun_stops_while_it_finalises_exits_with_the_refusals_code(tmp_path):
    """The SIGTERM handler that gives torchrun's report the refusal's code is a Python one, which the interpreter's
    finalisation puts back to the default: a rank torchrun stopped then (the other rank gone) was reported killed
    by SIGTERM (-15) in 3 of 4 runs of a refused `torchrun --nproc_per_node 2` (a review). SIG_IGN, which finalisation
    keeps, is set for it; the rank then exits with the code on its own."""
    script = f"""
import atexit, os, signal
from feature_cache.distributed import main
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="{free_port()}", RANK="0", WORLD_SIZE="1")
code = main(["--data", {str(tmp_path / "missing")!r}, "--out", {str(tmp_path / "c.h5")!r}, "--backend", "gloo"])
atexit._run_exitfuncs()  # what the interpreter runs before it puts Python's signal handlers back to the default
print(code, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(distributed.__file__).parents[1]),
                                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "True"]


def test_the_command_keeps_freed_memory_where_a_library_call_leaves_the_callers_allocator_alone(tree, tmp_path,
                                                                                                  monkeypatch):
    """torchrun's command is a process of its own: it keeps the measured allocator setting (probe.allocator) that a
    library call of extract_distributed, as of feature_cache.extract, leaves off by default."""
    tuned = []
    real = distributed.run_plan
    monkeypatch.setattr(distributed, "run_plan", lambda *a, **k: tuned.append(k["tune_allocator"]) or real(*a, **k))
    with one_process_group():
        distributed.extract_distributed(tree, tiny_encoder(), None, out=tmp_path / "a.h5", workers=0,
                                        show_progress=False)
    assert tuned == [False]
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    asked = []

    def interrupted(*args, **kwargs):  # what main asks for, and none of the extraction
        asked.append(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "extract_distributed", interrupted)
    assert distributed.main(["--data", str(tree), "--out", str(tmp_path / "b.h5"), "--backend", "gloo"]) == 130
    assert asked[0]["tune_allocator"] is True


def test_a_merge_of_shards_one_of_which_keeps_no_digests_keeps_none(tree, tmp_path):
    """A shard finished from an older partial file keeps no digests: the merged cache keeps none, not misaligned."""
    data, _, _, merged = _merged_shards(tree, tmp_path, 2, digested=lambda rank: rank == 0)
    assert all(merged.digests(split) is None for split in ("train", "val", "test"))
    assert merged.sources("train") == [s.source for s in data.splits["train"]]


def test_the_command_names_the_rotated_photos_as_mr2probe_extract_does(tmp_path):
    """torchrun's command said nothing of the images with an EXIF orientation it did not apply: each shard keeps
    them, the merge joins them into the cache's ``rotated`` attribute and rank 0 prints the note, once."""
    from test_exif_orientation import ROTATED, photos

    out = tmp_path / "multi.h5"
    argv = ["--data", str(photos(tmp_path / "data")), "--out", str(out), "--device", "cpu", "--batch-size", "2",
            "--workers", "0", "--no-progress", "--backend", "gloo"]
    mp.spawn(distributed_main, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["code"] for r in ranks] == [0, 0] and _said(ranks[1]["stderr"]) == []
    notes = [line for line in _said(ranks[0]["stderr"]) if "EXIF" in line]
    assert len(notes) == 1 and notes[0].startswith("note: 2 images of the cache carry an EXIF orientation")
    assert sorted(open_cache(out).attrs["rotated"]) == ROTATED


def test_a_finished_shard_is_refused_as_a_cache_and_its_merge_keeps_no_shard_mark(tree, tmp_path):
    """A torchrun run killed before its merge left `CACHE.h5.shard0-of-2.h5`, half the images under the whole cache's
    fingerprint: `mr2probe extract --out` of it said 'reused' with half the counts, and `train` read it (a round)."""
    from feature_cache import CacheMismatch

    plan = plan_extraction(tree, tiny_encoder(), None, out=tmp_path / "multi.h5")
    shard = tmp_path / "multi.h5.shard0-of-2.h5"
    distributed._encode_shard(plan, shard, 0, 2, batch_size=4, workers=0, show_progress=False, tune_allocator=False)
    renamed = shard.rename(tmp_path / "copy.h5")  # the mark is in the file, not its name
    with pytest.raises(CacheMismatch, match=r"copy\.h5 is shard 0-of-2 of an unfinished torchrun extraction"):
        open_cache(renamed)
    with pytest.raises(CacheMismatch, match="shard 0-of-2"):
        extract(tree, tiny_encoder(), None, out=renamed, workers=0, show_progress=False)
    assert open_cache(renamed, shard=True).split_sizes["train"] < len(plan.data.splits["train"])
    with one_process_group():
        distributed.extract_distributed(tree, tiny_encoder(), None, out=tmp_path / "multi.h5", workers=0,
                                        show_progress=False)
    assert "shard" not in open_cache(tmp_path / "multi.h5").attrs  # the merged cache is a cache
