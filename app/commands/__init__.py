"""The ``mr2probe`` subcommands (one module each: ``NAME``, ``HELP``, ``add_arguments``, ``run``) and what they
share."""
from __future__ import annotations

import os
import shutil
import sys


def print_document(text: str, end: str = "\n") -> None:
    """A document a command exports on stdout (``--csv``, ``--json``, ``--format`` without ``--out``) in UTF-8, as
    the product writes its files, whatever the locale's encoding: under PYTHONIOENCODING=latin-1 (or Windows'
    cp1252, stdout redirected to a file) `report --csv > per_class.csv` wrote 'é' as one latin-1 byte and failed
    on '中文'. Written as is (no newline translation): a CSV's rows end with "\r\n" already."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # a text stream replaced by one without it: as it is
    if reconfigure is not None:
        reconfigure(encoding="utf-8", newline="")
    print(text, end=end)


def terminal_width(default: int, least: int | None = None) -> int:
    """Columns for a terminal table: ``COLUMNS`` where it is set (a pipe too: `COLUMNS=220 mr2probe report ... |
    less` was cut at 120; a scale round), else the terminal's when stdout is one, never below ``least`` (``default``
    where not given: class names and numbers were cut at a fixed 120 columns on a 200-column terminal); else
    ``default`` (pipes, files). A view whose every line fits a narrower width gives it as ``least``."""
    floor = default if least is None else least
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return max(floor, min(int(columns), 1000))
    if not sys.stdout.isatty():
        return default
    return max(floor, shutil.get_terminal_size((default, 24)).columns)


def same_file(path, other) -> bool:
    """Whether two resolved paths name one file: the same path, or a hard link to it (an attack round's way past
    a comparison of paths alone)."""
    return path == other or (path.is_file() and other.is_file() and os.path.samefile(path, other))


def share(p: float) -> str:
    """A probability in six columns: one decimal of a per cent, "<0.1%" below (the order is the exact values'), as
    `mr2probe failures` and `mr2probe label-issues` print p(label) and the predicted class's probability."""
    return f"{p:6.1%}" if p >= 0.0005 else " <0.1%"


def add_data_argument(parser) -> None:
    """``--data DIR`` of `mr2probe failures`, `mr2probe label-issues` and `mr2probe report --near-duplicates`: the rows'
    paths in full."""
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="the data set folder the run's cache was extracted from: each image's path in full "
                             "(the cache records paths inside the data set)")


def check_data_folder(data) -> None:
    """Refuse a ``--data`` that names a file (an archive: its members are no paths on disk)."""
    from pathlib import Path

    if data is not None and Path(data).is_file():
        raise ValueError(f"--data {data} is a file, not a folder: give the folder the data set was extracted "
                         "from, or leave --data out to list the paths inside the data set (an archive's members)")


def _idx_records(data, sources: list[str]) -> bool:
    """Whether ``sources`` are records of idx files (test/08923), which stay as they are, said in one line on stderr:
    a note where ``data`` holds the idx files, else a warning naming the folder it must be."""
    from feature_cache.idx import IDX_FILES, find_idx_files, idx_record

    # only rows named as records (a class folders' or manifest's files beside idx files kept their bare paths under a
    # note calling them records; a review)
    if not sources or not all(map(idx_record, sources)):
        return False
    split, record = idx_record(sources[0])
    what = f"{sources[0]}: record {record} of {IDX_FILES[split]}-images"
    if data.is_dir() and find_idx_files(data):  # "test/08923" is no file there: it said "--data must be the folder
        # these paths start in" of the idx folder itself and printed paths that exist nowhere (a new-user round)
        print(f"note: --data {data} holds idx files, whose images are records, not files: each row names its idx "
              f"file's split and record, from 0 ({what})", file=sys.stderr)
    else:  # "--data must be ... the one holding test" of a folder with no idx files (a review)
        print(f"warning: --data {data} holds no idx files, and the rows are records of idx files ({what}): --data "
              f"must be the folder holding {IDX_FILES[split]}-images-idx3-ubyte[.gz]", file=sys.stderr)
    return True


