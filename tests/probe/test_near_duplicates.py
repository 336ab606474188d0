"""probe.near_duplicates: each query row's most similar reference row by cosine, in bounded blocks."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from probe.near_duplicates import near_duplicate_pairs, near_duplicate_threshold, nearest_rows


def _brute_force(queries: np.ndarray, reference: np.ndarray, exclude_self: bool = False):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    r = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ r.astype(np.float64).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    at = sims.argmax(axis=1)
    return at, sims[np.arange(len(q)), at]


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 64, 10_000])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_nearest_rows_equal_a_brute_force_whatever_the_chunks(chunk_rows, dtype):
    rng = np.random.default_rng(0)
    queries, reference = rng.normal(size=(37, 12)).astype(dtype), rng.normal(size=(53, 12)).astype(dtype)
    got = nearest_rows(queries, reference, chunk_rows=chunk_rows)
    at, sims = _brute_force(queries.astype(np.float64), reference.astype(np.float64))
    assert got.index.tolist() == at.tolist() and got.index.dtype == np.int64
    np.testing.assert_allclose(got.similarity, sims, atol=1e-6, rtol=0)
    assert got.similarity.dtype == np.float32
    own = nearest_rows(reference, reference, chunk_rows=chunk_rows, exclude_self=True)
    at, sims = _brute_force(reference.astype(np.float64), reference.astype(np.float64), exclude_self=True)
    assert own.index.tolist() == at.tolist()  # never the row itself, across chunk boundaries too
    np.testing.assert_allclose(own.similarity, sims, atol=1e-6, rtol=0)


def test_a_scaled_noisy_copy_is_found_and_ties_go_to_the_first_row():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(40, 16)).astype(np.float32)
    reference[30] = reference[5]  # the same row twice: the first is the neighbour, as argmax over all rows gives
    queries = np.stack([3.0 * reference[5], reference[17] + 0.01 * rng.normal(size=16), rng.normal(size=16)])
    rows, matched, sims = near_duplicate_pairs(queries, reference, threshold=0.99, chunk_rows=4)
    assert rows.tolist() == [0, 1] and matched.tolist() == [5, 17]
    assert sims[0] == pytest.approx(1.0, abs=1e-6)


def test_zero_rows_and_empty_references_give_no_neighbour_that_is_not_there():
    got = nearest_rows(np.ones((2, 3)), np.zeros((0, 3)))
    assert got.index.tolist() == [-1, -1] and np.isnan(got.similarity).all()
    got = nearest_rows(np.zeros((1, 3)), np.eye(3))  # a zero row has cosine 0 with every row
    assert got.similarity.tolist() == [0.0]
    assert nearest_rows(np.eye(3)[:1], np.eye(3)[:1], exclude_self=True).index.tolist() == [-1]


def test_the_chunk_size_bounds_the_blocks_read_and_the_memory_held():
    class Recorded(np.ndarray):  # records the rows of each slice taken from it
        reads: list[int] = []

        def __getitem__(self, key):
            out = super().__getitem__(key)
            if isinstance(key, slice):
                Recorded.reads.append(len(out))
            return out

    rng = np.random.default_rng(2)
    queries, reference = (rng.normal(size=(n, 8)).astype(np.float32).view(Recorded) for n in (1500, 1700))
    nearest_rows(queries, reference, chunk_rows=100)
    assert Recorded.reads and max(Recorded.reads) == 100
    tracemalloc.start()
    try:
        nearest_rows(np.asarray(queries), np.asarray(reference), chunk_rows=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1500 * 1700 * 4 / 10  # a tenth of the whole float32 similarity matrix (10 MB)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_a_bad_chunk_size_or_width_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1"):
        nearest_rows(np.ones((2, 3)), np.ones((2, 3)), chunk_rows=bad)
    with pytest.raises(ValueError, match="one width d"):
        nearest_rows(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="threshold must lie in"):
        near_duplicate_pairs(np.ones((2, 3)), np.ones((2, 3)), threshold=1.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("chunk_rows", [3, 10])
def test_a_row_of_nan_or_infinite_features_is_refused_by_row_whatever_the_chunks(bad, chunk_rows):
    """A NaN reference row made argmax take its NaN cosine for every query's nearest in its block: with chunks of 10
    no query found its copy (index -1, 'no reference row'), with chunks of 3 one found another row."""
    from probe.near_duplicates import check_rows

    reference = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    queries = reference[[3, 7]] + 1e-3
    damaged = reference.copy()
    damaged[5, 2] = bad
    with pytest.raises(ValueError, match=r"^reference row 5 holds NaN or infinite features: a cosine needs finite"):
        nearest_rows(queries, damaged, chunk_rows=chunk_rows)
    with pytest.raises(ValueError, match=r"^query row 5 holds NaN or infinite features"):
        nearest_rows(damaged, reference, chunk_rows=chunk_rows)
    with pytest.raises(ValueError, match=r"^reference row 5 holds NaN"):
        check_rows(damaged, [damaged], chunk_rows=chunk_rows, exclude_self=True)


def test_the_threshold_is_known_only_for_measured_encoders():
    assert 0 < near_duplicate_threshold("effnet-lite0") < 1
    assert near_duplicate_threshold("openclip:ViT-B-32") is None and near_duplicate_threshold(None) is None


def test_pairs_file_paths_that_start_like_formulas_are_safe_in_a_spreadsheet_and_read_back(tmp_path):
    from probe.near_duplicates import PAIRS_FILE, read_pairs, write_pairs

    pairs = [{"test_row": 3, "test": "=HYPERLINK(1)/a.png", "seen_split": "train", "seen_row": 7, "seen": "@x.png",
              "similarity": 0.95, "identical": False},
             {"test_row": 4, "test": None, "seen_split": "val", "seen_row": 0, "seen": "train/b/1.png",
              "similarity": 0.93, "identical": True}]
    write_pairs(tmp_path, pairs)
    text = (tmp_path / PAIRS_FILE).read_text()
    assert "3,'=HYPERLINK(1)/a.png,train,7,'@x.png,0.95,0\n" in text
    assert not any(cell.startswith(("=", "@")) for line in text.splitlines() for cell in line.split(","))
    assert read_pairs(tmp_path) == pairs


def test_pairs_file_similarities_read_back_as_the_float32s_they_are(tmp_path):
    """Six decimals wrote a cosine of 0.99999994 as 1.000000 and 0.9123456 as 0.912346: each similarity read back
    (the API's near-duplicates, `report --near-duplicates`) is the float32 the check found."""
    from probe.near_duplicates import read_pairs, write_pairs

    found = np.array([0.99999994, 0.9123456, 0.90000004, 1.0000001], dtype=np.float32)
    write_pairs(tmp_path, [dict(_pair(k, f"{k}.png"), similarity=s) for k, s in enumerate(found)])
    assert np.array_equal(np.array([p["similarity"] for p in read_pairs(tmp_path)], dtype=np.float32), found)


def _pair(row: int, path: str | None) -> dict:
    return {"test_row": row, "test": path, "seen_split": "train", "seen_row": row, "seen": path,
            "similarity": 0.95, "identical": False}


def test_the_sample_is_ranked_by_keyed_blake2b_hashes_of_the_rows_not_by_numpys_random_streams(monkeypatch):
    """A sampled check drew with numpy's default_rng, whose streams numpy does not promise to keep across releases:
    a report's sampled rows (and the pairs counted outside them) would not reproduce. The rows are those whose
    blake2b hashes keyed by SAMPLE_SEED are lowest: no numpy random draw, the same rows in any release."""
    import hashlib

    from probe.near_duplicates import SAMPLE_SEED, sample_rows

    def ranked(n: int, size: int) -> list[int]:
        key = SAMPLE_SEED.to_bytes(8, "little")
        digest = lambda row: hashlib.blake2b(row.to_bytes(8, "little"), digest_size=8, key=key).digest()  # noqa
        return sorted(sorted(range(n), key=digest)[:size])

    def no_draw(*args, **kwargs):
        raise AssertionError("the sample drew from numpy's random streams")

    monkeypatch.setattr(np.random, "default_rng", no_draw)
    assert sample_rows(50, 17).tolist() == ranked(50, 17) == [3, 7, 8, 15, 21, 24, 25, 27, 30, 31, 32, 35, 36, 37,
                                                              40, 43, 47]
    assert sample_rows(1000, 300).tolist() == ranked(1000, 300)
    assert set(sample_rows(50, 10)) < set(sample_rows(50, 17))  # a smaller sample lies inside a larger one
    for n, size in ((10, -1), (3, 5)):  # the hashed ranking took 9 of 10 rows and all 3 where numpy's draw refused
        with pytest.raises(ValueError, match=rf"a sample of {size} of {n} rows: size must be in \[0, {n}\]"):
            sample_rows(n, size)
    assert sample_rows(0, 0).tolist() == [] and sample_rows(4, 4).tolist() == [0, 1, 2, 3]


def test_pairs_outside_the_sample_of_an_older_report_are_counted_by_its_own_draw(tmp_path):
    """A report written before the hashed draw (sample_draw null) sampled by numpy's default_rng(SAMPLE_SEED): its
    pairs outside the sample are counted against that sample, not the hashed one."""
    from probe.near_duplicates import SAMPLE_SEED, outside_sample, read_pairs, sample_rows, write_pairs

    old = np.sort(np.random.default_rng(SAMPLE_SEED).choice(60, 25, replace=False))
    new = sample_rows(60, 25)
    rows = [int(r) for r in np.setdiff1d(old, new)[:2]] + [int(np.setdiff1d(new, old)[0])]
    write_pairs(tmp_path, [_pair(row, f"{row}.png") for row in rows])
    pairs = read_pairs(tmp_path, 60)
    assert (outside_sample(pairs, 60, 25), outside_sample(pairs, 60, 25, None)) == (2, 1)


def test_pairs_file_test_rows_past_the_runs_test_images_are_damage(tmp_path):
    """A corrupted near_duplicates.csv with a test row past the run's test split was listed (and counted outside a
    sampled check's sample by outside_sample) as a test image the run does not have."""
    from probe.near_duplicates import PAIRS_FILE, outside_sample, read_pairs, write_pairs

    write_pairs(tmp_path, [_pair(3, "a.png"), _pair(9, "b.png")])
    assert outside_sample(read_pairs(tmp_path, 10), 10, 5) == 1  # row 9 is in the run, outside its sample (1 3 5 7 8)
    with pytest.raises(ValueError) as raised:
        read_pairs(tmp_path, 9)
    assert str(raised.value) == f"{PAIRS_FILE} of run {tmp_path.name} cannot be read (damaged): test row 9 is past " \
                                "the run's 9 test images"
    assert len(read_pairs(tmp_path)) == 2  # no size given: rows unchecked


@pytest.mark.parametrize("path", ["a\rb.png", "a\r\nb.png", "\rstart.png", "a\nb.png", 'a,"b".png', "a b ,.png"])
def test_pairs_file_paths_with_line_breaks_quotes_and_commas_read_back_as_written(tmp_path, path):
    """A file name may hold a carriage return: read with universal newlines it split its quoted row (the whole
    file read as damaged) or came back with "\\n" for "\\r\\n"."""
    from probe.near_duplicates import read_pairs, write_pairs

    pairs = [_pair(0, path), _pair(1, "train/b/1.png")]
    write_pairs(tmp_path, pairs)
    assert read_pairs(tmp_path) == pairs


@pytest.mark.parametrize("path", ["'=x.png", "''+1.png", "'abc.png", "'", "=x.png"])
def test_pairs_file_paths_with_a_leading_apostrophe_read_back_as_written(tmp_path, path):
    """"'=x.png" was written unchanged (it does not start like a formula), and read back as "=x.png": the apostrophe
    csv_cell puts before a formula was taken off a path's own."""
    from probe.near_duplicates import read_pairs, write_pairs

    write_pairs(tmp_path, [_pair(0, path)])
    assert read_pairs(tmp_path) == [_pair(0, path)]


class _Reads:
    """An array that records the rows each read asked for (an HDF5 dataset's reads, one block at a time)."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape, self.reads = array, array.shape, []

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key):
        got = self.array[key]
        self.reads.append(len(got))
        return got


def test_past_the_budget_a_seeded_sample_is_compared_a_block_at_a_time_and_equals_a_brute_force():
    from probe.near_duplicates import check_rows, sample_rows, sample_size

    rng = np.random.default_rng(4)
    queries, train, val = (rng.normal(size=(n, 8)).astype(np.float32) for n in (50, 30, 10))
    assert check_rows(queries, [train, val], budget=50 * 40 * 8).sampled is False  # all fit: all compared
    assert check_rows(queries, [train, val], budget=50 * 40 * 8).rows.tolist() == list(range(50))
    budget = 17 * 40 * 8 + 319  # 17 rows fit, not 18
    assert sample_size(50, 40, 8, budget) == 17
    reads = _Reads(queries)
    got = check_rows(reads, [train, val], budget=budget, chunk_rows=4)
    assert got.sampled and got.rows.tolist() == sample_rows(50, 17).tolist()
    at, sims = _brute_force(queries[got.rows].astype(np.float64), np.concatenate([train, val]).astype(np.float64))
    assert got.nearest.index.tolist() == at.tolist()
    np.testing.assert_allclose(got.nearest.similarity, sims, atol=1e-6, rtol=0)
    assert max(reads.reads) <= 4  # the sample read a block of rows at a time, never whole
    assert check_rows(queries, [train, val], budget=40 * 8 - 1) is None  # not one row fits


def test_a_sample_is_said_as_one_with_its_wilson_interval_and_a_whole_check_as_a_count():
    from probe.near_duplicates import share_text

    assert share_text(5, None, 60) == share_text(5, 60, 60) == "5 of the 60 test images"
    text = share_text(3, 500, 10_000)
    z = 1.959963984540054
    p, n = 3 / 500, 500
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    assert text == (f"3 among 500 sampled test images of 10,000 (0.6 %, 95 % Wilson interval "
                    f"[{100 * (centre - half):.1f}, {100 * (centre + half):.1f}] %; estimated 60 of the 10,000, "
                    f"{round((centre - half) * 10_000)}–{round((centre + half) * 10_000)})")
    # a range never below what the sample found, nor above what it leaves possible: 4 of 5 sampled of 6
    assert share_text(4, 5, 6).endswith("; estimated 5 of the 6, 4–5)")
    assert share_text(0, 5, 6).endswith("; estimated 0 of the 6, 0–1)")


def test_a_share_of_a_large_sample_never_reads_as_none_or_all_beside_its_estimate():
    """1 of 39,062 sampled (1,000 train rows against 100,000 test rows past the budget) read "0.0 %, 95 % Wilson
    interval [0.0, 0.0] %" beside "estimated 26 of the 1,000,000, 5–145"; all but one of them read 100.0 %."""
    from scipy.stats import binomtest

    from probe.near_duplicates import share_text

    ci = binomtest(1, 39_062).proportion_ci(0.95, method="wilson")  # statsmodels' proportion_confint "wilson"
    assert (f"{100 * ci.low:.4f}", f"{100 * ci.high:.4f}") == ("0.0005", "0.0145")
    assert share_text(1, 39_062, 1_000_000) == ("1 among 39,062 sampled test images of 1,000,000 (0.0026 %, 95 % "
                                                "Wilson interval [0.0005, 0.0145] %; estimated 26 of the 1,000,000, "
                                                "5–145)")
    assert "(99.9974 %, 95 % Wilson interval [99.9855, 99.9995] %;" in share_text(39_061, 39_062, 1_000_000)
    assert "(0.0 %, 95 % Wilson interval [0.0, 0.8] %;" in share_text(0, 500, 10_000)  # one decimal where it shows


def test_a_sample_of_a_split_against_itself_skips_each_row_itself_and_equals_a_brute_force():
    from probe.near_duplicates import check_rows

    rng = np.random.default_rng(5)
    train = rng.normal(size=(40, 8)).astype(np.float32)
    train[7] = 1.01 * train[30]  # a duplicate pair: each one's neighbour is the other, never itself
    whole = check_rows(train, [train], budget=40 * 40 * 8, exclude_self=True)
    assert not whole.sampled and whole.nearest.index[7] == 30 and whole.nearest.index[30] == 7
    reads = _Reads(train)
    got = check_rows(reads, [train], budget=13 * 40 * 8, chunk_rows=4, exclude_self=True)
    assert got.sampled and len(got.rows) == 13
    at, sims = _brute_force(train.astype(np.float64), train.astype(np.float64), exclude_self=True)
    assert (got.nearest.index != got.rows).all()
    assert got.nearest.index.tolist() == at[got.rows].tolist()
    np.testing.assert_allclose(got.nearest.similarity, sims[got.rows], atol=1e-6, rtol=0)


def _brute_second(queries: np.ndarray, reference: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """Each query's cosine to the most similar reference row of other features than its nearest's (below it by more
    than SAME_FEATURES), written out over the whole matrix; nan where there is none."""
    from probe.near_duplicates import SAME_FEATURES

    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ (reference / np.linalg.norm(reference, axis=1, keepdims=True)).T.astype(np.float64)
    if own is not None:
        sims[np.arange(len(q)), own] = -np.inf
    second = np.where(sims >= sims.max(axis=1, keepdims=True) - SAME_FEATURES, -np.inf, sims).max(axis=1)
    return np.where(np.isfinite(second), second, np.nan)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 64])
