"""What a job's request was checked against at submission, changed during its queue wait: the job fails with one
line naming what changed (the worker's ``TypeName: message``), never an error of the code that read it."""
from __future__ import annotations

import json
from pathlib import Path

from app_testutils import MR2, wait_job


def _before_the_job(monkeypatch, change) -> None:
    """``change()`` once the job's request was checked and queued, as its probe step starts: what a queue wait
    lets happen (``app.steps.probe_step`` wrapped)."""
    import app.steps

    real = app.steps.probe_step

    def changed_then_step(*args, **kwargs):
        change()
        return real(*args, **kwargs)

    monkeypatch.setattr(app.steps, "probe_step", changed_then_step)


def _renamed_classes(run_dir: Path) -> None:
    """The run in ``run_dir`` replaced (a ``train --force`` to its folder) by one of other class names."""
    from probe.rundir import replace_run

    text = (run_dir / "report.json").read_text(encoding="utf-8")
    for name in json.loads(text)["class_names"]:  # wherever the report names a class
        text = text.replace(json.dumps(name), json.dumps(name.upper()))
    replace_run(run_dir, lambda folder: (folder / "report.json").write_text(text, encoding="utf-8"), ["report.json"])


def test_a_reference_replaced_by_one_of_other_classes_after_submit_fails_naming_it(fresh_finished, monkeypatch):
    """The reference run was replaced by one of other classes during the queue wait: the job failed with
    'ValueError: reference run has different classes than this run: ...', not saying which run. It names the
    reference run and what changed, and leaves no run."""
    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    erm = store.get_run(fresh_finished.erm)
    runs = len(store.list_runs())
    _before_the_job(monkeypatch, lambda: _renamed_classes(Path(erm["path"])))
    job = wait_job(client, client.post("/api/jobs", json={"kind": "probe", "cache_id": erm["cache_id"],
                                                          "reference_run": erm["id"], "config": MR2}).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"ValueError: reference run {erm['id']!r} changed after this job was queued: run "
                                   f"{erm['id']!r} has other classes than cache {erm['cache_id']!r}"), job["error"]
    assert len(store.list_runs()) == runs


def test_a_reference_removed_from_disk_after_submit_fails_naming_it(fresh_finished, monkeypatch):
    """The reference run's folder removed by hand during the queue wait: the job failed with 'FileNotFoundError: no
    report.json at ...', not saying which run of the job's it was."""
    import shutil

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    erm = store.get_run(fresh_finished.erm)
    _before_the_job(monkeypatch, lambda: shutil.rmtree(erm["path"]))
    job = wait_job(client, client.post("/api/jobs", json={"kind": "probe", "cache_id": erm["cache_id"],
                                                          "reference_run": erm["id"], "config": MR2}).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"ValueError: reference run {erm['id']!r} changed after this job was queued: run "
                                   f"{erm['id']!r} cannot be read: no report.json"), job["error"]


def test_a_reference_is_checked_on_one_run_s_report_and_predictions(fresh_finished, monkeypatch):
    """The reference check read report.json, then predictions.npz, each as it found it: a run replaced between the
    two (here by one of other class names, scored on the same images) had the old run's classes checked and was
    taken. Read as one run (probe.rundir.read_run): the new run's classes are refused."""
    import pytest

    from app.validation import RequestInvalid, check_reference
    from probe.predictions import Predictions

    store = fresh_finished.client.app.state.store
    erm = store.get_run(fresh_finished.erm)
    cache_row = store.get_cache(erm["cache_id"])
    elsewhere = dict(erm, cache_id="cache_elsewhere")  # trained on another cache of these images: its split is read
    real, calls = Predictions.load, []

    def replaced_then_loaded(run_dir, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            _renamed_classes(Path(run_dir))
        return real(run_dir, *args, **kwargs)

    assert check_reference(elsewhere, cache_row, list(cache_row["class_names"]), [], None).class_names == list(
        cache_row["class_names"])
    monkeypatch.setattr(Predictions, "load", staticmethod(replaced_then_loaded))
    with pytest.raises(RequestInvalid, match=f"run {erm['id']!r} has other classes than cache {cache_row['id']!r}"):
        check_reference(elsewhere, cache_row, list(cache_row["class_names"]), [], None)
    assert len(calls) == 2


def test_a_data_set_removed_after_submit_fails_its_extraction_naming_it(fresh_finished, monkeypatch):
    """The data set's files removed from the server during the queue wait: the extraction failed with
    'FileNotFoundError: data set <data dir>/uploads/.../tiny.zip does not exist.', naming no data set. It names the
    data set, as the API's listing of it does."""
    import os

    import app.steps

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    dataset = store.get_dataset(store.get_cache(store.get_run(fresh_finished.erm)["cache_id"])["dataset_id"])
    away = Path(dataset["path"] + ".away")
    real = app.steps.extract_step

    def removed_then_step(*args, **kwargs):
        os.replace(dataset["path"], away)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.steps, "extract_step", removed_then_step)
    job = wait_job(client, client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"],
                                                          "options": {"max_per_class": 2},
                                                          "probes": [{"loss": "ce"}]}).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"] == (f"PathMissing: data set {dataset['id']!r} has no files on the server any more (removed or "
                            "moved since it was registered); register it again"), job["error"]


def test_a_data_set_left_without_a_class_s_test_images_after_submit_fails_naming_it(fresh_finished, monkeypatch):
    """A class's test images removed from the data set during a pipeline's queue wait (its probes keep the class):
    the extraction failed with
    'DatasetError: class 'ship' has no train or no test image once split ...', naming no data set and not saying
    that it changed after the request was checked."""
    import zipfile

    import app.steps

    client, store = fresh_finished.client, fresh_finished.client.app.state.store
    dataset = store.get_dataset(store.get_cache(store.get_run(fresh_finished.erm)["cache_id"])["dataset_id"])
    real = app.steps.extract_step

    def emptied_then_step(*args, **kwargs):
        with zipfile.ZipFile(dataset["path"]) as old:
            kept = [(info, old.read(info)) for info in old.infolist() if "/test/ship/" not in info.filename]
        with zipfile.ZipFile(dataset["path"], "w") as new:
            for info, data in kept:
                new.writestr(info, data)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.steps, "extract_step", emptied_then_step)
    job = wait_job(client, client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": dataset["id"],
                                                          "options": {"max_per_class": 2},
                                                          "probes": [{"loss": "ce"}]}).json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"DatasetError: data set {dataset['id']!r} changed since this job was requested: "
                                   "class 'ship' has no train or no test image once split"), job["error"]
