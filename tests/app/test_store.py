"""The SQLite job store: explicit status transitions, one transaction each, persistence across opens."""
from __future__ import annotations

import json
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from app.status import InvalidTransition, JobStatus, NotFound
from app.store import MAX_MESSAGES, SCHEMA, Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "state.sqlite3")


def test_database_uses_wal(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_job_life_cycle(store):
    ds = store.add_dataset(name="d", source="path", path="/d", class_names=["a"], counts={}, fingerprint=None,
                           skipped=0, dataset_id="ds_1")
    job = store.add_job("extract", {"dataset_id": ds["id"]})
    assert job["status"] == "queued" and job["progress"] == 0.0 and job["request"] == {"dataset_id": "ds_1"}
    running = store.claim(job["id"])
    assert running["status"] == "running" and running["attempts"] == 1 and running["started_at"]
    with pytest.raises(InvalidTransition, match="is running; only a job that is queued"):
        store.claim(job["id"])
    store.update_progress(job["id"], 0.25, "extracting 1/4")
    store.update_progress(job["id"], 7.0)  # clamped to [0, 1]
    assert store.get_job(job["id"])["progress"] == 1.0
    done = store.finish(job["id"], JobStatus.succeeded)
    assert done["status"] == "succeeded" and done["finished_at"] and done["progress"] == 1.0
    with pytest.raises(InvalidTransition):
        store.finish(job["id"], JobStatus.failed)
    with pytest.raises(ValueError, match="finish status must be"):
        store.finish(job["id"], JobStatus.queued)


def test_interrupted_jobs_resume_with_their_results(store):
    ds = store.add_dataset(name="d", source="path", path="/d", class_names=["a"], counts={}, fingerprint=None,
                           skipped=0)
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path="/d/c.h5", fingerprint=None, num_features=8,
                            class_names=["a"], counts={}, job_id=None)
    job = store.add_job("pipeline", {})
    store.claim(job["id"])
    store.update_result(job["id"], cache_id=cache["id"])
    assert store.interrupt_running() == [job["id"]]
    row = store.get_job(job["id"])
    assert row["status"] == "interrupted" and row["result"] == {"cache_id": cache["id"]}
    # its messages say what became of it, as a graceful stop's do (a killed server's job ended on its last step)
    assert row["messages"][-1]["text"] == ("interrupted: the server stopped without finishing it (killed or "
                                           f"crashed); POST /api/jobs/{job['id']}/resume continues it")
    resumed = store.resume(job["id"])
    assert resumed["status"] == "queued" and resumed["result"] == {"cache_id": cache["id"]}
    assert store.claim(job["id"])["attempts"] == 2


def test_cancel_and_resume_rules(store):
    queued = store.add_job("probe", {})
    assert store.cancel_queued(queued["id"])["status"] == "cancelled"
    with pytest.raises(InvalidTransition, match="is cancelled"):
        store.resume(queued["id"])
    failed = store.add_job("probe", {})
    store.claim(failed["id"])
    row = store.finish(failed["id"], JobStatus.failed, error="ValueError: bad")
    assert row["error"] == "ValueError: bad"
    assert store.resume(failed["id"])["status"] == "queued"
    assert store.claim(failed["id"])["error"] is None
    # running and finished jobs are not the store's to cancel (a running one is its worker's; a review found a
    # store that cancelled a succeeded job passed every store test)
    with pytest.raises(InvalidTransition, match="is running"):
        store.cancel_queued(failed["id"])
    done = store.add_job("probe", {})
    store.claim(done["id"])
    store.finish(done["id"], JobStatus.succeeded)
    with pytest.raises(InvalidTransition, match="is succeeded"):
        store.cancel_queued(done["id"])
    interrupted = store.add_job("probe", {})
    store.claim(interrupted["id"])
    store.interrupt(interrupted["id"])
    assert store.cancel_queued(interrupted["id"])["status"] == "cancelled"