def test_the_second_nearest_distinct_row_equals_a_brute_force_whatever_the_chunks_and_arrays(chunk_rows):
    from probe.near_duplicates import check_rows, nearest_among

    rng = np.random.default_rng(4)
    queries, reference = rng.normal(size=(37, 12)).astype(np.float32), rng.normal(size=(53, 12)).astype(np.float32)
    reference[40] = reference[3]  # the same features twice (across chunks): never a query's second row
    queries[0] = 2.0 * reference[3]
    want = _brute_second(queries, reference)
    got = nearest_rows(queries, reference, chunk_rows=chunk_rows)
    np.testing.assert_allclose(got.second, want, atol=1e-6, rtol=0)
    assert got.second.dtype == np.float32 and got.index[0] == 3 and got.second[0] < 0.99
    among = nearest_among(queries, [reference[:20], reference[20:]], chunk_rows)  # train and val apart
    np.testing.assert_allclose(among.second, want, atol=1e-6, rtol=0)
    assert among.index.tolist() == got.index.tolist()
    own = nearest_rows(reference, reference, chunk_rows=chunk_rows, exclude_self=True)
    np.testing.assert_allclose(own.second, _brute_second(reference, reference, np.arange(53)), atol=1e-6, rtol=0)
    sample = check_rows(reference, [reference], budget=11 * 53 * 12, chunk_rows=chunk_rows, exclude_self=True)
    np.testing.assert_allclose(sample.nearest.second, _brute_second(reference[sample.rows], reference, sample.rows),
                               atol=1e-6, rtol=0)
    # one reference row, or its features alone: no second row
    assert np.isnan(nearest_rows(queries[:2], reference[:1]).second).all()
    assert np.isnan(nearest_among(queries[:2], [reference[3:4], reference[40:41]]).second).all()


