"""probe.deploy: a finished run's probe applied to features, equal to what the run stored; scores equal to
scikit-learn's; features from another extractor refused."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

from probe import ProbeConfig, ProbeTrainer, load_report, run_probe
from probe.deploy import UNKNOWN_CLASS, RunProbe, score_predictions
from probe.numbers import percent, signed_points
from probe.predictions import Predictions
from probe.report import FeatureSource

from test_run import FAST, NAMES, make_data

SOURCE = FeatureSource(fingerprint="a" * 64, encoder="enc", extractor="e" * 64, cache="c.h5")


@pytest.fixture(scope="module")
def data():
    return make_data(seed=3)


def _run(data, tmp_path_factory, name, **config):
    out = tmp_path_factory.mktemp("deploy") / name
    run_probe(data, NAMES, ProbeConfig(**{**FAST, **config}), out_dir=out, features=SOURCE.model_dump())
    return out


@pytest.fixture(scope="module")
def biased_run(data, tmp_path_factory):
    """A bias applied to every seed (unguarded)."""
    return _run(data, tmp_path_factory, "posthoc", posthoc_bias=True, posthoc_guard=False, wd_grid=[0.0])


@pytest.fixture(scope="module")
def guarded_run(data, tmp_path_factory):
    """A bias fitted, then not applied: it fails the out-of-sample check on these 30 val images per class."""
    return _run(data, tmp_path_factory, "guarded", posthoc_bias=True, wd_grid=[0.0])


@pytest.fixture(scope="module")
def scaled_run(data, tmp_path_factory):
    """biased_run's configuration with temperature scaling: the same heads and bias, a temperature after them."""
    return _run(data, tmp_path_factory, "scaled", posthoc_bias=True, posthoc_guard=False, wd_grid=[0.0],
                temperature_scaling=True)


@pytest.fixture(scope="module")
def adapter_run(data, tmp_path_factory):
    return _run(data, tmp_path_factory, "adapter", loss="mr2", adapter="lowrank", adapter_rank=4, cbar_grid=[2.0],
                lam_grid=[0.1], seeds=[0])


@pytest.mark.parametrize("which", ["biased_run", "guarded_run", "adapter_run", "scaled_run"])
def test_predictions_equal_the_runs_first_seed(which, data, request):
    run_dir = request.getfixturevalue(which)
    probe = RunProbe.load(run_dir)
    stored = Predictions.load(run_dir)
    predicted, confidence = probe.predict_with_confidence(data["test"][0])
    np.testing.assert_array_equal(predicted, stored.predicted[0])
    np.testing.assert_array_equal(confidence, stored.confidence)
    np.testing.assert_array_equal(probe.predict(data["test"][0]), predicted)
    np.testing.assert_allclose(probe.predict_proba(data["test"][0]).max(axis=1), confidence, rtol=1e-6)
    assert probe.class_names == NAMES and probe.features == SOURCE


def test_no_rows_give_empty_predictions_from_every_method(scaled_run, data):
    """predict / predict_proba / decision_function on 0 rows raised 'features is empty (0 rows)' where
    predict_with_confidence returned empty arrays; all give empty results now, and a wrong width is still refused."""
    probe = RunProbe.load(scaled_run)
    none = data["test"][0][:0]
    predicted, confidence = probe.predict_with_confidence(none)
    assert predicted.shape == confidence.shape == (0,)
    assert probe.predict(none).shape == (0,) and probe.predict(none).dtype == predicted.dtype
    assert probe.predict_proba(none).shape == probe.decision_function(none).shape == (0, len(NAMES))
    with pytest.raises(ValueError):
        probe.predict(np.zeros((0, probe.num_features + 1), np.float32))


def test_the_post_hoc_bias_is_applied(biased_run, data):
    probe = RunProbe.load(biased_run)
    bias = np.asarray(probe.posthoc.bias_)
    assert np.abs(bias).max() > 0  # the fixture's bias moves something, or this test shows nothing
    x = data["test"][0]
    head_only = np.asarray(ProbeTrainer.load(biased_run).decision_function(x), dtype=np.float64)
    np.testing.assert_allclose(probe.decision_function(x), head_only + bias, rtol=0, atol=1e-12)
    assert RunProbe.load(_without_posthoc(biased_run)).posthoc is None