def test_missing_rows_raise_not_found(store):
    with pytest.raises(NotFound, match="job 'job_nope' not found"):
        store.get_job("job_nope")
    with pytest.raises(NotFound, match="data set 'ds_nope' not found"):
        store.get_dataset("ds_nope")
    with pytest.raises(NotFound):
        store.claim("job_nope")


def test_messages_are_capped(store):
    job = store.add_job("extract", {})
    for i in range(MAX_MESSAGES + 5):
        store.add_message(job["id"], f"m{i}")
    messages = store.get_job(job["id"])["messages"]
    assert len(messages) == MAX_MESSAGES and messages[-1]["text"] == f"m{MAX_MESSAGES + 4}"


def test_state_survives_reopening(store, tmp_path):
    ds = store.add_dataset(name="d", source="path", path="/x", class_names=["a", "b"], counts={"train": [2, 3]},
                           fingerprint="f", skipped=0)
    cache = store.add_cache(dataset_id=ds["id"], encoder="effnet-lite0", path="/c.h5", fingerprint="g",
                            num_features=4, class_names=["a", "b"], counts={"train": 5}, job_id=None)
    # Registering the same cache file again returns the same row.
    assert store.add_cache(dataset_id=ds["id"], encoder="effnet-lite0", path="/c.h5", fingerprint="g",
                           num_features=4, class_names=["a", "b"], counts={"train": 5}, job_id=None)["id"] == cache["id"]
    store.add_run(run_id="run_1", job_id=None, cache_id=cache["id"], name="ce/linear", head="linear", loss="ce",
                  reference_run=None, path="/r", summary={"overall": 0.5})
    again = Store(tmp_path / "state.sqlite3")
    assert again.get_dataset(ds["id"])["counts"] == {"train": [2, 3]}
    same = dict(name="d", source="path", path="/x", class_names=["a", "b"], counts={"train": [2, 3]}, skipped=0)
    assert again.find_or_add_dataset(**same, fingerprint="f") == (again.get_dataset(ds["id"]), False)
    other, created = again.find_or_add_dataset(**same, fingerprint="other")
    assert created and other["id"] != ds["id"] and other["counts"] == {"train": [2, 3]}
    assert [r["id"] for r in again.list_caches()] == [cache["id"]]
    assert again.get_run("run_1")["summary"] == {"overall": 0.5}


