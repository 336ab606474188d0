"""Fingerprint reuse, stale-cache protection, cancellation / SIGKILL and resume, skipped files."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from feature_cache import CacheMismatch, DatasetError, ExtractionCancelled, extract, open_cache, open_dataset
from fc_testutils import tiny_encoder, write_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# tree fixture: 3 classes × 6 train / 3 test; val_fraction 0.1 carves 1 per class → 15 + 3 + 9 = 27 images.
TOTAL = 27


def run(data, cache_dir, encoder=None, **kwargs):
    kwargs.setdefault("workers", 0)
    kwargs.setdefault("batch_size", 4)
    return extract(data, encoder or tiny_encoder(), cache_dir, show_progress=False, **kwargs)


def all_splits(path):
    cache = open_cache(path)
    return {s: (*cache.load(s), cache.sources(s), cache.digests(s)) for s in cache.splits}


def assert_same_cache(a, b):
    """Features, labels, sources and content digests alike, row for row (digests kept by both)."""
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a[split][0], b[split][0])
        np.testing.assert_array_equal(a[split][1], b[split][1])
        assert a[split][2] == b[split][2]
        assert a[split][3] is not None and b[split][3] is not None
        np.testing.assert_array_equal(a[split][3], b[split][3])


def test_same_request_is_reused_without_encoding(tree, tmp_path):
    first = run(tree, tmp_path / "caches")
    count = [0]
    second = run(tree, tmp_path / "caches", tiny_encoder(counter=count))
    assert not first.reused and first.encoded == TOTAL
    assert second.reused and second.encoded == 0 and count == [0]
    assert second.path == first.path and second.fingerprint == first.fingerprint
    assert first.path.name == f"tiny-0-{first.fingerprint[:16]}.h5"
    assert first.counts == second.counts == {"train": 15, "val": 3, "test": 9}


def test_a_cache_dir_that_is_a_file_is_refused_naming_it(tree, tmp_path):
    """extract(cache_dir=<a file>) raised a bare '[Errno 17] File exists' from its lock's mkdir, once the data set
    was listed and the encoder built; now a NotADirectoryError saying what cache_dir must be, the file untouched."""
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(NotADirectoryError, match=rf"^cache_dir {target} is a file, not a folder: give a folder "
                                                 r"\(its caches are named by fingerprint\) or out=PATH\.h5\.$"):
        run(tree, target)
    assert target.read_text() == "mine" and [p.name for p in tmp_path.glob("notes*")] == ["notes.txt"]


def test_changed_encoder_data_or_split_never_reuses(tree, tmp_path):
    caches = tmp_path / "caches"
    base = run(tree, caches)
    other_weights = run(tree, caches, tiny_encoder(seed=1))
    other_seed = run(tree, caches, seed=1)
    other_subset = run(tree, caches, max_per_class=2)
    other_dtype = run(tree, caches, dtype="float32")
    write_image(tree / "test" / "bee" / "000.png", 0, 77)  # same name, new content
    other_content = run(tree, caches)
    results = [base, other_weights, other_seed, other_subset, other_dtype, other_content]
    assert all(not r.reused for r in results)
    assert len({r.fingerprint for r in results}) == len(results)
    assert len(list(caches.glob("*.h5"))) == len(results)
    assert open_cache(other_content.path).attrs["dataset_fingerprint"] != open_cache(base.path).attrs["dataset_fingerprint"]


def test_out_holding_another_cache_is_refused_and_untouched(tree, tmp_path):
    out = tmp_path / "mine.h5"
    run(tree, None, out=out)
    before = out.read_bytes()
    with pytest.raises(CacheMismatch, match=r"mine.h5 holds another cache \(encoder 'tiny-0'.*choose another --out"):
        run(tree, None, tiny_encoder(seed=5), out=out)
    assert out.read_bytes() == before
    assert not (tmp_path / "mine.h5.partial").exists()


def test_out_that_is_no_cache_says_to_choose_another_out(tree, tmp_path):
    """An --out file that is no HDF5 cache was refused in the readers' words alone ('is not a readable HDF5 feature
    cache (...)'), without what to do; now with the advice of an --out holding another cache, the file untouched."""
    out = tmp_path / "notes.h5"
    out.write_text("mine")
    with pytest.raises(CacheMismatch, match=r"notes.h5 is not a readable HDF5 feature cache \(.*\)\. As --out it is "
                                            r"left untouched: choose another --out or delete the file\.$"):
        run(tree, None, out=out)
    assert out.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.h5"]


