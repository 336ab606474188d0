"""The resumable partial file survives a process killed in the middle of a write (feature_cache.partial)."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from feature_cache import ExtractionBusy, ExtractionCancelled, open_cache
from feature_cache.partial import MAGIC, PartialCache
from fc_testutils import tiny_encoder
from test_extract_resume import TOTAL, all_splits, assert_same_cache, run

REPO = Path(__file__).resolve().parents[2]
ATTRS = {"fingerprint": "f" * 64, "encoder": "tiny-0", "class_names": ["a", "b"]}


def chunk(i: int, rows: int = 5, d: int = 3) -> tuple[np.ndarray, np.ndarray, list[str]]:
    features = np.arange(rows * d, dtype=np.float32).reshape(rows, d) + 100 * i
    return features, np.full(rows, i % 2), [f"img/{i}/{r}.png" for r in range(rows)]


def open_partial(path: Path, **kwargs) -> PartialCache:
    return PartialCache.open(path, **{"attrs": ATTRS, "num_features": 3, "dtype": "float32", **kwargs})


@pytest.mark.parametrize("block_rows", [None, 7])  # 7: several chunks joined into blocks that end mid-chunk
def test_chunks_resume_and_finalize_into_the_cache(tmp_path, monkeypatch, block_rows):
    if block_rows:
        monkeypatch.setattr("feature_cache.partial.BLOCK_ROWS", block_rows)
    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    for i in range(4):
        partial.append("train" if i < 3 else "test", *chunk(i), next_index=5 * (i + 1), skipped=[(f"bad{i}", "why")])
    partial.close()
    partial = open_partial(path)
    assert partial.progress("train") == (15, 15) and partial.progress("val") == (0, 0)
    assert partial.progress("test") == (20, 5) and partial.skipped == [[f"bad{i}", "why"] for i in range(4)]
    out = partial.finalize(tmp_path / "c.h5", {"created_at": "now", "skipped": partial.skipped})
    assert not path.exists() and [p.name for p in tmp_path.iterdir()] == ["c.h5"]
    cache = open_cache(out)
    assert cache.fingerprint == ATTRS["fingerprint"] and cache.attrs["created_at"] == "now"
    assert cache.split_sizes == {"train": 15, "val": 0, "test": 5}
    features, labels = cache.load("train", dtype="float32")
    np.testing.assert_array_equal(features, np.concatenate([chunk(i)[0] for i in range(3)]))
    np.testing.assert_array_equal(labels, [0] * 5 + [1] * 5 + [0] * 5)
    assert cache.sources("train") == [s for i in range(3) for s in chunk(i)[2]]
    assert cache.sources("test") == chunk(3)[2]


def test_a_torn_last_record_is_cut_off_and_the_rest_kept(tmp_path):
    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    for i in range(2):
        partial.append("train", *chunk(i), next_index=5 * (i + 1))
    complete = path.stat().st_size
    partial.append("train", *chunk(2), next_index=15)
    partial.close()
    whole = path.read_bytes()
    path.write_bytes(whole[: complete + (len(whole) - complete) // 2])  # killed half way through the third write
    partial = open_partial(path)
    assert partial.progress("train") == (10, 10) and path.stat().st_size == complete
    partial.append("train", *chunk(2), next_index=15)  # resumes after the second chunk
    partial.close()
    assert path.read_bytes() == whole


@pytest.mark.parametrize("where", ["features", "header"])
def test_a_damaged_record_is_never_read_back(tmp_path, where):
    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    for i in range(3):
        partial.append("train", *chunk(i), next_index=5 * (i + 1))
    partial.close()
    data = bytearray(path.read_bytes())
    data[-50 if where == "features" else len(MAGIC) + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    partial = open_partial(path)
    # a flipped bit in the last chunk drops that chunk; in the header, the whole file (started afresh)
    assert partial.progress("train") == ((10, 10) if where == "features" else (0, 0))


def test_foreign_or_unreadable_files_start_afresh_and_a_held_file_is_refused(tmp_path):
    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    partial.append("train", *chunk(0), next_index=5)
    with pytest.raises(ExtractionBusy, match="is open in another process"):
        open_partial(path)
    partial.close()
    assert open_partial(path, attrs={**ATTRS, "fingerprint": "0" * 64}).progress("train") == (0, 0)
    for stale in (b"half", b""):  # e.g. an HDF5 partial file of an earlier version, or an empty file
        path.write_bytes(stale)
        partial = open_partial(path)
        assert partial.progress("train") == (0, 0) and path.read_bytes().startswith(MAGIC)
        partial.close()


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path[:0] = [{repo!r}]
    from feature_cache.partial import PartialCache

    partial = PartialCache.open({path!r}, attrs={{"fingerprint": "k"}}, num_features=512, dtype="float16")
    for i in range(10 ** 6):
        rows = 1000 + i % 7
        features = np.full((rows, 512), i % 1000, dtype=np.float16)
        partial.append("train", features, np.full(rows, i), [f"{{i}}/{{r}}" for r in range(rows)],
                       next_index=i + 1)
    """
)


