"""Near-duplicates from cached features: each query row's most similar reference row by cosine similarity, and the
pairs at or above a threshold.

Byte-identical copies are matched by their content digests (:mod:`probe.seen`, the cache's ``digests``); a copy
re-encoded, resized, slightly cropped or brightened has other bytes but nearly the same features. Test images that
nearly duplicate training images inflate test accuracy (leakage), as FiftyOne's brain reports them.

The similarities are computed in blocks of at most ``chunk_rows`` × ``chunk_rows`` float32 products, so memory stays
bounded whatever the sizes (never an N_query × N_reference matrix at once).

The threshold depends on the encoder (its features' geometry decides how close distinct images come):
:data:`NEAR_DUPLICATE_THRESHOLDS` holds it per encoder name where it was measured (bench/near_duplicates.py; the
figures in bench/README.md); other encoders are unmeasured (:func:`near_duplicate_threshold` gives None).
"""
from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .numbers import csv_cell, csv_text, float32_text, interval_text, percent
from .seen import SEEN_SPLITS
from .uncertainty import wilson_interval

__all__ = ["CheckedRows", "DEFAULT_CHUNK_ROWS", "MAX_CHECK_PRODUCTS", "NEAR_DUPLICATE_BAR", "NEAR_DUPLICATE_RATIO",
           "NEAR_DUPLICATE_THRESHOLDS", "NearestRows", "PAIRS_FILE", "PAIR_COLUMNS", "RowSubset", "SAME_FEATURES",
           "SAMPLE_DRAW", "SAMPLE_SEED", "UNCHECKED_REASONS", "check_rows", "is_near_duplicate",
           "near_duplicate_pairs", "near_duplicate_threshold", "nearest_rows", "nearest_among", "no_pairs_message",
           "outside_sample", "read_pairs", "rule_text", "sample_rows", "sample_share", "sample_size", "share_text",
           "budget_for_test", "write_pairs"]

# cosine similarity at or above which a row nearly duplicates another, per encoder name (bench/README.md,
# "Near-duplicates": the share of modified copies found against that of distinct images flagged)
NEAR_DUPLICATE_THRESHOLDS = {"effnet-lite0": 0.90}
# ...and, past the threshold, a duplicate only where its nearest row stands out from the rows around it (a ratio test,
# Lowe's): the distance to the second-nearest distinct row, 1 - c2, is at least this many times that to the nearest,
# 1 - c1. Distinct images of a dense data set (Fashion-MNIST's centred products) pass 0.90 in crowds of look-alikes;
# a copy sits far closer to its original than to any other image (bench/README.md "Near-duplicates")
NEAR_DUPLICATE_RATIO = 2.5
# the cosine at or above which a pair is a duplicate whatever the ratio (an image present twice in train, the copy of
# an image among its own look-alikes): no two distinct images measured come near it
NEAR_DUPLICATE_BAR = 0.99
# a reference row whose cosine lies within this of the nearest's has the same features (the image present twice):
# it is not the second-nearest distinct row (float32 products of one row differ by rounding from block to block)
SAME_FEATURES = 1e-4
# the most similar cosines a query keeps of the rows each block leaves out near the block's nearest row (another
# block's may be nearer): its second-nearest distinct row is the same whatever the block size wherever fewer than this
# many distinct cosines are left out so (rows of the same features count once: _SAME_COSINE); past them a lower bound
_TOP = 8
_SAME_COSINE = 1e-6  # cosines this close are one row's features (float32 rounding): one of _TOP's places, not many
DEFAULT_CHUNK_ROWS = 2048  # a block of 2048 × 2048 float32 products: 16 MiB
# the most multiply-adds (n_test × n_train × d) a run's check takes: ~20 G a second on one thread of the 2-core
# development machine (bench/README.md "Near-duplicates"), so about 5 s. CIFAR-10's 10,000 × 50,000 × 1,280 is
# 6.4e11, ~32 s: three times `mr2probe train --loss ce` on it (~9–12 s), so a run that large compares a random sample
# of its test rows, as many as fit (check_rows; the report says it is a sample), rather than wait on them all.
MAX_CHECK_PRODUCTS = 10**11
# past the budget, the query rows compared are a random sample of as many as fit it, drawn with this seed: the rows
# whose blake2b hashes keyed by it are lowest (sample_rows), so the same in any numpy release
SAMPLE_SEED = 0
# how a report's sample was drawn (NearDuplicates.sample_draw); older reports' (null) by numpy's
# default_rng(SAMPLE_SEED).choice, whose stream numpy does not promise to keep across releases
SAMPLE_DRAW = "blake2b"
# every test image of a run that duplicates a train or val image (the report keeps 3 examples), most similar first:
# in the run folder beside report.json (probe.report.RUN_FILES), one row a pair; a run unchecked has none
PAIRS_FILE = "near_duplicates.csv"
# test_row: the row of the run's test split (after any classes left out); test / seen: the paths inside the data set
# (empty where the run was given none); seen_split, seen_row: the train or val image's; identical: byte-identical
PAIR_COLUMNS = ("test_row", "test", "seen_split", "seen_row", "seen", "similarity", "identical")
# why a run's report has no near-duplicate check (near_duplicates null): past the budget a sample is compared, so
# size alone leaves it unchecked only where one test image's comparison passes it (Report.near_duplicates, and
# no_pairs_message's)
UNCHECKED_REASONS = ("an encoder without a measured threshold, arrays given without their features' source, too many "
                     "train and val images to compare even one test image within the products budget, or a report "
                     "written before the check")
