"""compare_reports: per-group and per-class deltas on the base run's groups."""
import numpy as np
import pytest

from probe import Report, compare_reports, format_comparison
from probe.selection import format_delta

NAMES = ["a", "b", "c"]


def _rep(run_id, accs, groups, overall, names=NAMES):
    """A schema-valid report: only the fields compare_reports reads carry meaning."""
    group_of = {i: g for g, idx in groups.items() for i in idx}
    zeros = {"mean": 0.0, "std": 0.0, "per_seed": [0.0]}
    row = dict(n_train=1, n_test=1, accuracy_std=0.0, val_accuracy=None, r2=None, r=None, spread=None, gamma=None,
               output_margin=None, sample_margin_min=None, sample_margin_mean=None)
    return Report.model_validate({
        "run_id": run_id, "created_at": "2026-01-01T00:00:00+00:00", "config": {}, "class_names": names,
        "selection": {"criterion": "overall", "candidates": [], "reason": "",
                      "chosen": {"lr": 0.1, "weight_decay": 0.0}},
        "grouping": {"source": "self", "reference_run": None, "groups": groups, "note": "own validation accuracy"},
        "summary": {"overall": overall, "balanced": sum(accs) / len(accs), "easy": None, "medium": None, "hard": None,
                    "worst_class": {"name": "a", "accuracy": None}, "per_class_std": None,
                    "group_margin": {"easy": None, "medium": None, "hard": None}, "class_margin_deg": None,
                    "ideal_class_margin_deg": None, "min_sample_margin": None, "ideal_sample_margin": None},
        "seeds": {"values": [0], "metrics": {"overall": zeros}},
        "per_class": [dict(row, index=k, name=n, group=group_of[k], accuracy=a, accuracy_per_seed=[a])
                      for k, (n, a) in enumerate(zip(names, accs))],
        "val": {"overall": None, "per_class": [None] * len(names), "source": "given"},
    })


def test_deltas_use_base_groups():
    base = _rep("erm", [0.9, 0.7, 0.5], {"easy": [0], "medium": [1], "hard": [2]}, 0.70)
    # other's own groups differ (class 1 is its hardest) but must be ignored
    other = _rep("mr2", [0.85, 0.6, 0.65], {"easy": [0], "medium": [2], "hard": [1]}, 0.70)
    cmp = compare_reports(base, other).model_dump()
    assert cmp["base"] == "erm" and cmp["other"] == "mr2"
    m = cmp["metrics"]
    assert m["hard"]["base"] == pytest.approx(0.5) and m["hard"]["other"] == pytest.approx(0.65)
    assert m["hard"]["delta"] == pytest.approx(0.15)
    assert m["easy"]["delta"] == pytest.approx(-0.05)
    assert m["worst_class"] == {"base": 0.5, "other": 0.6, "base_ci": None, "other_ci": None,
                                "delta": pytest.approx(0.1), "delta_ci": None,
                                "changed": None, "p_value": None, "beyond_noise": None, "seed_spread": None,
                                "weighted": False}
    # whose worst class each is, named (a new-user round read horse against bird as one class's accuracy)
    from probe.compare import metric_rows

    assert cmp["worst_classes"] == {"base": base.class_names[2], "other": base.class_names[1]}
    assert metric_rows(compare_reports(base, other))[-1][0] == (f"worst class (base {base.class_names[2]}, other "
                                                              f"{base.class_names[1]})")
    assert cmp["verdict_text"] is None  # no stored predictions: no intervals
    assert m["overall"]["delta"] == pytest.approx(0.0)
    assert [r["group"] for r in cmp["per_class"]] == ["easy", "medium", "hard"]
    assert cmp["per_class"][1]["delta"] == pytest.approx(-0.1)
    assert "groups of the base run erm" in cmp["grouping"]["note"]
    text = format_comparison(compare_reports(base, other))
    assert "+15.00" in text and "hard" in text and "base erm vs other mr2" in text


def test_different_classes_rejected():
    base = _rep("x", [1, 1, 1], {"easy": [0], "medium": [1], "hard": [2]}, 1.0)
    other = _rep("y", [1, 1, 1], {"easy": [0], "medium": [1], "hard": [2]}, 1.0, names=["a", "b", "z"])
    with pytest.raises(ValueError, match="different classes and cannot be compared: 3 against 3 classes; only the "
                                         "base run has 'c'; only the other run has 'z'"):
        compare_reports(base, other)


def test_a_class_added_or_removed_is_named_with_the_fix():
    """A 'frog' folder added beside 'dog' (classes sorted): the refusal named the first position that differed,
    "the first difference is class 1: 'dog' against 'frog'", as if dog had become frog, and no way on (a round
    that iterates on a data set). It names the added class and how to compare the classes both have."""
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base = _rep("x", [1, 1, 1], groups, 1.0, names=["cat", "dog", "ship"])
    other = _rep("y", [1, 1, 1, 1], {**groups, "hard": [2, 3]}, 1.0, names=["cat", "dog", "frog", "ship"])
    with pytest.raises(ValueError) as err:
        compare_reports(base, other)
    text = str(err.value)
    assert "3 against 4 classes; only the other run has 'frog' (" in text and "'dog'" not in text
    assert "--drop-class NAME" in text and "--features CACHE.h5" in text
    with pytest.raises(ValueError, match="4 against 3 classes; only the base run has 'frog' "):
        compare_reports(other, base)


def test_class_difference_builds_each_set_once(monkeypatch):
    """first_class_difference looks names up in each list's set, built once: it built the other list's set for
    every name (5,000 classes: 25 million insertions, 3.8 s to word one refusal; a review)."""
    import probe.compare as compare

    built = []

    def counting_set(values=()):
        built.append(1)
        return set(values)

    monkeypatch.setattr(compare, "set", counting_set, raising=False)
    names = [f"c{i}" for i in range(50)]
    text = compare.first_class_difference(names, names[:-1] + ["new"], ("the base run", "the other run"))
    assert "only the base run has 'c49'; only the other run has 'new'" in text
    assert len(built) <= 2


def test_class_lists_that_repeat_a_name_say_so():
    """['a', 'b', 'a'] against ['a', 'b'] (a report read from a damaged file) raised IndexError: no position of the
    shorter list differs, and the first past it was read from both; now the names each list repeats are said."""
    from probe.compare import first_class_difference

    assert first_class_difference(["a", "b", "a"], ["a", "b"]) == "3 against 2 classes; the first repeats 'a'"
    assert first_class_difference(["b", "a"], ["a", "b", "b", "a"], ("the run", "the cache")) == \
        "2 against 4 classes; the cache repeats 'a', 'b'"
    assert first_class_difference(["a", "b"], ["b", "a"]) == \
        "2 against 2 classes; the first difference is class 0: 'a' against 'b'"


def test_classes_in_another_order_name_the_first_position():
    base = _rep("x", [1, 1, 1], {"easy": [0], "medium": [1], "hard": [2]}, 1.0)
    other = _rep("y", [1, 1, 1], {"easy": [0], "medium": [1], "hard": [2]}, 1.0, names=["a", "c", "b"])
    with pytest.raises(ValueError, match="3 against 3 classes; the first difference is class 1: 'b' against 'c'"):
        compare_reports(base, other)


def test_paired_intervals_with_stored_predictions():
    import numpy as np

    from probe import format_comparison
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 100)
    base_pred = labels.copy()
    base_pred[200:250] = 0                  # class 2: 50 % right
    other_pred = base_pred.copy()
    other_pred[200:230] = 2                 # class 2: 80 % right, nothing else changes
    conf = np.full(300, 0.9)
    base = _rep("erm", [1.0, 1.0, 0.5], {"easy": [0], "medium": [1], "hard": [2]}, 5 / 6)
    other = _rep("dro", [1.0, 1.0, 0.8], {"easy": [0], "medium": [1], "hard": [2]}, 0.2 + 2 / 3 + 0.0667)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels, other_pred[None], conf)))
    lo, hi = cmp.metrics["hard"].delta_ci
    # the easy third, its one class's 100 images unchanged, is that class's row: Newcombe's interval around 0
    assert 0 < lo < 0.3 < hi and cmp.metrics["easy"].delta_ci == cmp.per_class[0].delta_ci
    assert cmp.metrics["easy"].delta_ci[0] < 0 < cmp.metrics["easy"].delta_ci[1]
    # the worst class (class 2 in both runs here) has its paired interval too: that class's, the one class of the
    # hard third; its point delta is the reports' worst-class delta
    assert cmp.metrics["worst_class"].delta == pytest.approx(0.3)
    assert cmp.metrics["worst_class"].delta_ci == pytest.approx([lo, hi])
    assert cmp.per_class[2].delta_ci[0] > 0
    # class 0, right on its 100 images in both runs: not [0, 0] (no image changed, so the bootstrap saw no
    # variation) but Newcombe's interval of a difference that 100 images cannot pin down to a point
    lo0, hi0 = cmp.per_class[0].delta_ci
    assert lo0 == pytest.approx(-hi0) and 0.02 < hi0 < 0.05
    assert cmp.verdict_text.startswith("Hard third +30.0 pt [")
    # 30 images the other run gets right and the base run wrong, none the other way: p = 2 / 2³⁰
    assert cmp.discordant.model_dump() == {"images": 300, "other_better": 30, "base_better": 0,
                                           "p_value": pytest.approx(2 / 2 ** 30, rel=1e-9), "seeds": 1,
                                           "seed_counts": [1, 1], "weighted": False}
    assert cmp.verdict_text.endswith("The runs differ on 30 of 300 test images (other better on 30, base on 0); "
                                     "exact sign test p = 1.9e-09.")
    text = format_comparison(cmp)
    assert "verdict: Hard third +30.0 pt" in text and "+0.00 [+0.00, +0.00]" not in text
    # balanced accuracy has its paired interval too: +10 points (30 of class 2's 100 images, one class in three)
    assert cmp.metrics["balanced"].delta == pytest.approx(0.1)
    lo, hi = cmp.metrics["balanced"].delta_ci
    assert 0 < lo < 0.1 < hi and "], overall +10.0 pt [" in cmp.verdict_text
    # runs that both selected on balanced accuracy: the verdict names it
    for run in (base, other):
        run.config["overall_metric"] = "balanced"
    both = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                         Predictions(labels, other_pred[None], conf)))
    assert both.verdict_text.startswith("Hard third +30.0 pt [") and "], balanced accuracy +10.0 pt [" in \
        both.verdict_text and both.metrics["balanced"].delta_ci == [lo, hi]
    # test images that cannot be matched (neither sources nor digests, other labels): refused as "different test
    # splits"; now compared unpaired, and said so
    from probe.compare import unpaired_warning

    unpaired = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                             Predictions(labels[::-1], other_pred[None], conf)))
    assert unpaired.pairing == "unpaired" and unpaired_warning(
        "no content digests stored (neither run's predictions keep any) and no source paths") in unpaired.warnings
    assert unpaired.discordant is None and unpaired.metrics["overall"].changed is None
    assert unpaired.verdict_text.startswith("Unpaired (the runs' test images could not be matched): Hard third "
                                            "+30.0 pt [")
    # the same file names and labels from two data sets of other content (two versions of a data set): not paired
    from probe.report import FeatureSource

    pair = (Predictions(labels, base_pred[None], conf, ["cat/0.png"] * 300),
            Predictions(labels, other_pred[None], conf, ["cat/0.png"] * 300))
    base.features = FeatureSource(fingerprint="a" * 64, encoder="e", dataset="1" * 64)
    other.features = FeatureSource(fingerprint="b" * 64, encoder="e", dataset="2" * 64)
    with pytest.raises(ValueError, match="test images of two different data sets .*111111111111 and 222222222222"):
        compare_reports(base, other, pair)
    assert compare_reports(base, other).metrics["hard"].delta == pytest.approx(0.3)  # unpaired deltas still shown
    other.features = FeatureSource(fingerprint="b" * 64, encoder="f", dataset="1" * 64)  # another encoder, same data
    assert compare_reports(base, other, pair).metrics["hard"].delta_ci is not None
    other.features.dataset = None  # an older report: the sources decide, as before
    assert compare_reports(base, other, pair).metrics["hard"].delta_ci is not None


