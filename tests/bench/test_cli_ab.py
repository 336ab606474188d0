"""bench/cli_ab.sh: interleaved `mr2probe train` runs of two source trees, each run's wall time, then medians."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from testdata import REPO_ROOT


def test_two_trees_one_round_give_a_run_and_a_median_per_tree(tmp_path, tiny_cache):
    other = tmp_path / "tree"
    other.symlink_to(REPO_ROOT)  # a second "tree": the same sources under another path
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    done = subprocess.run(["bash", str(REPO_ROOT / "bench" / "cli_ab.sh"), str(REPO_ROOT), str(other),
                           str(tiny_cache), "1", "--seeds", "1"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    runs = [line.split() for line in lines[:2]]
    assert [r[0] for r in runs] == [str(REPO_ROOT), str(other)] and len(lines) == 4
    assert all(0 < float(r[1]) < 120 for r in runs)
    for tree, line in zip((REPO_ROOT, other), lines[2:]):
        assert re.fullmatch(rf"{re.escape(str(tree))}: [0-9. ]+; median [0-9.]+ s", line), line