def test_the_temperature_divides_the_biased_logits_and_moves_no_prediction(scaled_run, biased_run, data):
    """The shipped probabilities are softmax((head + bias) / T): from RunProbe, from the run's stored confidences,
    and from the files alone as head.json's forward.steps say; every prediction and score is the unscaled run's."""
    import json

    from probe import load_report
    from probe.report import TEMPERATURE_FILE

    probe, unscaled = RunProbe.load(scaled_run), RunProbe.load(biased_run)
    report, plain = load_report(scaled_run), load_report(biased_run)
    scaling = report.calibration.temperature_scaling
    assert scaling.applied and probe.temperature == scaling.temperature != 1.0 and unscaled.temperature == 1.0
    x = data["test"][0]
    np.testing.assert_allclose(probe.decision_function(x), unscaled.decision_function(x) / scaling.temperature,
                               rtol=1e-12)
    np.testing.assert_array_equal(Predictions.load(scaled_run).predicted, Predictions.load(biased_run).predicted)
    assert (report.summary, report.per_class, report.confusion, report.seeds) == (
        plain.summary, plain.per_class, plain.confusion, plain.seeds)
    assert report.calibration.accuracy == plain.calibration.accuracy
    assert report.calibration.nll <= plain.calibration.nll + 0.01  # T was fitted on val; on test it hardly hurts
    assert scaling.before.ece == plain.calibration.ece and scaling.before.nll == plain.calibration.nll
    assert scaling.val_nll_after < scaling.val_nll_before and scaling.val_images == len(data["val"][1])
    shipped = json.loads((scaled_run / TEMPERATURE_FILE).read_text())  # for code that does not read the report
    assert shipped["temperature"] == scaling.temperature and shipped["applied"] is True
    bias = np.asarray(json.loads((scaled_run / "posthoc_bias.json").read_text())["bias"])
    head = np.asarray(ProbeTrainer.load(scaled_run).decision_function(x), dtype=np.float64)
    from probe.metrics import softmax

    np.testing.assert_allclose(softmax((head + bias) / shipped["temperature"]), probe.predict_proba(x), rtol=1e-9)
    said = report.calibration.text
    assert said.startswith("with its temperature: ECE ") and (
        f"(temperature T = {scaling.temperature:.3g} fitted on {scaling.val_images} validation images (their NLL "
        in said) and f"on test without it: ECE {percent(scaling.before.ece)}%" in said
    assert "; with it minus without, paired over the test images: ECE " in said and scaling.before.ece_delta == \
        pytest.approx(report.calibration.ece - plain.calibration.ece, abs=1e-12)
    assert "temperature" not in plain.calibration.text and plain.calibration.temperature_scaling is None
    assert not (biased_run / TEMPERATURE_FILE).exists()


def test_a_bias_the_guard_did_not_apply_is_not_shipped(guarded_run):
    import json

    report = json.loads((guarded_run / "report.json").read_text())
    assert report["posthoc"]["per_seed"][0]["applied"] is False
    assert report["posthoc"]["per_seed"][0]["bias"] == [0.0] * len(NAMES)
    shipped = json.loads((guarded_run / "posthoc_bias.json").read_text())
    assert shipped["applied"] is False and shipped["bias"] == [0.0] * len(NAMES)
    assert RunProbe.load(guarded_run).posthoc is None
    reason = report["selection"]["reason"]
    assert "out of sample (5-fold cross-fitting on val) the first seed's bias changed overall by" in reason
    assert reason.endswith("It is applied only where that is safe by the disparity-aware rule (the hard-third gain's "
                           "and the overall difference's lower bounds, holding together at one-sided 97.5 %, above 0 "
                           "and not below 0, and the hard images it changes leaning its way, sign-flip test "
                           "p ≤ 0.05): to none of the 2 seeds, which keep the unbiased logits.")  # the rule it applies (a statistics review: 'intervals' alone)
    first = report["posthoc"]["per_seed"][0]
    assert report["posthoc"]["guard"] is True and first["folds"] == 5
    assert first["oof_hard_ci"][0] <= 0 or first["oof_overall_ci"][0] < 0  # what failed the rule
    # what ships, said in every view (a post-hoc run had no verdict, only the sentence above)
    text = report["posthoc"]["text"]
    assert text.startswith("Post-hoc bias not applied: out of sample on validation (5-fold cross-fitting) the hard "
                           "third ") and text.endswith(
        f"; the hard third's lower bound, {signed_points(first['oof_hard_joint_lo'])} pt, is not above 0 (the two "
        "bounds holding together); the probe ships as trained, without the bias.")  # what failed, not the rule
    assert first["oof_hard_joint_lo"] <= first["oof_hard_ci"][0] and first["oof_overall_joint_lo"] <= \
        first["oof_overall_ci"][0]
    _said_in_every_view(guarded_run, text)