def test_two_extractions_of_one_data_set_pair_their_shared_test_images_by_path():
    """Two caches of one data set whose test splits were carved otherwise (other images, other order): compare
    refused them ("different test samples with the same labels"); it pairs the images both hold by their paths
    and gives every figure of those, as computed here by hand."""
    import numpy as np

    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 4)
    names = np.array([f"data/{NAMES[k]}/{i}.png" for i, k in enumerate(labels)])
    base_pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1])
    other_rows = np.array([11, 1, 4, 2, 9, 5, 7, 10])  # another extraction's test split: 8 of the 12, shuffled
    other_pred = np.array([2, 0, 1, 0, 2, 1, 1, 2])
    conf = np.full(12, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.75, 0.75, 0.5], groups, 2 / 3), _rep("y", [1.0, 1.0, 1.0], groups, 1.0)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf, names),
                                        Predictions(labels[other_rows], other_pred[None], conf[:8],
                                                    names[other_rows])))
    # by hand, base's rows 1, 2, 4, 5, 7, 9, 10, 11: base right on 1, 2, 4, 5, 9; other on all 8
    assert cmp.pairing == "source paths"
    assert cmp.metrics["overall"].base == pytest.approx(5 / 8) and cmp.metrics["overall"].other == 1.0
    assert cmp.metrics["overall"].delta == pytest.approx(3 / 8) and cmp.metrics["overall"].changed == [3, 0]
    assert [row.delta for row in cmp.per_class] == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert cmp.discordant.images == 8 and cmp.discordant.p_value == pytest.approx(0.25)  # 2 / 2³
    assert cmp.warnings == ["the runs were trained on two caches: their test images are paired by source paths, 8 "
                            "in both (of 12 base and 8 other test images); every accuracy, interval and count here "
                            "is of those 8, the 4 and 0 only one run has left out (calibration and cost: each run's "
                            "own)"]


def test_cost_is_the_ratio_of_the_wall_times_and_says_when_the_settings_differ():
    from probe.report import Timing

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("erm", [0.9, 0.7, 0.5], groups, 0.7), _rep("mr2", [0.9, 0.7, 0.6], groups, 0.73)
    assert compare_reports(base, other).cost is None  # reports written before timing
    assert "time:" not in format_comparison(compare_reports(base, other))

    def timing(seconds, threads=1, device="cpu"):
        return Timing(total_seconds=seconds, selection_seconds=seconds / 2, seeds_seconds=seconds / 4, fits=9,
                      device=device, threads=threads)

    base.timing, other.timing = timing(2.0), timing(7.0)
    cost = compare_reports(base, other).cost
    assert (cost.base_seconds, cost.other_seconds, cost.ratio) == (2.0, 7.0, 3.5)
    assert cost.comparable and cost.setting == "cpu, 1 thread"
    assert "time: base 2.0 s, other 7.0 s (3.50×; cpu, 1 thread)\n" in format_comparison(compare_reports(base, other))
    other.timing = timing(1.0, threads=2)
    cost = compare_reports(base, other).cost
    assert not cost.comparable and cost.setting == "cpu, 1 thread vs cpu, 2 threads"
    assert "(0.50×; cpu, 1 thread vs cpu, 2 threads: not the same setting)" in \
        format_comparison(compare_reports(base, other))


def test_features_are_named_when_the_runs_used_other_caches():
    from probe.report import FeatureSource

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("effnet", [0.9, 0.7, 0.5], groups, 0.7), _rep("clip", [0.9, 0.8, 0.6], groups, 0.77)
    assert compare_reports(base, other).features is None  # reports written before features were recorded
    base.features = FeatureSource(fingerprint="a" * 64, encoder="effnet-lite0", cache="effnet.h5")
    other.features = FeatureSource(fingerprint="a" * 64, encoder="effnet-lite0", cache="copy.h5")
    assert compare_reports(base, other).features is None  # the same cache under another name
    other.features = FeatureSource(fingerprint="b" * 64, encoder="openclip:ViT-B-32", cache="clip.h5")
    comparison = compare_reports(base, other)
    assert comparison.features == ("base effnet-lite0, cache aaaaaaaaaaaa… (effnet.h5); other openclip:ViT-B-32, "
                                   "cache bbbbbbbbbbbb… (clip.h5)")  # cut, and said so (a scale round)
    short = FeatureSource(fingerprint="synthetic-1", encoder="synthetic")
    assert short.describe() == "synthetic, cache synthetic-1"
    assert f"features differ: {comparison.features}\n" in format_comparison(comparison, width=200)


def test_the_terminal_table_of_many_classes_lists_those_that_moved_most():
    groups = {"easy": [0, 3], "medium": [1], "hard": [2]}
    names = ["a", "b", "c", "d"]
    base = _rep("erm", [0.9, 0.7, 0.5, 0.8], groups, 0.70, names=names)
    other = _rep("mr2", [0.88, 0.6, 0.65, 0.8], groups, 0.71, names=names)  # Δ -2, -10, +15, 0 points
    cmp = compare_reports(base, other)

    def shown(text: str) -> tuple[list[str], str]:
        rows = [line.split()[0] for line in text.splitlines() if line.strip()[:2] in ("a ", "b ", "c ", "d ")]
        return rows, " ".join(text.split())  # the caption wraps at the table's width

    rows, words = shown(format_comparison(cmp, max_classes=2))
    # |Δ| 10 and 15 points, the largest loss first (in class order a large loss sat mid-list; a scale round); a
    # (2 points) and d (0) left out
    assert rows == ["b", "c"]
    assert ("the 2 of 4 classes whose test accuracy changed most, largest loss first; 1 more changed less and 1 did "
            "not (every class: the comparison's JSON)") in words
    rows, words = shown(format_comparison(cmp, max_classes=3))
    assert rows == ["b", "a", "c"]  # every class that changed (-10, -2, +15); d did not
    assert "the 3 of 4 classes whose test accuracy changed, largest loss first; the other 1 did not" in words
    # every class: those that changed first, the largest loss first, then d (an export of 200 classes in class
    # order was 200 rows to scan for the few that moved; a scale round)
    assert shown(format_comparison(cmp, max_classes=None))[0] == ["b", "a", "c", "d"]
    assert format_comparison(cmp) == format_comparison(cmp, max_classes=None)  # 4 classes: within the default


def test_a_difference_of_a_few_images_is_called_too_few_to_tell_apart():
    import numpy as np

    from probe.predictions import Predictions

    # 6 classes × 3 test images, 3 seeds; the other run loses 2 images of class 0 and 1 of class 1 in every seed,
    # and one image of class 2 in one seed of three: the base run is better on 4 images, the other on none
    labels = np.repeat(np.arange(6), 3)
    base_pred = np.tile(labels, (3, 1))
    other_pred = base_pred.copy()
    other_pred[:, [0, 1, 3]] = 5
    other_pred[0, 6] = 5
    conf = np.full(18, 0.9)
    groups = {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    names = list("abcdef")
    base = _rep("erm", [1.0] * 6, groups, 1.0, names=names)
    other = _rep("x", [1 / 3, 2 / 3, 8 / 9, 1.0, 1.0, 1.0], groups, 0.81, names=names)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred, conf), Predictions(labels, other_pred, conf)))
    assert (cmp.discordant.other_better, cmp.discordant.base_better, cmp.discordant.p_value) == (0, 4, pytest.approx(0.125))
    # the percentile bootstrap of these few images leaves out 0 ([-31.5, -7.4] pt): the sentence says which to read
    assert cmp.metrics["overall"].delta_ci[1] < 0
    # 3 seeds: an image is better for the run more of whose seeds get it right (a new-user round read +0.84 pt
    # beside "1 of 79 images" as a contradiction)
    assert cmp.verdict_text.endswith("The runs differ on 4 of 18 test images (other better on 0, base on 4, by the "
                                     "share of their 3 seeds right on each): too few or too even to tell them apart "
                                     "(exact paired sign-flip test of the seed means p = 0.12). The overall interval "
                                     "leaves out 0 only because so few images differ (sign-flip test of its 4 differing "
                                     "images p = 0.12): within noise.")
    same = compare_reports(base, base, (Predictions(labels, base_pred, conf),) * 2)
    assert same.discordant.p_value == 1.0 and same.verdict_text.endswith("The runs agree on every one of the 18 "
                                                                         "test images.")
    from probe.compare import CompareDiscordant, discordance_sentence

    many = CompareDiscordant(images=10000, other_better=1978, base_better=845, p_value=1.5e-103)
    assert discordance_sentence(many) == ("The runs differ on 2,823 of 10,000 test images (other better on 1,978, "
                                          "base on 845); exact sign test p = 1.5e-103.")
    # runs of 3 and 2 seeds: "their 3 seeds" misnamed the other's (a new-user round); each run's count is said
    two = compare_reports(base, other, (Predictions(labels, base_pred, conf),
                                        Predictions(labels, other_pred[:2], conf))).discordant
    assert (two.seeds, two.seed_counts) == (3, [3, 2])
    assert "(other better on 0, base on 4, by the share of each run's seeds right on each (other 2, base 3)): " in \
        discordance_sentence(two)


def test_sign_test_is_scipys_exact_binomial_test():
    from scipy.stats import binomtest

    from probe.uncertainty import sign_test

    for up, down in [(3, 0), (0, 3), (6, 0), (10, 3), (50, 30), (5000, 4800), (1, 1), (0, 1), (0, 0), (400, 0)]:
        expected = binomtest(up, up + down).pvalue if up + down else 1.0
        assert sign_test(up, down) == pytest.approx(expected, rel=1e-9, abs=1e-300), (up, down)
    with pytest.raises(ValueError, match="counts must be >= 0"):
        sign_test(-1, 2)


def test_many_differing_images_need_no_word_on_the_sign_test():
    import numpy as np

    from probe.predictions import Predictions

    # one image in five that only the base run gets right, of 300: the test and the interval agree
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("erm", [1.0, 1.0, 1.0], groups, 1.0), _rep("mr2", [0.8, 0.8, 0.8], groups, 0.8)
    many = np.repeat(np.arange(3), 100)
    base_pred, other_pred = many.copy(), many.copy()
    other_pred[np.arange(0, 300, 5)] = (many[np.arange(0, 300, 5)] + 1) % 3
    cmp = compare_reports(base, other, (Predictions(many, base_pred[None], np.full(300, 0.9)),
                                        Predictions(many, other_pred[None], np.full(300, 0.9))))
    assert cmp.metrics["overall"].delta_ci[1] < 0 and cmp.discordant.p_value < 0.05
    assert "the one to read" not in cmp.verdict_text


def test_classes_that_moved_beyond_noise_are_counted_beside_what_chance_gives():
    """A class −70 pt beside an "improved" verdict went unsaid (a scale round): the facts above the tables count
    the classes whose paired interval leaves out 0 each way, name the largest losses, and say how many 95 %
    intervals would by chance alone (2.5 % of the classes each way)."""
    from probe.compare import CompareClass, classes_beyond_noise

    def row(i, delta, ci):
        return CompareClass(index=i, name=f"c{i}", group="hard", base=0.5, other=0.5 + delta, delta=delta,
                            delta_ci=ci)

    rows = [row(0, -0.7, [-1.0, -0.4]), row(1, 0.1, [-0.1, 0.3]), row(2, -0.3, [-0.5, -0.1]),
            row(3, 0.2, [0.05, 0.35]), *[row(i, 0.0, [-0.1, 0.1]) for i in range(4, 40)]]
    assert classes_beyond_noise(rows) == ("2 lost beyond noise (c0 -70.00, c2 -30.00), 1 gained; by chance alone "
                                          "about 1 of 40 classes' 95 % intervals would leave out 0 each way, and "
                                          "fewer pass the exact test too (none of 5 or fewer test images can: 5 of 5 "
                                          "is p = 0.0625)")
    assert classes_beyond_noise(rows[4:]) is None
    assert classes_beyond_noise([row(0, -0.7, None)]) is None  # no intervals: nothing to say


