"""`mr2probe backup`: a copy of a data directory taken while its server writes opens, whole and consistent."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from app.cli import main
from app.config import DATABASE_FILE
from app.store import Store


def _data_with_runs(tmp_path, *runs: str):
    """A data directory (``tmp_path/data``) with a database and a run folder of each name holding a report."""
    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    for run in runs:
        (data / "runs" / run).mkdir(parents=True)
        (data / "runs" / run / "report.json").write_text("{}")
    return data


def _interrupted(source, target, *ignore):
    """A ``_copy_tree`` stopped while it copies (Ctrl-C; a kill, where the clean-up is left out too)."""
    raise KeyboardInterrupt


def _dataset(store: Store) -> dict:
    return store.add_dataset(name="d", source="path", path="/d", class_names=["a"], counts={}, fingerprint=None,
                             skipped=0, dataset_id="ds_1")


def test_a_backup_taken_while_jobs_write_is_consistent_and_opens(tmp_path):
    data = tmp_path / "data"
    store = Store(data / DATABASE_FILE)
    _dataset(store)
    (data / "runs" / "run_1").mkdir(parents=True)
    (data / "runs" / "run_1" / "report.json").write_text("{}")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:  # a worker's writes: jobs queued, each with progress updates, in the WAL
        while not stop.is_set():
            job = store.add_job("extract", {"dataset_id": "ds_1"})
            for step in range(5):
                store.update_progress(job["id"], step / 5, f"step {step}")
            written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        for n in range(3):
            assert main(["backup", "--data-dir", str(data), str(tmp_path / f"backup{n}")]) == 0
    finally:
        stop.set()
        writer.join()
    total = store.count("jobs")
    for n in range(3):
        copy = tmp_path / f"backup{n}"
        conn = sqlite3.connect(copy / DATABASE_FILE)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        assert not (copy / (DATABASE_FILE + "-wal")).exists()  # the rows are in the database file itself
        restored = Store(copy / DATABASE_FILE)  # opens as a data directory of its own
        assert 20 <= restored.count("jobs") <= total
        assert restored.get_dataset("ds_1")["name"] == "d"
        assert (copy / "runs" / "run_1" / "report.json").read_text() == "{}"


def test_a_backup_refuses_a_folder_that_is_not_new_or_lies_in_the_data_directory(tmp_path, capsys):
    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("kept")
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "full")]) == 2
    assert main(["backup", "--data-dir", str(data), str(data / "copy")]) == 2
    assert main(["backup", "--data-dir", str(tmp_path / "none"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "lies in the data directory" in err and "not a mr2probe data directory" in err
    assert (tmp_path / "full" / "x").read_text() == "kept"
    assert not (data / "copy").exists() and not (tmp_path / "b").exists()


def test_a_backup_onto_a_file_says_it_is_a_file(tmp_path, capsys):
    """It said 'the backup folder FILE exists and is not empty': neither a folder nor, for an empty file, true."""
    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    (tmp_path / "afile").write_text("")
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "not empty" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "afile").read_text() == ""
    # a folder that cannot be made (under that file): it said '[Errno 20] Not a directory: ...', exit 1
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "afile" / "copy")]) == 2
    err = capsys.readouterr().err
    assert f"cannot create the backup folder {tmp_path / 'afile' / 'copy'}: Not a directory" in err


def test_files_the_server_removes_while_the_backup_copies_and_cache_files_being_written_are_left_out(tmp_path, monkeypatch):
    from app.commands import backup

    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    (data / "caches").mkdir()
    (data / "caches" / "gone").write_text("x")
    (data / "caches" / "kept").write_text("y")
    (data / "caches" / ".c.h5.4242.tmp").write_text("half a cache file being written")
    real_copy = backup.shutil.copy2

    def copy_after_removal(src, dst, **kw):  # the server deleted the file between listing and copying
        (data / "caches" / "gone").unlink(missing_ok=True)
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(backup.shutil, "copy2", copy_after_removal)
    assert "1 file(s) removed by the server while copying left out" in backup.backup(data, tmp_path / "b")
    assert [p.name for p in (tmp_path / "b" / "caches").iterdir()] == ["kept"]


def test_an_interrupted_backup_leaves_no_half_copy(tmp_path, monkeypatch, capsys):
    """Ctrl-C (or a full disk) after the database was copied left DEST/mr2probe.sqlite3 alone: a data directory
    that serves, its runs' files missing, and that the same command then refused as 'not empty'."""
    from app.commands import backup

    data = _data_with_runs(tmp_path, "run_1")
    monkeypatch.setattr(backup, "_copy_tree", _interrupted)
    (tmp_path / "empty").mkdir()
    for dest in (tmp_path / "new", tmp_path / "empty"):
        assert main(["backup", "--data-dir", str(data), str(dest)]) == 130
    assert not (tmp_path / "new").exists() and list((tmp_path / "empty").iterdir()) == []
    monkeypatch.undo()
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "runs" / "run_1" / "report.json").read_text() == "{}"