def test_a_declined_bias_on_another_loss_does_not_call_the_shipped_probe_erm(data, tmp_path_factory):
    """A focal run's declined post-hoc bias said "the shipped probe is the ERM probe" (and its job line "the run ships
    the ERM probe"; a review): it ships the focal probe as trained."""
    from probe.report import POSTHOC_WORDS

    report = load_report(_run(data, tmp_path_factory, "focal-guarded", loss="focal", posthoc_bias=True,
                              wd_grid=[0.0]))
    assert report.config["loss"] == "focal" and report.posthoc.outcome() in ("declined", "untested")
    for text in (report.posthoc.text, POSTHOC_WORDS[report.posthoc.outcome()].detail):
        assert "ERM" not in text and text.rstrip(".").endswith("the probe ships as trained, without the bias")


def test_the_unguarded_bias_says_so(biased_run):
    import json

    report = json.loads((biased_run / "report.json").read_text())
    assert report["posthoc"]["guard"] is False
    assert all(seed["applied"] for seed in report["posthoc"]["per_seed"])
    assert "and applied to every seed unchecked (posthoc_guard off); out of sample" in report["selection"]["reason"]
    text = report["posthoc"]["text"]
    assert text.startswith("Post-hoc bias applied to every seed without its out-of-sample check (posthoc_guard off); "
                           "out of sample on validation (5-fold cross-fitting) the hard third ")
    _said_in_every_view(biased_run, text)
    shipped = json.loads((biased_run / "posthoc_bias.json").read_text())  # for code that does not read the report
    assert shipped["class_names"] == NAMES and shipped["bias"] == report["posthoc"]["per_seed"][0]["bias"]
    assert "after a cosine head's scale) before the softmax: the predicted class and its confidence" in shipped["note"]


def _said_in_every_view(run_dir, text):
    import json

    from probe import format_report, load_report
    from probe.export import report_markdown
    from probe.report import Posthoc, posthoc_text

    report = load_report(run_dir)
    assert f"post-hoc: {text}" in format_report(report, width=2000).replace("\n", " ")
    assert f"- **Post-hoc bias:** {text}" in report_markdown(json.loads((run_dir / "report.json").read_text()))
    # a report from before the text was stored words it the same way, and load_report fills it for every reader
    # (the run page showed no banner for one; a review)
    old = Posthoc.model_validate({**report.posthoc.model_dump(), "text": None})
    assert posthoc_text(old, report.config) == text
    stored = json.loads((run_dir / "report.json").read_text())
    stored["posthoc"].pop("text")
    (run_dir / "old").mkdir(exist_ok=True)
    (run_dir / "old" / "report.json").write_text(json.dumps(stored))
    assert load_report(run_dir / "old").posthoc.text == text
    import shutil

    shutil.rmtree(run_dir / "old")


def _without_posthoc(run_dir):
    import json
    import shutil

    copy = run_dir.parent / "no_posthoc"
    if not copy.exists():
        shutil.copytree(run_dir, copy)
        report = json.loads((copy / "report.json").read_text())
        report["posthoc"] = None
        (copy / "report.json").write_text(json.dumps(report))
    return copy


