"""The report's near_duplicates: test images that duplicate train or val images, near (by cosine) and identical
(by content digest) apart, the accuracy on them against the rest, the warning and the terminal line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from probe import ProbeConfig, Report, format_report, load_report, run_probe
from probe.near_duplicates import NEAR_DUPLICATE_RATIO, near_duplicate_threshold
from probe.report import FeatureSource
from testdata import LEAKY_IDENTICAL, LEAKY_NEAR, gaussian_splits, leaky_splits

NAMES = ["a", "b", "c"]
FAST = dict(epochs=20, lr_grid=[0.05], wd_grid=[0.0], seeds=[0, 1], cv=0)
WARNED = "may duplicate a train or val image"  # the warning's words: a caution to look at the pairs
NEAR, IDENTICAL = LEAKY_NEAR, LEAKY_IDENTICAL  # test rows made copies of train rows 10.. and 20..


def _leaky():
    return leaky_splits(NAMES)


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory):
    data, sources, digests = _leaky()
    out = tmp_path_factory.mktemp("runs") / "leaky"
    report = run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out, sources=sources, contents=digests,
                       features=FeatureSource(fingerprint="f" * 64, encoder="effnet-lite0"))
    return report, out, sources


def test_near_and_identical_copies_are_counted_apart_with_the_accuracy_on_them(leaky_run):
    report, _, sources = leaky_run
    found = report.near_duplicates
    assert found is not None and found.threshold == near_duplicate_threshold("effnet-lite0")
    assert (found.near, found.identical, found.test_images) == (len(NEAR), len(IDENTICAL), 60)
    assert {(p.test, p.seen) for p in found.examples} <= {(sources["test"][r], sources["train"][10 + r])
                                                          for r in NEAR}
    assert len(found.examples) == 3 and all(p.similarity >= 0.99 for p in found.examples)
    # the two accuracies split the seed-mean overall accuracy by their image counts
    dup = len(NEAR) + len(IDENTICAL)
    assert (dup * found.accuracy_duplicates + (60 - dup) * found.accuracy_rest) / 60 == pytest.approx(
        report.summary.overall, abs=1e-9)
    assert found.duplicates_ci[0] <= found.accuracy_duplicates <= found.duplicates_ci[1]
    assert found.rest_ci[0] <= found.accuracy_rest <= found.rest_ci[1]
    warning = [w for w in report.warnings if WARNED in w]
    assert len(warning) == 1 and warning[0].startswith(f"5 of the 60 test images {WARNED} (")
    assert "check the pairs (`mr2probe report RUN --near-duplicates`): where they are copies" in warning[0]
    assert "remove them" not in warning[0]
    text = " ".join(format_report(report).split())  # the terminal wraps at its width
    assert ("5 near-duplicates (cosine ≥ 0.9 of effnet-lite0 features, 2.5× closer than to any other image, or ≥ "
            "0.99), 2 byte-identical, of 60") in text
    assert found.ratio == NEAR_DUPLICATE_RATIO


def test_the_field_is_kept_in_report_json_and_older_reports_without_it_load(leaky_run):
    report, out, _ = leaky_run
    assert load_report(out).near_duplicates == report.near_duplicates
    older = json.loads((out / "report.json").read_text())
    del older["near_duplicates"]
    assert Report.model_validate(older).near_duplicates is None
    older = json.loads((out / "report.json").read_text())
    del older["near_duplicates"]["ratio"]  # checked by the threshold alone, and said so
    found = Report.model_validate(older).near_duplicates
    assert found.ratio is None and "(cosine ≥ 0.9 of effnet-lite0 features), 2 byte-identical" in found.describe()


def test_look_alikes_crowding_past_the_threshold_are_not_duplicates_but_copies_among_them_are():
    """Fashion-MNIST's products on effnet-lite0: distinct test images pass 0.90 against crowds of train look-alikes
    (82 of the demo's 1,000 were warned of, 86 of its 900 train images); the report's test check and its check
    inside train flag only the copies (the ratio test), and an image present twice in train (the bar)."""
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(3, 64))
    crowd = lambda k, n: (centres[k] + 0.22 * rng.normal(size=(n, 64))).astype(np.float32)  # noqa: E731
    data = {split: (np.concatenate([crowd(k, n) for k in range(3)]), np.repeat(np.arange(3), n))
            for split, n in (("train", 30), ("val", 10), ("test", 20))}
    train_x, test_x = data["train"][0], data["test"][0]
    train_x[29] = train_x[5]  # an image present twice in train
    test_x[[0, 25]] = train_x[[3, 40]] + 0.17 * rng.normal(size=(2, 64)).astype(np.float32)  # two modified copies
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    assert ((unit(test_x) @ unit(train_x).T).max(axis=1) >= 0.9).all()  # the threshold alone: all 60
    report = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}), features=FeatureSource(
        fingerprint="f" * 64, encoder="effnet-lite0"))
    found = report.near_duplicates
    assert (found.near, found.train_near, found.train_images) == (2, 2, 90)
    assert sorted(p.similarity for p in found.examples) == pytest.approx(
        sorted((unit(test_x[[r]]) @ unit(train_x[[c]]).T).item() for r, c in ((0, 3), (25, 40))), abs=1e-5)


def test_no_check_without_a_measured_threshold_or_without_duplicates():
    data, sources, digests = _leaky()
    config = ProbeConfig(**{**FAST, "seeds": [0]})
    unmeasured = run_probe(data, NAMES, config, features=FeatureSource(fingerprint="f" * 64, encoder="openclip:x"))
    assert unmeasured.near_duplicates is None and not any(WARNED in w for w in unmeasured.warnings)
    clean = gaussian_splits(3, {"train": 40, "val": 10, "test": 20}, spread=1.0, dim=64, seed=3)
    report = run_probe(clean, NAMES, config, features=FeatureSource(fingerprint="f" * 64, encoder="effnet-lite0"))
    assert report.near_duplicates.near == 0 and report.near_duplicates.identical is None  # no digests given
    assert report.near_duplicates.accuracy_duplicates is None
    assert not any(WARNED in w for w in report.warnings)


def _wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of k / n, with continuity correction under 30 images (scipy's, the reference
    the report's is checked against)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="wilsoncc" if n < 30 else "wilson")
    return ci.low, ci.high


def test_a_run_past_the_products_budget_checks_a_seeded_sample_and_says_so(monkeypatch, tmp_path):
    import probe.run
    from probe.near_duplicates import SAMPLE_DRAW, read_pairs, sample_rows

    data, sources, digests = _leaky()  # 60 test rows × (120 train + 30 val) × 64 = 576,000 products; 9,600 a row
    # past the budget the test check samples within half of it: 25 rows (240,000 products), not 26
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 2 * (25 * 9_600 + 9_599))
    features = FeatureSource(fingerprint="f" * 64, encoder="effnet-lite0")
    report = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}), sources=sources, contents=digests,
                       features=features, out_dir=tmp_path / "run")
    found = report.near_duplicates
    assert (found.sampled, found.test_images, found.identical) == (25, 60, len(IDENTICAL))  # digests: every row
    assert found.sample_draw == SAMPLE_DRAW
    rows = sample_rows(60, 25)
    # brute force over the same rows: the whole cosine matrix at once
    pool = np.concatenate([data["train"][0], data["val"][0]])
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    best = (unit(data["test"][0][rows]) @ unit(pool).T).max(axis=1)
    duplicate = (best >= found.threshold) | np.isin(rows, IDENTICAL)
    assert found.near == int(((best >= found.threshold) & ~np.isin(rows, IDENTICAL)).sum()) > 0
    # listed: the sample's duplicates and every byte-identical test image, as many as the report counts (the
    # identical ones outside the sample were counted and not listed), each with a train image of its bytes
    pairs = read_pairs(tmp_path / "run")
    assert {p["test_row"] for p in pairs} == set(rows[duplicate].tolist()) | set(IDENTICAL)
    assert len([p for p in pairs if p["identical"]]) == found.identical and not set(IDENTICAL) <= set(rows)
    assert all((p["seen_split"], p["seen_row"], p["seen"]) == ("train", 20 + p["test_row"], sources["train"][20 + p[
        "test_row"]]) and p["similarity"] == pytest.approx(1, abs=1e-5) for p in pairs if p["identical"]), pairs
    assert [p["similarity"] for p in pairs] == sorted((p["similarity"] for p in pairs), reverse=True)
    assert found.near_ci == pytest.approx(_wilson(found.near, 25), abs=1e-12)
    warning = next(w for w in report.warnings if WARNED in w)
    assert warning.startswith(f"{found.near} among 25 sampled test images of 60 (")
    assert "test accuracy on the sampled duplicates" in warning
    text = " ".join(format_report(report).split())
    assert f"in {found.near} among 25 sampled test images of 60" in text and f"of the 60 test images" not in text
    assert load_report(tmp_path / "run").near_duplicates == found
    # the rest (259,198) goes to the check inside train: 33 of its 120 rows × 120 × 64 fit, each never its own pair
    train = sample_rows(120, 33)
    inside = unit(data["train"][0][train]) @ unit(data["train"][0]).T
    inside[np.arange(33), train] = -np.inf
    assert (found.train_sampled, found.train_images) == (33, 120)
    assert found.train_near == int((inside.max(axis=1) >= found.threshold).sum())
    assert found.train_near_ci == pytest.approx(_wilson(found.train_near, 33), abs=1e-12)
    assert f"; {found.train_near} among 33 sampled train images of 120 (" in text


def test_below_the_budget_every_test_row_is_compared_and_past_one_row_none(monkeypatch):
    import probe.run

    data, sources, digests = _leaky()
    config, features = ProbeConfig(**{**FAST, "seeds": [0]}), FeatureSource(fingerprint="f" * 64,
                                                                              encoder="effnet-lite0")
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 576_000)
    found = run_probe(data, NAMES, config, sources=sources, contents=digests, features=features).near_duplicates
    assert (found.near, found.sampled, found.near_ci) == (len(NEAR), None, None)
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 9_599)  # not one test row's 9,600 products
    report = run_probe(data, NAMES, config, sources=sources, contents=digests, features=features)
    assert report.near_duplicates is None and not any(WARNED in w for w in report.warnings)


def test_the_unchecked_log_line_names_the_budget_the_test_check_had(monkeypatch, caplog):
    """Past the budget the test check takes half of it: with one test row's 9,600 products under the 15,000 of
    MAX_CHECK_PRODUCTS, the line said they passed '2e+04'; it names the 7,500 the check had."""
    import logging

    import probe.run

    data, sources, digests = _leaky()
    config, features = ProbeConfig(**{**FAST, "seeds": [0]}), FeatureSource(fingerprint="f" * 64,
                                                                              encoder="effnet-lite0")
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 15_000)
    with caplog.at_level(logging.INFO, logger="probe.run"):
        report = run_probe(data, NAMES, config, sources=sources, contents=digests, features=features)
    assert report.near_duplicates is None
    assert ("near-duplicates not checked: one test row's 9,600 products pass the 7,500 the test check may take"
            in caplog.messages)


def test_the_run_folder_keeps_every_pair_and_a_replaced_run_loses_a_stale_file(leaky_run, tmp_path):
    from probe.near_duplicates import PAIRS_FILE, read_pairs

    report, out, sources = leaky_run
    pairs = read_pairs(out)
    assert len(pairs) == len(NEAR) + len(IDENTICAL) > len(report.near_duplicates.examples)
    assert {(p["test_row"], p["test"], p["seen_split"], p["seen_row"], p["seen"], p["identical"]) for p in pairs} == {
        (r, sources["test"][r], "train", 10 + r, sources["train"][10 + r], False) for r in NEAR} | {
        (r, sources["test"][r], "train", 20 + r, sources["train"][20 + r], True) for r in IDENTICAL}
    similarities = [p["similarity"] for p in pairs]
    assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 0.9
    shown = [(p.test, p.seen) for p in report.near_duplicates.examples]
    assert shown == [(p["test"], p["seen"]) for p in pairs if not p["identical"]][:3]
    run = tmp_path / "run"
    (run).mkdir()
    (run / PAIRS_FILE).write_text((out / PAIRS_FILE).read_text())  # a checked run's file, then an unchecked run
    data, sources, digests = _leaky()
    run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}), out_dir=run, sources=sources,
              features=FeatureSource(fingerprint="f" * 64, encoder="openclip:x"))
    assert read_pairs(run) is None and not (run / PAIRS_FILE).exists()


def test_a_checked_run_without_duplicates_writes_an_empty_list_and_a_damaged_file_is_named(tmp_path):
    from probe.near_duplicates import PAIRS_FILE, read_pairs

    clean = gaussian_splits(3, {"train": 40, "val": 10, "test": 20}, spread=1.0, dim=64, seed=3)
    run_probe(clean, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}), out_dir=tmp_path / "clean",
              features=FeatureSource(fingerprint="f" * 64, encoder="effnet-lite0"))
    assert read_pairs(tmp_path / "clean") == []
    (tmp_path / "clean" / PAIRS_FILE).write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="near_duplicates.csv of run clean cannot be read"):
        read_pairs(tmp_path / "clean")


def test_train_images_duplicating_train_images_are_counted_within_the_products_budget(monkeypatch):
    import probe.run

    data, sources, digests = _leaky()
    x_train, y_train = data["train"][0].copy(), data["train"][1].copy()
    x_train[1], y_train[1] = 1.01 * x_train[0], y_train[0]  # a train image twice: both count
    x_train[3] = x_train[2]
    y_train[3] = y_train[2]
    data["train"] = (x_train, y_train)
    config, features = ProbeConfig(**{**FAST, "seeds": [0]}), FeatureSource(fingerprint="f" * 64,
                                                                              encoder="effnet-lite0")
    # 60 test rows × 150 train + val rows × 64 = 576,000 products, then 120² × 64 = 921,600 inside train
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 576_000 + 921_600)
    report = run_probe(data, NAMES, config, features=features)
    assert report.near_duplicates.train_near == 4
    assert "; 4 train images nearly duplicate another train image" in " ".join(format_report(report).split())
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 576_000 + 921_599)
    report = run_probe(data, NAMES, config, features=features)
    found = report.near_duplicates
    assert found.near == len(NEAR + IDENTICAL) and found.sampled is None  # no digests
    # what the whole test check left fits 119 of the 120 train rows: a sample, said as one (it was left unchecked)
    assert (found.train_sampled, found.train_images) == (119, 120) and found.train_near in (3, 4)
    assert f"; {found.train_near} among 119 sampled train images of 120 (" in " ".join(format_report(report).split())
    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 576_000 + 7_679)  # not one train row's 7,680 products
    found = run_probe(data, NAMES, config, features=features).near_duplicates
    assert found.sampled is None and found.train_near is None and found.train_sampled is None


def test_the_leaky_train_split_holds_no_duplicates_of_its_own(leaky_run):
    report, _, _ = leaky_run
    assert report.near_duplicates.train_near == 0


def test_the_terminal_line_and_the_warning_say_the_accuracy_on_the_duplicates_in_one_sentence(leaky_run):
    report, _, _ = leaky_run
    found = report.near_duplicates
    sentence = found.accuracy_sentence()
    assert sentence.startswith("test accuracy on the duplicates ") and ", on the rest " in sentence
    assert sentence in found.describe() and sentence in found.warning()


def test_the_markdown_and_html_exports_say_the_check_as_the_terminal_does(leaky_run):
    from probe.export import report_html, report_markdown

    report, _, _ = leaky_run
    line = report.near_duplicates.describe()
    assert f"- **Near-duplicates:** {line}" in report_markdown(report).replace("\\", "")
    assert "<dt>Near-duplicates</dt>" in report_html(report)
    unchecked = report.model_copy(update={"near_duplicates": None})
    assert "Near-duplicates" not in report_markdown(unchecked)


def test_a_sampled_check_says_the_byte_identical_count_of_every_test_image_and_nothing_dangling():
    from probe.report import NearDuplicates

    sampled = dict(encoder="effnet-lite0", threshold=0.9, test_images=3_000, sampled=260, near=0)
    line = NearDuplicates(**sampled).describe()  # no digests: no byte-identical count to say of all 3,000
    assert line.endswith("estimated 0 of the 3,000, 0–44)") and "of all" not in line
    line = NearDuplicates(**sampled, identical=5).describe()
    assert line.endswith("0–44); 5 byte-identical of all of them")


@pytest.mark.parametrize("edit, field", [({"sampled": 70}, "sampled 70"), ({"sampled": 0}, "sampled 0"),
                                         ({"near": 26, "sampled": 25}, "near 26"), ({"identical": 61}, "identical 61"),
                                         ({"train_sampled": 130}, "train_sampled 130"),
                                         ({"train_near": 121}, "train_near 121")])
def test_a_report_whose_counts_pass_their_images_is_refused_naming_the_count(leaky_run, tmp_path, edit, field):
    """A report.json edited to a sample larger than the images it is drawn from failed report --near-duplicates with
    numpy's "Cannot take a larger sample than population" and read as a count of every test image; a count larger
    than its images was shown as it was."""
    _, out, _ = leaky_run
    data = json.loads((out / "report.json").read_text())
    data["near_duplicates"].update(edit)
    (tmp_path / "report.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"near_duplicates.{field} is "):
        load_report(tmp_path)
    older = json.loads((out / "report.json").read_text())  # train_near before train_images was kept: read
    older["near_duplicates"].update(train_near=3, train_images=None)
    assert Report.model_validate(older).near_duplicates.train_near == 3