def _at_cosines(cosines: list[float]) -> np.ndarray:
    """Rows at these cosines to the query (1, 0, ..., 0), each turned towards an axis of its own (distinct rows)."""
    rows = np.zeros((len(cosines), 6))
    for i, c in enumerate(cosines):
        rows[i, 0], rows[i, i + 1] = c, np.sqrt(1.0 - c * c)
    return rows.astype(np.float32)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
def test_the_second_nearest_row_does_not_depend_on_the_block_size_among_near_ties(chunk_rows):
    """A block dropped the rows within SAME_FEATURES of its own nearest row; where another block held a nearer one,
    a row the block dropped lay more than SAME_FEATURES below the nearest of all, and was lost: the second-nearest
    came out lower (or nan) by block size, and the ratio test flagged a look-alike among near-ties as a copy."""
    from probe.near_duplicates import is_near_duplicate, nearest_among

    query = np.eye(1, 6, dtype=np.float32)
    # a: 0.94995 and x: 0.94988 (within SAME_FEATURES of a, not of b) in one block, b: 0.95 and a far row in another
    reference = _at_cosines([0.94995, 0.94988, 0.95, 0.5])
    got = nearest_rows(query, reference, chunk_rows=chunk_rows)
    assert got.index.tolist() == [2]
    np.testing.assert_allclose(got.second, _brute_second(query, reference), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got.second, [0.94988], atol=1e-6, rtol=0)
    assert not is_near_duplicate(got, 0.9).any()  # a look-alike among near-ties: c2 is as close as c1
    among = nearest_among(query, [reference[:2], reference[2:]], chunk_rows)  # train and val apart
    np.testing.assert_allclose(among.second, [0.94988], atol=1e-6, rtol=0)
    # past cosine 0.9998: the nearest at 1, a at 0.99992 (within SAME_FEATURES: the same features) and x at 0.99985
    near = _at_cosines([0.99992, 0.99985, 1.0])
    np.testing.assert_allclose(nearest_rows(query, near, chunk_rows=chunk_rows).second, [0.99985], atol=1e-6, rtol=0)
    # more rows of the nearest's features than a query keeps: in one block the second is still exact
    crowd = np.concatenate([np.repeat(near[2:], 12, axis=0), near[1:2]])
    np.testing.assert_allclose(nearest_rows(query, crowd).second, [0.99985], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="one width d"):
        nearest_among(query, [reference, reference[:, :5]], chunk_rows)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