def test_a_database_written_before_the_runs_verdict_column_gets_it(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old_runs = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS runs"):].replace(", verdict TEXT, test_check TEXT", "")
    assert "verdict" not in old_runs and "test_check" not in old_runs
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA[:SCHEMA.index("CREATE TABLE IF NOT EXISTS runs")] + old_runs)
    conn.execute("INSERT INTO datasets VALUES ('ds_1', 'd', 'path', '/x', '[]', '{}', NULL, 0, 't')")
    conn.execute("INSERT INTO caches VALUES ('cache_1', 'ds_1', 'e', '/c', NULL, 4, '[]', '{}', NULL, 't')")
    import numpy as np

    from feature_cache import open_cache, write_cache

    attrs = dict(fingerprint="f" * 64, encoder="mocov2:/w/m.pth", weights_sha256="a" * 64, preprocess={"s": 1},
                 feature_kind="pooled", normalized=False)
    real = write_cache(tmp_path / "real.h5", {s: (np.ones((2, 4), np.float32), np.array([0, 1]), ["a", "b"])
                                              for s in ("train", "val", "test")}, ["x", "y"], attrs)
    conn.execute("INSERT INTO caches VALUES ('cache_2', 'ds_1', 'e', ?, NULL, 4, '[]', '{}', NULL, 't')", (str(real),))
    conn.execute("INSERT INTO runs VALUES ('run_old', NULL, 'cache_1', 'ce/linear', 'linear', 'ce', NULL, '/r', "
                 "'{}', 't')")
    (tmp_path / "dro").mkdir()
    (tmp_path / "dro" / "report.json").write_text(
        '{"selection": {"verdict": "improved", "test_check": "within_noise"}}')
    conn.execute("INSERT INTO runs VALUES ('run_dro', NULL, 'cache_1', 'group_dro/linear', 'linear', 'group_dro', "
                 f"'run_old', '{tmp_path / 'dro'}', '{{}}', 't')")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.get_cache("cache_1")["source"] == "extraction"  # caches.source came later too
    assert store.get_dataset("ds_1")["val_given"] is None  # datasets.val_given too: unknown for old rows
    # caches.extractor: NULL as the column comes (no file opened under the schema's lock); the job server's start-up
    # sweep reads each file as a job would (a file gone, damaged or hand-written with a null preprocess stays NULL)
    assert store.get_cache("cache_1")["extractor"] is None and store.get_cache("cache_2")["extractor"] is None
    import h5py

    from app.cleanup import sweep_data_dir
    from app.config import Settings

    odd = write_cache(tmp_path / "odd.h5", {s: (np.ones((2, 4), np.float32), np.array([0, 1]), ["a", "b"])
                                            for s in ("train", "val", "test")}, ["x", "y"], attrs)
    with h5py.File(odd, "r+") as f:
        f.attrs["preprocess"] = "null"
    store.add_cache(dataset_id="ds_1", encoder="e", path=str(odd), fingerprint="f" * 64, num_features=4,
                    class_names=["x", "y"], counts={}, job_id=None)
    sweep_data_dir(store, Settings(data_dir=tmp_path / "state"))
    assert store.get_cache("cache_2")["extractor"] == open_cache(real).extractor is not None
    assert store.get_cache("cache_1")["extractor"] is None and open_cache(odd).extractor is None
    # until the same data set is registered again: its row learns it (a review: it stayed unknown for good)
    row, created = store.find_or_add_dataset(name="d", source="path", path="/x", class_names=[], counts={},
                                             fingerprint=None, skipped=0, val_given=True)
    assert not created and row["id"] == "ds_1" and row["val_given"] and Store(path).get_dataset("ds_1")["val_given"]
    assert store.get_run("run_old")["verdict"] is None  # kept; its report.json (/r) is gone: no verdict
    assert store.get_run("run_dro")["verdict"] == "improved"  # read from its report.json once, as the column came
    assert store.get_run("run_dro")["test_check"] == "within_noise" and store.get_run("run_old")["test_check"] is None
    store.add_run(run_id="run_new", job_id=None, cache_id="cache_1", name="group_dro/linear", head="linear",
                  loss="group_dro", reference_run="run_old", path="/r2", summary={}, verdict="no_safe_improvement")
    assert [r["verdict"] for r in Store(path).list_runs()] == ["no_safe_improvement", "improved", None]  # newest first
    store.add_run(run_id="run_checked", job_id=None, cache_id="cache_1", name="dro", head="linear", loss="group_dro",
                  reference_run="run_old", path="/r3", summary={}, verdict="improved", test_check="holds")
    assert Store(path).get_run("run_checked")["test_check"] == "holds"


def test_registrations_of_one_folder_at_once_make_one_data_set(store):
    """find_or_add_dataset looks up and inserts in one transaction: 8 threads at once get one row, one created."""
    import threading

    results, barrier = [], threading.Barrier(8)

    def register():
        barrier.wait()
        results.append(store.find_or_add_dataset(name="d", source="path", path="/same", class_names=["a", "b"],
                                                 counts={"train": [1, 1]}, fingerprint="f", skipped=0))

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len({row["id"] for row, _ in results}) == 1
    assert sum(created for _, created in results) == 1 and len(store.list_datasets()) == 1