def test_check_features(biased_run):
    probe = RunProbe.load(biased_run)
    d = probe.num_features
    assert probe.check_features(SOURCE.model_copy(update={"fingerprint": "b" * 64, "cache": "new.h5"}), d) == []
    with pytest.raises(ValueError, match=f"takes {d}-d features; these have {d + 1}"):
        probe.check_features(SOURCE, d + 1)
    with pytest.raises(ValueError, match="another extractor") as other:
        probe.check_features(SOURCE.model_copy(update={"extractor": "f" * 64}), d)
    # the same encoder's name: "extract them with the run's encoder settings" cannot help where another version's
    # preprocessing made the run's cache (an upgrade round)
    assert str(other.value).endswith("Extract them as the run's cache was (the same weights file and preprocessing; "
                                     "a cache another version extracted may have preprocessed otherwise), or train "
                                     "the probe again on features of this extractor.")
    with pytest.raises(ValueError, match="another extractor") as named:
        probe.check_features(SOURCE.model_copy(update={"extractor": "f" * 64, "encoder": "other"}), d)
    assert str(named.value).endswith("Extract them with the run's encoder settings.")
    # a run recorded before a weights file's path was left out of the extractor: its fingerprint as named matches
    # the cache's `extractor_as_named` (the same checkpoint at the same path), and nothing else
    assert probe.check_features(SOURCE.model_copy(update={"extractor": "f" * 64, "extractor_as_named": "e" * 64}),
                                d) == []
    with pytest.raises(ValueError, match="another extractor"):
        probe.check_features(SOURCE.model_copy(update={"extractor": "f" * 64, "extractor_as_named": "d" * 64}), d)
    # a cache that predates the extractor fingerprint: the encoder's name is all that can be checked
    older = SOURCE.model_copy(update={"extractor": None})
    assert "Only the encoder's name" in probe.check_features(older, d)[0]
    with pytest.raises(ValueError, match="encoder other; the run's from enc"):
        probe.check_features(older.model_copy(update={"encoder": "other"}), d)
    assert "did not record" in probe.check_features(None, d)[0]


def test_label_map_matches_names_in_any_order(biased_run):
    probe = RunProbe.load(biased_run)
    mapping = probe.label_map(["c5", "zebra", "c0"])
    np.testing.assert_array_equal(mapping, [5, UNKNOWN_CLASS, 0])


def test_scores_equal_scikit_learn():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d"]
    labels = rng.integers(0, 4, 200)
    predicted = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))
    labels[:15] = UNKNOWN_CLASS  # images of a class the probe does not know: wrong wherever they are predicted
    other = ["zebra"] * 10 + ["yak"] * 5 + ["-"] * 185
    scores = score_predictions(labels, predicted, names, other)
    y, p = labels[15:], predicted[15:]
    assert scores.n == 185 and scores.unknown == {"yak": 5, "zebra": 10}
    assert scores.accuracy == pytest.approx(accuracy_score(y, p), abs=1e-15)
    assert scores.balanced == pytest.approx(balanced_accuracy_score(y, p), abs=1e-15)
    # precision over every image predicted as the class: the unknown ones' true label (99) is outside labels
    prec, rec, f1, support = precision_recall_fscore_support(np.where(labels < 0, 99, labels), predicted,
                                                             labels=range(4), zero_division=np.nan)
    assert not np.allclose(prec, precision_recall_fscore_support(y, p, labels=range(4), zero_division=np.nan)[0])
    for i, c in enumerate(scores.per_class):
        assert (c.name, c.n) == (names[i], support[i])
        assert (c.precision, c.recall, c.accuracy, c.f1) == pytest.approx((prec[i], rec[i], rec[i], f1[i]))
    # the confusion matrix of the scored images (a new cache's confusions were nowhere to be seen), and where the
    # images of unknown classes went: with them each column rebuilds its precision (an attack round could not)
    assert scores.confusion == confusion_matrix(y, p, labels=range(4)).tolist()
    stray = np.bincount(predicted[:15], minlength=4)
    assert scores.unknown_predicted == {names[j]: int(c) for j, c in enumerate(stray) if c}
    columns = np.array(scores.confusion).sum(axis=0) + stray
    assert [c.precision for c in scores.per_class] == pytest.approx(np.diag(scores.confusion) / columns)
    from probe.deploy import SCORED_CONFUSION_CLASSES

    many = [f"c{k}" for k in range(SCORED_CONFUSION_CLASSES + 1)]
    assert score_predictions(labels[15:], predicted[15:], many).confusion is None  # a million counts: left out