def test_the_second_nearest_row_does_not_depend_on_the_block_size_past_eight_copies_of_the_nearest(chunk_rows):
    """A query kept the 8 largest cosines its blocks left out, copies counted each: 10 copies of the nearest (an
    image present 10 times) pushed out a row a block left out near its own nearest, and the second came out nan by
    block size (a look-alike among near-ties flagged as a copy). Copies of one row now take one place."""
    from probe.near_duplicates import is_near_duplicate, nearest_among

    query = np.eye(1, 6, dtype=np.float32)
    ties = _at_cosines([0.94995, 0.94988, 0.95])  # a, x (the second), b (the nearest)
    copies = np.repeat(ties[2:], 10, axis=0)
    for reference in (np.concatenate([ties[:2], copies]), np.concatenate([copies, ties[:2]])):
        got = nearest_rows(query, reference, chunk_rows=chunk_rows)
        np.testing.assert_allclose(got.second, _brute_second(query, reference), atol=1e-6, rtol=0)
        np.testing.assert_allclose(got.second, [0.94988], atol=1e-6, rtol=0)
        assert not is_near_duplicate(got, 0.9).any()
    among = nearest_among(query, [copies, ties[:2]], chunk_rows)
    np.testing.assert_allclose(among.second, [0.94988], atol=1e-6, rtol=0)


