"""probe.names.listed: how every message names a long list."""
from __future__ import annotations

from probe.names import listed


def test_listed_names_the_first_and_counts_the_rest():
    assert listed(["a", "b", "c"], 3) == "a, b, c"
    assert listed(["a", "b", "c", "d", "e"], 2) == "a, b and 3 more"
    assert listed(["'x' (in 'train')", "'y' (in 'val')", "z"], 2, sep="; ") == \
        "'x' (in 'train'); 'y' (in 'val') and 1 more"
    assert listed([], 5) == ""


def test_a_class_name_with_white_space_at_an_end_is_shown_quoted_where_names_are_shown():
    """Folders 'cat ' and 'cat' are two classes that printed alike (the space shows as nothing), in the terminal's
    tables, the worst class and its ties, the charts' labels: quoted where shown, the stored names unchanged."""
    from probe.report import WorstClass
    from probe.report_text import class_table, cut_name, text_console

    from probe.names import shown_name

    assert [shown_name(n) for n in ("cat ", " cat", "cat", "big cat", "\tcat")] == \
        ['"cat "', '" cat"', "cat", "big cat", '"\tcat"']
    assert shown_name(shown_name("cat ")) == '"cat "'
    assert cut_name("cat ") == '"cat "' and cut_name("cat") == "cat"
    worst = WorstClass.of("cat ", 0.5, ["cat"])
    assert worst.name == "cat " and worst.text == '"cat " (tied with cat)'
    assert WorstClass.of("cat", 0.5, ["cat "]).text == 'cat (tied with "cat ")'
    console = text_console(60)
    console.print(class_table("per class", [("class", "left"), ("acc %", "right")], [["cat ", "50.0"], ["cat", "40.0"]],
                              60))
    lines = [line.strip() for line in console.export_text().splitlines()]
    assert '"cat "    50.0' in lines and "cat       40.0" in lines, lines
