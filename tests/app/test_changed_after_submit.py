"""What a job's request was checked against at submission, changed during its queue wait: the job fails with one
line naming what changed (the worker's ``TypeName: message``), never an error of the code that read it."""
from __future__ import annotations

import json
from pathlib import Path


def _renamed_classes(run_dir: Path) -> None:
    """The run in ``run_dir`` replaced (a ``train --force`` to its folder) by one of other class names."""
    from probe.rundir import replace_run

    text = (run_dir / "report.json").read_text(encoding="utf-8")
    for name in json.loads(text)["class_names"]:  # wherever the report names a class
        text = text.replace(json.dumps(name), json.dumps(name.upper()))
    replace_run(run_dir, lambda folder: (folder / "report.json").write_text(text, encoding="utf-8"), ["report.json"])


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

    assert check_reference(elsewhere, cache_row, list(cache_row["class_names"]), []).class_names == list(
        cache_row["class_names"])
    monkeypatch.setattr(Predictions, "load", staticmethod(replaced_then_loaded))
    with pytest.raises(RequestInvalid, match=f"run {erm['id']!r} has other classes than cache {cache_row['id']!r}"):
        check_reference(elsewhere, cache_row, list(cache_row["class_names"]), [])
    assert len(calls) == 2