def test_a_class_whose_few_changed_images_are_all_one_way_is_not_beyond_noise():
    """3 test images all fixed resample to [+100, +100], yet their sign test is p = 0.25 (a statistics review): such
    a class is within noise in the table and the count; 30 fixed of 100 stays beyond noise."""
    import numpy as np

    from probe import format_comparison
    from probe.compare import classes_beyond_noise
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), [100, 3, 100])
    base_pred = labels.copy()
    base_pred[100:103] = 0                   # class 1: its 3 images wrong
    base_pred[103:153] = 0                   # class 2: 50 % right
    other_pred = base_pred.copy()
    other_pred[100:103] = 1                  # class 1: all 3 fixed
    other_pred[103:133] = 2                  # class 2: 30 fixed
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [0], "medium": [2], "hard": [1]}
    base = _rep("erm", [1.0, 0.0, 0.5], groups, 153 / 203)
    other = _rep("dro", [1.0, 1.0, 0.8], groups, 186 / 203)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels, other_pred[None], conf)))
    few, many = cmp.per_class[1], cmp.per_class[2]
    # 3 images, all fixed: Newcombe's paired interval (the bootstrap's read [+100, +100]: no resample moves them)
    assert few.delta_ci == pytest.approx([0.20592, 1.0], abs=1e-5) and few.changed == [3, 0]
    assert few.beyond_noise is False
    assert many.changed == [30, 0] and many.beyond_noise is True and cmp.per_class[0].beyond_noise is False
    assert classes_beyond_noise(cmp.per_class).startswith("0 lost beyond noise, 1 gained;")
    assert "+100.00 [+20.59, +100.00] within noise (3 better, 0 worse: p = 0.25)" in format_comparison(
        cmp, width=200)
    # the hard third is that class: its row and the verdict say the same (its row was a bare interval; a review)
    hard = cmp.metrics["hard"]
    assert hard.delta_ci == few.delta_ci and hard.changed == [3, 0] and hard.beyond_noise is False
    assert "hard  " in format_comparison(cmp, width=200) and cmp.verdict_text.endswith(
        "The hard third's interval leaves out 0 only because so few images differ (sign-flip test of its 3 differing "
        "images p = 0.25): within noise.")
    assert cmp.metrics["overall"].beyond_noise is True and cmp.metrics["worst_class"].beyond_noise is None


def test_with_several_seeds_the_exact_test_and_the_interval_weigh_the_same_mean():
    """A statistics review: with 3 seeds, 200 images a third of a seed better and 100 a whole seed worse read
    "other better on 200, base on 100; exact sign test p = 8e-09" beside an interval of -11 points, and each class
    "within noise (100 better, 50 worse: too few images)". The exact test is now of the mean difference."""
    import numpy as np

    from probe.predictions import Predictions

    labels = np.repeat([0, 1], 150)
    base_pred = np.tile(labels, (3, 1))
    other_pred = base_pred.copy()
    up = np.r_[0:100, 150:250]      # base right with 2 of 3 seeds, other with all 3
    down = np.r_[100:150, 250:300]  # base right with all 3, other with none
    base_pred[0, up] = 1 - labels[up]
    other_pred[:, down] = 1 - labels[down]
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [0], "medium": [], "hard": [1]}
    acc = lambda p: [float((p[:, labels == k] == k).mean()) for k in (0, 1)]  # noqa: E731
    base = _rep("erm", acc(base_pred), groups, float((base_pred == labels).mean()), names=["a", "b"])
    other = _rep("dro", acc(other_pred), groups, float((other_pred == labels).mean()), names=["a", "b"])
    cmp = compare_reports(base, other, (Predictions(labels, base_pred, conf), Predictions(labels, other_pred, conf)))
    d = cmp.discordant
    assert (d.other_better, d.base_better, d.seeds) == (200, 100, 3)
    assert cmp.metrics["overall"].delta == pytest.approx(-1 / 9) and cmp.metrics["overall"].delta_ci[1] < 0
    assert d.p_value < 0.01 and "exact paired sign-flip test of the seed means p = " in cmp.verdict_text
    assert cmp.metrics["overall"].beyond_noise is True
    for row in cmp.per_class:
        assert row.changed == [100, 50] and row.delta_ci[1] < 0 and row.beyond_noise is True


def test_a_comparison_lists_both_runs_calibration():
    """What each probe's probabilities are worth is part of which to ship (a new-user round): both runs' calibration
    side by side in the JSON and the text, each with its own interval; none when a report lacks it."""
    from probe import format_comparison
    from probe.report import Calibration

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("erm", [1.0, 1.0, 0.5], groups, 5 / 6), _rep("dro", [1.0, 1.0, 0.8], groups, 0.9)
    assert compare_reports(base, other).calibration is None
    cal = lambda ece: Calibration(ece=ece, ece_debiased=ece / 2, ece_ci=[0.0, ece], confidence=0.9, accuracy=0.8,  # noqa: E731
                                  nll=0.5)
    base.calibration, other.calibration = cal(0.1), cal(0.04)
    cmp = compare_reports(base, other)
    assert cmp.calibration["base"].ece == 0.1 and cmp.calibration["other"].ece == 0.04
    text = format_comparison(cmp, width=400)
    assert "calibration: base ECE 10.00%, 5.00% once the estimate's own upward bias is removed, 95 % interval [0.0, 10.0]" in text
    assert "; other ECE 4.00%, 2.00% once the estimate's own upward bias is removed, 95 % interval [0.0, 4.0]" in text


def test_a_comparison_names_where_the_base_run_s_groups_came_from_without_denying_its_reference():
    """A dashboard-only round: a pipeline's ERM run compared with its disparity run read "both runs scored on the
    groups of the base run … (no reference run given)" beside a job log saying "groups from reference run …"."""
    from probe import ProbeConfig, run_probe

    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 3
        return rng.standard_normal((n, 4)).astype(np.float32) + y[:, None], y

    data = {"train": split(90), "val": split(150), "test": split(60)}
    erm = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0))
    assert erm.grouping.note == "groups from the run's own validation accuracy (seed mean), ranked by the run itself"
    note = compare_reports(erm, erm).grouping.note
    assert "ranked by the run itself" in note and "no reference run" not in note
    # and says what each probe is: an export passed on named the runs by id alone (a dashboard-only round)
    from probe.export import comparison_html, comparison_markdown, markdown_escape

    focal = run_probe(data, NAMES, ProbeConfig(loss="focal", epochs=2, seeds=[0], cv=0))
    cmp = compare_reports(erm, focal)
    assert cmp.probes == {"base": "ERM (ce), linear head", "other": "focal (gamma_focal=2), linear head"}
    assert "- **Probes:** base ERM (ce), linear head; other focal (gamma_focal=2), linear head" in comparison_markdown(cmp)
    # two ERM runs selected on two metrics are told apart (a new-user round)
    balanced = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0, overall_metric="balanced"))
    assert compare_reports(erm, balanced).probes["other"] == "ERM (ce), linear head, selected on balanced accuracy"
    # what was asked for where the run kept the reference, and a post-hoc bias's fate (both read as ERM itself)
    kept = erm.model_copy(deep=True)
    kept.selection.requested = {"loss": "mr2", "select": "hard"}
    assert compare_reports(erm, kept).probes["other"] == ("ERM (ce), linear head, kept the reference (mr2 found no "
                                                          "safe improvement)")
    posthoc = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0, posthoc_bias=True, posthoc_guard=False))
    assert compare_reports(erm, posthoc).probes["other"] == "ERM (ce), linear head, post-hoc bias applied"
    # an adapter before the head, λ selected or given (it read "ERM (ce), linear head", as ERM itself: a new-user
    # round choosing among six probes)
    adapted = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0, adapter="lowrank", adapter_rank=2,
                                                 lam_grid=[0.3], wd_grid=[0.0]))
    assert compare_reports(erm, adapted).probes["other"] == "ERM (ce), linear head, lowrank adapter (rank 2), λ 0.3"
    given = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0, adapter="mlp", lam=0.5, wd_grid=[0.0]))
    assert compare_reports(erm, given).probes["other"] == "ERM (ce), linear head, mlp adapter, λ 0.5"
    # the temperature its confidences ship with (a temperature-scaled run read as the same probe without it)
    scaled = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0, temperature_scaling=True))
    scaling = scaled.temperature_scaling
    expected = (f", temperature {scaling.temperature:.3g}" if scaling.applied
                else ", temperature not applied (its fit lay on a bound)")
    assert compare_reports(erm, scaled).probes["other"] == "ERM (ce), linear head" + expected
    on_bound = scaled.model_copy(deep=True)
    on_bound.temperature_scaling.applied = not scaling.applied
    on_bound.temperature_scaling.temperature = 1.0 if scaling.applied else 2.5
    assert compare_reports(erm, on_bound).probes["other"] == "ERM (ce), linear head" + (
        ", temperature not applied (its fit lay on a bound)" if scaling.applied else ", temperature 2.5")


def test_runs_of_other_seed_counts_and_thirds_of_unequal_classes_get_the_test_of_their_own_mean():
    """A review: with 2 seeds against 3 the differences are sixths, which a grid of thirds rounded to 0 (40 images
    all one way read p = 1); and a third's exact test summed its images where its interval is a macro mean of its
    classes (a 200-image class +30 and a 5-image class all 5 worse: [-45, -40] "within noise", p = 2.2e-05)."""
    from probe.predictions import Predictions
    from probe.uncertainty import sign_flip_test

    labels = np.repeat([0, 1], [40, 40])
    base_pred = np.tile(labels, (2, 1))
    base_pred[0, :40] = 1                      # class 0: base right with 1 of its 2 seeds
    other_pred = np.tile(labels, (3, 1))
    other_pred[:, :40] = 0
    other_pred[:2, :40] = 0
    other_pred[2, :40] = 1                     # class 0: other right with 2 of its 3 seeds: +1/6 on each image
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [1], "medium": [], "hard": [0]}
    base, other = (_rep(name, [acc, 1.0], groups, (acc + 1) / 2, names=["a", "b"])
                   for name, acc in (("erm", 0.5), ("x", 2 / 3)))
    cmp = compare_reports(base, other, (Predictions(labels, base_pred, conf), Predictions(labels, other_pred, conf)))
    assert cmp.discordant.p_value == pytest.approx(2 * 0.5 ** 40) and cmp.per_class[0].beyond_noise is True
    with pytest.raises(ValueError, match="not multiples of 1/3"):
        sign_flip_test(np.full(4, 1 / 6), seeds=3)

    labels = np.repeat([0, 1, 2], [200, 5, 10])
    base_pred = labels.copy()
    base_pred[:30] = 2                          # class 0: 30 wrong, which the other run fixes
    other_pred = labels.copy()
    other_pred[200:205] = 0                     # class 1: all 5 broken
    groups = {"easy": [2], "medium": [], "hard": [0, 1]}
    base = _rep("erm", [0.85, 1.0, 1.0], groups, 0.86, names=["a", "b", "c"])
    other = _rep("x", [1.0, 0.0, 1.0], groups, 0.98, names=["a", "b", "c"])
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf[:1].repeat(215)),
                                        Predictions(labels, other_pred[None], conf[:1].repeat(215))))
    hard = cmp.metrics["hard"]
    assert hard.delta == pytest.approx(-0.425) and hard.delta_ci[1] < 0 and hard.changed == [30, 5]
    assert 0.05 < hard.p_value < 0.07 and hard.beyond_noise is False  # 5 of 5 one way weighs as 1/16 = 0.0625
    assert cmp.verdict_text.endswith("The hard third's interval leaves out 0 only because so few images differ "
                                     f"(sign-flip test of its 35 differing images p = {hard.p_value:.2g}): within noise.")


def test_a_class_beyond_noise_shows_the_images_it_rests_on():
    """A new-user round: a class 57 points down beyond noise read as a bare interval, while the rows within noise
    named their changed images and their test."""
    from probe.compare import _delta_cell

    assert _delta_cell(-0.5667, [-0.8333, -0.2667], [0, 6], True, 0.031) == \
        "-56.67 [-83.33, -26.67] (0 better, 6 worse: p = 0.031)"
    assert _delta_cell(-0.25, [-0.45, -0.05], [0, 5], False, 0.0625) == \
        "-25.00 [-45.00, -5.00] within noise (0 better, 5 worse: p = 0.062)"
    assert _delta_cell(0.01, [-0.01, 0.03], [3, 2], None, 1.0) == "+1.00 [-1.00, +3.00] within noise"
    assert _delta_cell(0.05, [0.02, 0.08]) == "+5.00 [+2.00, +8.00]"  # no images stored: the interval alone


