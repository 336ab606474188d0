"""app.label_issues.fit_label_issues keeps no (n, K) probabilities for predicted-neq-given (each fold's chunks are
summarised as they are scored) and finds exactly what the full-matrix implementation found, for both methods."""
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from app.label_issues import RefitPool, fit_label_issues
from probe import ProbeConfig, ProbeTrainer
from probe.crossval import stratified_folds
from probe.label_issues import confident_learning_issues
from probe.metrics import softmax
from probe.predictions import Predictions

PARAMS = {"lr": 0.05, "weight_decay": 0.0}


def _config(epochs: int = 5) -> ProbeConfig:
    return ProbeConfig(head="linear", loss="ce", epochs=epochs, batch_size=256, lr_grid=[0.05], wd_grid=[0.0],
                       seeds=[0], device="cpu", precision="fp32")


def _refit(x: np.ndarray, y: np.ndarray, classes: int, folds: int, epochs: int = 5) -> RefitPool:
    """A pool of ``x``, ``y`` (train only, no class left out) as ``refit_pool`` reads a run."""
    names = [f"c{k}" for k in range(classes)]
    report = SimpleNamespace(config={"selected": PARAMS}, environment=None)
    data = {"train": (x, y)}
    sources = {"train": [f"img{i}.png" for i in range(len(y))]}
    return RefitPool(report, _config(epochs), SimpleNamespace(class_names=names), data, data, sources, names,
                     ["train"], x, y, folds, None)


def _reference(refit: RefitPool, method: str) -> tuple[Predictions, np.ndarray]:
    """The implementation before streaming, kept as the reference: every fold's softmax written into one (n, K)
    float64 array, the predictions and the method's mask read from it."""
    x, y, k = refit.x, refit.y, len(refit.names)
    assignment = stratified_folds(y, refit.folds, 0)
    probabilities = np.zeros((len(y), k))
    for fold in range(refit.folds):
        held, kept = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        trainer = ProbeTrainer(**refit.config.trainer_params(PARAMS, seed=0)).fit(x[kept], y[kept], num_classes=k)
        probabilities[held] = softmax(trainer.decision_function(x[held]))
    predicted, rows = probabilities.argmax(axis=1), np.arange(len(y))
    predictions = Predictions(y, predicted[None, :], np.clip(probabilities[rows, predicted], 0, 1),
                              refit.sources["train"], label_probability=np.clip(probabilities[rows, y], 0, 1))
    mask = confident_learning_issues(probabilities, y) if method == "confident-learning" else predicted != y
    return predictions, mask


def _coarse(monkeypatch) -> None:
    """Logits rounded to halves: many rows with two classes of the same top probability (argmax takes the first)
    and many images with the same p(label) (ranked ties)."""
    real = ProbeTrainer.decision_function
    monkeypatch.setattr(ProbeTrainer, "decision_function", lambda self, f: np.round(real(self, f) * 2) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["predicted-neq-given", "confident-learning"])
def test_the_listing_equals_the_full_matrix_implementation_with_ties_and_a_class_of_two_images(
        seed, method, monkeypatch):
    _coarse(monkeypatch)
    rng = np.random.default_rng(seed)
    classes = 7
    y = np.concatenate([np.repeat(np.arange(classes - 1), 25), [classes - 1] * 2])  # the last class: 2 images
    x = (rng.normal(size=(len(y), 6)) + (y[:, None] * np.arange(1, 7)) % 3).astype(np.float32)
    x[:20] = x[0]  # identical images: the same probabilities, tied in the ranking
    y = np.where(rng.random(len(y)) < 0.15, rng.integers(0, classes, len(y)), y)  # some wrong labels
    y[-2:] = classes - 1
    refit = _refit(x, y, classes, 2)
    found = fit_label_issues(refit, method=method)
    predictions, mask = _reference(refit, method)
    assert mask.any() and not mask.all()
    assert np.array_equal(found.listed, mask)
    for field in ("labels", "predicted", "confidence", "label_probability", "sources"):
        assert np.array_equal(getattr(found.predictions, field), getattr(predictions, field)), field
    assert found.accuracy == float(np.mean(predictions.predicted[0] == predictions.labels))
    for class_index in [None, *range(classes)]:
        expected = predictions.failure_rows(class_index, refit.names, None, among=mask)
        assert found.rows_of(class_index, None) == [{**row, "split": "train", "row": row["index"]}
                                                    for row in expected]
        assert found.total(class_index) == len(expected)


def test_predicted_neq_given_keeps_no_n_by_k_array(monkeypatch):
    """2,000 images × 1,000 classes: the (n, K) float64 probabilities are 16 MB; what is kept instead is a fold's
    float32 logits (4 MB) and a chunk's softmax (100 rows here: 0.8 MB)."""
    import probe.label_issues

    classes = 1000
    monkeypatch.setattr(probe.label_issues, "_SOFTMAX_CHUNK_BYTES", 100 * classes * 8)
    y = np.repeat(np.arange(classes), 2)
    x = np.random.default_rng(0).normal(size=(len(y), 8)).astype(np.float32)
    refit = _refit(x, y, classes, 2, epochs=1)
    full = len(y) * classes * 8
    tracemalloc.start()
    try:
        found = fit_label_issues(refit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.listed.shape == (len(y),)
    assert peak < 0.5 * full, (peak, full)
