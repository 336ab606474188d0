"""probe.names.listed: how every message names a long list."""
from __future__ import annotations

from probe.names import listed


def test_listed_names_the_first_and_counts_the_rest():
    assert listed(["a", "b", "c"], 3) == "a, b, c"
    assert listed(["a", "b", "c", "d", "e"], 2) == "a, b and 3 more"
    assert listed(["'x' (in 'train')", "'y' (in 'val')", "z"], 2, sep="; ") == \
        "'x' (in 'train'); 'y' (in 'val') and 1 more"
    assert listed([], 5) == ""