def test_each_run_s_own_accuracies_have_the_intervals_its_report_gives():
    """A difference had its interval and the two accuracies it is the difference of had none (0.0 % against
    16.7 % on 6 images read as sure as on 600): each run's own accuracies now carry the interval its report shows
    (Wilson's for overall and a class, the worst class's its class's; Jeffreys draws for balanced and a third)."""
    from scipy.stats import binomtest

    from probe.diagnostics import test_diagnostics
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), [6, 40, 100])
    rng = np.random.default_rng(0)
    base_pred = np.where(rng.random((3, labels.size)) < 0.7, labels, (labels + 1) % 3)  # 3 seeds
    other_pred = np.where(rng.random((3, labels.size)) < 0.8, labels, (labels + 2) % 3)
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [2], "medium": [], "hard": [0, 1]}
    acc = lambda p: [float((p[:, labels == k] == k).mean()) for k in range(3)]  # noqa: E731
    base = _rep("erm", acc(base_pred), groups, float((base_pred == labels).mean()))
    other = _rep("dro", acc(other_pred), groups, float((other_pred == labels).mean()))
    pair = (Predictions(labels, base_pred, conf), Predictions(labels, other_pred, conf))
    cmp = compare_reports(base, other, pair)
    for side, predictions in zip(("base", "other"), pair):
        own = test_diagnostics(predictions, NAMES, groups)  # what the run's report shows
        assert getattr(cmp.metrics["overall"], f"{side}_ci") == pytest.approx(own.overall_ci)
        for key in ("balanced", "easy", "hard"):
            assert getattr(cmp.metrics[key], f"{side}_ci") == pytest.approx(own.group_ci[key])
        assert getattr(cmp.metrics["medium"], f"{side}_ci") is None  # an empty third: no interval
        for row in cmp.per_class:
            assert getattr(row, f"{side}_ci") == pytest.approx(own.rows[row.index]["accuracy_ci"])
        worst = next(r.index for r in cmp.per_class if r.name == cmp.worst_classes[side])
        assert getattr(cmp.metrics["worst_class"], f"{side}_ci") == pytest.approx(own.rows[worst]["accuracy_ci"])
    # one seed: a class's interval is scipy's Wilson interval of its images (continuity-corrected: 6 < 30 images)
    one = compare_reports(base, other, (Predictions(labels, base_pred[:1], conf), Predictions(labels, other_pred[:1],
                                                                                                conf)))
    right = int((base_pred[0, :6] == 0).sum())
    wilson = binomtest(right, 6).proportion_ci(0.95, method="wilsoncc")
    assert one.per_class[0].base_ci == pytest.approx([wilson.low, wilson.high])
    # the tables show them beside each accuracy
    from probe.compare import class_rows, metric_rows

    row = next(r for r in class_rows(one)[0] if r[0] == "a")
    assert row[2] == f"{100 * one.per_class[0].base:.2f} [{100 * wilson.low:.1f}, {100 * wilson.high:.1f}]"
    overall = next(r for r in metric_rows(one) if r[0] == "overall")
    lo, hi = one.metrics["overall"].other_ci
    assert overall[2] == f"{100 * one.metrics['overall'].other:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def test_balanced_accuracy_has_its_test_and_a_hard_third_beyond_noise_is_said_beside_an_even_overall():
    """A new-user round read "-6.7 [-13.3, -0.8]" bare on balanced accuracy beside the same interval on overall
    "within noise", and "too few or too even to tell them apart" of all the images while the hard third's own
    images told the runs apart (p = 0.031)."""
    from probe.compare import group_evidence
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(6), 10)
    base_pred = labels.copy()
    other_pred = labels.copy()
    other_pred[[40, 41, 42, 50, 51, 52]] = 0  # the hard classes 4 and 5 lose 6 images, all one way
    base_pred[[0, 1, 2, 10, 11]] = 3  # the easy classes: the other run fixes 5 images the base run got wrong
    conf = np.full(60, 0.9)
    groups = {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    names = list("abcdef")
    base = _rep("erm", [0.7, 0.8, 1.0, 1.0, 1.0, 1.0], groups, 55 / 60, names=names)
    other = _rep("x", [1.0, 1.0, 1.0, 1.0, 0.7, 0.7], groups, 54 / 60, names=names)
    preds = (Predictions(labels, base_pred[None], conf), Predictions(labels, other_pred[None], conf))
    cmp = compare_reports(base, other, preds)
    balanced = cmp.metrics["balanced"]
    changed, p_value, _ = group_evidence(*preds, list(range(6)))
    assert (balanced.changed, balanced.p_value) == (changed, p_value) == ([5, 6], pytest.approx(1.0))
    assert balanced.beyond_noise is False
    hard = cmp.metrics["hard"]
    assert hard.changed == [0, 6] and hard.p_value == pytest.approx(2 / 2 ** 6) and hard.beyond_noise
    assert "too few or too even to tell them apart" in cmp.verdict_text
    assert cmp.verdict_text.endswith("The hard third's images do tell them apart (other better on 0, base on 6: "
                                     "sign-flip test p = 0.031).")
    # the thirds' and balanced accuracy's tests weigh each image 1/n of its class: their rows say so beside the
    # counts (10 better against 20 worse beside a gain read as a contradiction; a consistency round)
    from probe.compare import metric_rows

    rows = {row[0]: row[3] for row in metric_rows(cmp)}
    assert rows["hard"].endswith("(0 better, 6 worse, weighed by class: p = 0.031)") and hard.weighted
    assert not cmp.metrics["overall"].weighted and "weighed" not in rows["overall"]


def test_balanced_accuracy_beyond_noise_is_said_beside_images_too_even_overall():
    """Both runs selected on balanced accuracy, the verdict's leading number: its test weighs each class alike, so
    6 of 6 images fixed in a small class can tell the runs apart where 6 better and 10 worse over all images do not
    (a review)."""
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), [6, 200, 50])
    base_pred = labels.copy()
    base_pred[:6] = 1  # the base run gets the small class wrong
    other_pred = labels.copy()
    other_pred[6:16] = 0  # the other run fixes it and breaks 10 of the large class
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [1], "medium": [2], "hard": [0]}
    names = list("abc")
    base = _rep("erm", [0.0, 1.0, 1.0], groups, 250 / 256, names=names)
    other = _rep("x", [1.0, 0.95, 1.0], groups, 246 / 256, names=names)
    for report in (base, other):
        report.config["overall_metric"] = "balanced"
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels, other_pred[None], conf)))
    balanced = cmp.metrics["balanced"]
    assert balanced.changed == [6, 10] and balanced.beyond_noise and cmp.metrics["overall"].p_value > 0.05
    # the verdict on balanced accuracy cites its own test, and names the accuracy over the images beside it (it
    # cited the unweighted test, which can lean the other way: a consistency round)
    overall = cmp.metrics["overall"]
    assert (f", accuracy over the images {format_delta(overall.delta, overall.delta_ci)}."
            in cmp.verdict_text)
    assert cmp.verdict_text.endswith(
        "The runs differ on 16 of 256 test images (other better on 6, base on 10); paired sign-flip test, each image "
        f"weighed 1/n of its class as balanced accuracy weighs it, p = {balanced.p_value:.2g}.")
    # the API serves the test the sentence cites (it served the unweighted one beside it; a review)
    assert cmp.discordant.weighted is True and cmp.discordant.p_value == balanced.p_value
    assert cmp.metrics["overall"].p_value != balanced.p_value


def test_a_weighted_test_at_its_monte_carlo_floor_reads_at_most():
    """A new-user round: a balanced verdict printed "p = 5e-05", the floor of the weighted test's 20,000 draws; the
    exact sign test of the same counts keeps "="."""
    from probe.compare import CompareDiscordant, discordance_sentence
    from probe.uncertainty import SIGN_FLIP_FLOOR

    drawn = CompareDiscordant(images=449, other_better=67, base_better=16, p_value=SIGN_FLIP_FLOOR, seeds=3,
                              weighted=True)
    assert discordance_sentence(drawn, "this run", "the reference") == (
        "The runs differ on 83 of 449 test images (this run better on 67, the reference on 16, by the share of their 3 "
        "seeds right on each); paired sign-flip test, each image weighed 1/n of its class as balanced accuracy weighs "
        "it, p ≤ 5e-05.")
    exact = drawn.model_copy(update={"weighted": False, "p_value": 2.5e-10})
    assert discordance_sentence(exact).endswith("; exact paired sign-flip test of the seed means p = 2.5e-10.")


def test_the_worst_class_row_has_its_class_s_test_or_says_two_classes_have_none():
    """A new-user round: "worst class (3) … +60.74 [+46.67, +72.23]" had no counts and no test where every other row
    had them. The same class in both runs: that class's paired test; two classes: no pairs, said so."""
    from probe.compare import metric_rows
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 20)
    groups = {"easy": [2], "medium": [1], "hard": [0]}

    def compared(base_right: list[int], other_right: list[int]):
        def predicted(right):  # the first `right` images of each class right, the rest called c (class 2)
            out = labels.copy()
            for k, n in enumerate(right):
                out[np.flatnonzero(labels == k)[n:]] = 2 if k != 2 else 0
            return out[None, :]
        runs = [_rep(run_id, [n / 20 for n in right], groups, sum(right) / 60)
                for run_id, right in (("erm", base_right), ("x", other_right))]
        return compare_reports(*runs, tuple(Predictions(labels, predicted(r), np.full(60, 0.9))
                                            for r in (base_right, other_right)))

    same = compared([0, 20, 20], [12, 20, 20])  # a is the worst class of both
    worst = same.metrics["worst_class"]
    assert (worst.changed, worst.p_value, worst.beyond_noise) == ([12, 0], 2 / 2 ** 12, True)
    assert dict((row[0], row[3]) for row in metric_rows(same))["worst class (a)"].endswith(
        "] (12 better, 0 worse: p = 0.00049)")
    # a tie: a and b both the base run's worst (50 %), b the other's: b's paired test (an attack round read
    # "worst class (base a, other b) ... two different classes: no paired test applies")
    tie = compared([10, 10, 20], [15, 10, 20])
    assert tie.worst_classes == {"base": "b", "other": "b"} and tie.metrics["worst_class"].changed == [0, 0]
    assert compared([15, 10, 20], [10, 10, 20]).worst_classes == {"base": "b", "other": "b"}
    two = compared([5, 20, 20], [20, 15, 20])  # a (25 %) against b (75 %): two classes' images, no pairs
    worst = two.metrics["worst_class"]
    assert (worst.changed, worst.p_value, worst.beyond_noise) == (None, None, None)
    cell = dict((row[0], row[3]) for row in metric_rows(two))["worst class (base a, other b)"]
    assert cell.startswith("+50.00 [") and cell.endswith("] (two different classes: no paired test applies)")


