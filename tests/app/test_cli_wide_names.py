"""Class names of wide characters (CJK, emoji: two terminal cells each) keep the columns of `mr2probe failures`
and `label-issues` in line: padded by the characters' count, '東京 タワー' (6 characters, 11 cells) pushed its row's
probability 5 cells right of the others' (a first-user round on a folder of 37 classes)."""
import re

import numpy as np
import pytest
from rich.cells import cell_len

from app.cli import main
from feature_cache import write_cache
from probe.report_text import name_cell, name_width

NAMES = ["東京 タワー", "čaj ☕", "dog", "a rather long class name"]
FAST = ["--epochs", "30", "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]


def test_a_name_cell_is_padded_to_terminal_cells():
    width = name_width(NAMES, 20)
    assert width == 24 and name_width(["dog"], 20) == 20 and name_width(["東京 タワー東京 タワー東京"], 20) == 26
    assert name_cell("dog", 20) == "dog" + " " * 17
    assert name_cell("東京 タワー", 20) == "東京 タワー" + " " * 9 and cell_len(name_cell("東京 タワー", 20)) == 20
    assert name_cell("čaj ☕", 20) == "čaj ☕" + " " * 14
    assert name_cell("cat ", 20) == '"cat "' + " " * 14  # shown_name's quotes, then padded


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (4, 8))

    def split(m, name):
        y = np.repeat(np.arange(4), m)
        x = (means[y] + 1.5 * rng.normal(0, 1, (len(y), 8))).astype(np.float32)
        return x, y, [f"{name}/{i}.png" for i in range(len(y))]

    path = tmp_path_factory.mktemp("cache") / "feats.h5"
    write_cache(path, {"train": split(30, "train"), "val": split(10, "val"), "test": split(20, "test")}, NAMES,
                {"encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "w"},
                dtype="float32")
    out = path.parent / "erm"
    assert main(["train", "--features", str(path), "--out", str(out), *FAST]) == 0
    return out


def _columns(lines: list[str]) -> set[int]:
    """The terminal cell at which each row's last probability starts."""
    starts = set()
    for line in lines:
        match = list(re.finditer(r" +(<?\d+\.\d%)  ", line))[-1]
        starts.add(cell_len(line[:match.start(1)]))
    return starts


def test_failures_rows_line_up_in_terminal_cells(run, capsys):
    assert main(["failures", str(run), "--limit", "40"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert {line.split("predicted")[1].split()[0] for line in lines} >= {"東京", "čaj"}
    assert len(_columns(lines)) == 1


def test_label_issues_rows_line_up_in_terminal_cells(run, capsys):
    assert main(["label-issues", str(run), "--limit", "40"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  p(label)")]
    assert {line.split("labelled")[1].split()[0] for line in lines} >= {"東京", "čaj"}
    assert len(_columns(lines)) == 1