def full_paths(rows: list[dict], data) -> list[dict]:
    """``rows`` with each ``source`` (a path inside the data set) joined to the data set folder ``data``
    (:func:`_data_root`); as they are without ``data``."""
    from pathlib import Path

    if data is None:
        return rows
    sources = [row["source"] for row in rows if row["source"] is not None]
    if _idx_records(Path(data), sources):
        return rows
    root = _data_root(Path(data), sources)
    return [{**row, "source": None if row["source"] is None else str(root / row["source"])} for row in rows]


def warn_changed(rows: list[dict], cache) -> None:
    """One warning on stderr naming the listed files (``rows`` of :func:`full_paths`: each of its ``split``, test
    where none, at its ``row`` of the cache's split, else its ``index``) whose bytes differ from those the cache
    encoded (``cache()``, opened once; its digests of the listed rows alone, ``FeatureCache.row_digests``; a cache
    that cannot be read, or one written before digests, checks nothing; a file that cannot be read now is left to
    the listing): a file replaced by another of the same name since the extraction listed as the image the run got
    wrong (a data-set-iteration round)."""
    from pathlib import Path

    from feature_cache.datasets import content_digest
    from probe.splits import cache_place as place

    listed = [row for row in rows if row["source"] is not None and os.path.isfile(row["source"])]
    wanted: dict[str, list[int]] = {}
    for split, index in map(place, listed):
        wanted.setdefault(split, []).append(index)
    try:
        opened = cache()
        known = {split: opened.row_digests(split, indices) for split, indices in wanted.items()}
    except (KeyError, OSError, ValueError):
        return
    changed = []
    for row in listed:
        split, index = place(row)
        try:
            if index in known[split] and content_digest(Path(row["source"]).read_bytes()) != known[split][index][1]:
                changed.append(row["source"])
        except OSError:  # removed or unreadable since it was found: the listing still names it
            continue
    if changed:
        print(f"warning: {len(changed)} of the {len(listed)} listed files changed since the run's cache was extracted "
              f"(such as {changed[0]}), so the images there are not those the run scored: extract the folder again "
              "for the images as they are now", file=sys.stderr)


def _data_root(data: Path, sources: list[str]) -> Path:
    """The folder the listed ``sources`` (paths inside the data set) lie under: ``data``, or its parent where they
    start with its own name (a zip made from the folder keeps it as its top folder; ``--data`` naming that folder
    printed .../digits_tt/digits_tt/test/9/img.png, a path that exists nowhere, a new-user round). Otherwise
    ``data``, with one warning on stderr naming the files missing there and the folder they need."""
    missing = [source for source in sources if not (data / source).is_file()]
    if not missing:
        return data
    try:  # a symlink to that folder under another name ('ln -s digits_tt dl') names it too (an attack round)
        named = dict.fromkeys([data, data.resolve()])
    except (OSError, RuntimeError):  # a symlink loop
        named = {data: None}
    # the folder above where the paths start with its name; the root holding the most of them (a file moved since
    # the extraction under a zip's top folder read '--data must be the folder these paths start in': a review)
    missed = {data: missing, **{folder.parent: [s for s in sources if not (folder.parent / s).is_file()]
                                for folder in named if all(s.startswith(f"{folder.name}/") for s in sources)}}
    root = min(missed, key=lambda folder: len(missed[folder]))
    missing = missed[root]
    if not missing:
        return root
    first = missing[0]
    if len(missing) < len(sources):  # the folder holds the others: these left it since the extraction, and --data
        # was right (a class folder renamed read 'must be the folder these paths start in'; a data-set-iteration round)
        print(f"warning: {len(missing)} of the {len(sources)} listed files are no longer under --data {data} (such as "
              f"{root / first}): moved, renamed or removed since the run's cache was extracted", file=sys.stderr)
        return root
    print(f"warning: {len(missing)} of the {len(sources)} listed files do not exist under --data {data} (such as "
          f"{data / first}): --data must be the folder these paths start in, the one holding "
          f"{first.split('/')[0]} (the cache records paths inside the data set, such as {first})", file=sys.stderr)
    return data


