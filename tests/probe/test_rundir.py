"""probe.rundir: the files of one run read whole while a writer replaces it (read_run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.files import OutputBusy
from probe.rundir import READ_TRIES, read_run, replace_run


def _write(folder: Path, version: int) -> None:
    (folder / "report.json").write_text(json.dumps({"version": version}), encoding="utf-8")
    (folder / "predictions.npz").write_text(str(version), encoding="utf-8")


def _replace(run: Path, version: int) -> None:
    replace_run(run, lambda staging: _write(staging, version), ["report.json", "predictions.npz"])


def _read_both(run: Path, meanwhile=None) -> tuple[int, int]:
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))["version"]
    if meanwhile is not None:
        meanwhile()
    return report, int((run / "predictions.npz").read_text(encoding="utf-8"))


def test_a_run_replaced_between_two_reads_is_read_again_whole(tmp_path):
    run = tmp_path / "run"
    _replace(run, 1)
    versions = iter([2])
    got = read_run(run, lambda: _read_both(run, lambda: [_replace(run, v) for v in versions]))
    assert got == (2, 2)  # without it: the old report with the new predictions, (1, 2)


def test_an_error_a_replacement_caused_is_read_again_and_one_it_did_not_is_raised(tmp_path):
    run = tmp_path / "run"
    _replace(run, 1)
    calls = []

    def read():
        calls.append(1)
        if len(calls) == 1:
            _replace(run, 2)
            raise ValueError("predictions of another class count")
        return _read_both(run)

    assert read_run(run, read) == (2, 2) and len(calls) == 2
    with pytest.raises(ValueError, match="^damaged$"):
        read_run(run, lambda: (_ for _ in ()).throw(ValueError("damaged")))


def test_several_runs_and_a_writer_that_never_stops(tmp_path):
    base, other = tmp_path / "a", tmp_path / "b"
    _replace(base, 1)
    _replace(other, 1)
    versions = iter(range(2, 100))
    with pytest.raises(OutputBusy, match=rf"^{base}, {other} was replaced each of the {READ_TRIES} times it was "):
        read_run([base, other], lambda: (_read_both(base), _replace(other, next(versions))))
    assert next(versions) == 2 + READ_TRIES


def test_a_failed_first_run_removes_the_folders_it_created_and_no_more(tmp_path):
    """run_lock made --out and its missing parents; a failed run removed --out alone: out/a/b stayed behind."""
    def fail(staging):
        raise RuntimeError("fit failed")

    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError, match="fit failed"):
        replace_run(tmp_path / "out" / "a" / "b" / "run", fail, ["report.json"])
    assert list(tmp_path.iterdir()) == [tmp_path / "out"] and not any((tmp_path / "out").iterdir())
    (tmp_path / "out" / "a").mkdir()
    (tmp_path / "out" / "a" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RuntimeError, match="fit failed"):
        replace_run(tmp_path / "out" / "a" / "b" / "run", fail, ["report.json"])
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == ["notes.txt"]


def _synced(monkeypatch) -> list[str]:
    """What os.fsync is called on from here on, in order: each path as it was named at that moment."""
    import os

    real, synced = os.fsync, []

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_replacement_is_synced_before_its_commit_and_its_folder_after(tmp_path, monkeypatch):
    """Nothing was synced before the commit rename: a power loss could keep the rename and lose the data, an
    .incoming of empty files (or an empty .files) that every later read failed on. Each staged file, then the
    staging folder, is synced while it is still .writing; the run folder after the rename, and again once the files
    are moved in, before their list goes."""
    run = tmp_path / "run"
    _replace(run, 1)
    synced = _synced(monkeypatch)
    _replace(run, 2)
    staging = run / ".writing"
    assert synced == [str(staging / ".files"), str(staging / "predictions.npz"), str(staging / "report.json"),
                      str(staging), str(run), str(run)]
    assert _read_both(run) == (2, 2)


def test_an_incoming_whose_list_of_files_cannot_be_read_is_removed_and_the_old_run_kept(tmp_path, caplog):
    """An .incoming whose .files a power loss left empty or cut short failed every later load_report and train
    --force on its JSON. It was never committed whole: removed (logged), the old run read, the next write works."""
    from probe.rundir import recover_run

    run = tmp_path / "run"
    for bad in ("", '{"files": ["report.json"', "[]", '{"files": ["../x"], "remove": []}', "\xff"):
        _replace(run, 1)
        incoming = run / ".incoming"
        incoming.mkdir()
        _write(incoming, 2)
        (incoming / ".files").write_bytes(bad.encode("latin-1"))
        caplog.clear()
        recover_run(run)
        assert _read_both(run) == (1, 1) and not incoming.exists(), bad
        assert f"removed {incoming}: its list of files cannot be read" in caplog.text
    incoming.mkdir()
    (incoming / ".files").write_text("")
    _replace(run, 3)  # a writer finds it too
    assert _read_both(run) == (3, 3) and sorted(p.name for p in run.iterdir()) == ["predictions.npz", "report.json"]


HOLD_THE_LOCK = """
import fcntl, os, sys
handle = open(sys.argv[1], "a+")  # what a train writing that folder holds for its whole training (run_lock)
fcntl.flock(handle, fcntl.LOCK_EX)
handle.write(f"pid {os.getpid()}")
handle.flush()
print("held", flush=True)
sys.stdin.read()
"""


def _committed(run: Path, version: int) -> None:
    """A replacement of the run in ``run`` by ``version`` that a killed writer committed and did not move in."""
    incoming = run / ".incoming"
    incoming.mkdir()
    _write(incoming, version)
    (incoming / ".files").write_text(json.dumps({"files": ["predictions.npz", "report.json"], "remove": []}))


def test_a_reader_never_waits_on_a_lock_a_training_holds_and_reads_the_run_there(tmp_path, monkeypatch, caplog):
    """A move a killed writer left (.incoming) that a train's own recovery could not finish: every reader
    (load_report: a dashboard request, mr2probe report) then waited on the folder's lock, held for the whole training.
    It tries the lock without blocking, a short while, then reads the run there, whole, and logs why."""
    import fcntl
    import subprocess
    import sys

    from probe.rundir import recover_run

    run = tmp_path / "run"
    _replace(run, 1)
    _committed(run, 2)
    real_flock = fcntl.flock

    def flock(handle, operation):
        assert operation & fcntl.LOCK_NB or operation & fcntl.LOCK_UN, "a reader blocked on the run's lock"
        return real_flock(handle, operation)

    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(run / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setattr(fcntl, "flock", flock)
        recover_run(run)
        assert _read_both(run) == (1, 1) and (run / ".incoming").is_dir()
        assert (f"cannot finish the replacement of the run in {run} now, the run there is read as it is: {run} is "
                f"being written by another process (pid {holder.pid})") in caplog.text
    finally:
        holder.kill()
        holder.wait()
    recover_run(run)  # the training gone: the move is finished
    assert _read_both(run) == (2, 2) and not (run / ".incoming").exists()


def test_a_writer_waits_for_a_reader_finishing_a_move_instead_of_being_refused(tmp_path, monkeypatch):
    """While a reader (load_report of a dashboard request) held the folder's lock to finish a killed writer's move,
    a train to that folder was refused at once, "being written by another process" naming the reader. The writer
    waits for that short move; a holder that keeps the lock longer than MOVE_WAIT is still refused."""
    import threading

    import probe.files
    from probe.rundir import run_lock

    run = tmp_path / "run"
    _replace(run, 1)
    held, release = threading.Event(), threading.Event()

    def reader():
        with run_lock(run):  # as recover_run holds it while it moves the files in
            held.set()
            release.wait()

    holder = threading.Thread(target=reader)
    holder.start()
    held.wait()
    real_sleep = probe.files.time.sleep

    def sleep(seconds):  # the writer found the lock held: the reader's move ends meanwhile
        release.set()
        holder.join()
        real_sleep(seconds)

    monkeypatch.setattr(probe.files.time, "sleep", sleep)
    try:
        _replace(run, 2)
    finally:
        release.set()
        holder.join()
    assert _read_both(run) == (2, 2)
