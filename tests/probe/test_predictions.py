"""Stored test predictions: round trip, confusion over seeds, failures order, paired test deltas."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from probe.predictions import PREDICTIONS_FILE, Predictions, paired_test_delta


def _preds(seed=0, n=300, k=4, seeds=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    predicted = np.where(rng.random((seeds, n)) < 0.7, labels, rng.integers(0, k, (seeds, n)))
    return Predictions(labels, predicted, rng.random(n).astype(np.float32))


def test_round_trip_and_confusion(tmp_path):
    p = _preds()
    path = p.save(tmp_path)
    assert path.name == PREDICTIONS_FILE and not list(tmp_path.glob("*.tmp*"))
    q = Predictions.load(tmp_path)
    assert np.array_equal(q.labels, p.labels) and np.array_equal(q.predicted, p.predicted)
    assert np.array_equal(q.confidence, p.confidence)
    expected = sum(confusion_matrix(p.labels, row, labels=range(4)) for row in p.predicted)
    np.testing.assert_array_equal(q.confusion(4), expected)
    np.testing.assert_allclose(q.correct, (p.predicted == p.labels).mean(axis=0))
    with pytest.raises(FileNotFoundError, match="predates stored predictions"):
        Predictions.load(tmp_path / "nothing")


def test_failures_most_confident_first():
    labels = np.array([1, 1, 1, 1, 0])
    predicted = np.array([[0, 1, 2, 0, 1]])
    p = Predictions(labels, predicted, np.array([0.5, 0.99, 0.9, 0.7, 0.8]))
    assert p.failures(1).tolist() == [2, 3, 0]  # the correct sample 1 is no failure
    assert p.failures(1, limit=1).tolist() == [2]
    assert p.failures(0).tolist() == [4]
    with pytest.raises(ValueError, match="predictions need labels"):
        Predictions(labels, predicted, np.ones(3))


def test_paired_test_delta():
    base = _preds()
    other = Predictions(base.labels, np.where(base.labels[None, :] == 3, 3, base.predicted), base.confidence)
    groups = {"easy": [0], "medium": [1, 2], "hard": [3]}
    delta = paired_test_delta(base, other, 4, groups)
    gain = other.correct[base.labels == 3].mean() - base.correct[base.labels == 3].mean()
    assert delta["hard"]["delta"] == pytest.approx(gain) and delta["hard"]["lo"] > 0
    assert delta["easy"]["delta"] == 0.0 and delta["easy"]["lo"] == -delta["easy"]["hi"] < 0  # unchanged images
    with pytest.raises(ValueError, match="different test splits"):
        paired_test_delta(base, _preds(seed=1), 4, groups)


def test_paired_test_delta_refuses_other_images_with_the_same_labels():
    """Caches list test samples class by class, so two test sets with the same class counts have equal labels: the
    stored sources tell them apart; the same images read from a folder or from an archive with a top folder match."""
    base = _preds()
    groups = {"easy": [0], "medium": [1, 2], "hard": [3]}
    names = np.array([f"test/c{label}/{i:04d}.png" for i, label in enumerate(base.labels)])
    with_sources = Predictions(base.labels, base.predicted, base.confidence, names)
    in_archive = Predictions(base.labels, base.predicted, base.confidence, np.char.add("cifar/", names))
    assert paired_test_delta(with_sources, in_archive, 4, groups)["overall"]["delta"] == 0.0
    assert paired_test_delta(with_sources, base, 4, groups)["overall"]["delta"] == 0.0  # sources unknown: labels
    other_images = names.copy()
    other_images[7] = f"test/c{base.labels[7]}/9999.png"
    with pytest.raises(ValueError, match=r"test sample 7 is 'test/c\d/0007.png' in one and 'test/c\d/9999.png'"):
        paired_test_delta(with_sources, Predictions(base.labels, base.predicted, base.confidence, other_images), 4,
                          groups)


def test_a_comparison_of_classes_of_one_test_image_has_intervals_of_width():
    """120 classes of one test image each: ``mr2probe compare`` read overall +1.39 [+1.39, +1.39] and a class
    -100.00 [-100.00, -100.00] (an extremes round): each image was itself in every resample. The images of such
    classes are resampled together, and a class's own difference on one image gets the square-and-add interval
    of its two Wilson intervals: within noise."""
    from probe.groups import assign_groups
    from probe.predictions import paired_test_intervals

    rng = np.random.default_rng(0)
    k = 120
    labels = np.arange(k)
    base_right = rng.random(k) < 0.6
    other_right = base_right.copy()
    other_right[:8] = [True] * 6 + [False] * 2  # the first 8 wrong in one run, right in the other, or the reverse
    base_right[:8] = ~other_right[:8]
    wrong = (labels + 1) % k
    base, other = (Predictions(labels, np.where(right, labels, wrong)[None, :], np.full(k, 0.5))
                   for right in (base_right, other_right))
    groups = assign_groups(base.correct)
    delta, classes = paired_test_intervals(base, other, k, groups)
    overall = delta["overall"]
    assert overall["delta"] == pytest.approx(4 / 120)
    assert overall["lo"] < 0 < overall["hi"] and overall["hi"] - overall["lo"] > 0.05  # was [+3.33, +3.33]
    assert np.allclose(classes[6], [-1.0, 0.1221087], atol=1e-6)  # lost on its one image: was [-100, -100]
    assert np.allclose(classes[0], [-0.1221087, 1.0], atol=1e-6)
    assert np.allclose(classes[100], [-0.7934507, 0.7934507], atol=1e-6)  # the same in both runs: was [0, 0]


def test_runs_of_the_same_predictions_have_every_difference_pinned_at_zero():
    """A run compared with itself (or two runs of one probe: the same classes, seed by seed, and confidences)
    differs by 0 on every metric and class, by construction: no interval around it (Newcombe's square-and-add had
    read ±9.95 points on a class of 39 images and Agresti & Min's half image ±1.32 overall, beside "every difference
    is 0"). Runs that differ elsewhere keep Newcombe's interval on an unchanged class (the test above)."""
    from probe.predictions import paired_test_delta, paired_test_intervals

    labels = np.repeat(np.arange(4), 10)
    predicted = np.stack([labels, labels])
    predicted[0, [0, 12]] = 3  # one seed wrong on two images: seed means of 0.5
    predicted[:, 25] = 0
    run = Predictions(labels, predicted, np.full(40, 0.9))
    same = Predictions(labels, predicted.copy(), np.full(40, 0.9))
    groups = {"easy": [0], "medium": [1, 3], "hard": [2]}
    for delta in (paired_test_intervals(run, same, 5, groups)[0], paired_test_delta(run, same, 5, groups)):
        assert {key: (v["delta"], v["lo"], v["hi"]) for key, v in delta.items()} == {
            key: (0.0, 0.0, 0.0) for key in ("overall", "balanced", "worst_class", "easy", "medium", "hard")}
    classes = paired_test_intervals(run, same, 5, groups)[1]
    assert np.array_equal(classes[:4], np.zeros((4, 2))) and np.isnan(classes[4]).all()  # class 4: no image
    # two probes that agree on every test image but are not one probe (other confidences): estimates, intervals kept
    near = Predictions(labels, predicted.copy(), np.full(40, 0.8))
    delta, classes = paired_test_intervals(run, near, 5, groups)
    assert delta["overall"]["lo"] < 0 < delta["overall"]["hi"] and classes[0, 0] < 0 < classes[0, 1]
    # one seed apart on one image: an estimate again, with its interval
    other = predicted.copy()
    other[1, 5] = 2
    delta, classes = paired_test_intervals(run, Predictions(labels, other, np.full(40, 0.9)), 5, groups)
    assert delta["overall"]["lo"] < delta["overall"]["delta"] < delta["overall"]["hi"]
    assert classes[0, 0] < 0 < classes[1, 1]


def test_failures_least_likely_label_first_and_stored(tmp_path):
    """A mistake whose probability the probe splits among other classes, its own label's near 0, is a likelier wrong
    label than one predicted a little surer than its label: the lowest p(label) first (cleanlab's self-confidence),
    ties by confidence, kept through save and load; by confidence where p(label) was not stored (older runs)."""
    labels = np.array([0, 0, 0, 0])
    predicted = np.array([[1, 2, 0, 1]])
    confidence = np.array([0.6, 0.5, 0.9, 0.6])
    p = Predictions(labels, predicted, confidence, label_probability=np.array([0.35, 0.05, 0.9, 0.05]))
    assert p.failures(0).tolist() == [3, 1, 0]  # equal p(label): the surer prediction first
    assert [r["label_probability"] for r in p.failure_rows(0, ["a", "b", "c"])] == pytest.approx([0.05, 0.05, 0.35])
    p.save(tmp_path)
    assert Predictions.load(tmp_path).failures(0).tolist() == [3, 1, 0]
    older = Predictions(labels, predicted, confidence)
    assert older.failures(0).tolist() == [0, 3, 1] and older.failure_rows(0, ["a", "b", "c"])[0]["label_probability"] is None
    with pytest.raises(ValueError, match="label_probability"):
        Predictions(labels, predicted, confidence, label_probability=np.array([0.1, 0.2, np.nan, 0.3]))


def test_run_ranks_a_wrong_test_label_above_a_hard_image(tmp_path):
    """A run's stored failures of a class put its wrong test labels first: images of the other two classes, half way
    between them, labelled class 0 (the probe splits them between 1 and 2, near 50 % each, class 0 near 0) before
    class 0's own images past the boundary with class 2 (predicted 2 at about 75 %, class 0 at about 20 %). Ordered
    by the prediction's confidence, the three hard images came first and the three wrong labels last."""
    from probe import ProbeConfig, run_probe

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 4.0], [-4.0, -2.0], [4.0, -2.0]])

    def split(n):
        y = np.repeat(np.arange(3), n)
        return (centres[y] + rng.normal(size=(len(y), 2))).astype(np.float32), y

    data = {"train": split(100), "val": split(40)}
    x, y = split(20)
    hard = np.array([[2.6, 0.4], [2.8, 0.3], [2.7, 0.6]], np.float32)
    wrong_label = np.array([[0.0, -2.0], [0.2, -2.2], [-0.2, -1.9]], np.float32)
    data["test"] = (np.vstack([x, hard, wrong_label]), np.concatenate([y, np.zeros(6, np.int64)]))
    config = ProbeConfig(epochs=40, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0)
    run_probe(data, ["a", "b", "c"], config, out_dir=tmp_path)
    stored = Predictions.load(tmp_path)
    n = len(y)
    assert sorted(stored.failures(0).tolist()[:3]) == [n + 3, n + 4, n + 5]
    assert set(stored.failures(0).tolist()[3:]) >= {n, n + 1, n + 2}
    assert stored.label_probability[n + 3:].max() < stored.label_probability[n:n + 3].min()