def test_score_intervals_are_wilson_and_empty_classes_have_none():
    # 8 of 10 right: under 30 images the 95 % Wilson interval with continuity correction, [0.4422, 0.9646]
    # (Newcombe 1998, method 4; scipy's binomtest(8, 10).proportion_ci(method="wilsoncc"))
    labels = np.array([0] * 10)
    predicted = np.array([0] * 8 + [1] * 2)
    scores = score_predictions(labels, predicted, ["x", "y"])
    assert scores.accuracy_ci == pytest.approx((0.4422, 0.9646), abs=1e-4)
    assert scores.per_class[0].accuracy_ci == pytest.approx((0.4422, 0.9646), abs=1e-4)
    empty = scores.per_class[1]
    assert (empty.n, empty.accuracy, empty.accuracy_ci, empty.recall) == (0, None, None, None)
    assert empty.precision == 0.0 and scores.balanced == pytest.approx(0.8)
    # balanced accuracy with its interval, as a report's (a new-user round: predict printed it bare), over the
    # classes with images (the empty one is no draw)
    from probe.uncertainty import group_intervals

    expected = group_intervals((predicted == labels).astype(float), np.zeros(10, dtype=int), 1, {})["balanced"]
    assert scores.balanced_ci == pytest.approx(expected) and scores.balanced_ci[0] < 0.8 <= scores.balanced_ci[1]


def test_a_scored_class_s_accuracy_interval_is_its_recall_interval(monkeypatch):
    """One definition: each class's accuracy_ci is read from its recall_ci (probe.uncertainty.
    precision_recall_f1_intervals), the Wilson interval of its images right, as the overall accuracy's is of all."""
    from probe.uncertainty import wilson_interval

    # class 0: 5 of 6 right; class 1: 0 of 2 (never predicted); class 2: no images; 2 images of an unknown class
    labels = np.array([0] * 6 + [1] * 2 + [UNKNOWN_CLASS] * 2)
    predicted = np.array([0, 0, 0, 0, 0, 2, 0, 2, 0, 2])
    scores = score_predictions(labels, predicted, ["a", "b", "c"])
    expected = [wilson_interval(5, 6).tolist(), wilson_interval(0, 2).tolist(), None]
    assert [row.accuracy_ci for row in scores.per_class] == expected == [row.recall_ci for row in scores.per_class]
    assert scores.accuracy_ci == wilson_interval(5, 8).tolist()
    import probe.deploy as deploy

    real = deploy.precision_recall_f1_intervals

    def shifted(*args, **kwargs):  # a change to the recall interval reaches the accuracy's
        intervals = real(*args, **kwargs)
        return {**intervals, "recall": intervals["recall"] * 0.5}

    monkeypatch.setattr(deploy, "precision_recall_f1_intervals", shifted)
    moved = score_predictions(labels, predicted, ["a", "b", "c"]).per_class[0]
    assert moved.accuracy_ci == moved.recall_ci == pytest.approx(np.multiply(expected[0], 0.5).tolist())