def test_a_transition_and_its_message_are_one_change(tmp_path):
    """A cancel and a resume racing each other wrote 'cancelled while interrupted', then 'resumed', of a job that
    ended cancelled (an attack round): each message is written in its transition's transaction, naming the status
    the job left."""
    store = Store(tmp_path / "db.sqlite3")
    job = store.add_job("extract", {})
    store.claim(job["id"])
    store.interrupt(job["id"])
    resumed = store.resume(job["id"])
    assert [m["text"] for m in resumed["messages"]] == ["resumed"] and resumed["status"] == "queued"
    cancelled = store.cancel_queued(job["id"])  # the resume won: the cancel names the status it found
    assert [m["text"] for m in cancelled["messages"]] == ["resumed", "cancelled while queued"]
    with pytest.raises(InvalidTransition):
        store.resume(job["id"])  # cancelled: neither the change nor its message
    assert [m["text"] for m in store.get_job(job["id"])["messages"]] == ["resumed", "cancelled while queued"]



def test_a_transition_whose_message_fails_does_not_happen(tmp_path, monkeypatch):
    """The change and its message are one transaction: a message that cannot be written leaves the job as it was
    (with the message written apart, the race of a cancel and a resume showed both; a review)."""
    store = Store(tmp_path / "db.sqlite3")
    job = store.add_job("extract", {})
    store.claim(job["id"])
    store.interrupt(job["id"])

    def fail(*args):
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(Store, "_append_message", staticmethod(fail))
    with pytest.raises(sqlite3.OperationalError):
        store.resume(job["id"])
    assert store.get_job(job["id"])["status"] == "interrupted"


def test_a_cache_of_a_data_set_deleted_meanwhile_is_not_found_not_a_foreign_key_error(store):
    """An attack round: a registration racing its data set's deletion inserted with a dangling data set id, and
    SQLite's foreign key made it a 500 (1 of 120 rounds)."""
    with pytest.raises(NotFound, match="ds_gone"):
        store.add_cache(dataset_id="ds_gone", encoder="effnet-lite0", path="/x.h5", fingerprint="f", num_features=8,
                        class_names=["a", "b"], counts={"train": 1}, job_id=None, source="path", same_path=False)
    assert store.list_caches() == []


def _as_before_the_meta_table(database: Path) -> None:
    """The database as a version before the data directory was recorded left it: no meta table."""
    conn = sqlite3.connect(database)
    conn.execute("DROP TABLE meta")
    conn.commit()
    conn.close()


def test_a_moved_data_directory_takes_its_paths_along(tmp_path):
    """A data directory moved (a new disk, a Docker volume) kept absolute paths under its old place: every report a
    404, every probe on its caches a 422 (an upgrade round). A database lies in the directory it describes: opened
    elsewhere, the paths under its old place follow it, files registered outside it keep theirs."""
    import shutil

    old = (tmp_path / "old").resolve()
    store = Store(old / "mr2probe.sqlite3")
    ds = store.add_dataset(name="d", source="upload", path=str(old / "uploads" / "ds_1" / "t.zip"), class_names=["a"],
                           counts={}, fingerprint="f", skipped=0, dataset_id="ds_1")
    outside = store.add_dataset(name="o", source="path", path="/elsewhere/images", class_names=["a"], counts={},
                                fingerprint="g", skipped=0, dataset_id="ds_2")
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path=str(old / "caches" / "ds_1" / "e" / "c.h5"),
                            fingerprint="h", num_features=4, class_names=["a"], counts={}, job_id=None)
    store.add_run(run_id="run_1", job_id=None, cache_id=cache["id"], name="r", head="linear", loss="ce",
                  reference_run=None, path=str(old / "runs" / "run_1"), summary={})
    job = store.add_job("extract", {"dataset_id": "ds_1"})
    store.update_result(job["id"], extraction=str(old / "caches" / "ds_1" / "e" / "c.h5"), cache_id=cache["id"])
    del store
    new = (tmp_path / "moved" / "here").resolve()
    new.parent.mkdir()
    shutil.move(old, new)
    for opened in range(2):  # the first open moves them, the second finds nothing to move
        moved = Store(new / "mr2probe.sqlite3")
        assert moved.get_dataset("ds_1")["path"] == str(new / "uploads" / "ds_1" / "t.zip")
        assert moved.get_dataset(outside["id"])["path"] == "/elsewhere/images"
        assert moved.get_cache(cache["id"])["path"] == str(new / "caches" / "ds_1" / "e" / "c.h5")
        assert moved.get_run("run_1")["path"] == str(new / "runs" / "run_1")
        assert moved.get_job(job["id"])["result"] == {"extraction": str(new / "caches" / "ds_1" / "e" / "c.h5"),
                                                      "cache_id": cache["id"]}
    # a database written before the data directory was recorded: found from where its runs lie
    _as_before_the_meta_table(new / "mr2probe.sqlite3")
    copy = (tmp_path / "copy").resolve()
    shutil.copytree(new, copy)
    assert Store(copy / "mr2probe.sqlite3").get_run("run_1")["path"] == str(copy / "runs" / "run_1")
    original = sqlite3.connect(new / "mr2probe.sqlite3")
    assert original.execute("SELECT path FROM runs").fetchone()[0] == str(new / "runs" / "run_1")  # untouched
    original.close()