def test_the_worst_class_row_gives_the_interval_of_its_class_where_both_runs_share_it():
    """A decision round: on a long-tailed test split the worst class of both runs (6 test images, 1 right in each run,
    the same image) read "+0.00 [+0.00, +19.05]" in the worst-class row, the bootstrap of the lowest class accuracy,
    which resamples the class's identical pairs only, beside "+0.00 [-36.44, +36.44]" in the class's own row: one
    difference, two intervals, the narrow one saying the other run cannot be worse there. The same class in both
    runs: the row is that class's, interval and test."""
    from probe.predictions import Predictions

    labels = np.concatenate([np.zeros(6, dtype=int), np.ones(50, dtype=int), np.full(50, 2)])
    base_pred = labels.copy()
    base_pred[1:6] = 1                   # class a: 1 of 6 right, the worst class of both runs
    base_pred[6:16] = 2                  # class b: 40 of 50
    other_pred = base_pred.copy()
    other_pred[16:21] = 2                # b: 35 of 50; a unchanged
    groups = {"easy": [2], "medium": [1], "hard": [0]}
    base = _rep("erm", [1 / 6, 0.8, 1.0], groups, 91 / 106)
    other = _rep("x", [1 / 6, 0.7, 1.0], groups, 86 / 106)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], np.full(106, 0.9)),
                                        Predictions(labels, other_pred[None], np.full(106, 0.9))))
    assert cmp.worst_classes == {"base": "a", "other": "a"}
    worst, own = cmp.metrics["worst_class"], cmp.per_class[0]
    assert worst.delta == pytest.approx(0.0) and worst.delta_ci == pytest.approx(own.delta_ci)
    assert worst.delta_ci[0] < -0.2 and worst.delta_ci[1] > 0.2  # Newcombe's, on 6 images: wide both ways
    assert worst.beyond_noise is False and worst.changed == [0, 0]


def test_a_run_s_verdict_names_the_thirds_and_classes_lost_beyond_noise_as_compare_does():
    """A new-user round: an improved run's verdict gave its hard, balanced and overall deltas, and hid class 6 down
    8.97 points beyond noise that ``mr2probe compare`` of the same two runs listed: the run's verdict now says which
    by compare's rule (probe.compare.lost_on_test, appended in probe.run's test check)."""
    from probe.compare import lost_on_test
    from probe.predictions import paired_test_intervals
    from testdata import first_right

    labels = np.repeat(np.arange(3), 20)
    groups = {"easy": [2], "medium": [1], "hard": [0]}

    reference, fair = first_right(labels, [0, 20, 20]), first_right(labels, [20, 10, 20])  # hard a +100 pt, medium b −50 pt
    delta, classes = paired_test_intervals(reference, fair, 3, groups)
    assert lost_on_test(reference, fair, groups, delta, classes, list("abc")) == (
        " Lost beyond noise on test against the reference: the medium third -50.0 pt; 1 class (b -50.0 pt; by "
        "chance alone about 0.075 of 3 would leave out 0 this way) "
        "(mr2probe compare of the two runs lists every class).")
    assert compare_reports(_rep("erm", [0, 1, 1], groups, 2 / 3), _rep("fair", [1, 0.5, 1], groups, 5 / 6),
                           (reference, fair)).per_class[1].beyond_noise is True  # the rule compare's row uses
    few = first_right(labels, [0, 17, 20])  # b −15 pt on 3 images: within noise (3 of 3 one way is p = 0.25), said by neither
    delta, classes = paired_test_intervals(reference, few, 3, groups)
    assert lost_on_test(reference, few, groups, delta, classes, list("abc")) == ""


def test_a_comparison_without_stored_predictions_says_what_it_lacks_and_why():
    """A run written before test predictions were stored, compared with a new one (an upgrade round): the tables'
    'Δ points [95% interval]' columns stood without an interval and no verdict was given, with no word of why."""
    from probe.compare import NO_PREDICTIONS, comparison_facts
    from probe.predictions import Predictions

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("old", [1.0, 1.0, 0.5], groups, 5 / 6), _rep("new", [1.0, 1.0, 0.8], groups, 14 / 15)
    unpaired = compare_reports(base, other)
    assert unpaired.metrics["hard"].delta_ci is None and unpaired.verdict_text is None
    assert unpaired.warnings == [NO_PREDICTIONS] and ("warning", NO_PREDICTIONS) in comparison_facts(unpaired)
    assert "predictions.npz" in NO_PREDICTIONS and "train it again" in NO_PREDICTIONS
    assert "stored test predictions (predictions.npz)" in " ".join(format_comparison(unpaired, width=400).split())
    labels = np.repeat(np.arange(3), 10)
    paired = compare_reports(base, other, (Predictions(labels, labels[None], np.full(30, 0.9)),
                                           Predictions(labels, labels[None], np.full(30, 0.9))))
    assert paired.warnings == []


def test_class_names_in_square_brackets_are_text_not_rich_markup():
    """'crane [bird]' lost its '[bird]' in the terminal tables, and a name with '[/]' ended compare (and train and
    report: tests/probe/test_report.py) in a MarkupError (a many-classes round)."""
    for names in (["crane [bird]", "crane [machine]", "x [/] y"],
                  ["animal:cat:1", "hot :dog: stand", "plain"]):  # nor emoji codes (they printed 'animal🐱1')
        groups = {"easy": [0], "medium": [1], "hard": [2]}
        base, other = (_rep(run, [0.9, 0.7, 0.5], groups, 0.7, names=names) for run in ("erm", "mr2"))
        text = format_comparison(compare_reports(base, other), width=200)
        assert all(name in text for name in names)


@pytest.mark.parametrize("interval, p_value, total, expected", [
    ([0.02, 0.10], 0.01, 3.0, True),     # above 0, images lean up, test passes
    ([-0.10, -0.02], 0.01, -3.0, True),  # below 0, images lean down
    ([0.0, 0.10], 0.01, 3.0, False),     # a bound exactly at 0 (snap_zero makes them so) does not leave out 0
    ([-0.10, 0.0], 0.01, -3.0, False),
    ([0.02, 0.10], 0.01, -1.0, False),   # the interval above 0 but the (weighted) images lean down: a macro mean
    ([-0.10, -0.02], 0.01, 2.0, False),  # and an image sum can part
    ([0.02, 0.10], 0.01, 0.0, False),    # no lean at all
    ([0.02, 0.10], 0.051, 3.0, False),   # the test does not pass
    ([0.02, 0.10], 0.05, 3.0, True),     # at the level, it does (p ≤ 0.05)
    (None, 0.01, 3.0, None),
    ([float("nan"), float("nan")], 0.01, 3.0, None),
])
def test_beyond_noise_needs_an_interval_leaving_out_zero_images_leaning_its_way_and_the_test(interval, p_value, total,
                                                                                          expected):
    """probe.compare.beyond_noise, condition by condition (each the rule's docstring states): dropping the lean
    condition, or reading an interval whose bound is exactly 0 as leaving out 0, passed every other test."""
    from probe.compare import beyond_noise

    assert beyond_noise(interval, p_value, total) is expected


def test_a_loss_past_the_budget_needs_its_interval_below_it_images_leaning_down_and_the_test():
    """probe.compare.lost_beyond_budget: the interval wholly below −budget, the images' (weighted) sum below 0, and
    p ≤ 0.05; an interval below the budget whose images lean up is no loss beyond noise."""
    from probe.compare import lost_beyond_budget

    assert lost_beyond_budget([-0.08, -0.03], 0.01, -4.0, 0.02)
    assert not lost_beyond_budget([-0.08, -0.03], 0.01, 1.0, 0.02)    # images lean up
    assert not lost_beyond_budget([-0.08, -0.03], 0.2, -4.0, 0.02)    # test does not pass
    assert not lost_beyond_budget([-0.08, -0.01], 0.01, -4.0, 0.02)   # the interval reaches past −budget
    assert not lost_beyond_budget(None, 0.01, -4.0, 0.02)


def test_class_evidence_is_each_classs_own_test_on_shuffled_labels():
    """class_evidence gives each class the counts and sign-flip test of its own images' differences, as evidence()
    of that class's mask does, with the test images in any order (not sorted by class), and two classes whose
    differences sum alike but differ (+1, +1, −1, −1 against four 0s) keep their own counts and p."""
    from probe.compare import class_evidence, evidence
    from probe.predictions import Predictions

    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(4), [12, 4, 4, 10])
    base_right = np.ones(labels.size, dtype=bool)
    other_right = base_right.copy()
    other_right[np.flatnonzero(labels == 0)[:9]] = False          # class 0: 9 broken
    base_right[np.flatnonzero(labels == 1)[:2]] = False           # class 1: 2 fixed, 2 broken (sum 0)
    other_right[np.flatnonzero(labels == 1)[2:]] = False
    base_right[np.flatnonzero(labels == 3)[:7]] = False           # class 3: 7 fixed; class 2: unchanged (sum 0)
    order = rng.permutation(labels.size)
    labels, base_right, other_right = labels[order], base_right[order], other_right[order]
    wrong = (labels + 1) % 4
    base = Predictions(labels, np.where(base_right, labels, wrong)[None, :], np.ones(labels.size))
    other = Predictions(labels, np.where(other_right, labels, wrong)[None, :], np.ones(labels.size))
    got = class_evidence(base, other, np.tile([-1.0, 1.0], (4, 1)))
    diff = other.correct - base.correct
    for k in range(4):
        changed, p_value, total = evidence(diff[labels == k], 1)
        assert got[k][:3] == (changed, p_value, total), k
    assert [g[0] for g in got] == [[0, 9], [2, 2], [0, 0], [7, 0]]


def _seeded(labels, accuracies):
    """Predictions of one seed per accuracy: each class's first share of images right, the rest taken for the next
    class."""
    from probe.predictions import Predictions

    rows = []
    for acc in accuracies:
        rank = np.concatenate([np.arange(n) for n in np.bincount(labels)])
        rows.append(np.where(rank < acc * np.bincount(labels)[labels], labels, (labels + 1) % 3))
    return Predictions(labels, np.array(rows), np.full(labels.size, 0.9))


def test_a_difference_within_the_seeds_spread_says_so_beside_its_test_interval():
    """Compare's intervals resample the test images, each run's heads held as trained: runs whose seeds scored 70,
    80 and 90 % against 75, 85 and 95 % read "+5.0 pt [+3.9, +6.1], beyond noise" with nothing of the seeds'
    spread, though retraining moves that difference by ±23 pt. Each metric gets its spread over retraining,
    Welch's t_ν·√(s_a²/3 + s_b²/3) = t_4·√(2·0.1²/3) (ν = 4), and a warning names where it is wider than the test
    interval."""
    import math

    from probe.numbers import fixed

    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.8] * 3, groups, 0.8), _rep("y", [0.85] * 3, groups, 0.85)
    base.seeds.values, other.seeds.values = [0, 1, 2], [3, 4, 5]  # README's example: other seeds, independent
    cmp = compare_reports(base, other, (_seeded(labels, [0.7, 0.8, 0.9]), _seeded(labels, [0.75, 0.85, 0.95])))
    spread = 2.776445 * math.sqrt(2 * 0.1 ** 2 / 3)
    for key in ("overall", "balanced", "easy", "medium", "hard"):
        assert cmp.metrics[key].seed_spread == pytest.approx(spread, rel=1e-6), key
    assert cmp.metrics["worst_class"].seed_spread is None
    overall = cmp.metrics["overall"]
    assert overall.delta == pytest.approx(0.05) and overall.beyond_noise
    lo, hi = overall.delta_ci
    said = (f"the runs' seeds (3 and 3) spread wider than the test interval for overall (±22.7 pt over retraining "
            f"against ±{fixed(50 * (hi - lo), 1)} pt over the test images, called beyond noise over the test images "
            "alone); balanced (±22.7 pt")
    assert [w for w in cmp.warnings if w.startswith(said)], cmp.warnings
    # seeds that agree: no spread, nothing said
    steady = compare_reports(base, other, (_seeded(labels, [0.8] * 3), _seeded(labels, [0.85] * 3)))
    assert steady.metrics["overall"].seed_spread == pytest.approx(0.0, abs=1e-12) and steady.warnings == []


def test_the_seed_spread_of_independent_seeds_is_welch_s_interval_not_the_normal_one():
    """With 2 or 3 seeds the normal 1.96·√(s_a²/S_a + s_b²/S_b) understated the range over retraining (t at 4
    degrees of freedom is 2.78): the spread is Welch's interval, scipy's ttest_ind(equal_var=False) half-width,
    seeds that agree on one side or both included (0, not nan, where both do)."""
    from scipy.stats import ttest_ind

    from probe.seed_spread import seed_spread

    cases = [([0.7, 0.8, 0.9], [0.75, 0.85, 0.95]), ([0.7, 0.9], [0.8, 0.81]), ([0.7, 0.8, 0.9], [0.8, 0.82]),
             ([0.8, 0.8, 0.8], [0.75, 0.85, 0.95, 0.9]), ([0.6, 0.7, 0.8, 0.9, 0.65], [0.8, 0.8])]
    for base, other in cases:
        base, other = np.array(base), np.array(other)
        ci = ttest_ind(other, base, equal_var=False).confidence_interval()
        assert seed_spread(base, other) == pytest.approx((ci.high - ci.low) / 2, rel=1e-9), (base, other)
    assert seed_spread(np.array([0.7, 0.8, 0.9]), np.array([0.75, 0.85, 0.95])) == pytest.approx(0.22669579, rel=1e-6)
    assert seed_spread(np.full(3, 0.8), np.full(2, 0.85)) == 0.0
    assert seed_spread(np.array([0.8]), np.array([0.8, 0.9])) is None