def test_out_of_a_changed_data_set_says_what_changed(tree, tmp_path):
    """The data set changed since the --out cache was extracted from it: the refusal named two content hashes,
    "dataset_fingerprint (there 'b614ce8f…', requested '35bf0044…')" (a data-set-iteration round). It says the data
    set's files changed, with the images per split then and now and the classes only one of them has."""
    out = tmp_path / "mine.h5"
    run(tree, None, out=out)
    (tree / "train" / "bee").rename(tree / "train" / "wasp")
    (tree / "test" / "bee").rename(tree / "test" / "wasp")
    write_image(tree / "train" / "wasp" / "new.png", 0, 78)
    with pytest.raises(CacheMismatch) as err:
        run(tree, None, out=out)
    assert ("it differs in the data set's files (added, removed, renamed or edited since that cache was extracted, "
            "or another folder or archive: there train 15, val 3, test 9; now train 16, val 3, test 9; classes only "
            "there: 'bee'; classes only now: 'wasp')); choose another --out or delete the file.") in str(err.value)
    assert "dataset_fingerprint" not in str(err.value)


@pytest.mark.parametrize("workers", [0, 2])  # 2: on a CPU the worker processes encode (EncodingCollate)
def test_should_stop_then_resume_encodes_only_the_rest(tree, tmp_path, workers):
    reference = all_splits(run(tree, tmp_path / "ref").path)
    out = tmp_path / "c.h5"
    seen = []
    with pytest.raises(ExtractionCancelled, match="run it again to resume"):
        run(tree, None, out=out, progress=lambda done, total: seen.append((done, total)),
            should_stop=lambda: len(seen) >= 3, workers=workers)
    assert seen == [(4, TOTAL), (8, TOTAL), (12, TOTAL)]
    assert not out.exists() and (tmp_path / "c.h5.partial").exists()
    with pytest.raises(CacheMismatch, match="unfinished extraction"):
        open_cache(tmp_path / "c.h5.partial")
    count = [0]  # counts the images this process encodes: none when the workers encode
    resumed = run(tree, None, tiny_encoder(counter=count), out=out, workers=workers)
    assert count == [0 if workers else TOTAL - 12] and resumed.encoded == TOTAL - 12
    assert not (tmp_path / "c.h5.partial").exists()
    assert_same_cache(all_splits(out), reference)