def test_a_run_written_over_another_keeps_none_of_its_files(data, tmp_path, caplog):
    """A second run into the same folder replaces the first: without a post-hoc bias of its own it leaves no
    posthoc_bias.json of the first behind (probe.zip ships that file), and its report.json is written last."""
    from probe.report import TEMPERATURE_FILE
    from probe.seen import SEEN_FILE

    out = tmp_path / "run"
    sources = {split: [f"{split}/{i}" for i in range(len(data[split][1]))] for split in data}
    run_probe(data, NAMES, ProbeConfig(**{**FAST, "posthoc_bias": True, "posthoc_guard": False, "wd_grid": [0.0],
                                          "temperature_scaling": True}), out_dir=out, sources=sources)
    assert (out / "posthoc_bias.json").exists() and (out / SEEN_FILE).exists() and (out / TEMPERATURE_FILE).exists()
    with caplog.at_level("WARNING", logger="probe.report"):
        second = run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.0]}), out_dir=out)
    assert f"replacing the run in {out}" in caplog.text
    # nor the images the first one saw, which would flag scores on images the second never saw
    assert second.posthoc is None and not (out / "posthoc_bias.json").exists() and not (out / SEEN_FILE).exists()
    assert not (out / TEMPERATURE_FILE).exists()  # the first run's own, when it had one (below)
    assert RunProbe.load(out).posthoc is None and RunProbe.load(out).seen is None


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_run_replaced_stays_whole_when_the_new_ones_writing_fails(data, tmp_path, monkeypatch, failure):
    """`train --force` interrupted (Ctrl-C) or failing (a full disk) while it wrote: the run it replaced was gone
    (its report.json deleted first, the folder labelled unfinished; a fresh-eyes round). It is now untouched, no
    staging folder is left, and a file of the user's own in the folder is kept by the replacement that succeeds."""
    import probe.report as report_module

    out = tmp_path / "run"
    run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.0], "temperature_scaling": True}), out_dir=out)
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise failure("interrupted while the new run was written")

    with monkeypatch.context() as patch:
        patch.setattr(report_module, "report_csv", fail)  # after the head and predictions are written
        with pytest.raises(failure):
            run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.1]}), out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_report(out).temperature_scaling is not None and RunProbe.load(out).temperature is not None
    second = run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.1]}), out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == sorted(["head.json", "head.safetensors", "notes.txt",
                                                            "per_class.csv", "predictions.npz", "report.json"])
    assert (out / "notes.txt").read_text() == "mine" and load_report(out) == second


def test_a_run_replaced_interrupted_while_its_files_are_moved_in_is_the_new_run_whole(data, tmp_path, monkeypatch):
    """Ctrl-C between the first and the last of the files moved from .writing into the folder: the old run's
    report.json was deleted already and the new run's files not moved yet were deleted with the staging folder, so
    the folder held neither run (files of both, no report.json). The new run, complete, is moved in whole."""
    from pathlib import Path

    out = tmp_path / "run"
    run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.0], "temperature_scaling": True}), out_dir=out)
    real, moved = Path.replace, []

    def interrupted_once(self, target):
        moved.append(self.name)
        if len(moved) == 2:  # the second file moved in
            raise KeyboardInterrupt
        return real(self, target)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "replace", interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.1]}), out_dir=out)
    assert moved[1] != "report.json"  # interrupted in the middle of the moves
    assert load_report(out).config["wd_grid"] == [0.1] and RunProbe.load(out).scaling is None
    assert sorted(p.name for p in out.iterdir()) == sorted(["head.json", "head.safetensors", "per_class.csv",
                                                            "predictions.npz", "report.json"])


def test_val_carved_from_train_is_kept_as_val_among_the_images_a_run_saw(data, tmp_path):
    """Without a val split run_probe carves val out of train: those images were counted as trained on (a review);
    the seen digests keep them as val, the rest as train."""
    from probe.splits import carved_mask
    from probe.seen import SeenSources, source_digests

    given = {"train": data["train"], "test": data["test"]}  # no val: carved
    sources = {split: [f"{split}/{i}" for i in range(len(pair[1]))] for split, pair in given.items()}
    config = ProbeConfig(**{**FAST, "wd_grid": [0.0]})
    run_probe(given, NAMES, config, out_dir=tmp_path / "run", sources=sources)
    carved = carved_mask(given["train"][1], config.val_fraction, config.seeds[0])
    assert 0 < carved.sum() < len(carved)
    seen = SeenSources.load(tmp_path / "run")
    train = np.array(sources["train"])
    np.testing.assert_array_equal(seen.digests["val"], source_digests(train[carved]))
    np.testing.assert_array_equal(seen.digests["train"], source_digests(train[~carved]))
    with pytest.raises(ValueError, match=r"sources\['train'\] lists 3 paths for \d+ samples"):  # before any fit
        run_probe(given, NAMES, config, out_dir=tmp_path / "bad", sources={**sources, "train": ["a", "b", "c"]})
    assert not (tmp_path / "bad" / "report.json").exists()