def test_the_seed_spread_of_runs_of_the_same_seeds_is_the_paired_interval_of_their_differences():
    """Runs that trained the same seeds (the default 0, 1, 2 of every run) share each seed's initialisation and
    mini-batch order, yet their seeds were taken as independent: seeds at 70, 80, 90 % against 75, 86, 95 % moved
    together, and Welch's ±23 pt stood for a difference that moved by 5 or 6 pt seed by seed. Where both reports
    list the same seeds the spread is the paired interval, scipy's ttest_rel half-width; other seeds, Welch's."""
    from scipy.stats import ttest_ind, ttest_rel

    from probe.seed_spread import paired_seed_spread, per_seed_metrics, seed_pairing

    for base, other in [([0.7, 0.8, 0.9], [0.75, 0.86, 0.95]), ([0.7, 0.9], [0.8, 0.81]),
                        ([0.6, 0.7, 0.8, 0.9, 0.65], [0.62, 0.75, 0.79, 0.93, 0.7])]:
        base, other = np.array(base), np.array(other)
        ci = ttest_rel(other, base).confidence_interval()
        assert paired_seed_spread(base, other) == pytest.approx((ci.high - ci.low) / 2, rel=1e-9), (base, other)
    assert paired_seed_spread(np.array([0.7, 0.8, 0.9]), np.array([0.75, 0.85, 0.95])) == 0.0
    assert paired_seed_spread(np.array([0.7]), np.array([0.8])) is None

    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.8] * 3, groups, 0.8), _rep("y", [0.85] * 3, groups, 0.85)
    one, two = _seeded(labels, [0.7, 0.8, 0.9]), _seeded(labels, [0.75, 0.86, 0.95])
    a, b = (per_seed_metrics(p, 3, groups)["overall"] for p in (one, two))
    base.seeds.values = other.seeds.values = [0, 1, 2]
    cmp = compare_reports(base, other, (one, two))
    ci = ttest_rel(b, a).confidence_interval()
    assert cmp.seed_pairing == "same seeds"
    assert cmp.metrics["overall"].seed_spread == pytest.approx((ci.high - ci.low) / 2, rel=1e-9)
    assert cmp.metrics["overall"].seed_spread == pytest.approx(0.0143422, rel=1e-5)
    other.seeds.values = [3, 4, 5]
    cmp = compare_reports(base, other, (one, two))
    ci = ttest_ind(b, a, equal_var=False).confidence_interval()
    assert cmp.seed_pairing == "independent"
    assert cmp.metrics["overall"].seed_spread == pytest.approx((ci.high - ci.low) / 2, rel=1e-9)
    assert cmp.warnings[-1].endswith("the runs' seeds taken as independent (Welch))"), cmp.warnings
    # seeds unknown or not one per row of the predictions: independent
    assert seed_pairing(None, one, two) == seed_pairing(([0], [0]), one, two) == "independent"
    assert seed_pairing(([0, 1, 2], [0, 1, 2]), one, two) == "same seeds"
    assert seed_pairing(([0, 1, 2], [0, 2, 1]), one, two) == "independent"


def test_runs_of_one_seed_each_have_no_seed_pairing_as_no_spread_was_measured():
    """Two runs of one seed, both seed 0: no spread over retraining is measured ("unmeasured" in the views), yet
    seed_pairing read "same seeds" and the dashboard's note "Over retraining: paired seed by seed" beside cards
    without a spread (a review round). It is null where no metric's spread was measured."""
    from probe.compare import comparison_facts

    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.8] * 3, groups, 0.8), _rep("y", [0.85] * 3, groups, 0.85)
    base.seeds.values = other.seeds.values = [0]
    cmp = compare_reports(base, other, (_seeded(labels, [0.8]), _seeded(labels, [0.85])))
    assert all(cmp.metrics[key].seed_spread is None for key in ("overall", "balanced", "easy", "medium", "hard"))
    assert cmp.seed_pairing is None
    assert dict(comparison_facts(cmp))["over retraining"].startswith("unmeasured: the base and the other runs have")
    # two seeds each: measured, and paired
    base.seeds.values = other.seeds.values = [0, 1]
    two = compare_reports(base, other, (_seeded(labels, [0.8, 0.82]), _seeded(labels, [0.85, 0.86])))
    assert two.seed_pairing == "same seeds" and two.metrics["overall"].seed_spread is not None


def test_unpaired_intervals_are_each_runs_own_intervals_square_and_added():
    """Runs whose test images cannot be matched are two independent samples: each delta's interval is Newcombe's
    square-and-add of the two runs' own intervals (their Wilson intervals here: classes of 30 images or more), as
    computed here with scipy. A bootstrap of each run apart cannot move a class all right or all wrong: 0 of 40
    against 40 of 40 read +100 [+100, +100], and overall [+28.6, +28.6] beside it (a review)."""
    import math

    from scipy.stats import binomtest

    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), [50, 50, 40])
    base_pred, other_pred = labels.copy(), labels.copy()
    base_pred[labels == 2] = 0  # c: 0 of 40 right against 40 of 40
    base_pred[:5] = 1  # a: 45 of 50 right against 50 of 50
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.9, 1.0, 0.0], groups, 95 / 140), _rep("y", [1.0, 1.0, 1.0], groups, 1.0)
    conf = np.full(labels.size, 0.9)
    order = np.random.default_rng(0).permutation(labels.size)  # no sources or digests, other order: unpaired
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels[order], other_pred[order][None], conf)))
    assert cmp.pairing == "unpaired"

    def wilson(k, n):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        return ci.low, ci.high

    def newcombe(k_base, k_other, n):
        (bl, bh), (ol, oh) = wilson(k_base, n), wilson(k_other, n)
        pb, po = k_base / n, k_other / n
        return [max(po - pb - math.hypot(po - ol, bh - pb), -1.0), min(po - pb + math.hypot(oh - po, pb - bl), 1.0)]

    for row, (k_base, k_other, n) in zip(cmp.per_class, [(45, 50, 50), (50, 50, 50), (0, 40, 40)]):
        assert row.delta_ci == pytest.approx(newcombe(k_base, k_other, n), abs=1e-9), row.name
    assert cmp.per_class[2].delta_ci[0] < 0.95 and cmp.metrics["overall"].delta_ci == \
        pytest.approx(newcombe(95, 140, 140), abs=1e-9)
    assert cmp.metrics["hard"].delta_ci == pytest.approx(newcombe(0, 40, 40), abs=1e-9)


def test_a_run_compared_with_itself_has_no_seed_spread():
    """One probe's predictions against themselves: every interval is pinned at 0 (the difference is 0 by
    construction), and so is the difference over retraining: the warning had read "±16.0 pt over retraining against
    ±0.0 pt over the test images" for a run compared with itself (a review)."""
    labels = np.repeat(np.arange(3), 400)
    base = _rep("x", [0.8] * 3, {"easy": [0], "medium": [1], "hard": [2]}, 0.8)
    same = _seeded(labels, [0.7, 0.8, 0.9])
    cmp = compare_reports(base, base, (same, same))
    for key in ("overall", "balanced", "easy", "medium", "hard"):
        assert cmp.metrics[key].delta_ci == [0.0, 0.0] and cmp.metrics[key].seed_spread == 0.0, key
    assert cmp.warnings == []


def test_a_terminal_table_without_a_class_that_changed_prints_only_its_sentence():
    groups = {"easy": [0, 3], "medium": [1], "hard": [2]}
    names = ["a", "b", "c", "d"]
    base = _rep("erm", [0.9, 0.7, 0.5, 0.8], groups, 0.70, names=names)
    text = format_comparison(compare_reports(base, base), max_classes=2)
    assert "no class's test accuracy changed, of 4 (every class: the comparison's JSON)" in text
    # no empty table above it: neither its title nor its header row
    assert "per class" not in text and "Δ points [95% interval]" in text.split("test accuracy")[1]
    assert not any(line.split()[:2] == ["class", "group"] for line in text.splitlines())


def test_runs_of_the_same_predictions_say_no_change_not_within_noise():
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 20)
    predicted = labels.copy()
    predicted[::7] = 0
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base = _rep("erm", [1.0, 17 / 20, 17 / 20], groups, 54 / 60)
    one = Predictions(labels, predicted[None], np.full(60, 0.9))
    cmp = compare_reports(base, base, (one, one))
    text = format_comparison(cmp, width=160)
    # every interval pinned at 0: the runs are one probe, so each row says so, none "within noise"
    assert "within noise" not in text.split("test accuracy (%), seed means")[1]
    rows = [line for line in text.splitlines() if "+0.00 [+0.00, +0.00]" in line]
    assert len(rows) == 6 + 3 and all(line.endswith("+0.00 [+0.00, +0.00] no change (same predictions)")
                                      for line in (row.rstrip() for row in rows))


def test_several_runs_say_which_comparison_s_intervals_are_unpaired():
    from probe.compare_many import compare_many, format_many

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base = _rep("erm", [0.9, 0.7, 0.5], groups, 0.70)
    one, two = (compare_reports(base, _rep(run, [0.8, 0.7, 0.6], groups, 0.70)) for run in ("mr2", "dro"))
    one.pairing, two.pairing = "rows", "unpaired"

    def note(comparisons):
        return " ".join(format_many(compare_many(comparisons), width=200).split())

    assert "Each delta in points with its 95 % paired interval; 'gain'" in note([one, one])
    assert ("Each delta in points with its 95 % paired interval, but unpaired for dro (its test images could not "
            "be matched image by image: each run's own interval square-and-added, no sign-flip test); 'gain'") \
        in note([one, two])
    assert ("Each delta in points with its 95 % unpaired interval (the runs' test images could not be matched "
            "image by image: each run's own interval square-and-added, no sign-flip test); 'gain'") \
        in note([two, two])