_ROUNDING = 1e-3  # how far past [-1, 1] a similarity read back may lie: float32 rounding of a cosine, not damage


class NearestRows(NamedTuple):
    """Each query row's most similar reference row: ``index`` (n,) int64 (-1 where there is no reference row) and
    its cosine ``similarity`` (n,) float32 (nan there); ``second`` (n,) float32: the cosine of the most similar
    reference row of other features, below ``similarity`` by more than :data:`SAME_FEATURES` (nan where there is
    none)."""

    index: np.ndarray
    similarity: np.ndarray
    second: np.ndarray


def is_near_duplicate(nearest: NearestRows, threshold: float, ratio: float = NEAR_DUPLICATE_RATIO) -> np.ndarray:
    """(n,) bool: the rows of ``nearest`` that nearly duplicate their nearest reference row, the one rule of the
    report's test check, its check inside train and predict's: cosine c1 ≥ :data:`NEAR_DUPLICATE_BAR`, or c1 ≥
    ``threshold`` (the encoder's) with the nearest row standing out from the second-nearest distinct one, c2:
    (1 - c2) ≥ ``ratio`` (:data:`NEAR_DUPLICATE_RATIO`) × (1 - c1) (a copy; a look-alike among look-alikes has c2
    near c1), or no such row."""
    c1, c2 = nearest.similarity, nearest.second
    with np.errstate(invalid="ignore"):  # nan: no reference row (never a duplicate), no second one (no crowd)
        apart = ~(1.0 - c2 < ratio * (1.0 - c1))
        return (c1 >= NEAR_DUPLICATE_BAR) | ((c1 >= threshold) & apart)


def near_duplicate_threshold(encoder: str | None) -> float | None:
    """The measured threshold of ``encoder`` (:data:`NEAR_DUPLICATE_THRESHOLDS`); None where it was not measured."""
    return NEAR_DUPLICATE_THRESHOLDS.get(encoder or "")


def rule_text(threshold: float, encoder: str, ratio: float | None) -> str:
    """The rule a check applied, in words (the report's line and warning, predict's): ``ratio`` None in reports
    written before the ratio test (cosine alone)."""
    apart = "" if ratio is None else (f", {ratio:g}× closer than to any other image, or ≥ "
                                      f"{NEAR_DUPLICATE_BAR:g}")
    return f"cosine ≥ {threshold:g} of {encoder} features{apart}"