def test_a_data_directory_is_found_from_its_own_files_only_and_moved_only_while_no_server_runs_it(tmp_path):
    """A review of the move: a database written before the directory was recorded, with no runs, took a file
    registered where it lies (``…/datasets/caches/x.h5``) for its own and moved every row into the wrong folder; a
    moved directory's new run columns were filled before the move, from reports not found, for good; and a process
    opening a live directory by another path moved the running server's rows."""
    import json
    import shutil

    from app.datadir import lock_data_dir

    here = (tmp_path / "data").resolve()
    store = Store(here / "mr2probe.sqlite3")
    registered = str(tmp_path / "datasets" / "caches" / "x.h5")
    ds = store.add_dataset(name="d", source="path", path=str(tmp_path / "datasets" / "uploads" / "imgs"),
                           class_names=["a"], counts={}, fingerprint="f", skipped=0, dataset_id="ds_1")
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path=registered, fingerprint="h", num_features=4,
                            class_names=["a"], counts={}, job_id=None, source="path")
    del store
    _as_before_the_meta_table(here / "mr2probe.sqlite3")
    again = Store(here / "mr2probe.sqlite3")
    assert again.get_cache(cache["id"])["path"] == registered  # not the data directory's own: left where it is
    assert again.get_dataset("ds_1")["path"] == str(tmp_path / "datasets" / "uploads" / "imgs")
    # a run of the service, its verdict column added after it: moved, the column is read from the moved report
    run_dir = here / "runs" / "run_1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(json.dumps({"selection": {"verdict": "improved"}}))
    again.add_run(run_id="run_1", job_id=None, cache_id=cache["id"], name="r", head="linear", loss="ce",
                  reference_run=None, path=str(run_dir), summary={})
    del again
    conn = sqlite3.connect(here / "mr2probe.sqlite3")
    conn.execute("DROP TABLE meta")
    conn.execute("ALTER TABLE runs DROP COLUMN verdict")
    conn.commit()
    conn.close()
    moved = (tmp_path / "moved").resolve()
    shutil.move(here, moved)
    row = Store(moved / "mr2probe.sqlite3").get_run("run_1")
    assert (row["path"], row["verdict"]) == (str(moved / "runs" / "run_1"), "improved")
    again = (tmp_path / "again").resolve()
    shutil.move(moved, again)
    held = lock_data_dir(again)  # a server runs it: another process opening it moves nothing
    try:
        assert Store(again / "mr2probe.sqlite3").get_run("run_1")["path"] == str(moved / "runs" / "run_1")
    finally:
        held.close()
    assert Store(again / "mr2probe.sqlite3").get_run("run_1")["path"] == str(again / "runs" / "run_1")