def test_compare_and_compare_of_several_runs_fit_every_line_in_the_width_without_breaking_a_number():
    """COLUMNS=80 printed compare's tables 110 columns wide (and the terminal wrapped each line): in parts of the
    columns that fit, as the report's, each delta whole with its interval on one line."""
    import re

    from probe.compare import class_rows, metric_rows
    from probe.compare_many import compare_many, format_many
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 100)
    base_pred = labels.copy()
    base_pred[200:250] = 0
    other_pred = base_pred.copy()
    other_pred[200:230] = 2
    other_pred[100:104] = 0                  # class b: 4 images lost, within noise with its test
    conf = np.full(300, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base = _rep("erm", [1.0, 1.0, 0.5], groups, 5 / 6)
    other = _rep("dro", [1.0, 0.96, 0.8], groups, 0.92)
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels, other_pred[None], conf)))
    deltas = [re.match(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", row[-1]).group()
              for row in metric_rows(cmp) + class_rows(cmp)[0]]
    assert len(deltas) == 6 + 3
    for width in (80, 90, 110, 140):
        for text in (format_comparison(cmp, width=width), format_many(compare_many([cmp, cmp]), width=width)):
            lines = text.splitlines()
            assert max(map(len, lines)) <= width, (width, max(lines, key=len))
        one = format_comparison(cmp, width=width)
        assert all(any(delta in line for line in one.splitlines()) for delta in deltas), width
        # compare_many's cells: each delta's interval whole on its line
        many = format_many(compare_many([cmp, cmp]), width=width)
        assert re.search(r"\[\+\d+\.\d, \+\d+\.\d\]", many) and not re.search(r"\[[+-]\d+\.\d,\s*$", many, re.M)


def test_a_run_that_kept_its_reference_s_heads_has_no_seed_spread_to_warn_of():
    """A disparity run that found no safe improvement keeps its ERM reference's heads: the same predictions seed by
    seed, every interval pinned at 0. Its seeds' spread was still taken as two runs' independent retraining,
    1.96·√(2·s²/3), and a warning said the +0.0 "may not hold when the runs are trained again" (a new-user round,
    Fashion-MNIST, ±0.3 pt overall against ±0.0): one probe's difference with itself is 0 on retraining too."""
    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("erm", [0.8] * 3, groups, 0.8), _rep("fair", [0.8] * 3, groups, 0.8)
    seeds = _seeded(labels, [0.7, 0.8, 0.9])
    cmp = compare_reports(base, other, (seeds, _seeded(labels, [0.7, 0.8, 0.9])))
    for key in ("overall", "balanced", "easy", "medium", "hard"):
        assert cmp.metrics[key].delta_ci == [0.0, 0.0], key
        assert cmp.metrics[key].seed_spread == 0.0, key
    assert not [w for w in cmp.warnings if "spread wider" in w], cmp.warnings
    # one seed on a side: retraining goes unmeasured, as for two probes
    one = compare_reports(base, other, (_seeded(labels, [0.7]), _seeded(labels, [0.7])))
    assert one.metrics["overall"].seed_spread is None


def test_the_views_give_the_seed_spread_over_retraining_or_say_it_is_unmeasured():
    """The terminal, Markdown and HTML views gave each Δ its interval over the test images and nothing of the
    seeds' spread unless it was the wider (then a warning): a +2.1 [+0.4, +3.8] read as the whole uncertainty, and
    runs of one seed never said that retraining went unmeasured (a new-user round). A line says both."""
    import html

    from probe.compare import comparison_facts
    from probe.export import comparison_html, comparison_markdown, markdown_escape

    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.8] * 3, groups, 0.8), _rep("y", [0.85] * 3, groups, 0.85)
    three = compare_reports(base, other, (_seeded(labels, [0.79, 0.8, 0.81]), _seeded(labels, [0.84, 0.85, 0.86])))
    said = ("±2.3 pt overall, ±2.3 balanced, ±2.3 easy, ±2.3 medium, ±2.3 hard: the 95 % range of each Δ over "
            "retraining (the runs' 3 and 3 seeds, taken as independent (Welch); seed_spread), which the intervals, "
            "over the test images, leave out")
    assert ("over retraining", said) in comparison_facts(three)
    assert f"over retraining: {said}" in " ".join(format_comparison(three, width=400).split())
    assert f"- **Over retraining:** {markdown_escape(said)}" in comparison_markdown(three)
    assert f"<dt>Over retraining</dt><dd>{html.escape(said)}</dd>" in comparison_html(three)
    # the line says how the spread took the seeds: runs of the same seeds paired seed by seed
    base.seeds.values = other.seeds.values = [0, 1, 2]
    same = compare_reports(base, other, (_seeded(labels, [0.79, 0.8, 0.81]), _seeded(labels, [0.84, 0.85, 0.86])))
    assert same.seed_pairing == "same seeds"
    assert dict(comparison_facts(same))["over retraining"] == (
        "±0.0 pt overall, ±0.0 balanced, ±0.0 easy, ±0.0 medium, ±0.0 hard: the 95 % range of each Δ over retraining "
        "(the runs' 3 and 3 seeds, paired seed by seed; seed_spread), which the intervals, over the test images, "
        "leave out")
    one = compare_reports(base, other, (_seeded(labels, [0.8]), _seeded(labels, [0.85, 0.86])))
    assert ("over retraining", "unmeasured: the base run has 1 seed, so the intervals hold test sampling alone and "
            "retraining may move each Δ beyond them (train each run with --seeds 3 or more)") in comparison_facts(one)
    # without stored predictions nothing is measured at all, which NO_PREDICTIONS already says
    bare = compare_reports(base, other)
    assert not [label for label, _ in comparison_facts(bare) if label == "over retraining"]


def test_images_both_caches_hold_under_other_labels_are_not_called_only_one_run_s():
    """A re-extraction after a test label was fixed: the image is in both caches, under two labels, so it cannot be
    paired (a pair needs one label). The warning called it one of those "only one run has" on each side, as if
    the caches held other images (a new-user round); it says how many both hold under another label."""
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 4)
    digests = np.random.default_rng(5).integers(0, 256, (12, 16), dtype=np.uint8)
    fixed_labels = labels.copy()
    fixed_labels[[1, 6]] = [2, 0]  # two test labels corrected in the second extraction
    conf = np.full(12, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.75] * 3, groups, 0.75), _rep("y", [0.75] * 3, groups, 0.75)
    cmp = compare_reports(base, other, (Predictions(labels, labels[None], conf, digests=digests),
                                        Predictions(fixed_labels, fixed_labels[None], conf, digests=digests)))
    assert cmp.pairing == "content digests" and cmp.discordant.images == 10
    assert cmp.warnings[0] == ("the runs were trained on two caches: their test images are paired by content "
                               "digests, 10 in both (of 12 base and 12 other test images); every accuracy, interval "
                               "and count here is of those 10, the 2 both caches hold under another label (a label "
                               "changed between the extractions) left out (calibration and cost: each run's own)")
    # one relabelled and one image only the base run has: both said, apart
    cmp = compare_reports(base, other, (Predictions(labels, labels[None], conf, digests=digests),
                                        Predictions(fixed_labels[2:], fixed_labels[None, 2:], conf[2:],
                                                    digests=digests[2:])))
    assert ("of those 9, the 2 and 0 only one run has and the 1 both caches hold under another label (a label "
            "changed between the extractions) left out") in cmp.warnings[0]
    # the same images in another order: paired by digests, none left out (it read "of those 12,  left out")
    order = np.array([1, 0, 2, 3, 5, 4, 6, 7, 8, 9, 11, 10])
    cmp = compare_reports(base, other, (Predictions(labels, labels[None], conf, digests=digests),
                                        Predictions(labels[order], labels[None, order], conf, digests=digests[order])))
    assert cmp.pairing == "content digests" and cmp.warnings[0].endswith(
        "every accuracy, interval and count here is of those 12, none left out (calibration and cost: each run's own)")


def test_images_both_caches_hold_under_other_labels_are_counted_apart_when_paired_by_paths():
    """The same image under two labels (a test label fixed between two extractions of one data set, the labels from
    a list file, so the path stays): paired by source paths it was counted among "the 2 and 2 only one run has",
    as if each cache held images the other lacks; only a pairing by content digests counted it apart. Both
    pairings count it through Matched.relabelled."""
    from probe.predictions import Predictions, match_images

    labels = np.repeat(np.arange(3), 4)
    paths = np.array([f"data/{i}.png" for i in range(12)])
    fixed = labels.copy()
    fixed[[1, 6]] = [2, 0]  # two test labels corrected in the second extraction
    conf = np.full(12, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    one, two = Predictions(labels, labels[None], conf, paths), Predictions(fixed, fixed[None], conf, paths)
    assert match_images(one, two).relabelled == 2
    cmp = compare_reports(_rep("x", [0.75] * 3, groups, 0.75), _rep("y", [0.75] * 3, groups, 0.75), (one, two))
    assert cmp.pairing == "source paths" and cmp.discordant.images == 10
    assert cmp.warnings == ["the runs were trained on two caches: their test images are paired by source paths, 10 in "
                            "both (of 12 base and 12 other test images); every accuracy, interval and count here is "
                            "of those 10, the 2 both caches hold under another label (a label changed between the "
                            "extractions) left out (calibration and cost: each run's own)"]
    # one relabelled and three only the base run has (two the other lacks, one path it never held): apart
    extra = Predictions(np.r_[labels, 0], np.r_[labels, 0][None], np.full(13, 0.9), np.append(paths, "x/a/0.png"))
    other = Predictions(fixed[2:], fixed[None, 2:], conf[2:], paths[2:])
    assert ("of those 9, the 3 and 0 only one run has and the 1 both caches hold under another label"
            in compare_reports(_rep("x", [0.75] * 3, groups, 0.75), _rep("y", [0.75] * 3, groups, 0.75),
                               (extra, other)).warnings[0])


def test_a_comparison_on_two_caches_keys_each_run_s_digests_once(monkeypatch):
    """compare matched every test image's digest twice: once to pair the images (match_images), once more to count
    those relabelled between the extractions (relabelled, a second match of the same digests). One match gives
    both: each run's digests are read as keys once."""
    import probe.predictions
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 4)
    digests = np.random.default_rng(5).integers(0, 256, (12, 16), dtype=np.uint8)
    fixed = labels.copy()
    fixed[[1, 6]] = [2, 0]
    conf = np.full(12, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    keyed, keys = [], probe.predictions._digest_keys
    monkeypatch.setattr(probe.predictions, "_digest_keys", lambda p: keyed.append(p) or keys(p))
    cmp = compare_reports(_rep("x", [0.75] * 3, groups, 0.75), _rep("y", [0.75] * 3, groups, 0.75),
                          (Predictions(labels, labels[None], conf, digests=digests),
                           Predictions(fixed, fixed[None], conf, digests=digests)))
    assert "the 2 both caches hold under another label" in cmp.warnings[0] and len(keyed) == 2


def test_several_runs_on_two_caches_give_the_base_s_accuracy_on_its_own_test_split():
    """mr2probe compare BASE X Y (GET /api/compare/many) with X on another cache (paired on the 15 of 30 test images
    both caches hold) and Y on the base's cache (all 30): the base's accuracies and the note were the first
    comparison's, those of the 15 shared images, above a row of Y computed on all 30 (a new-user round: 72.7 %
    of 11 shared images above rows on 300, where the base scored 74.4 %)."""
    from probe.compare_many import compare_many
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), 10)
    digests = np.random.default_rng(6).integers(0, 256, (30, 16), dtype=np.uint8)
    groups = {"easy": [0], "medium": [1], "hard": [2]}

    def kept(p, rows=slice(None)):
        return Predictions(p.labels[rows], p.predicted[:, rows], p.confidence[rows], digests=digests[rows])

    base_pred = kept(_seeded(labels, [0.8]))
    half = np.concatenate([np.arange(k * 10, k * 10 + 5) for k in range(3)])  # the first 5 of each class
    base, x, y = (_rep(name, [0.8] * 3, groups, 0.8) for name in ("base", "x", "y"))
    on_shared = compare_reports(base, x, (base_pred, kept(_seeded(labels, [0.9]), half)))
    on_own = compare_reports(base, y, (base_pred, kept(_seeded(labels, [0.9]))))
    assert on_shared.pairing == "content digests" and on_own.pairing == "rows"
    assert on_shared.metrics["overall"].base == 1.0  # the base gets those 15 right
    many = compare_many([on_shared, on_own])
    assert many.base_scores["overall"] == pytest.approx(0.8)  # 24 of its 30 test images
    assert many.base_ci["overall"] == on_own.metrics["overall"].base_ci
    assert many.note.startswith("2 runs, each against the base base: both runs scored on the groups of the base run "
                                "base (own validation accuracy). The base's accuracies are on its own test split; "
                                "x, on another cache, is compared on the test images both caches hold (its warning "
                                "says how many).")


def test_several_runs_print_each_run_s_spread_over_retraining_as_two_run_compare_does():
    """mr2probe compare RUN_A RUN_B RUN_C printed each delta and its test interval but not how far retraining moves
    it, which two-run compare prints: each run's line is the pairwise retraining_sentence, in the terminal and in the
    Markdown above the table (not among its warnings)."""
    from probe.compare import retraining_sentence
    from probe.compare_many import compare_many, format_many
    from probe.export import many_markdown

    labels = np.repeat(np.arange(3), 400)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.8] * 3, groups, 0.8), _rep("y", [0.85] * 3, groups, 0.85)
    base.seeds.values = other.seeds.values = [0, 1, 2]
    cmp = compare_reports(base, other, (_seeded(labels, [0.7, 0.8, 0.9]), _seeded(labels, [0.75, 0.86, 0.95])))
    said = retraining_sentence(cmp)
    assert said.startswith("±1.4 pt overall, ") and "paired seed by seed" in said
    many = compare_many([cmp])
    assert f"over retraining (y): {said}\n" in format_many(many, width=1000)
    markdown = many_markdown(many)
    assert f"**Over retraining (y):** {said}" in markdown.split("## Δ points")[0], markdown