def _inverse_norms(features: np.ndarray, chunk_rows: int, what: str, first: int = 0) -> np.ndarray:
    """(n,) float32: 1 / ‖x_i‖ of each row, a chunk at a time; 0 for a zero row (its similarities are 0). ValueError
    naming the row (``what`` row ``first + i``) where one holds NaN or infinity: its cosines were NaN, and argmax took
    a NaN for the nearest, so one such reference row hid every query's nearest row in its block."""
    out = np.zeros(len(features), dtype=np.float32)
    for start in range(0, len(features), chunk_rows):
        block = np.asarray(features[start:start + chunk_rows], dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            raise ValueError(f"{what} row {first + start + int(bad[0])} holds NaN or infinite features: a cosine "
                             "needs finite ones.")
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        out[start:start + chunk_rows] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return out


def nearest_rows(queries: np.ndarray, reference: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 exclude_self: bool = False, own_rows: np.ndarray | None = None) -> NearestRows:
    """For each row q of ``queries`` (n, d), argmax_r cos(q, r) over the rows r of ``reference`` (m, d), the first on
    ties, and that cosine, with the second-nearest distinct row's (``NearestRows.second``) (float32 products of
    float32 rows, a block of at most ``chunk_rows`` × ``chunk_rows`` at a time). ``exclude_self``: ``queries`` is
    ``reference`` and a row is not its own neighbour (near-duplicates inside one split); ``own_rows`` (n,): the same
    for queries that are those rows of ``reference`` (a sample of it).

    Raises:
        ValueError: ``chunk_rows`` < 1, arrays that are not 2-d, other feature widths, or a row holding NaN or
            infinity (naming it).
    """
    _check_arrays(queries, reference, chunk_rows)
    if exclude_self and len(queries) != len(reference):
        raise ValueError(f"exclude_self needs queries to be reference, got {len(queries)} and {len(reference)} rows.")
    return _finished(*_nearest_blocks(queries, reference, chunk_rows, np.arange(len(queries)) if exclude_self
                                      else own_rows))


def _check_arrays(queries, reference, chunk_rows: int) -> None:
    """ValueError where ``chunk_rows`` is no integer >= 1 or ``queries`` and ``reference`` are not (n, d) arrays of
    one width."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}.")
    if np.ndim(queries) != 2 or np.ndim(reference) != 2 or queries.shape[1] != reference.shape[1]:
        raise ValueError(f"queries and reference must be (n, d) arrays of one width d, got shapes "
                         f"{np.shape(queries)} and {np.shape(reference)}.")


def _nearest_blocks(queries, reference, chunk_rows: int, own: np.ndarray | None) -> tuple[NearestRows, np.ndarray]:
    """:func:`nearest_rows` before :func:`_finished`: the nearest rows (-inf where none) and each query's
    :data:`_TOP` largest cosines (n, _TOP) of the rows a block left out near its own nearest, a block at a time."""
    found = _no_rows(len(queries))
    top = np.full((len(queries), _TOP), -np.inf, dtype=np.float32)
    ref_inverse = _inverse_norms(reference, chunk_rows, "reference")
    for q0 in range(0, len(queries), chunk_rows):
        block = np.asarray(queries[q0:q0 + chunk_rows], dtype=np.float32)
        block = block * _inverse_norms(block, chunk_rows, "query", q0)[:, None]
        part = NearestRows(*(field[q0:q0 + len(block)] for field in found))  # views: updated in place
        for r0 in range(0, len(reference), chunk_rows):
            ref = np.asarray(reference[r0:r0 + chunk_rows], dtype=np.float32)
            sims = (block @ ref.T) * ref_inverse[r0:r0 + len(ref)]
            if own is not None:
                rows = own[q0:q0 + len(block)]
                inside = (rows >= r0) & (rows < r0 + len(ref))
                sims[np.flatnonzero(inside), rows[inside] - r0] = -np.inf
            at = sims.argmax(axis=1)
            value = sims[np.arange(len(block)), at]
            band = sims >= value[:, None] - SAME_FEATURES  # the nearest and the rows of its features
            _merge_top(top[q0:q0 + len(block)], *_band_cosines(sims, band, value))  # another block's may be nearer
            sims[band] = -np.inf
            _merge(part, NearestRows(at + r0, value, sims.max(axis=1, initial=-np.inf)))
    return found, top


def _no_rows(n: int) -> NearestRows:
    """The nearest rows of ``n`` queries before any reference row: none (-1, -inf)."""
    return NearestRows(np.full(n, -1, dtype=np.int64), np.full(n, -np.inf, dtype=np.float32),
                       np.full(n, -np.inf, dtype=np.float32))


def _band_cosines(sims: np.ndarray, band: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, cosines) of ``sims`` (n, m) in ``band``: each query's nearest (``value``), and the other cosines
    of the queries whose band holds more (rare: read only there, a sparse read of the whole block is slow)."""
    crowded = np.flatnonzero(np.count_nonzero(band, axis=1) > 1)
    rows, columns = np.nonzero(band[crowded])
    alone = np.setdiff1d(np.arange(len(sims)), crowded, assume_unique=True)
    return (np.concatenate([alone, crowded[rows]]),
            np.concatenate([value[alone], sims[crowded[rows], columns]]))


def _merge_top(top: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``top`` (n, :data:`_TOP`, updated in place): the largest distinct cosines of its own and of ``values``, each
    that of the query at ``rows``, row by row (copies of one row, within :data:`_SAME_COSINE`, count once: more than
    _TOP of them pushed the distinct ones out)."""
    every = np.concatenate([np.repeat(np.arange(len(top)), _TOP), rows])
    cosines = np.concatenate([top.ravel(), values])
    order = np.lexsort((-cosines, every))  # by query, the largest first
    every, cosines = every[order], cosines[order]
    with np.errstate(invalid="ignore"):  # -inf - -inf: no copy
        copy = np.r_[False, (every[1:] == every[:-1]) & (cosines[:-1] - cosines[1:] <= _SAME_COSINE)]
    every, cosines = every[~copy], cosines[~copy]
    rank = np.arange(len(every)) - np.searchsorted(every, every)  # each cosine's place among its query's
    keep = rank < _TOP
    top[:] = -np.inf
    top[every[keep], rank[keep]] = cosines[keep]


def _merge(found: NearestRows, other: NearestRows) -> None:
    """``found`` (updated in place) and ``other``, each the nearest and second-nearest distinct rows of some reference
    rows, as those of both: ``found``'s nearest row on a tie (an earlier reference chunk's, as argmax over all rows
    would), the second the best of the rows of either below the nearest by more than :data:`SAME_FEATURES` (a
    lower bound: the rows a block left out near its own nearest are lost, :func:`_finished` finds them)."""
    better = other.similarity > found.similarity  # strictly: -inf (no row yet) is beaten by any row
    best = np.where(better, other.similarity, found.similarity)
    below = best - SAME_FEATURES
    second = np.maximum(found.second, other.second)
    for side in (found, other):
        second = np.where(side.similarity < below, np.maximum(second, side.similarity), second)
    found.index[better] = other.index[better]
    found.similarity[:] = best
    found.second[:] = second


def _finished(found: NearestRows, top: np.ndarray) -> NearestRows:
    """``found`` with its second-nearest distinct row taken from ``top`` too (each query's :data:`_TOP` largest
    cosines of the rows its blocks left out near their own nearest rows, which ``found.second`` lacks: the largest
    below the nearest of all by more than :data:`SAME_FEATURES` counts), so the same whatever the blocks; nan where
    there was no row (no neighbour, no second one)."""
    below = np.where(top < found.similarity[:, None] - SAME_FEATURES, top, -np.inf)
    found.second[:] = np.maximum(found.second, below.max(axis=1))
    found.similarity[found.index < 0] = np.nan
    found.second[~np.isfinite(found.second)] = np.nan
    return found


def near_duplicate_pairs(queries: np.ndarray, reference: np.ndarray, threshold: float,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query rows that nearly duplicate their most similar reference row (:func:`nearest_rows`,
    :func:`is_near_duplicate` at ``threshold``): (query row, reference row, similarity), each (k,), in query order."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [-1, 1], got {threshold}.")
    nearest = nearest_rows(queries, reference, chunk_rows)
    rows = np.flatnonzero(is_near_duplicate(nearest, threshold))
    return rows, nearest.index[rows], nearest.similarity[rows]


def nearest_among(queries: np.ndarray, references: list[np.ndarray], chunk_rows: int = DEFAULT_CHUNK_ROWS
                  ) -> NearestRows:
    """:func:`nearest_rows` over the rows of several arrays (train and val) without joining them (a copy of the
    training features): ``index`` counts the rows of ``references`` one after the other; the earlier array's row
    on a tie; ``second`` over them all."""
    found = _no_rows(len(queries))
    top = np.full((len(queries), _TOP), -np.inf, dtype=np.float32)
    offset = 0
    for reference in references:
        _check_arrays(queries, reference, chunk_rows)
        part, part_top = _nearest_blocks(queries, reference, chunk_rows, None)
        _merge(found, NearestRows(np.where(part.index < 0, -1, part.index + offset), part.similarity, part.second))
        _merge_top(top, np.repeat(np.arange(len(top)), _TOP), part_top.ravel())
        offset += len(reference)
    return _finished(found, top)


class CheckedRows(NamedTuple):
    """What :func:`check_rows` compared: ``rows`` (n,) the query rows, in order (all of them, or a seeded random
    sample of them past the budget: ``sampled``), and ``nearest``, each one's most similar reference row
    (:func:`nearest_among`)."""

    rows: np.ndarray
    nearest: NearestRows
    sampled: bool


class RowSubset:
    """The ``rows`` (sorted) of an (n, d) array-like (a numpy array, an HDF5 dataset) as an array-like of their own:
    a slice reads only its rows, so a sample (or the rows of some classes) is compared a block at a time, never read
    whole."""

    def __init__(self, array, rows: np.ndarray):
        self.array, self.rows = array, rows
        self.shape = (len(rows), array.shape[1])
        self.ndim = 2

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, part: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[part]])


def sample_size(n_queries: int, n_reference: int, width: int, budget: int = MAX_CHECK_PRODUCTS) -> int:
    """How many of ``n_queries`` rows are compared with ``n_reference`` rows of ``width`` features within ``budget``
    multiply-adds: all of them where they fit, else as many as fit (0: none)."""
    per_row = n_reference * width
    return n_queries if per_row == 0 or n_queries * per_row <= budget else min(n_queries, budget // per_row)


def budget_for_test(products: int, budget: int = MAX_CHECK_PRODUCTS) -> int:
    """The products a run's test check may take of ``budget``: all of it where the whole check (``products``) fits,
    else half, so the sample it compares leaves the other half to the check inside train (a sample too)."""
    return budget if products <= budget else budget // 2


def sample_rows(n: int, size: int, draw: str | None = SAMPLE_DRAW) -> np.ndarray:
    """The ``size`` of ``n`` query rows a check past its budget compares (:func:`check_rows`), sorted: those whose
    8-byte blake2b hashes of their row number, keyed by :data:`SAMPLE_SEED`, are lowest, so the same for the same
    sizes in any release of numpy or Python (and a smaller sample of ``n`` inside a larger one). ``draw`` None: the
    draw of reports written before it (:data:`SAMPLE_DRAW`), numpy's, to count their pairs outside the sample.
    ValueError where ``size`` is not in [0, ``n``] (as numpy's draw refused it)."""
    if not 0 <= size <= n:  # the hashed ranking took 9 of 10 rows for -1 and all 3 for 5 (a review)
        raise ValueError(f"a sample of {size} of {n} rows: size must be in [0, {n}].")
    if draw is None:
        return np.sort(np.random.default_rng(SAMPLE_SEED).choice(n, size, replace=False))
    key = hashlib.blake2b(digest_size=8, key=SAMPLE_SEED.to_bytes(8, "little"))

    def digest(row: int) -> bytes:
        row_hash = key.copy()
        row_hash.update(row.to_bytes(8, "little"))
        return row_hash.digest()

    ranks = np.frombuffer(b"".join(digest(row) for row in range(n)), dtype=">u8")
    return np.sort(np.argsort(ranks, kind="stable")[:size])


def outside_sample(pairs: list[dict], test_images: int, sampled: int | None, draw: str | None = SAMPLE_DRAW) -> int:
    """How many of a run's ``pairs`` (:func:`read_pairs`) are of test rows outside the sample of ``sampled`` of its
    ``test_images`` that its check compared (drawn by ``draw``, its report's ``sample_draw``): byte-identical ones,
    found by digest over every test row (0 where every row was compared)."""
    if sampled is None or not pairs:
        return 0
    return int((~np.isin([p["test_row"] for p in pairs], sample_rows(test_images, sampled, draw))).sum())


def check_rows(queries, references: list, budget: int = MAX_CHECK_PRODUCTS, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               exclude_self: bool = False) -> CheckedRows | None:
    """Each row of ``queries`` (n, d) compared with the rows of ``references`` (:func:`nearest_among`) where the
    n × m × d products fit ``budget``; past it, a random sample of the rows (seeded, :data:`SAMPLE_SEED`) as large
    as fits; None where not one row fits. Array-likes (HDF5 datasets) are read a block at a time. ``exclude_self``:
    ``references`` is ``[queries]`` and a row is not its own neighbour (near-duplicates inside one split)."""
    n = len(queries)
    size = sample_size(n, sum(len(r) for r in references), queries.shape[1], budget)
    if size == 0 and n:
        return None
    sampled = size < n
    rows = sample_rows(n, size) if sampled else np.arange(n)
    compared = RowSubset(queries, rows) if sampled else queries
    nearest = (nearest_rows(compared, references[0], chunk_rows, own_rows=rows) if exclude_self else
               nearest_among(compared, references, chunk_rows))
    return CheckedRows(rows, nearest, sampled)


def sample_share(found: int, checked: CheckedRows) -> tuple[int | None, list[float] | None]:
    """``(sampled, ci)`` of a check that found ``found`` among the rows it compared (``checked``): how many, and the
    95 % Wilson interval of ``found / sampled``, where it compared a sample; ``(None, None)`` where it compared every
    row. The ``sampled`` / ``near_ci`` of the report's test check, its check inside train and predict's."""
    if not checked.sampled:
        return None, None
    return len(checked.rows), _share_interval(found, len(checked.rows))


def _share_interval(found: int, checked: int) -> list[float]:
    """The 95 % Wilson interval of the share ``found / checked`` of a sample, as [lo, hi] floats."""
    return [float(v) for v in wilson_interval(np.array(found), np.array(checked))]


def share_text(found: int, checked: int | None, total: int, what: str = "test images") -> str:
    """``found`` of the ``total`` ``what`` (a plural noun) where all were checked (``checked`` None or ``total``);
    else said as the sample it is: ``found`` among ``checked`` sampled, with the share, its 95 % Wilson interval and
    the estimate over ``total`` they give, never as a count of them all."""
    if checked is None or checked >= total:
        return f"{found:,} of the {total:,} {what}"
    ci = _share_interval(found, checked)
    # the sample's ``found`` are in the whole set, and its ``checked - found`` others are not: the range keeps them
    low, high = max(found, round(ci[0] * total)), min(total - (checked - found), round(ci[1] * total))
    digits = _share_digits([found / checked, *ci])
    return (f"{found:,} among {checked:,} sampled {what} of {total:,} ({percent(found / checked, digits)} %, 95 % "
            f"Wilson interval {interval_text(ci, digits)} %; estimated {round(found / checked * total):,} of the "
            f"{total:,}, {low:,}–{high:,})")


def _share_digits(shares: list[float]) -> int:
    """The decimals (1 to 4) at which each of ``shares`` strictly between 0 and 1 reads as neither 0 nor 100 %: 1 of
    39,062 sampled read "0.0 %, 95 % Wilson interval [0.0, 0.0] %" beside its estimate of 5–145 of 1,000,000."""
    inside = [100 * share for share in shares if 0 < share < 1]
    return next((digits for digits in range(1, 4) if all(0 < round(v, digits) < 100 for v in inside)), 4)


def write_pairs(run_dir: str | Path, pairs: list[dict]) -> None:
    """``pairs`` (dicts of :data:`PAIR_COLUMNS`; a path None where unknown) as :data:`PAIRS_FILE` in ``run_dir``,
    a path that starts like a spreadsheet formula with an apostrophe before it (``probe.numbers.csv_cell``), which
    :func:`read_pairs` takes off."""
    text = io.StringIO()
    # RFC 4180's "\r\n" ends a row: a path holding "\r" is quoted (under "\n" alone it was not, and split its row)
    writer = csv.DictWriter(text, fieldnames=PAIR_COLUMNS)
    writer.writeheader()
    for pair in pairs:
        writer.writerow({**pair, "test": csv_cell(pair["test"]), "seen": csv_cell(pair["seen"]),
                         "similarity": float32_text(pair["similarity"]), "identical": int(pair["identical"])})
    (Path(run_dir) / PAIRS_FILE).write_text(text.getvalue(), encoding="utf-8", newline="")


def no_pairs_message(run: str, checked: bool) -> str:
    """Why the run ``run`` has no :data:`PAIRS_FILE`: not ``checked`` (its report's near_duplicates is null), or
    written before the list was kept (`mr2probe report --near-duplicates`, ``GET /api/runs/{id}/near-duplicates``)."""
    why = ("it was written before the list was kept; train it again to list them" if checked else
           f"it was not checked for near-duplicates ({UNCHECKED_REASONS})")
    return f"run {run} has no {PAIRS_FILE}: {why}"


def read_pairs(run_dir: str | Path, test_images: int | None = None) -> list[dict] | None:
    """The pairs :func:`write_pairs` wrote in ``run_dir``, most similar first; None where there is no such file (a run
    unchecked, or written before it). ``test_images``: the run's (its report's ``near_duplicates.test_images``), which
    every ``test_row`` must lie below.

    Raises:
        ValueError: a file that is not one (damaged, or another CSV, or a test row past ``test_images``), naming it.
    """
    path = Path(run_dir) / PAIRS_FILE
    damaged = f"{PAIRS_FILE} of run {Path(run_dir).name} cannot be read"
    try:
        # newline="": a line break inside a quoted path is the path's ("\r" read as "\n" had split its row)
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.DictReader(io.StringIO(file.read(), newline=""))
            columns = tuple(reader.fieldnames or ())
            pairs = [_pair(row) for row in reader] if columns == PAIR_COLUMNS else None
    except FileNotFoundError:
        return None
    # not UTF-8, a row too short, a folder of that name, a field past the csv module's limit: 422, not a 500
    except (TypeError, ValueError, OSError, csv.Error) as exc:
        raise ValueError(f"{damaged} (damaged): {exc}") from None
    if pairs is None:
        raise ValueError(f"{damaged}: its columns are {list(columns) or None}, not {list(PAIR_COLUMNS)}.")
    # a row past the test split was counted "outside the sample" (outside_sample) and listed as a test image
    past = [p["test_row"] for p in pairs if test_images is not None and p["test_row"] >= test_images]
    if past:
        raise ValueError(f"{damaged} (damaged): test row {past[0]} is past the run's {test_images:,} test images")
    return pairs


def _pair(row: dict) -> dict:
    """One row of :data:`PAIRS_FILE` as :func:`write_pairs` was given it; ValueError where it cannot be one."""
    pair = {"test_row": int(row["test_row"]), "test": csv_text(row["test"]) or None, "seen_split": row["seen_split"],
            "seen_row": int(row["seen_row"]), "seen": csv_text(row["seen"]) or None,
            "similarity": float(row["similarity"]), "identical": row["identical"] == "1"}
    # what the service sends on unchecked: another split or a nan was a 500, a negative row no image
    if pair["seen_split"] not in SEEN_SPLITS or row["identical"] not in ("0", "1"):
        raise ValueError(f"seen_split {row['seen_split']!r}, identical {row['identical']!r} on test row "
                         f"{row['test_row']}: not one of {list(SEEN_SPLITS)} and 0 or 1")
    # float32 products put an image's cosine with its copy a little past 1 ("1.000001")
    if min(pair["test_row"], pair["seen_row"]) < 0 or not abs(pair["similarity"]) <= 1 + _ROUNDING:
        raise ValueError(f"test row {row['test_row']}: a negative row or a similarity outside [-1, 1] "
                         f"({row['similarity']})")
    return pair