def _crowd(rng, n: int, centre: np.ndarray, spread: float) -> np.ndarray:
    return (centre + spread * rng.normal(size=(n, len(centre)))).astype(np.float32)


def test_a_crowd_of_look_alikes_is_not_flagged_but_a_copy_inside_it_and_a_row_present_twice_are():
    """Fashion-MNIST's centred products: distinct images pass the encoder's cosine threshold in crowds of look-alikes,
    each about as close to several others; a copy is far closer to its original than to any other row."""
    from probe.near_duplicates import NEAR_DUPLICATE_BAR, is_near_duplicate

    rng = np.random.default_rng(5)
    centre = rng.normal(size=64)
    reference = _crowd(rng, 60, centre, 0.22)  # pairwise cosine ~0.95
    reference[45] = reference[20]  # an image present twice in train
    look_alikes = _crowd(rng, 20, centre, 0.22)
    copies = reference[[7, 20]] + 0.2 * rng.normal(size=(2, 64)).astype(np.float32)  # cosine ~0.98 to its own
    twice = reference[20:21] * 1.5  # the same features: cosine 1 to both of its rows
    queries = np.concatenate([look_alikes, copies, twice])
    nearest = nearest_rows(queries, reference, chunk_rows=16)
    assert (nearest.similarity[:20] >= 0.90).all()  # every look-alike passes the threshold alone
    assert (nearest.similarity[20:22] < NEAR_DUPLICATE_BAR).all()  # the copies only by the ratio test
    assert np.flatnonzero(is_near_duplicate(nearest, 0.90)).tolist() == [20, 21, 22]
    assert nearest.index[20:].tolist() == [7, 20, 20]
    # the copy of the row present twice stands out from the next distinct row, not from the row's twin
    assert nearest.second[21] < nearest.similarity[21] - 0.02
    inside = nearest_rows(reference, reference, exclude_self=True)  # train against itself: the twins alone
    assert np.flatnonzero(is_near_duplicate(inside, 0.90)).tolist() == [20, 45]
    rows, matched, _ = near_duplicate_pairs(queries, reference, threshold=0.90, chunk_rows=16)
    assert rows.tolist() == [20, 21, 22] and matched.tolist() == [7, 20, 20]