def test_a_resumed_extraction_records_this_runs_encoder_not_the_one_it_was_started_with(tree, tmp_path):
    """A MoCo checkpoint moved between a cancelled extraction and its resumption (same weights: same fingerprint):
    the cache recorded `encoder` as mocov2:OLD_PATH, a file no longer there, which a probe's USAGE.md then gave as
    the command to extract new images with (a review)."""
    out, stops = tmp_path / "c.h5", []
    with pytest.raises(ExtractionCancelled):
        run(tree, None, tiny_encoder(name="mocov2:/old/moco.pth"), out=out,
            should_stop=lambda: len(stops) > 1 or bool(stops.append(1)))
    resumed = run(tree, None, tiny_encoder(name="mocov2:/new/moco.pth"), out=out)
    assert 0 < resumed.encoded < TOTAL  # resumed, not started again
    assert open_cache(out).attrs["encoder"] == "mocov2:/new/moco.pth"

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{here!r}, {repo!r}]
    from feature_cache import extract
    from fc_testutils import tiny_encoder

    def progress(done, total):
        if done >= {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

    extract({data!r}, tiny_encoder(), None, out={out!r}, batch_size=4, workers=0, progress=progress,
            show_progress=False)
    """
)


def test_sigkilled_job_resumes_from_its_last_chunk(tree, tmp_path):
    reference = all_splits(run(tree, tmp_path / "ref").path)
    out = tmp_path / "killed.h5"
    # Chunks of 4: train 4, 8, 12, 15, val 18, test 22 … — the process kills itself (SIGKILL, no clean-up)
    # from the progress callback after the first chunk with done >= 19, i.e. after 22 images.
    script = KILLER.format(here=str(HERE), repo=str(REPO), data=str(tree), out=str(out), kill_at=19)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists() and (tmp_path / "killed.h5.partial").exists()
    count = [0]
    resumed = run(tree, None, tiny_encoder(counter=count), out=out)
    # done = 15 (train) + 3 (val) + 4 (first test chunk) = 22 when the process died.
    assert count == [TOTAL - 22] and resumed.encoded == TOTAL - 22
    assert_same_cache(all_splits(out), reference)


def test_a_killed_extractions_copy_beside_out_is_removed_when_it_is_extracted_again(tree, tmp_path):
    """A crash round: ``mr2probe extract --out c.h5`` killed while it copied its partial file into the cache left
    ``.c.h5.<pid>.tmp`` (as large as the cache) beside it; every run after resumed and finished, and the copy stayed
    for good (only the service's start-up sweep looked for such files, in its own data directory)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = tmp_path / f".c.h5.{dead}.tmp"  # the killed extraction's
        writing = tmp_path / f".c.h5.{alive.pid}.tmp"  # a live writer's: not ours to remove
        other = tmp_path / f".d.h5.{dead}.tmp"  # another cache's: another extraction's business
        for path in (left, writing, other):
            path.write_bytes(b"x")
        run(tree, None, out=tmp_path / "c.h5")
        assert not left.exists()
        assert writing.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()


def test_a_partial_of_another_request_at_out_is_refused_and_kept(tree, tmp_path):
    """An --out whose resumable .partial file another request started (other settings) had that file discarded,
    its encoded images lost with one log line, where a finished cache of another request there is refused and left
    untouched: the partial file is refused the same way, naming it, what it holds and how it differs, and kept; the
    request that started it resumes from it, and once it is deleted the other request runs."""
    out = tmp_path / "p.h5"
    asked = []
    with pytest.raises(ExtractionCancelled):  # stopped after its first chunk
        run(tree, None, tiny_encoder(seed=3), out=out, should_stop=lambda: asked.append(1) or len(asked) > 1,
            batch_size=4)
    partial = tmp_path / "p.h5.partial"
    before = partial.read_bytes()
    count = [0]
    with pytest.raises(CacheMismatch) as caught:
        run(tree, None, tiny_encoder(counter=count), out=out, batch_size=4)
    assert str(caught.value) == (
        f"{partial} holds a partial extraction of another request (4 images encoded; it differs in encoder (there "
        "'tiny-3', requested 'tiny-0'); weights_sha256 (there " + repr(tiny_encoder(seed=3).weights_sha256)[:57] +
        "…, requested " + repr(tiny_encoder().weights_sha256)[:57] + "…)); it is kept for the request that started it, "
        "which resumes from it: choose another --out or delete the file")
    assert count == [0] and partial.read_bytes() == before and not out.exists()
    assert run(tree, None, tiny_encoder(seed=3), out=out, batch_size=4).encoded == TOTAL - 4  # resumed
    assert open_cache(out).attrs["encoder"] == "tiny-3"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_removed_while_extracting_stops_it_and_once_back_the_extraction_resumes_whole(tree, tmp_path, workers):
    """An isolation round: files moved away by another user while a job extracted their data set were skipped as
    'failed to decode', and the cache was written under the fingerprint of the data set that holds them; once they
    were back, the next job reused it (20 test images short, saying they failed to decode) instead of encoding
    them."""
    reference = all_splits(run(tree, tmp_path / "ref").path)
    data = open_dataset(tree)  # listed (and fingerprinted) with every file, as a job opens it before extracting
    gone = tree / data.splits["test"][1].source
    moved = gone.rename(tmp_path / "moved.png")
    out = tmp_path / "c.h5"
    with pytest.raises(DatasetError, match=r"1 file of the data set \(test/[a-z]+/\d+\.png\) was removed or moved"):
        run(data, None, out=out, workers=workers)
    assert not out.exists() and (tmp_path / "c.h5.partial").exists()  # train and val written: kept to resume
    moved.rename(gone)
    resumed = run(tree, None, out=out, workers=workers)
    assert resumed.encoded == TOTAL - 18 and resumed.skipped == [] and resumed.counts["test"] == 9
    assert_same_cache(all_splits(out), reference)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_rewritten_while_extracting_stops_it_and_once_restored_the_extraction_resumes_whole(tree, tmp_path,
                                                                                                   workers):
    """A test image overwritten with a training image of another class while the data set was extracted was encoded
    as it was then, under its first label, into the cache named by the fingerprint of its old content: a request on
    that content reused the wrong features (a review). The read is checked against the content the fingerprint
    counted: the extraction stops, keeping its partial file, and resumes once the file is as it was."""
    reference = all_splits(run(tree, tmp_path / "ref").path)
    data = open_dataset(tree)
    victim = tree / data.splits["test"][1].source
    original = victim.read_bytes()
    victim.write_bytes((tree / data.splits["train"][-1].source).read_bytes())
    out = tmp_path / "c.h5"
    with pytest.raises(DatasetError, match=r"1 file of the data set \(test/[a-z]+/\d+\.png\) was changed while"):
        run(data, None, out=out, workers=workers)
    assert not out.exists() and (tmp_path / "c.h5.partial").exists()
    victim.write_bytes(original)
    resumed = run(tree, None, out=out, workers=workers)
    assert resumed.encoded == TOTAL - 18 and resumed.skipped == [] and resumed.counts["test"] == 9
    assert_same_cache(all_splits(out), reference)


def test_a_zip_replaced_after_it_was_opened_stops_the_extraction_of_its_workers(tree, tmp_path):
    """A data set's zip replaced between its listing and the extraction (a job builds its encoder meanwhile): each
    DataLoader worker reopened it by path and read the listing's offsets in the new file, "Bad magic number for
    file header", every image skipped as failing to decode and the data set refused as holding no decodable image
    (a review). The workers refuse another file than the one listed: the extraction stops as for a changed file;
    the process that listed it reads the file it opened, the images as fingerprinted."""
    import os
    import shutil

    archive = Path(shutil.make_archive(str(tmp_path / "set"), "zip", tree))
    reference = all_splits(run(archive, None, out=tmp_path / "ref.h5").path)
    data = open_dataset(archive)
    write_image(tree / "test" / "bee" / "000.png", 0, 77)
    other = Path(shutil.make_archive(str(tmp_path / "other"), "zip", tree))
    os.replace(other, archive)
    with pytest.raises(DatasetError, match=r"files of the data set \(train/ant/000\.png, \.\.\.\) were changed while"):
        run(data, None, out=tmp_path / "w.h5", workers=2)
    assert_same_cache(all_splits(run(data, None, out=tmp_path / "w.h5", workers=0).path), reference)


def test_a_zip_rewritten_in_place_stops_the_extraction_of_the_process_that_listed_it(tree, tmp_path):
    """A loose end: a zip rewritten in place (same file, other bytes) while an extraction with --workers 0 ran was
    read by the handle that listed it, never reopened, at the listing's offsets: "Bad magic number for file header",
    its images skipped as failing to decode, and the cache written without them. A failed read on a rewritten file
    is a changed file: the extraction stops as with workers; once the zip is as it was, it resumes whole."""
    import shutil

    archive = Path(shutil.make_archive(str(tmp_path / "set"), "zip", tree))
    reference = all_splits(run(archive, None, out=tmp_path / "ref.h5").path)
    original = archive.read_bytes()
    data = open_dataset(archive)
    write_image(tree / "test" / "bee" / "000.png", 0, 77)
    other = Path(shutil.make_archive(str(tmp_path / "other"), "zip", tree)).read_bytes()
    with open(archive, "r+b") as handle:  # the same file (inode), rewritten: longer from its second image on
        handle.write(other[:2000] + b"\0" * 100 + other[2000:])
        handle.truncate()
    with pytest.raises(DatasetError, match=r"files? of the data set \(.*\) w(as|ere) changed while"):
        run(data, None, out=tmp_path / "w.h5", workers=0)
    archive.write_bytes(original)
    resumed = run(archive, None, out=tmp_path / "w.h5", workers=0)
    assert resumed.skipped == []
    assert_same_cache(all_splits(resumed.path), reference)


def test_corrupt_images_are_skipped_and_listed(tree, tmp_path):
    (tree / "train" / "ant" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tree / "test" / "cat" / "002.png").write_bytes(b"not an image")
    (tree / "test" / "cat" / "notes.md").write_text("# not an image")
    result = run(tree, tmp_path / "caches", workers=2)
    skipped = dict(result.skipped)
    assert skipped["test/cat/notes.md"].startswith("not an image file")
    assert skipped["test/cat/002.png"] == "cannot decode image: not an image format Pillow can read"  # no address
    if "train/ant/001.png" in {s.source for s in open_dataset(tree).splits["val"]}:
        assert result.counts["val"] == 2
    else:
        assert result.counts["train"] == 14
    assert skipped["train/ant/001.png"].startswith("cannot decode image")
    assert result.counts["test"] == 8
    cache = open_cache(result.path)
    assert [list(s) for s in result.skipped] == cache.attrs["skipped"]
    sources = {s for split in cache.splits for s in cache.sources(split)}
    assert "train/ant/001.png" not in sources and "test/cat/002.png" not in sources and len(sources) == 25
    # the same cache when the main process decodes and encodes: the workers (2 here, each encoding its own
    # batches on a CPU) change where the work runs, not what is written
    in_main = run(tree, None, out=tmp_path / "main.h5", workers=0)
    assert [s for s, _ in in_main.skipped] == [s for s, _ in result.skipped] and in_main.counts == result.counts
    assert_same_cache(all_splits(in_main.path), all_splits(result.path))


def test_a_reused_cache_reports_what_the_data_set_leaves_out_now(tree, tmp_path):
    (tree / "test" / "cat" / "002.png").write_bytes(b"not an image")  # fails to decode: recorded with the cache
    (tree / "test" / "cat" / "notes.md").write_text("# not an image")  # left out by the data set itself
    first = run(tree, tmp_path / "caches")
    assert sorted(source for source, _ in first.skipped) == ["test/cat/002.png", "test/cat/notes.md"]
    (tree / "test" / "cat" / "notes.md").unlink()  # the same samples, so the same cache: reused
    again = run(tree, tmp_path / "caches")
    assert again.reused and again.path == first.path
    assert again.skipped == [("test/cat/002.png", "cannot decode image: not an image format Pillow can read")]


def test_a_second_concurrent_extraction_is_refused_without_touching_the_first(tree, tmp_path):
    out = tmp_path / "busy.h5"
    inner: list[Exception] = []

    def second_job(done, total):
        if not inner:
            try:
                run(tree, None, out=out)
            except RuntimeError as exc:
                inner.append(exc)

    result = run(tree, None, out=out, progress=second_job)
    assert len(inner) == 1 and "busy.h5 is being extracted by pid" in str(inner[0])
    assert result.encoded == TOTAL and open_cache(out).fingerprint == result.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.h5", "data"]


def test_a_damaged_cache_of_a_cache_dir_is_moved_aside_and_extracted_again(tree, tmp_path):
    """A fingerprint-named cache cut short on disk made every identical request fail for good (CacheMismatch: not
    a readable cache; found by an outside attack round against the service). It is moved aside (kept as
    <name>.damaged) and extracted again; a user's own --out file is still refused, untouched."""
    first = run(tree, tmp_path / "caches")
    reference = all_splits(first.path)
    first.path.write_bytes(first.path.read_bytes()[:300])
    again = run(tree, tmp_path / "caches")
    assert not again.reused and again.encoded == TOTAL and again.path == first.path
    assert_same_cache(all_splits(again.path), reference)
    assert first.path.with_name(first.path.name + ".damaged").stat().st_size == 300
    out = tmp_path / "mine.h5"
    out.write_bytes(b"not a cache")
    with pytest.raises(CacheMismatch):
        run(tree, None, out=out)
    assert out.read_bytes() == b"not a cache"


def test_out_holding_another_cache_says_in_which_settings_it_differs(tree, tmp_path):
    """A cache an older version wrote (its preprocess without the resampler, 2026-12-01) was refused as 'another
    cache' of the same encoder and data, with nothing of why (an upgrade round): the refusal names each setting."""
    import json

    import h5py

    out = tmp_path / "mine.h5"
    run(tree, None, out=out)
    with pytest.raises(CacheMismatch, match=r"it differs in split_params.seed \(there 0, requested 1\)\); choose"):
        run(tree, None, seed=1, out=out)
    with h5py.File(out, "r+") as h5:  # as an older version wrote it
        preprocess = json.loads(h5.attrs["preprocess"])
        resampler = preprocess.pop("resampler")
        h5.attrs["preprocess"] = json.dumps(preprocess)
        h5.attrs["fingerprint"] = "0" * 64  # its fingerprint covered that preprocess
    with pytest.raises(CacheMismatch, match=r"differs in preprocess.resampler \(there absent, requested "
                                            + repr(resampler) + r"\)\); choose"):
        run(tree, None, out=out)


def test_out_holding_a_cache_of_another_dtype_names_the_dtype(tree, tmp_path):
    """The fingerprint covers the stored dtype, which no root attribute records: a float16 cache refused for a
    ``--dtype float32`` request was 'another cache' with no difference named (a review)."""
    out = tmp_path / "mine.h5"
    run(tree, None, out=out)
    assert open_cache(out).dtype == "float16"
    with pytest.raises(CacheMismatch, match=r"it differs in dtype \(there 'float16', requested 'float32'\)\); choose"):
        run(tree, None, out=out, dtype="float32")


def test_each_row_keeps_the_content_digest_of_its_files_bytes_and_the_fingerprint_ignores_them(tree, tmp_path):
    """``mr2probe predict`` could tell a probe's training images only by their paths: each row now keeps the BLAKE2b
    digest of its file's bytes, row-aligned with its sources; a cache without them (written before) is reused."""
    from feature_cache.datasets import content_digest

    import h5py

    path = run(tree, None, out=tmp_path / "c.h5").path
    cache = open_cache(path)
    for split in cache.splits:
        expected = [content_digest((tree / source).read_bytes()) for source in cache.sources(split)]
        assert [bytes(row) for row in cache.digests(split)] == expected and expected
    with h5py.File(path, "a") as h5:
        for split in cache.splits:
            del h5[split]["digests"]
        h5["train"].create_dataset("digests", data=np.zeros((1, 16), dtype=np.uint8))  # not one per row: unused
    assert all(open_cache(path).digests(split) is None for split in cache.splits)
    assert run(tree, None, out=path).reused  # not in the fingerprint


def test_a_partial_file_written_before_digests_were_kept_finishes_a_cache_without_them(tree, tmp_path, monkeypatch):
    """Chunks of an older partial log hold no digests: the finished cache keeps none rather than rows of zeros."""
    from feature_cache.partial import PartialCache

    out, stops = tmp_path / "c.h5", []
    append = PartialCache.append
    monkeypatch.setattr(PartialCache, "append", lambda self, *a, digests=None, **k: append(self, *a, **k))
    with pytest.raises(ExtractionCancelled):
        run(tree, None, out=out, should_stop=lambda: len(stops) > 1 or bool(stops.append(1)))
    monkeypatch.setattr(PartialCache, "append", append)
    resumed = run(tree, None, out=out)
    assert 0 < resumed.encoded < TOTAL
    assert all(open_cache(out).digests(split) is None for split in ("train", "val", "test"))


class _CountedName(str):
    """A class name counting how often it is compared for equality (one count shared by all)."""

    compared = [0]

    def __eq__(self, other):
        self.compared[0] += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_changed_classes_are_looked_up_in_sets():
    """The refusal's "classes only there / now" looked each name up in the other list: 20,000 classes, 400 million
    comparisons for one message (a review). Each name is looked up in a set, a comparison or so each."""
    from types import SimpleNamespace

    from feature_cache.extract import _data_change

    there = [_CountedName(f"c{i:03d}") for i in range(300)]
    now = there[:-1] + [_CountedName("new")]
    cache = SimpleNamespace(class_names=there, split_sizes={"train": 300})
    data = SimpleNamespace(class_names=now, counts=lambda: {"train": 300})
    _CountedName.compared[0] = 0
    text = _data_change(cache, data)
    assert "classes only there: 'c299'; classes only now: 'new'" in text
    assert _CountedName.compared[0] < 10 * len(there)