def _paired_reference(base: Predictions, other: Predictions, with_label: bool) -> list[tuple[int, int]]:
    """Each base image in order with the first other image not yet taken of the same digest (and label): an image
    twice in a split pairs occurrence by occurrence."""
    taken, pairs = set(), []
    for i in range(base.labels.size):
        for j in range(other.labels.size):
            same = (base.digests[i] == other.digests[j]).all() and (
                not with_label or base.labels[i] == other.labels[j])
            if j not in taken and same:
                taken.add(j)
                pairs.append((i, j))
                break
    return pairs


@pytest.mark.parametrize("seed", range(6))
def test_images_matched_by_digest_and_those_under_another_label_are_counted_in_one_match(seed):
    """match_images gives the images two caches share and how many both hold under another label
    (``Matched.relabelled``), which compare had counted by matching every digest a second time: images relabelled,
    twice or thrice in a split, and only in one run."""
    from probe.predictions import BY_DIGESTS, match_images

    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (20, 16), dtype=np.uint8)
    pool_labels = rng.integers(0, 3, 20)
    # duplicates, and images only one run has; images 0 and 1 in both, every copy of them relabelled in the second
    one, two = np.r_[0, 1, 1, rng.integers(0, 20, 30)], np.r_[0, 1, rng.integers(2, 20, 25)]
    two_labels = pool_labels[two].copy()
    two_labels[:2] += 1  # relabelled between the extractions (a new class 3 too)
    two_labels[rng.choice(np.arange(2, 27), 3, replace=False)] += 1  # and a copy of some other images

    def predictions(labels, digests):
        predicted = rng.integers(0, 4, (2, labels.size))
        return Predictions(labels, predicted, rng.random(labels.size), digests=digests)

    base, other = predictions(pool_labels[one], pool[one]), predictions(two_labels, pool[two])
    matched = match_images(base, other)
    pairs = _paired_reference(base, other, with_label=True)
    rows, columns = (np.array(side) for side in zip(*pairs))
    assert matched.how == BY_DIGESTS
    for got, want in ((matched.base, base), (matched.other, other)):
        index = rows if want is base else columns
        assert np.array_equal(got.labels, want.labels[index]) and np.array_equal(got.digests, want.digests[index])
        assert np.array_equal(got.predicted, want.predicted[:, index])
        assert np.array_equal(got.confidence, want.confidence[index])
    assert matched.relabelled == len(_paired_reference(base, other, with_label=False)) - len(pairs)
    assert matched.relabelled >= 2  # images 0 and 1 at least