def test_scores_on_new_images_have_the_nll_and_top_k_of_scikit_learn():
    """A shipping round: scores on new labelled images had no NLL (null) and no top-k, which need the true class's
    logit; TrueClass reads them chunk by chunk, leaving out images of classes the probe does not have."""
    from sklearn.metrics import log_loss, top_k_accuracy_score

    from probe.deploy import UNKNOWN_CLASS, TrueClass, score_predictions
    from probe.metrics import softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (300, 7))
    labels = rng.integers(0, 7, 300)
    labels[::10] = UNKNOWN_CLASS  # a class the run does not have: not scored
    truth = TrueClass(labels)
    for start in range(0, 300, 64):  # as predict_with_confidence fills it, one inference chunk at a time
        truth.fill(start, logits[start:start + 64])
    proba, known = softmax(logits), labels != UNKNOWN_CLASS
    scores = score_predictions(labels, logits.argmax(axis=1), list("abcdefg"), ["z"] * 300, proba.max(axis=1), truth)
    assert scores.calibration.nll == pytest.approx(log_loss(labels[known], proba[known], labels=range(7)))
    assert scores.calibration.top_k == 5 and scores.calibration.top_k_accuracy == pytest.approx(
        top_k_accuracy_score(labels[known], logits[known], k=5, labels=range(7)))
    assert score_predictions(labels, logits.argmax(axis=1), list("abcdefg"), None, proba.max(axis=1)
                             ).calibration.nll is None  # the top-1 confidence alone: no NLL


def test_a_declined_bias_names_the_bound_that_failed():
    """Every number a declined bias's text showed met the rule it named (hard +24.5 [+18.0, +30.5], overall
    [-2.8, +3.0] on a budget of 3): the joint overall bound, -3.2, had failed, and was stored nowhere (a
    consistency round). The text names the failing part of the rule; a report before the bounds keeps the rule."""
    from probe.report import Posthoc, PosthocSeed

    def declined(**oof):
        seed = PosthocSeed(seed=0, bias=[0.0, 0.0], scale=1.0, val_overall_before=0.8, val_overall_after=0.8,
                           val_objective_before=0.5, val_objective_after=0.7, applied=False, folds=5,
                           oof_overall_delta=0.0, oof_overall_ci=[-0.028, 0.03], oof_hard_delta=0.245,
                           oof_hard_ci=[0.18, 0.305], oof_hard_changed=[64, 15], oof_hard_sign_p=2.3e-8, **oof)
        return Posthoc(objective="hard", guard=True, per_seed=[seed])

    text = declined(oof_hard_joint_lo=0.16, oof_overall_joint_lo=-0.032).describe("accuracy", 3.0)
    assert text.endswith("; the overall lower bound, -3.2 pt, is below the 3-point budget (the two bounds holding "
                         "together); the probe ships as trained, without the bias.")
    assert "is below the" not in declined(oof_hard_joint_lo=0.16, oof_overall_joint_lo=-0.032).describe(
        "accuracy", 5.0)
    assert "balanced accuracy lower bound, -3.2 pt" in declined(
        oof_hard_joint_lo=0.16, oof_overall_joint_lo=-0.032).describe("balanced", 3.0)
    assert "hard third's lower bound, -0.5 pt, is not above 0" in declined(
        oof_hard_joint_lo=-0.005, oof_overall_joint_lo=0.0).describe()
    unsure = declined(oof_hard_joint_lo=0.01, oof_overall_joint_lo=0.0)
    unsure.per_seed[0].oof_hard_sign_p = 0.2
    assert "do not lean its way beyond chance (sign-flip test p = 0.2)" in unsure.describe()
    assert declined().describe().endswith("not a hard-third gain beyond noise within the overall-accuracy budget; "
                                          "the probe ships as trained, without the bias.")  # a report before stop 62