def test_the_worst_class_names_its_ties_as_the_report_says_them():
    """12 classes, 10 of them at 0 %: compare said "worst class (c0)" alone where the report says "tied with"
    (a first-user round); every view words the tie through WorstClass.label."""
    from probe.compare import metric_rows
    from probe.compare_many import compare_many, many_facts

    names = [f"c{k}" for k in range(12)]
    groups = {"easy": [10, 11], "medium": [0, 1, 2, 3], "hard": [4, 5, 6, 7, 8, 9]}
    base = _rep("erm", [0.0] * 10 + [0.5, 1.0], groups, 0.1, names=names)
    other = _rep("mr2", [0.0] * 10 + [1.0, 1.0], groups, 0.2, names=names)
    cmp = compare_reports(base, other)
    said = "c0 (tied with c1, c2, c3, c4, c5, c6, c7, c8, c9)"
    assert cmp.worst_class_ties["base"].model_dump() == {"name": "c0", "accuracy": 0.0, "text": said,
                                                          "tied_with": names[1:10], "tied_count": 9}
    assert metric_rows(cmp)[-1][0] == f"worst class ({said})"
    from probe.export import comparison_markdown
    assert f"| worst class ({said}) |" in comparison_markdown(cmp)
    facts = dict(many_facts(compare_many([cmp])))
    assert facts["base erm"].endswith(f"worst class 0.00 % ({said})")


def _tied_comparison():
    """13 classes 'class 0'..'class 12' of 20 test images, 'class 3'..'class 12' all wrong in both runs (tied at
    0 %), the other run 6 images of 'class 1' worse: a worst-class label of 20 words beside intervals."""
    from probe.predictions import Predictions

    k = 13
    names = [f"class {i}" for i in range(k)]
    labels = np.repeat(np.arange(k), 20)
    base_pred = np.where(labels >= 3, (labels + 1) % k, labels)
    other_pred = base_pred.copy()
    other_pred[np.flatnonzero(labels == 1)[:6]] = 2
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [0, 1, 2, 3], "medium": [4, 5, 6, 7], "hard": [8, 9, 10, 11, 12]}
    runs = [_rep(run, [float((p[labels == c] == c).mean()) for c in range(k)], groups,
                 float((p == labels).mean()), names=names) for run, p in (("erm", base_pred), ("dro", other_pred))]
    return compare_reports(*runs, (Predictions(labels, base_pred[None], conf),
                                   Predictions(labels, other_pred[None], conf)))


def test_the_metric_labels_wrap_between_words_at_every_width():
    """At 110 columns the metric label read 'worst …s 12)' (cut in its middle as a class name is), at 80 and 200
    whole (a first-user round): a label is words, wrapped between them at every width, and from the narrowest
    width the CLI prints (LEAST_WIDTH) no line is wider than the terminal."""
    from probe.compare import metric_rows
    from probe.report_text import LEAST_WIDTH

    cmp = _tied_comparison()
    label = metric_rows(cmp)[-1][0]
    assert label == ("worst class (class 3 (tied with class 4, class 5, class 6, class 7, class 8, class 9, class 10, "
                     "class 11, class 12))")
    for width in range(60, 201):
        text = format_comparison(cmp, width=width)
        words = set(text.split())
        assert "…" not in text and all(word in words for word in label.split()), width
        assert width < LEAST_WIDTH or max(map(len, text.splitlines())) <= width, width
    # the label whole on one line where the table has the room
    assert f"  {label}  " in format_comparison(cmp, width=250)


def test_an_unpaired_comparison_says_why_its_images_could_not_be_paired():
    """Paths refused as ambiguous ('k0/0.png' names both 'train/k0/0.png' and 'test/k0/0.png') left compare
    unpaired with the generic warning, which did not say why (a first-user round): it says so, with how many."""
    from probe.predictions import Predictions

    labels = np.array([0, 0, 1, 1, 2, 2])
    conf = np.full(6, 0.9)
    base_pred, other_pred = labels.copy(), np.array([0, 0, 1, 0, 2, 2])
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base = _rep("erm", [1.0, 1.0, 1.0], groups, 1.0)
    other = _rep("dro", [1.0, 0.5, 1.0], groups, 5 / 6)
    ambiguous = Predictions(labels, base_pred[None], conf,
                            [f"{split}/{c}/0.png" for c in "abc" for split in ("train", "test")])
    # the other run's test split in another order: no row-by-row pairing
    order = [2, 3, 0, 1, 4, 5]
    plain = Predictions(labels[order], other_pred[order][None], conf, [f"{c}/0.png" for c in "bac" for _ in range(2)])
    cmp = compare_reports(base, other, (ambiguous, plain))
    assert cmp.pairing == "unpaired"
    assert cmp.warnings == [
        "the two runs' test images could not be matched image by image (no content digests stored (neither run's "
        "predictions keep any), and the source paths of 6 of the base run's 6 test images are ambiguous (a path "
        "naming two or more images of the other run, as 'cat/1.png' names both 'train/cat/1.png' and "
        "'test/cat/1.png', pairs with none)): every interval is unpaired, each run's own interval square-and-added "
        "with the other's as two independent samples', wider than a paired one, and no image is counted or "
        "sign-tested"]
    # paths of other images altogether: the data sets differ
    elsewhere = Predictions(labels[order], other_pred[order][None], conf,
                            [f"{c}/{i}.png" for c in "xyz" for i in range(2)])
    assert "no source path and label of one run names an image of the other's: the data sets differ" in \
        compare_reports(base, other, (ambiguous, elsewhere)).warnings[0]


def test_paths_ambiguous_in_a_paired_comparison_are_counted_apart_from_images_only_one_run_has():
    """Two caches paired by source paths where one base path ('a/0.png') names two of the other run's images
    ('train/a/0.png', 'test/a/0.png'): those three pair with none, refused as ambiguous, yet the warning counted
    them among "the 1 and 2 only one run has", as if the other run lacked them."""
    import numpy as np

    from probe.predictions import Predictions

    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [1.0, 1.0, 1.0], groups, 1.0), _rep("y", [1.0, 1.0, 1.0], groups, 1.0)
    base_labels, other_labels = np.array([0, 0, 1, 2]), np.array([0, 0, 0, 1, 2])
    base_paths = np.array(["a/0.png", "d/a/1.png", "d/b/2.png", "d/c/3.png"])
    other_paths = np.array(["train/a/0.png", "test/a/0.png", "d/a/1.png", "d/b/2.png", "d/c/3.png"])
    cmp = compare_reports(base, other, (Predictions(base_labels, base_labels[None], np.full(4, 0.9), base_paths),
                                        Predictions(other_labels, other_labels[None], np.full(5, 0.9), other_paths)))
    assert cmp.pairing == "source paths"
    assert cmp.warnings == ["the runs were trained on two caches: their test images are paired by source paths, 3 "
                            "in both (of 4 base and 5 other test images); every accuracy, interval and count here "
                            "is of those 3, the 1 and 2 whose source paths are ambiguous (a path naming two or more "
                            "images of the other run, as 'cat/1.png' names both 'train/cat/1.png' and "
                            "'test/cat/1.png', pairs with none) left out (calibration and cost: each run's own)"]


def test_each_run_s_stored_group_intervals_are_reused_on_its_own_test_split_and_equal_those_drawn(monkeypatch):
    """Balanced and third intervals take 4,000 draws of every class (two thirds of a 5,000-class comparison): on
    each run's own full test split (the same rows, or unpaired), its report's stored ``group_ci`` is read, not
    drawn again, and equals the draws exactly; a report without it, or the other run's on thirds of its own, is
    drawn as before."""
    import probe.uncertainty as uncertainty
    from probe.diagnostics import test_diagnostics
    from probe.predictions import Predictions

    labels = np.repeat(np.arange(3), [6, 40, 100])
    rng = np.random.default_rng(1)
    base_pred = np.where(rng.random((3, labels.size)) < 0.7, labels, (labels + 1) % 3)
    other_pred = np.where(rng.random((3, labels.size)) < 0.8, labels, (labels + 2) % 3)
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [2], "medium": [0], "hard": [1]}
    acc = lambda p: [float((p[:, labels == k] == k).mean()) for k in range(3)]  # noqa: E731
    pair = (Predictions(labels, base_pred, conf), Predictions(labels, other_pred, conf))
    bare = [_rep(run, acc(p), groups, float((p == labels).mean())) for run, p in (("erm", base_pred),
                                                                                  ("dro", other_pred))]

    def storing(reports, predictions):  # what each run stores: its report's group_ci of its split, through JSON
        reports = [r.model_copy(deep=True) for r in reports]
        for report, own in zip(reports, predictions):
            report.summary.group_ci = test_diagnostics(own, NAMES, groups).group_ci
        return [Report.model_validate_json(r.model_dump_json()) for r in reports]

    stored = storing(bare, pair)
    drawn = compare_reports(*bare, pair)
    calls = []
    real = uncertainty.group_intervals
    monkeypatch.setattr(uncertainty, "group_intervals", lambda *a, **k: calls.append(1) or real(*a, **k))
    reused = compare_reports(*stored, pair)
    assert calls == []  # neither run's drawn again
    assert reused.model_dump() == drawn.model_dump()  # every number, exactly
    for side in ("base", "other"):
        for key in ("balanced", "easy", "medium", "hard"):
            assert getattr(reused.metrics[key], f"{side}_ci") == getattr(stored[0 if side == "base" else 1].summary,
                                                                        "group_ci")[key]
    # unpaired (the other run's split in another order, no sources): each run's own full split still, reused
    order = np.random.default_rng(0).permutation(labels.size)
    shuffled = (pair[0], Predictions(labels[order], other_pred[:, order], conf))
    assert compare_reports(*storing(bare, shuffled), shuffled).model_dump() == \
        compare_reports(*bare, shuffled).model_dump()
    assert calls == [1, 1, 1, 1]  # storing the two runs', and the bare reports' two runs alone
    # the other run on thirds of its own: its stored intervals are of those, so the base run's thirds are drawn
    regrouped = stored[1].model_copy(deep=True)
    regrouped.grouping.groups = {"easy": [0], "medium": [1], "hard": [2]}
    calls.clear()
    assert compare_reports(stored[0], regrouped, pair).metrics == drawn.metrics
    assert calls == [1]


def test_each_run_s_class_intervals_are_written_in_one_pass_as_the_report_writes_them(monkeypatch):
    """Each run's class intervals went through interval_or_none class by class (10,000 calls for two runs of 5,000
    classes): one pass of intervals_or_none, the same values, None for a class without test images."""
    import probe.compare as compare
    from probe.predictions import Predictions
    from probe.uncertainty import class_accuracy_interval, intervals_or_none

    labels = np.repeat([0, 1], [5, 7])  # class c: no test images
    base_pred, other_pred = labels.copy(), labels.copy()
    base_pred[:2] = 1
    conf = np.full(labels.size, 0.9)
    groups = {"easy": [0], "medium": [1], "hard": [2]}
    base, other = _rep("x", [0.6, 1.0, 0.0], groups, 10 / 12), _rep("y", [1.0, 1.0, 0.0], groups, 1.0)
    calls = []
    real = compare.interval_or_none
    monkeypatch.setattr(compare, "interval_or_none", lambda *a: calls.append(1) or real(*a))
    cmp = compare_reports(base, other, (Predictions(labels, base_pred[None], conf),
                                        Predictions(labels, other_pred[None], conf)))
    assert len(calls) == 2 * len(cmp.metrics)  # each run's metric rows alone
    for side, pred in (("base", base_pred), ("other", other_pred)):
        expected = intervals_or_none(class_accuracy_interval((pred == labels).astype(float), labels, 3))
        assert [getattr(row, f"{side}_ci") for row in cmp.per_class] == expected
    assert expected[2] is None and cmp.per_class[2].base_ci is None