def _by_paths(base_sources, other_sources, labels=None):
    from probe.predictions import match_images

    labels = np.zeros(len(base_sources), dtype=int) if labels is None else np.asarray(labels)
    other_labels = np.zeros(len(other_sources), dtype=int)
    base = Predictions(labels, np.arange(len(base_sources))[None], np.full(len(base_sources), 0.5),
                       sources=base_sources)
    other = Predictions(other_labels, np.arange(len(other_sources))[None], np.full(len(other_sources), 0.5),
                        sources=other_sources)
    return match_images(base, other)


def test_paths_pair_only_where_they_name_one_image_of_the_data_set():
    """Paths were paired by their class folder and file name alone: train/cat/1.jpg of one extraction's test split
    with test/cat/1.jpg of the other's, and a/cat/1.jpg with b/cat/1.jpg, two images each. A path pairs with the
    same path, or with it below a top folder (a folder and an archive of the data set), where it names one image."""
    from probe.predictions import BY_PATHS, BY_ROWS

    assert _by_paths(["train/cat/1.jpg"], ["test/cat/1.jpg"]) is None  # row by row: no longer "the same split"
    assert _by_paths(["train/cat/1.jpg", "train/cat/2.jpg"], ["test/cat/1.jpg"]) is None
    assert _by_paths(["a/cat/1.jpg", "b/cat/2.jpg"], ["b/cat/1.jpg", "a/cat/2.jpg"]) is None
    matched = _by_paths(["a/cat/1.jpg", "b/cat/1.jpg", "c/cat/1.jpg"], ["b/cat/1.jpg", "a/cat/1.jpg"])
    assert matched.how == BY_PATHS  # each with its own, not occurrence by occurrence of 'cat/1.jpg'
    assert matched.base.predicted[0].tolist() == [0, 1] and matched.other.predicted[0].tolist() == [1, 0]
    # a folder and an archive with a top folder: one image each, in another order
    matched = _by_paths(["test/cat/1.jpg", "test/cat/2.jpg"], ["cifar/test/cat/2.jpg", "cifar\\test\\cat\\1.jpg"])
    assert matched.how == BY_PATHS and matched.other.predicted[0].tolist() == [1, 0]
    assert _by_paths(["test/cat/1.jpg"], ["cifar/test/cat/1.jpg"]).how == BY_ROWS
    # 'cat/1.jpg' names two images of the other run: paired with neither; 'cat/2.jpg' names one
    matched = _by_paths(["cat/1.jpg", "cat/2.jpg"], ["train/cat/1.jpg", "test/cat/1.jpg", "test/cat/2.jpg"])
    assert matched.base.predicted[0].tolist() == [1] and matched.other.predicted[0].tolist() == [2]
    # an image twice in a split pairs occurrence by occurrence
    matched = _by_paths(["a/cat/1.jpg", "a/cat/1.jpg", "b/cat/1.jpg"], ["a/cat/1.jpg", "b/cat/1.jpg", "a/cat/1.jpg"])
    assert matched.base.predicted[0].tolist() == [0, 1, 2] and matched.other.predicted[0].tolist() == [0, 2, 1]