def run_argument(text: str) -> str:
    """argparse type of a RUN_DIR: the run's folder, or its report.json given for it (as ``report`` and ``compare``
    took: ``predict`` and ``export`` looked for 'report.safetensors' beside it); any other file stays as given, for
    the command to name what it is (a feature cache given for a run)."""
    from pathlib import Path

    path = Path(text)
    return str(path.parent) if path.name == "report.json" and path.is_file() else text


def add_run_argument(parser) -> None:
    """The RUN_DIR positional of the commands that read one run (``run_dir``, :func:`run_argument`)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", type=run_argument,
                        help="run directory written by mr2probe train (or its report.json)")


def run_folder(run):
    """The resolved folder of a run given on the command line: the folder, or the folder of its report.json."""
    from pathlib import Path

    folder = Path(run).resolve()
    return folder.parent if folder.is_file() else folder  # a run given as its report.json


def _nearest_existing(folder):
    """``folder`` (a Path), or the nearest of its parents that exists."""
    return next(path for path in (folder, *folder.parents) if path.exists())


def file_in_the_way(folder):
    """The file that ``folder`` (a Path), or the nearest of its parents that exists, is, where a folder cannot be
    made; None where ``folder`` is or can be made a folder. Making it said only '[Errno 17] File exists'."""
    existing = _nearest_existing(folder)
    return None if existing.is_dir() else existing


def unwritable(folder) -> str | None:
    """Why nothing can be written in ``folder`` (a Path; made where missing), or None: a file in its way
    (:func:`file_in_the_way`), or the nearest folder of it that exists refusing a new file (a file written there
    and removed is the test that holds, root included). Nothing is left behind."""
    import tempfile

    nearest = _nearest_existing(folder)
    if not nearest.is_dir():  # 'File exists in FOLDER' read as if the output existed (file_in_the_way)
        return f"{nearest} is a file, not a folder"
    try:
        tempfile.TemporaryFile(dir=nearest).close()
    except OSError as exc:
        return f"{exc.strerror or exc} in {nearest}"
    return None


def check_out_file(out, example: str) -> None:
    """Before any work: ``--out`` must name a file in an existing folder (``example``: a file name to suggest).
    report --out FOLDER ended in '[Errno 21] Is a directory' after its work, where predict named the problem (a
    README round). Raises ValueError."""
    from pathlib import Path

    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name, e.g. {path / example}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"--out {path}: {path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: the folder {path.parent} does not exist")
    problem = None if path.exists() else unwritable(path.parent)  # a new file ('/proc/x.csv': Errno 2 after the work)
    if problem is not None:
        raise ValueError(f"--out {path}: nothing can be written there ({problem})")


def check_out_apart(out, *, runs=(), inputs=()) -> None:
    """Refuse, before any work, an ``--out`` that is one of the command's ``inputs`` (a feature cache it reads) or
    one of the files of the run directories ``runs`` (``probe.report.write_run``'s): predict, report and compare
    wrote their output over the run's report.json or head, or over the cache they read (found by an outside attack
    round). Raises ValueError."""
    from pathlib import Path

    from probe.deploy import PROBE_FILES
    from probe.predictions import PREDICTIONS_FILE
    from probe.seen import SEEN_FILE

    run_files = {*PROBE_FILES, "per_class.csv", PREDICTIONS_FILE, SEEN_FILE}

    target = Path(out).resolve()
    for path in inputs:
        if same_file(Path(path).resolve(), target):
            raise ValueError(f"--out {out} is the file this command reads; write to another file.")
    for run in runs:
        folder = run_folder(run)
        for name in run_files:
            if same_file(folder / name, target):
                raise ValueError(f"--out {out} is the run's own {name}; write to another file.")
