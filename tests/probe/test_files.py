"""probe.files: outputs written whole, and the temporary files a killed writer left removed by the next write."""
import os
import subprocess
import sys
from pathlib import Path

from probe.files import write_output

KILLED_WHILE_WRITING = """
import os, sys
from pathlib import Path
from probe.files import write_output

def write(name):
    Path(name).write_text("half")
    os._exit(9)  # SIGKILL's effect: no clean-up runs

write_output(sys.argv[1], write)
"""


def _killed_writer(out: Path) -> Path:
    """Run a writer of ``out`` that dies half-way (as `mr2probe export` / `predict` / `report` killed) and return
    the temporary file it left."""
    before = set(out.parent.iterdir())
    done = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(out)], env={**os.environ})
    assert done.returncode == 9
    (left,) = set(out.parent.iterdir()) - before
    assert left.name.startswith(f".{out.name}.") and left.read_text() == "half"
    return left


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write_of_that_output(tmp_path):
    """A killed export / predict / report left its hidden .NAME.<hex>.tmp beside --out for good; the next write of
    the same output removes it. Another live writer's (this process's), and those of other outputs, are kept."""
    out = tmp_path / "predictions.csv"
    out.write_text("old")
    left = _killed_writer(out)
    assert out.read_text() == "old"  # the file that was there is whole
    live = tmp_path / f".predictions.csv.{os.getpid()}-0123456789abcdef.tmp"  # a writer running now
    live.write_text("writing")
    other = _killed_writer(tmp_path / "probe.onnx")
    write_output(out, lambda name: Path(name).write_text("new"))
    assert out.read_text() == "new" and not left.exists()
    assert live.read_text() == "writing" and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, other.name])


def test_a_temporary_named_after_an_impossible_process_id_is_an_orphan_not_a_crash(tmp_path):
    """A leftover '.NAME.<digits>.tmp' whose digits pass every process id (an older writer's 16 hex digits that were
    all decimal, '.preds.csv.99999999999.tmp') made os.kill raise OverflowError: every later write of NAME failed
    with a trace. No process has such an id: it is an orphan, removed."""
    from probe.files import process_alive

    assert not process_alive(99999999999) and not process_alive(2**63)
    left = tmp_path / ".preds.csv.1234567890123456.tmp"
    left.write_text("half")
    write_output(tmp_path / "preds.csv", lambda name: Path(name).write_text("whole"))
    assert (tmp_path / "preds.csv").read_text() == "whole" and not left.exists()


def test_an_output_is_synced_before_it_is_renamed_onto_the_file_and_its_folder_after(tmp_path, monkeypatch):
    """atomic_write renamed its temporary file onto the output unsynced: a power loss could keep the rename and
    lose the data, an empty file where the old one was whole."""
    real, synced = os.fsync, []

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "preds.csv"
    write_output(out, lambda name: Path(name).write_text("whole"))
    (tmp,) = synced[:1]
    assert Path(tmp).name.startswith(".preds.csv.") and Path(tmp).parent == tmp_path
    assert synced == [tmp, str(tmp_path)] and out.read_text() == "whole"