@pytest.mark.parametrize("meta", ["dropped", "recorded"])
def test_relative_paths_of_an_older_version_become_absolute_under_the_data_directory(tmp_path, monkeypatch, meta):
    """Versions before 2026-12-04 under a relative --data-dir (the default ``.mr2probe``) recorded their runs', caches'
    and uploads' paths relative to the folder the server started in: opened by this version from another folder,
    every report was a 404 ('missing on disk (.mr2probe/runs/...)'), and once the directory was recorded ("recorded":
    a database this version had opened from the same folder) nothing made them absolute again (an upgrade round)."""
    here = (tmp_path / "project" / ".mr2probe").resolve()
    monkeypatch.chdir(tmp_path)
    store = Store(here / "mr2probe.sqlite3")
    rel = Path("project") / ".mr2probe"
    ds = store.add_dataset(name="d", source="upload", path=str(rel / "uploads" / "ds_1" / "t.zip"), class_names=["a"],
                           counts={}, fingerprint="f", skipped=0, dataset_id="ds_1")
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path=str(rel / "caches" / "ds_1" / "e" / "c.h5"),
                            fingerprint="h", num_features=4, class_names=["a"], counts={}, job_id=None)
    store.add_run(run_id="run_1", job_id=None, cache_id=cache["id"], name="r", head="linear", loss="ce",
                  reference_run=None, path=str(rel / "runs" / "run_1"), summary={})
    job = store.add_job("probe", {"cache_id": cache["id"], "config": {"loss": "ce"}, "name": "runs"})
    store.update_result(job["id"], extraction=str(rel / "caches" / "ds_1" / "e" / "c.h5"), run_ids=["run_1"])
    del store
    conn = sqlite3.connect(here / "mr2probe.sqlite3")
    if meta == "dropped":  # as the older version left it
        conn.execute("DROP TABLE meta")
    else:  # opened by this version before: the directory recorded, the rows still relative
        conn.execute("UPDATE meta SET value = ? WHERE key = 'data_dir'", (str(here),))
    conn.commit()
    conn.close()
    monkeypatch.chdir(here)  # a server started elsewhere, with the directory's absolute path
    for opened in range(2):
        again = Store(here / "mr2probe.sqlite3")
        assert again.get_run("run_1")["path"] == str(here / "runs" / "run_1")
        assert again.get_cache(cache["id"])["path"] == str(here / "caches" / "ds_1" / "e" / "c.h5")
        assert again.get_dataset("ds_1")["path"] == str(here / "uploads" / "ds_1" / "t.zip")
        assert again.get_job(job["id"])["result"] == {"extraction": str(here / "caches" / "ds_1" / "e" / "c.h5"),
                                                      "run_ids": ["run_1"]}
        assert again.get_job(job["id"])["request"] == {"cache_id": cache["id"], "config": {"loss": "ce"},
                                                       "name": "runs"}  # words, not paths: left as they are


def test_an_older_version_s_relative_extraction_in_a_job_alone_becomes_absolute(tmp_path):
    """A data set registered where it lies (an absolute path) and its extraction interrupted: the job's recorded
    partial extraction was the only relative path an older version under a relative --data-dir left, and it stayed
    relative for good (the directory recorded at the first open), so the resumed job planned another file and
    discarded the partial one as 'the images to extract changed' (a review)."""
    here = (tmp_path / "project" / ".mr2probe").resolve()
    store = Store(here / "mr2probe.sqlite3")
    outside = tmp_path / "photos"
    store.add_dataset(name="d", source="path", path=str(outside), class_names=["a"], counts={}, fingerprint="f",
                      skipped=0, dataset_id="ds_1")
    job = store.add_job("extract", {"dataset_id": "ds_1", "encoder": "e", "options": {}})
    relative = str(Path(".mr2probe") / "caches" / "ds_1" / "e" / "c.h5")
    store.update_result(job["id"], extraction=relative)
    del store
    _as_before_the_meta_table(here / "mr2probe.sqlite3")
    for _ in range(2):
        again = Store(here / "mr2probe.sqlite3")
        assert again.get_job(job["id"])["result"] == {"extraction": str(here / "caches" / "ds_1" / "e" / "c.h5")}
        assert again.get_dataset("ds_1")["path"] == str(outside)  # registered where it lies: kept