@pytest.mark.parametrize("after_bytes", [3_000_000, 9_000_000])
def test_sigkill_in_the_middle_of_writes_leaves_a_resumable_file(tmp_path, after_bytes):
    path = tmp_path / "k.h5.partial"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), path=str(path))])
    deadline = time.monotonic() + 60
    while not path.exists() or path.stat().st_size < after_bytes:
        assert proc.poll() is None and time.monotonic() < deadline, "the writer stopped before it was killed"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)  # most likely inside a 1 MB write
    assert proc.wait(timeout=30) == -signal.SIGKILL
    partial = PartialCache.open(path, attrs={"fingerprint": "k"}, num_features=512, dtype="float16")
    chunks, rows = partial.progress("train")
    assert chunks >= 2 and rows == sum(1000 + i % 7 for i in range(chunks))
    out = partial.finalize(tmp_path / "k.h5", {})
    with h5py.File(out, "r") as h5:
        labels = h5["train/labels"][()]
        np.testing.assert_array_equal(labels, np.repeat(np.arange(chunks), [1000 + i % 7 for i in range(chunks)]))
        np.testing.assert_array_equal(h5["train/features"][:, 0], (labels % 1000).astype(np.float16))
        assert h5["train/sources"][-1].decode() == f"{chunks - 1}/{999 + (chunks - 1) % 7}"


def test_extraction_resumes_after_a_write_torn_by_a_kill(tree, tmp_path):
    reference = all_splits(run(tree, tmp_path / "ref").path)
    out = tmp_path / "c.h5"
    seen = []
    with pytest.raises(ExtractionCancelled):
        run(tree, None, out=out, progress=lambda done, total: seen.append(done), should_stop=lambda: len(seen) >= 3)
    partial = tmp_path / "c.h5.partial"
    with partial.open("ab") as f:  # the start of a fourth chunk's record, as a kill inside its write leaves it
        f.write(bytes(range(200)))
    count = [0]
    resumed = run(tree, None, tiny_encoder(counter=count), out=out)
    assert count == [TOTAL - 12] and resumed.encoded == TOTAL - 12 and not partial.exists()
    assert_same_cache(all_splits(out), reference)


def test_a_cache_file_too_big_for_the_disk_is_refused_before_hdf5_writes_and_the_partial_is_kept(tmp_path,
                                                                                                   monkeypatch):
    """HDF5 that hits ENOSPC crashes the process as it closes the file (a segmentation fault that took the server
    down); the writer checks the free space first: an OSError(ENOSPC), no temporary file, the chunks kept."""
    import errno
    import shutil
    from collections import namedtuple

    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    for i in range(3):
        partial.append("train", *chunk(i), next_index=5 * (i + 1))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(1 << 30, (1 << 30) - 4096, 4096))
    with pytest.raises(OSError) as refused:
        partial.finalize(tmp_path / "c.h5", {"created_at": "now"})
    assert refused.value.errno == errno.ENOSPC and "MiB free" in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5.partial"]
    monkeypatch.undo()
    partial = open_partial(path)  # its lock released: a resume in the same server is not 'busy'
    assert partial.progress("train") == (15, 15)
    assert open_cache(partial.finalize(tmp_path / "c.h5", {"created_at": "now"})).split_sizes["train"] == 15


@pytest.mark.parametrize("rows", [{"train": 3000, "val": 10, "test": 700}, {"train": 1, "val": 0, "test": 1}])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_size_estimate_of_a_cache_file_is_above_its_size(tmp_path, rows, dtype):
    from feature_cache.store import cache_bytes, write_cache

    d = 384
    splits = {split: (np.ones((n, d)), np.zeros(n), [f"{split}/class_{i % 7}/image_{i:08d}.jpeg" for i in range(n)])
              for split, n in rows.items()}
    out = write_cache(tmp_path / "c.h5", splits, ["a"], {"encoder": "x"}, dtype=dtype)
    assert out.stat().st_size <= cache_bytes(rows, d, dtype)


