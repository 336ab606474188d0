"""A rich table of plain text drawn row by row without rich's rendering of each cell (:func:`table_lines`): rich
measured and rendered every cell of a 5,000-class report's per-class tables (three to four columns by 5,000 rows
each) through its general layout, about 35 s for ``mr2probe report RUN --all-classes``, growing faster than the
rows. The output is rich's to the byte: rich draws the table's title, header and end from a sample of its rows (the
rows whose cells decide the columns' widths, so the same widths), and every other row is each cell's lines
justified within its column, as rich draws a line that fits; a table this does not know (another box, styles, a
cell that is not plain text or that rich would wrap) is left to rich."""
from __future__ import annotations

import copy
import dataclasses

_JUSTIFIED = {"left": lambda line, room: line + " " * room, "right": lambda line, room: " " * room + line}


def table_lines(console, table) -> tuple[list[str], int] | None:
    """The lines (each ending in a newline) ``console.print(table)`` renders before cropping them to the console,
    and the cells the widest takes; None where ``table`` is not one drawn here: rich then prints it itself."""
    from rich.cells import cell_len

    cells = [column._cells for column in table.columns]
    if not table.rows or not _drawable(table, cells):
        return None
    kept = _sample(cells)
    sample = copy.copy(table)
    sample.columns = [dataclasses.replace(column, _cells=[column._cells[i] for i in kept])
                      for column in table.columns]
    sample.rows = [table.rows[i] for i in kept]
    options = console.options
    # as Table.__rich_console__ decides them: the sample measures as the whole table, so the same widths
    widths = sample._calculate_column_widths(
        console, options.update_width((table.width or options.max_width) - table._extra_width))
    drawn = "".join(segment.text for segment in console.render(sample, options)).splitlines(keepends=True)
    mine = _row_lines(table, cells, kept, widths)
    # rich's drawing of the sampled rows must be this one's, exactly once: the lines before are the title and the
    # header, those after the table's end (else rich prints the table: a change of rich's layout is never guessed)
    starts = [i for i in range(len(drawn) - len(mine or []) + 1) if drawn[i:i + len(mine)] == mine] if mine else []
    if len(starts) != 1:
        return None
    end = starts[0] + len(mine)
    # the widest line: every row's is its cells' widths with the edge and dividers
    widest = max(sum(widths) + len(widths) + 1, *(cell_len(line) for line in drawn[:starts[0]] + drawn[end:]))
    rows = _row_lines(table, cells, range(len(table.rows)), widths)
    return None if rows is None else (drawn[:starts[0]] + rows + drawn[end:], widest)


def _drawable(table, cells: list[list]) -> bool:
    """Whether ``table`` is one :func:`_row_lines` draws as rich does: box SIMPLE with its edge and header, no
    footer, lines, styles or collapsed padding, one cell of padding either side, columns justified left or right at
    the top, and every cell plain printable text without white space at a line's ends (rich strips or wraps it)."""
    from rich import box

    if not (table.box is box.SIMPLE and table.show_edge and table.show_header and not table.show_footer
            and not table.show_lines and not table.leading and not table.row_styles and table.style in ("", "none")
            and not table.collapse_padding and table.pad_edge and table.padding == (0, 1, 0, 1)):
        return False
    if any(row.style for row in table.rows):
        return False
    if any(column.justify not in _JUSTIFIED or column.vertical != "top" or column.style for column in table.columns):
        return False
    return all(isinstance(cell, str) and all(line.isprintable() and line == line.strip() for line in cell.split("\n"))
               for column in cells for cell in column)


def _sample(cells: list[list[str]]) -> list[int]:
    """The first row and, of each column, the first row of its widest word and of its widest line (rich's
    measure of a text, ``Text.__rich_measure__``): a table of these rows has the whole table's column widths."""
    from rich.cells import cell_len

    kept = {0}
    for column in cells:
        lines = [max(map(cell_len, cell.splitlines()), default=0) for cell in column]
        # a cell without white space is one word, as wide as its line
        words = [max(map(cell_len, cell.split()), default=0) if " " in cell else line
                 for cell, line in zip(column, lines)]
        kept |= {words.index(max(words)), lines.index(max(lines))}
    return sorted(kept)


def _row_lines(table, cells: list[list[str]], indices, widths: list[int]) -> list[str] | None:
    """The lines of ``table``'s rows ``indices`` at ``widths`` (each with its padding), as rich draws them: every
    cell's lines justified within its column and padded with blank lines to the row's height, a rule under a row
    that ends a section but the last; None where a line does not fit its column (rich would wrap or cut it)."""
    from rich.cells import cell_len

    rule = table.box.get_row(widths, "row", edge=True) + "\n"
    justify = [_JUSTIFIED[column.justify] for column in table.columns]
    out: list[str] = []
    indices = list(indices)
    for i in indices:
        row = [column[i].split("\n") for column in cells]
        for k in range(max(map(len, row))):
            parts = []
            for lines, width, place in zip(row, widths, justify):
                line = lines[k] if k < len(lines) else ""
                room = width - 2 - cell_len(line)
                if room < 0:
                    return None
                parts.append(" " + place(line, room) + " ")
            out.append(" " + " ".join(parts) + " \n")
        if table.rows[i].end_section and i != indices[-1]:
            out.append(rule)
    return out