def test_a_backup_killed_while_it_copies_does_not_pass_for_a_data_directory(tmp_path, monkeypatch, capsys):
    """SIGKILL or SIGTERM runs no clean-up: a backup killed while it copied the folders left DEST/mr2probe.sqlite3
    beside half the runs, a data directory that served with their files missing (a failure round). The database
    is renamed in last; the same command then names the unfinished backup."""
    from app.commands import backup

    data = _data_with_runs(tmp_path, "run_1")
    monkeypatch.setattr(backup, "_copy_tree", _interrupted)
    monkeypatch.setattr(backup.shutil, "rmtree", lambda *a, **k: None)  # a kill runs no clean-up
    dest = tmp_path / "b"
    assert main(["backup", "--data-dir", str(data), str(dest)]) == 130
    assert not (dest / DATABASE_FILE).exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["backup", "--data-dir", str(data), str(dest)]) == 2
    err = capsys.readouterr().err
    assert f"the backup folder {dest.resolve()} holds an unfinished backup" in err and "rm -r" in err
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "c")]) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [DATABASE_FILE, "runs"]


def test_a_full_disk_while_copying_is_one_line_naming_a_file(tmp_path, monkeypatch, capsys):
    """A full backup disk ended `mr2probe backup` with shutil.Error's list of every (source, target, reason) as its
    one 'line', thousands of characters for a data directory of many runs (a failure round). It names the first
    file, the reason and the count; the unfinished backup is removed."""
    import errno

    from app.commands import backup

    data = _data_with_runs(tmp_path, "run_1", "run_2")

    def full(src, dst, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(backup.shutil, "copy2", full)
    capsys.readouterr()
    assert main(["backup", "--data-dir", str(data), str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mr2probe backup: error: [Errno 28] cannot copy {data.resolve() / 'runs'}")
    assert err.endswith("into the backup: No space left on device (2 file(s) not copied); the unfinished backup is "
                        "removed")
    assert "\n" not in err and not (tmp_path / "b").exists()


def test_a_backup_taken_mid_replacement_restores_the_new_run_whole_without_the_writers_files(tmp_path, monkeypatch):
    """A run folder being replaced holds the writer's .writing, .lock and .NAME.<pid>-<hex>.tmp, and, once the new
    run is committed, .incoming: the backup copied them all, and a restore held a writer's half-written run and
    lock files beside a run. It leaves the writer's files out and keeps the committed new run, which the restore
    loads whole."""
    import numpy as np

    import probe.rundir as rundir
    from probe import ProbeConfig, load_report, run_probe
    from probe.deploy import RunProbe

    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    run = data / "runs" / "run_1"
    rng = np.random.default_rng(0)
    split = {s: (rng.normal(0, 1, (30, 4)).astype(np.float32) + np.repeat(np.eye(3, 4), 10, 0) * 3,
                 np.repeat(np.arange(3), 10)) for s in ("train", "val", "test")}
    fast = dict(epochs=5, lr_grid=[0.05], seeds=[0], cv=0)
    run_probe(split, ["a", "b", "c"], ProbeConfig(**fast, wd_grid=[0.0]), out_dir=run)
    real_move_in = rundir._move_in

    def killed_after_the_commit(folder):
        if (folder / rundir.INCOMING_DIR).is_dir():
            raise KeyboardInterrupt  # its second try too: the writer is gone, .incoming left behind
        real_move_in(folder)

    monkeypatch.setattr(rundir, "_move_in", killed_after_the_commit)
    with pytest.raises(KeyboardInterrupt):
        run_probe(split, ["a", "b", "c"], ProbeConfig(**fast, wd_grid=[0.1]), out_dir=run)
    monkeypatch.setattr(rundir, "_move_in", real_move_in)
    (run / rundir.STAGING_DIR).mkdir()
    (run / rundir.STAGING_DIR / "head.safetensors").write_text("half a head")
    (run / rundir.LOCK_FILE).write_text("pid 4242")
    (run / ".report.json.4242-0a1b.tmp").write_text("half a report")
    assert (run / rundir.INCOMING_DIR).is_dir()
    backup_dir = tmp_path / "backup"
    assert main(["backup", str(backup_dir), "--data-dir", str(data)]) == 0
    restored = backup_dir / "runs" / "run_1"
    assert sorted(p.name for p in restored.iterdir() if p.name.startswith(".")) in ([], [rundir.INCOMING_DIR])
    assert load_report(restored).config["wd_grid"] == [0.1]  # the new run
    assert RunProbe.load(restored).trainer.num_classes_ == 3
    assert sorted(p.name for p in restored.iterdir() if p.name.startswith(".")) == []


def test_a_run_replaced_while_the_backup_copies_it_is_copied_again_whole(tmp_path, monkeypatch):
    """A train --force that moved its run in while the backup copied the folder left a copy of one run's report
    with the other's predictions. Copied again: the new run's files alone."""
    from app.commands import backup
    from probe.rundir import replace_run

    data = tmp_path / "data"
    Store(data / DATABASE_FILE)
    run = data / "runs" / "run_1"

    def replace(version):
        replace_run(run, lambda staging: [(staging / name).write_text(version) for name in ("report.json", "p.npz")],
                    ["report.json", "p.npz"])

    replace("old")
    real_copy, copies = backup.shutil.copy2, []

    def replaced_after_the_first_file(src, dst, **kw):
        copies.append(src)
        if len(copies) == 2:
            replace("new")
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(backup.shutil, "copy2", replaced_after_the_first_file)
    backup.backup(data, tmp_path / "b")
    assert {p.name: p.read_text() for p in (tmp_path / "b" / "runs" / "run_1").iterdir()} == {
        "report.json": "new", "p.npz": "new"}


def test_a_run_moved_in_for_the_first_time_while_the_backup_copies_it_is_copied_again_whole(tmp_path, monkeypatch):
    """A run's first move-in (no report.json before it, none until its last file) while the backup copied the
    folder: the folder was listed before a file moved in and .incoming copied after, so the copy held that file
    nowhere, and, its report.json unchanged (none), it was not copied again. A restore lacked the run's
    predictions. The .incoming's files are part of what a copy checks: copied again, whole."""
    import json

    import probe.rundir
    from app.commands import backup
    from probe import load_report

    data = _data_with_runs(tmp_path)
    run = data / "runs" / "run_1"
    incoming = run / probe.rundir.INCOMING_DIR
    incoming.mkdir(parents=True)  # a writer's commit, right after the backup's pass of recoveries
    for name in ("p.npz", "report.json"):
        (incoming / name).write_text(json.dumps({"schema_version": "?"}) if name == "report.json" else "new")
    (incoming / probe.rundir.MANIFEST).write_text(json.dumps({"files": ["p.npz", "report.json"], "remove": []}))
    monkeypatch.setattr(probe.rundir, "recover_run", lambda run_dir, strict=False: None)
    real_copy, copies = backup.shutil.copy2, []

    def writer_moves_a_file_in(src, dst, **kw):  # the live writer's move, one file, as the copy goes on
        copies.append(src)
        if len(copies) == 1 and (incoming / "p.npz").exists():
            (incoming / "p.npz").replace(run / "p.npz")
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(backup.shutil, "copy2", writer_moves_a_file_in)
    backup.backup(data, tmp_path / "b")
    monkeypatch.undo()
    restored = tmp_path / "b" / "runs" / "run_1"
    with pytest.raises(ValueError, match="schema_version"):  # the restore's first read moves the run in
        load_report(restored)
    assert sorted(p.name for p in restored.iterdir()) == ["p.npz", "report.json"]
    assert (restored / "p.npz").read_text() == "new"


def test_a_backup_leaves_out_the_legacy_temporaries_older_versions_wrote(tmp_path):
    """Versions before probe.files.temporary_name wrote a run's seen_sources.npz and a label-issues result through
    a pid-less ``NAME.tmp``; the backup skipped only the hidden ``.NAME.<pid>-<hex>.tmp`` and copied those halves
    of files (of no use to a restore) with the run's and the cache's own files."""
    from app.commands import backup

    data = _data_with_runs(tmp_path, "run_1")
    (data / "runs" / "run_1" / "seen_sources.npz.tmp").write_text("half an old run's seen sources")
    (data / "caches").mkdir()
    (data / "caches" / "c.h5").write_text("a cache")
    (data / "caches" / "issues.json.tmp").write_text("half an old label-issues result")
    backup.backup(data, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "runs" / "run_1").iterdir()) == ["report.json"]
    assert sorted(p.name for p in (tmp_path / "b" / "caches").iterdir()) == ["c.h5"]