def test_a_write_the_disk_refuses_names_the_file_and_keeps_the_chunks_before(tmp_path):
    """A file-size limit or a full disk ended `mr2probe extract` (and an extraction job) with '[Errno 27] File too
    large', naming no file (a failure round). The error names the partial file and says the extraction resumes
    from it; the chunks written before are read back, the torn one cut off."""
    import errno

    class Refusing:  # the file, whose next write gets half its bytes out and then fails as the limit does
        def __init__(self, f):
            self.inner = f

        def write(self, data):
            self.inner.write(data[: len(data) // 2])
            self.inner.flush()
            raise OSError(errno.EFBIG, "File too large")

        def __getattr__(self, name):
            return getattr(self.inner, name)

    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    partial.append("train", *chunk(0), next_index=5)
    partial.f = Refusing(partial.f)
    with pytest.raises(OSError) as caught:
        partial.append("train", *chunk(1), next_index=10)
    assert caught.value.errno == errno.EFBIG
    assert f"cannot write {path}: File too large; the images encoded before are kept" in str(caught.value)
    partial.f = partial.f.inner
    partial.close()
    partial = open_partial(path)
    assert partial.progress("train") == (5, 5)
    partial.close()


def test_a_cache_over_the_file_size_limit_is_refused_before_hdf5_writes_it(tmp_path, monkeypatch):
    """Under a file-size limit (ulimit -f) that the partial log fitted and the cache file did not, HDF5 failed as
    it closed the file: a RuntimeError's traceback, then a segmentation fault (a failure round). The limit is
    checked first, as the free space is: an OSError(EFBIG) naming it, no temporary file, the chunks kept."""
    import errno
    import resource

    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    partial.append("train", *chunk(0), next_index=5)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (4096, resource.RLIM_INFINITY))
    with pytest.raises(OSError) as refused:
        partial.finalize(tmp_path / "c.h5", {"created_at": "now"})
    assert refused.value.errno == errno.EFBIG and "file-size limit (ulimit -f) of 0.0 MiB" in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5.partial"]
    monkeypatch.undo()
    assert open_partial(path).progress("train") == (5, 5)


@contextmanager
def file_size_limit(size: int):
    """This process's file-size limit (``ulimit -f``) at ``size`` bytes: a write past it fails with EFBIG (Python
    ignores SIGXFSZ)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_header_over_the_file_size_limit_names_the_file_and_the_next_run_starts_afresh(tmp_path):
    """`ulimit -f 1`: the log's header (buffered, under 8 KiB) failed as its file was closed, and `mr2probe extract`
    said '[Errno 27] File too large', naming no file (a round). The error names the file; a retry in the same
    process is not 'busy' and starts the torn log afresh."""
    import errno

    path = tmp_path / "c.h5.partial"
    with file_size_limit(100), pytest.raises(OSError) as caught:
        open_partial(path)
    assert caught.value.errno == errno.EFBIG and f"cannot write {path}: File too large" in str(caught.value)
    partial = open_partial(path)
    partial.append("train", *chunk(0), next_index=5)
    partial.close()
    assert open_partial(path).progress("train") == (5, 5)


def test_a_small_chunk_over_the_file_size_limit_is_named_and_closing_the_log_keeps_that_error(tmp_path):
    """A chunk under 8 KiB stays in the file's buffer when its flush fails: closing the log flushed it again and
    raised '[Errno 27] File too large' in place of the error naming the file (a round)."""
    import errno

    path = tmp_path / "c.h5.partial"
    partial = open_partial(path)
    partial.append("train", *chunk(0), next_index=5)
    with file_size_limit(path.stat().st_size + 10), pytest.raises(OSError) as caught:
        try:
            partial.append("train", *chunk(1), next_index=10)
        finally:
            partial.close()  # as run_plan closes it on the way out
    assert caught.value.errno == errno.EFBIG
    assert f"cannot write {path}: File too large; the images encoded before are kept" in str(caught.value)
    partial.close()
    assert open_partial(path).progress("train") == (5, 5)


def test_a_discarded_log_says_why_for_the_caller_to_say(tmp_path):
    """open() discarded an unreadable log, or another request's, with a log line alone: the new log says why
    (``discarded``), which extract returns and the service's job says; a resumed or a new log says nothing."""
    path = tmp_path / "c.h5.partial"
    fresh = open_partial(path)
    assert fresh.discarded is None  # nothing there
    fresh.close()
    path.write_bytes(MAGIC + b"torn")
    partial = open_partial(path)
    assert partial.discarded == "could not be read (its header is torn or damaged)"
    partial.append("train", *chunk(0), next_index=5, skipped=[])
    partial.close()
    partial = open_partial(path)
    assert partial.discarded is None and partial.progress("train") == (5, 5)  # resumed
    partial.append("train", *chunk(1), next_index=10, skipped=[])
    partial.close()
    other = open_partial(path, attrs={**ATTRS, "fingerprint": "0" * 64})
    assert other.discarded == "held 10 images of another request" and other.progress("train") == (0, 0)
    other.close()
