"""probe.plain_table: print_table draws a class table's rows as plain text, byte for byte what rich draws (rich's
own drawing, console.print(table), is the reference), at every width and row count, with wrapped prose columns,
sections and word-wrapped labels; a table it does not know is left to rich."""
import pytest
from rich.table import Table

from probe.plain_table import _sample, table_lines
from probe.report_text import class_table, print_table, text_console

NUMBERS = (("class", "left"), ("acc %", "right"), ("shipped %", "right"), ("out margin", "right"))
PROSE = (("class", "left"), ("acc %", "right"), ("precision %", "right"), ("most often confused with", "left"))
NAMES = ["cat", "n01440764 tench, Tinca tinca", "北京烤鸭 Peking duck #0158", "東京 タワー",
         "circle_4_hstripes", "a" * 45, "dress", "x [/] y", "animal:cat:1"]


def number_rows(n: int) -> list[list[str]]:
    return [[f"{NAMES[i % len(NAMES)]} {i}", f"{(i * 7.31) % 100:.2f}",
             f"{(i * 3.7) % 100:.2f} [{i % 50}.0, 9{i % 10}.5]",
             "—" if i % 11 == 0 else f"{-0.0123 * (i % 17):.4g}"] for i in range(n)]


def prose_rows(n: int) -> list[list[str]]:
    return [[f"{NAMES[i % len(NAMES)]} {i}", f"{i % 100}.00", f"{(i * 3) % 100}.25 [1.0, 9.{i % 10}]",
             ", ".join(f"{NAMES[(i + k) % len(NAMES)][:12]} ({k + i % 7}.{k})" for k in range(i % 6))]
            for i in range(n)]


def rich_text(table, width: int) -> str:
    """The reference: rich drawing the table itself, at print_table's width."""
    console = text_console(width)
    console.width = max(width, table.needed_width)
    console.print(table)
    return console.export_text()


def drawn_text(table, width: int, drawn_rows: list[int] | None = None) -> str:
    """print_table's text; ``drawn_rows`` gets the row count of each table rich draws meanwhile."""
    console = text_console(width)
    draw = Table._render

    def counted(self, *args):
        drawn_rows is None or drawn_rows.append(len(self.rows))
        return draw(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "_render", counted)
        print_table(console, table, width)
    return console.export_text()


def table_rows_sample(table) -> list[int]:
    return _sample([column._cells for column in table.columns])


def check(make_table, width: int, drawn_here: bool = True) -> None:
    """``make_table()`` printed by print_table is rich's own drawing; ``drawn_here``: its rows drawn as plain text,
    not left to rich (a prose line one cell wider than its column, its comma, is wrapped by rich: left to it)."""
    reference, table = rich_text(make_table(), width), make_table()
    console = text_console(max(width, table.needed_width))
    assert not drawn_here or table_lines(console, table) is not None
    drawn_rows: list[int] = []
    assert drawn_text(table, width, drawn_rows) == reference
    # rich drew the rows that decide the widths (the first, each column's widest word and line), not every row
    assert not drawn_here or drawn_rows == [len(table_rows_sample(table))]


@pytest.mark.parametrize("rows", [1, 2, 50])
@pytest.mark.parametrize("width", range(60, 201, 7))
def test_numbers_match_rich(width, rows):
    check(lambda: class_table("per class", NUMBERS, number_rows(rows), width), width)


@pytest.mark.parametrize("rows", [1, 2, 50])
@pytest.mark.parametrize("width", range(60, 201, 7))
def test_wrapped_prose_in_sections_matches_rich(width, rows):
    check(lambda: class_table("errors", PROSE, prose_rows(rows), width, caption="the caption", sections=True), width,
          drawn_here=False)


@pytest.mark.parametrize("rows", [1, 2, 50])
def test_wrapped_prose_is_drawn_here(rows):
    check(lambda: class_table("errors", PROSE, prose_rows(rows), 123, caption="the caption", sections=True), 123)


@pytest.mark.parametrize("width", [60, 83, 120, 200])
def test_word_wrapped_labels_match_rich(width):
    rows = [[f"worst class (class {i} (tied with class {i + 1}, class {i + 2}))", f"{i}.5", f"+{i}.25"]
            for i in range(30)]
    check(lambda: class_table("metrics", (("metric", "left"), ("run a", "right"), ("Δ", "right")), rows, width,
                              labels=True), width)


@pytest.mark.parametrize("width", [60, 120, 200])
def test_a_thousand_rows_match_rich(width):
    check(lambda: class_table("per class", NUMBERS, number_rows(1000), width), width)
    check(lambda: class_table("errors", PROSE, prose_rows(1000), width, sections=True), width, drawn_here=width != 60)


def test_a_table_it_does_not_know_is_left_to_rich():
    """A cell with white space at its end (rich's right justification strips it) and a styled column: rich draws."""
    padded = class_table("t", NUMBERS, [["cat", "1.00 ", "2.00", "3"]], 120)
    styled = Table("a", "b")
    styled.columns[0].style = "bold"
    styled.add_row("x", "y")
    for table in (padded, styled):
        table.needed_width = 120
        assert table_lines(text_console(120), table) is None
        assert drawn_text(table, 120) == rich_text(table, 120)