def test_relative_paths_of_an_older_version_under_data_dir_dot_become_absolute(tmp_path):
    """``--data-dir .`` (the server started in the data directory itself): an older version recorded 'runs/run_1',
    'caches/ds_1/e/c.h5', 'uploads/ds_1/t.zip', with no folder before them, which were not taken for the data
    directory's own files and stayed relative: opened from anywhere else, every report was a 404 (a review)."""
    here = (tmp_path / "data").resolve()
    store = Store(here / "mr2probe.sqlite3")
    ds = store.add_dataset(name="d", source="upload", path="uploads/ds_1/t.zip", class_names=["a"], counts={},
                           fingerprint="f", skipped=0, dataset_id="ds_1")
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path="caches/ds_1/e/c.h5", fingerprint="h",
                            num_features=4, class_names=["a"], counts={}, job_id=None)
    store.add_run(run_id="run_1", job_id=None, cache_id=cache["id"], name="r", head="linear", loss="ce",
                  reference_run=None, path="runs/run_1", summary={})
    del store
    _as_before_the_meta_table(here / "mr2probe.sqlite3")
    for _ in range(2):
        again = Store(here / "mr2probe.sqlite3")
        assert again.get_run("run_1")["path"] == str(here / "runs" / "run_1")
        assert again.get_cache(cache["id"])["path"] == str(here / "caches" / "ds_1" / "e" / "c.h5")
        assert again.get_dataset("ds_1")["path"] == str(here / "uploads" / "ds_1" / "t.zip")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc/self/fd")
def test_the_connections_of_threads_that_ended_are_closed(store):
    """The server's request threads end when idle and new ones start under load: each one's connection (the database
    and its WAL) stayed open for good, 93 of them held by 15 threads after 90 s of load (a load round)."""
    def descriptors() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if str(store.path) in str(fd.resolve()))

    def read() -> None:
        assert store.list_datasets() == []

    def in_a_thread() -> None:
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()

    in_a_thread()
    before = descriptors()
    for _ in range(30):
        in_a_thread()
    # a closed connection's descriptor may stay for SQLite to reuse (POSIX locks are per process): a few, not 2 each
    assert descriptors() <= before + 2


def test_left_out_names_written_decomposed_before_are_composed_once_at_open(tmp_path):
    """A database whose runs' left_out kept class names decomposed (before left_out_json composed them): the
    dashboard compares runs by it, and called two runs of the same classes not comparable (a review)."""
    import unicodedata

    path = tmp_path / "old.sqlite3"
    store = Store(path)
    ds = store.add_dataset(name="d", source="path", path="/x", class_names=["café", "b"], counts={},
                           fingerprint=None, skipped=0)
    cache = store.add_cache(dataset_id=ds["id"], encoder="e", path="/c", fingerprint=None, num_features=4,
                            class_names=["café", "b"], counts={}, job_id=None)
    decomposed = json.dumps([unicodedata.normalize("NFD", "café")])
    for run_id, left_out in (("run_old", decomposed), ("run_odd", '{"not": "a list"}'), ("run_none", None)):
        store.add_run(run_id=run_id, job_id=None, cache_id=cache["id"], name=run_id, head="linear", loss="ce",
                      reference_run=None, path="/r", summary={}, left_out=left_out)
    store.close()
    conn = sqlite3.connect(path)  # as a version before the migration left it
    conn.execute("DELETE FROM meta WHERE key LIKE 'migration:%'")
    conn.commit()
    conn.close()
    again = Store(path)
    assert json.loads(again.get_run("run_old")["left_out"]) == ["café"] == [unicodedata.normalize("NFC", "café")]
    assert again.get_run("run_odd")["left_out"] == '{"not": "a list"}' and again.get_run("run_none")["left_out"] is None
    # once: a value written afterwards (by hand here) is not read again at the next open
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET left_out = ? WHERE id = 'run_old'", (decomposed,))
    conn.commit()
    conn.close()
    assert Store(path).get_run("run_old")["left_out"] == decomposed