@pytest.mark.parametrize("labels, predicted, match", [
    ([0, 1, 2, 3], [0, 1, 2, 0], r"^labels must be class indices in \[0, 2\] for the 3 classes or UNKNOWN_CLASS \(-1\) "
                                 r"for a class the probe does not have; got 3\.$"),
    ([0, 1, 2, -2], [0, 1, 2, 0], r"^labels must be class indices .*; got -2\.$"),
    ([0, 1, 2, 1], [0, 1, 2, 5], r"^predicted must be class indices in \[0, 2\] for the 3 classes; got 5\.$"),
    ([0, 1, 2], [0, 1, 2, 1], r"^labels \(3,\) and predicted \(4,\) must be two \(n,\) arrays\.$"),
])
def test_scores_refuse_indices_outside_the_probes_classes(labels, predicted, match):
    """A label of 3 for a 3-class probe was scored as an image the probe got wrong (n 4, accuracy 0.75 for 3 right
    of 3); a label of -2 or a prediction of 5 raised 'labels must lie in [0, 3] for num_classes=4', a count the
    probe does not have (a library round)."""
    with pytest.raises(ValueError, match=match):
        score_predictions(np.array(labels), np.array(predicted), ["a", "b", "c"])


@pytest.mark.parametrize("extra", [{"confidence": np.array([0.9, 0.8])}, {"unknown_names": ["x"]}])
def test_scores_refuse_confidences_or_names_of_another_length(extra):
    """A confidence or unknown class name per image, of another count than the labels, raised numpy's 'boolean index
    did not match indexed array' IndexError (a library round)."""
    name = next(iter(extra))
    with pytest.raises(ValueError, match=rf"^{name} has {len(extra[name])} entries for the 4 labels\.$"):
        score_predictions(np.array([0, -1, 2, 1]), np.array([0, 1, 2, 0]), ["a", "b", "c"], **extra)


def test_a_run_replaced_while_it_is_loaded_is_read_again_whole(data, tmp_path, monkeypatch):
    """predict / export while a `train --force` to the folder finished read the old run's report.json and the new
    run's head (the same classes: nothing noticed it), and applied the old temperature to the new head. A run
    replaced while it is read is read again: all of it the new run's."""
    import probe.trainer as trainer_module

    out = tmp_path / "run"
    run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.0], "temperature_scaling": True}), out_dir=out)
    real, loads = trainer_module.ProbeTrainer.load, []

    def replaced_meanwhile(path, *args, **kwargs):
        loads.append(path)
        if len(loads) == 1:  # after the report was read, before the head: the new run moved in
            run_probe(data, NAMES, ProbeConfig(**{**FAST, "wd_grid": [0.1]}), out_dir=out)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(trainer_module.ProbeTrainer, "load", staticmethod(replaced_meanwhile))
    probe = RunProbe.load(out)
    assert load_report(out).config["wd_grid"] == [0.1] and probe.scaling is None  # the new run's report
    head = real(out)
    np.testing.assert_array_equal(probe.trainer.decision_function(data["test"][0]),
                                  head.decision_function(data["test"][0]))


def test_scored_precision_recall_and_f1_carry_the_reports_intervals():
    """Scores on another cache gave each class's precision, recall and F1 bare, where a report's rows carry their
    95 % intervals: the same function's (probe.uncertainty.precision_recall_f1_intervals), an image of a class the
    probe does not have counted as one more true class (wrong wherever predicted, as the precision's point value)."""
    from probe.deploy import UNKNOWN_CLASS
    from probe.uncertainty import precision_recall_f1_intervals

    labels = np.array([0] * 6 + [1] * 4 + [UNKNOWN_CLASS] * 3)
    predicted = np.array([0, 0, 0, 0, 1, 2, 1, 1, 1, 0, 0, 1, 1])
    scores = score_predictions(labels, predicted, ["a", "b", "c"], ["a"] * 6 + ["b"] * 4 + ["z"] * 3)
    want = precision_recall_f1_intervals(np.where(labels < 0, 3, labels), predicted, 4)
    for key in ("precision", "recall", "f1"):
        got = [getattr(c, f"{key}_ci") for c in scores.per_class]
        assert np.allclose(got[:2], want[key][:2]), key
    # class c: no image of its own, predicted once (wrongly): no recall, a precision's interval
    assert scores.per_class[2].recall_ci is None
    assert scores.per_class[2].precision_ci == pytest.approx(want["precision"][2].tolist())
    assert scores.per_class[0].recall_ci == pytest.approx(scores.per_class[0].accuracy_ci)
    for c in scores.per_class[:2]:  # each interval holds its point value
        for key in ("precision", "recall", "f1"):
            lo, hi = getattr(c, f"{key}_ci")
            assert lo <= getattr(c, key) <= hi
