"""The run page's per-class table at many classes, in headless Chromium: the time from a click on "Show all N classes"
(and in that mode on a header, and a scroll of its box to the middle) to the frame after it, layout included.

    python bench/per_class_table.py --classes 5000 --repeats 5

Starts the app on an empty data dir and Chromium through chromedriver (as tests/app/test_dashboard_browser.py does),
builds the table of a synthetic report (`RunPage.panels.perClassTable`, the run page's own function) in a card of
the page, and prints each step's times and median in ms. Needs /usr/bin/chromium and /usr/bin/chromedriver.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "app"))

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from test_dashboard_browser import CHROMIUM, WebDriver, _serve  # noqa: E402

# a report as the many-classes tests build it, each class with a confusion; `box` placed in a card of the page
SETUP = """const K = arguments[0], names = Array.from({length: K}, (_, i) => 'class ' + i);
    const report = { class_names: names, grouping: { source: 'self' }, summary: {},
                     per_class: names.map((name, i) => ({ index: i, name, group: 'easy', accuracy: (i * 7 % K) / K,
                         val_accuracy: .5, n_train: 3, n_test: 2, r: i / 10,
                         top_confusions: [{ name: 'class ' + ((i + 1) % K), rate: .5 },
                                          { name: 'class ' + ((i + 2) % K), rate: .25 }] })) };
    const box = RunPage.panels.perClassTable(report, null, null);
    const card = document.createElement('section'); card.className = 'card'; card.appendChild(box);
    document.querySelector('main').replaceChildren(card);"""

# the time from `act()` to the frame after it (layout and paint done), in ms
TIMED = """const done = arguments[arguments.length - 1];
    const heads = Array.from(document.querySelectorAll('#per-class-table th'));
    const col = (name) => heads.findIndex((t) => t.textContent === name);
    const act = { all: () => document.querySelector('#per-class-pages .page-all').click(),
                  confusions: () => heads[col(Words.confusions_header)].click(),
                  accuracy: () => heads[col('accuracy')].click(),
                  scroll: () => { const b = document.querySelector('.table-scroll');
                                  b.scrollTop = (b.scrollHeight - b.clientHeight) / 2; } }[arguments[0]];
    const t0 = performance.now();
    act();
    document.getElementById('per-class-table').getBoundingClientRect();
    // a scroll's rows are drawn in the frame after it (requestAnimationFrame): one frame more
    const frames = (n, then) => (n ? requestAnimationFrame(() => frames(n - 1, then)) : setTimeout(then));
    frames(arguments[0] === 'scroll' ? 2 : 1, () => done([performance.now() - t0,
        document.querySelectorAll('#per-class-table tbody tr').length]));"""


def measure(driver: WebDriver, base: str, classes: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"all": [], "confusions": [], "accuracy": [], "scroll": []}
    rows = {}
    for _ in range(repeats):
        driver.get(f"{base}/")
        driver.js("return new Promise((ok) => { const t = setInterval(() => { if (window.RunPage) "
                  "{ clearInterval(t); ok(true); } }, 50); })")
        driver.js(SETUP, [classes])
        for step in times:  # "Show all", then in that mode: sorts by the confusions, by accuracy, a scroll
            ms, rows[step] = driver._cmd("POST", "/execute/async", {"script": TIMED, "args": [step]})
            times[step].append(ms)
    for step, values in times.items():
        print(f"{step}: median {statistics.median(values):.0f} ms of {['%.0f' % v for v in values]}, "
              f"{rows[step]} <tr> in the body")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    chromium = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    with tempfile.TemporaryDirectory() as tmp:
        server, thread, base = _serve(create_app(Settings(data_dir=Path(tmp), device="cpu"), start_worker=False))
        driver = WebDriver(chromium)
        try:
            measure(driver, base, args.classes, args.repeats)
        finally:
            driver.close()
            server.should_exit = True
            thread.join(10)


if __name__ == "__main__":
    main()
