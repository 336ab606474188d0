"""mr2probe compare of two runs trained on two caches of the same images: their test images paired by identity."""
import json

import numpy as np
import pytest

from app.cli import main
from feature_cache import write_cache
from probe.predictions import Predictions

NAMES = ["apple", "bus", "cat"]
D = 6
EXTRACTOR = {"weights_sha256": "0" * 64, "feature_kind": "pooled", "preprocess": {"resize": [8, 8]},
             "normalized": False, "default_head": "linear"}
FAST = ["--epochs", "20", "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]
PER_SPLIT = (("train", 30), ("val", 12), ("test", 20))


def _images(rng):
    """One data set's images: each split's labels, file names and content digests, and two encoders' features."""
    means = rng.normal(0, 1, (2, len(NAMES), D))
    out = {}
    for split, m in PER_SPLIT:
        y = np.repeat(np.arange(len(NAMES)), m)
        noise = rng.normal(0, 1.6, (len(y), D))
        out[split] = {"y": y, "names": [f"{split}/{NAMES[k]}/{i}.png" for i, k in enumerate(y)],
                      "digests": rng.integers(0, 256, (len(y), 16), dtype=np.uint8),
                      "x": [(means[e][y] + noise * (1 + e)).astype(np.float32) for e in (0, 1)]}
    return out


def _cache(path, images, encoder, test_rows, digests=True, **attrs):
    """A cache of ``images`` by encoder ``encoder`` (0 or 1), holding the test images ``test_rows`` in that order
    (another extraction: other split, other order), under their names or, renamed, another folder's."""
    rows = {"train": slice(None), "val": slice(None), "test": test_rows}
    splits = {s: (images[s]["x"][encoder][r], images[s]["y"][r], list(np.asarray(images[s]["names"])[r]))
              for s, r in rows.items()}
    kept = {s: images[s]["digests"][r] for s, r in rows.items()} if digests else None
    return write_cache(path, splits, NAMES, {**EXTRACTOR, "encoder": f"enc{encoder}", "fingerprint": path.stem,
                                             "dataset_fingerprint": path.stem * 8, **attrs},
                       dtype="float32", digests=kept)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two runs on two caches of one data set's images: the base's test split of all 60 test images, the other's
    of 45 of them in another order (another extraction that carved test otherwise), read from another folder."""
    folder = tmp_path_factory.mktemp("caches")
    images = _images(np.random.default_rng(3))
    other_rows = np.random.default_rng(4).permutation(60)[:45]
    caches = [_cache(folder / "a.h5", images, 0, np.arange(60)), _cache(folder / "b.h5", images, 1, other_rows)]
    runs = [folder / "run_a", folder / "run_b"]
    for cache, out in zip(caches, runs):
        assert main(["train", "--features", str(cache), "--out", str(out), *FAST]) == 0
    return runs, other_rows


def test_runs_on_two_caches_of_the_same_images_are_paired_by_their_content_digests(two_runs, capsys):
    """Two caches of the same images (two encoders; another extraction's test split of 45 of the 60 test images,
    in another order): compare refused them as "different test splits"; it pairs them by each image's content
    digest, and every figure is the paired difference on the 45 images both hold, as computed here by hand."""
    runs, other_rows = two_runs
    base, other = (Predictions.load(run) for run in runs)
    assert base.digests is not None and other.digests is not None  # the runs keep their test images' digests
    # by hand: other's test row j is base's test row other_rows[j]; the pairs in base's order
    order = np.argsort(other_rows)
    a, b = base.correct[other_rows[order]], other.correct[order]
    capsys.readouterr()
    assert main(["compare", str(runs[0]), str(runs[1]), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert cmp["pairing"] == "content digests"
    assert cmp["metrics"]["overall"]["base"] == pytest.approx(a.mean())
    assert cmp["metrics"]["overall"]["other"] == pytest.approx(b.mean())
    assert cmp["metrics"]["overall"]["delta"] == pytest.approx(b.mean() - a.mean())
    assert cmp["metrics"]["overall"]["changed"] == [int((b > a).sum()), int((b < a).sum())]
    assert cmp["discordant"]["images"] == 45
    lo, hi = cmp["metrics"]["overall"]["delta_ci"]
    assert lo <= b.mean() - a.mean() <= hi
    assert ("the runs were trained on two caches: their test images are paired by content digests, 45 in both (of "
            "60 base and 45 other test images); every accuracy, interval and count here is of those 45, the 15 and 0 "
            "only one run has left out (calibration and cost: each run's own)") in cmp["warnings"]
