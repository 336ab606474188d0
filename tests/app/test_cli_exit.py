"""app.cli.exit_process: the console script ends without the interpreter's teardown only when nothing needs it."""
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python *args`` in a child process with the repository on its path."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """A child that registers an exit handler printing 'teardown', runs ``body``, then exit_process(3)."""
    script = "import atexit, sys\nfrom app.cli import exit_process\natexit.register(print, 'teardown')\n"
    script += textwrap.dedent(body) + "\nprint('done', end='')\nexit_process(3)\n"
    return _python(["-c", script], tmp_path)


def test_console_script_is_run():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mr2probe"] == "app.cli:run"


def test_nothing_to_tear_down_skips_the_teardown_and_flushes(tmp_path):
    done = _run("import torch", tmp_path)  # torch's own finalisers do not need the teardown
    assert done.returncode == 3
    assert done.stdout == "done"  # flushed without a newline; the exit handler did not run


@pytest.mark.parametrize("body", [
    "import tempfile\nkeep = tempfile.TemporaryDirectory(dir='.')",  # its cleanup is a finaliser
    "import threading, time\nthreading.Thread(target=time.sleep, args=(0.3,)).start()",  # a non-daemon thread
    "import multiprocessing, time\np = multiprocessing.Process(target=time.sleep, args=(0.3,)); p.start()",
])
def test_pending_work_keeps_the_teardown(tmp_path, body):
    done = _run(body, tmp_path)
    assert done.returncode == 3
    assert done.stdout == "doneteardown\n"
    assert not list(tmp_path.iterdir())  # the temporary directory was removed


def test_open_hdf5_file_is_closed_by_the_teardown(tmp_path):
    done = _run("import h5py, numpy as np\nf = h5py.File('open.h5', 'w')\nf['x'] = np.arange(5)", tmp_path)
    assert done.stdout == "doneteardown\n"
    with h5py.File(tmp_path / "open.h5", "r") as f:
        assert np.array_equal(f["x"][()], np.arange(5))


def test_python_m_app_ends_through_exit_process(tmp_path):
    done = _python(["-m", "app", "train", "--features", "missing.h5", "--out", "run"], tmp_path)
    assert done.returncode == 2
    assert "mr2probe train: error" in done.stderr and "missing.h5" in done.stderr


def test_closed_stdout_pipe_still_exits_with_the_code(tmp_path):
    """`mr2probe ... | head`: the reader has gone, flushing stdout fails; the exit code is kept, no traceback."""
    script = ("import os, sys\nfrom app.cli import exit_process\nr, w = os.pipe()\nos.close(r)\n"
              "sys.stdout = os.fdopen(w, 'w')\nprint('lost', end='')\nexit_process(4)\n")
    done = _python(["-c", script], tmp_path)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr


def test_ctrl_c_while_the_commands_are_imported_is_one_line_and_130(monkeypatch, capsys):
    """A Ctrl-C in the first ~0.2 s of any command (build_parser imports every command's module) printed a
    30-line trace of an import (pydantic's) and exited 1; later it is 'mr2probe train: interrupted', 130."""
    from app import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = cli.main(["train", "--features", "x.h5", "--out", "runs/x"])
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C came out of main as a KeyboardInterrupt (a trace)")
    assert code == 130
    assert capsys.readouterr().err == "mr2probe: interrupted\n"


def test_sigterm_runs_the_commands_clean_up_and_says_so(tmp_path):
    """SIGTERM (`kill PID`) ended a command at once and silently (exit 143): a backup stopped while it copied left
    its half copy, and the temporary files of a write stayed (a failure round). It now ends the command as Ctrl-C
    does: its clean-up runs and one line says what stopped it."""
    script = textwrap.dedent("""
        import os, signal, sys
        from app.cli import main
        from app.commands import backup
        from app.store import Store

        Store("data/mr2probe.sqlite3")
        os.makedirs("data/runs/run_1")
        open("data/runs/run_1/report.json", "w").write("{}")

        def terminated(source, target, ignore=None):
            os.kill(os.getpid(), signal.SIGTERM)
            return 0

        backup._copy_tree = terminated
        code = main(["backup", "--data-dir", "data", "copy"])
        print(code, os.path.exists("copy"), signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    """)
    done = _python(["-c", script], tmp_path)
    assert done.stdout.split() == ["143", "False", "True"], (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines()[-1] == "mr2probe backup: terminated (SIGTERM)"