def test_a_paired_difference_refuses_two_images_of_one_class_folder_and_name():
    from probe.predictions import paired_test_delta

    labels = np.array([0, 1])
    one = Predictions(labels, labels[None], np.full(2, 0.9), sources=["train/cat/1.jpg", "train/dog/1.jpg"])
    two = Predictions(labels, labels[None], np.full(2, 0.9), sources=["test/cat/1.jpg", "test/dog/1.jpg"])
    with pytest.raises(ValueError, match="test sample 0 is 'train/cat/1.jpg' in one and 'test/cat/1.jpg'"):
        paired_test_delta(one, two, 2, {"easy": [0], "medium": [1], "hard": []}, n_resamples=10)
    three = Predictions(labels, labels[None], np.full(2, 0.9), sources=["data/train/cat/1.jpg", "train/dog/1.jpg"])
    assert paired_test_delta(one, three, 2, {"easy": [0], "medium": [1], "hard": []}, n_resamples=10)


def test_save_is_durable_and_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    """save goes through probe.files' one atomic write: the new file synced before its rename, a temporary of its own
    (no fixed predictions.tmp.npz two writers share), and a save cut off midway leaves the old file whole."""
    import probe.files

    old = _preds(seed=1)
    old.save(tmp_path)
    synced = []
    real_sync = probe.files.sync
    monkeypatch.setattr(probe.files, "sync", lambda path: (synced.append(str(path)), real_sync(path)))
    _preds(seed=2).save(tmp_path)
    assert any(".predictions.npz." in name and name.endswith(".tmp") for name in synced)
    assert str(tmp_path) in synced  # the folder after the rename
    np.testing.assert_array_equal(Predictions.load(tmp_path).labels, _preds(seed=2).labels)

    old.save(tmp_path)

    def cut_off(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", cut_off)
    with pytest.raises(KeyboardInterrupt):
        _preds(seed=3).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [PREDICTIONS_FILE]
    q = Predictions.load(tmp_path)
    np.testing.assert_array_equal(q.predicted, old.predicted)
    np.testing.assert_array_equal(q.confidence, old.confidence)
