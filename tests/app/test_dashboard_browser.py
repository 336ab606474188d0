"""The dashboard in a real headless Chromium (driven through chromedriver's WebDriver HTTP API).

Checks that the run page loads, draws the per-class SVG bar chart for a finished run (ERM overlaid), the
home page lists the runs, and that no request of the browser leaves 127.0.0.1.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from app.main import create_app

from app_testutils import free_port, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--window-size=1400,1800"]


@pytest.fixture(scope="module")
def browser_tools():
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.exists() and shutil.which(tool.name) is None:
            pytest.skip(f"browser test: {tool} is absent (apt-get install chromium chromium-driver)")
    return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))


def _serve(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, what="uvicorn started")
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def live_server(finished):
    """The finished service's data dir served read-only by a real uvicorn on 127.0.0.1."""
    server, thread, base = _serve(create_app(finished.settings, start_worker=False))
    yield base
    server.should_exit = True
    thread.join(10)


class WebDriver:
    """The few WebDriver commands the test needs."""

    def __init__(self, chromium: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([str(CHROMEDRIVER), f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

        def up():
            try:
                return self.http.get("/status").json()["value"]["ready"]
            except (httpx.TransportError, ValueError, KeyError):
                return False

        wait_for(up, 30, what="chromedriver ready")
        caps = {"browserName": "chrome",
                "goog:chromeOptions": {"binary": str(chromium), "args": CHROME_ARGS},
                "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"}}
        resp = self.http.post("/session", json={"capabilities": {"alwaysMatch": caps}}).json()
        if "sessionId" not in resp.get("value", {}):
            self.close()
            raise RuntimeError(f"chromedriver could not start chromium: {resp}")
        self.session = f"/session/{resp['value']['sessionId']}"

    def _cmd(self, method: str, path: str, body: dict | None = None):
        resp = self.http.request(method, self.session + path, json=body).json()
        if isinstance(resp.get("value"), dict) and "error" in resp["value"]:
            raise RuntimeError(f"webdriver {path}: {resp['value']['error']}: {resp['value'].get('message')}")
        return resp.get("value")

    def get(self, url: str) -> None:
        self._cmd("POST", "/url", {"url": url})

    def js(self, script: str):
        return self._cmd("POST", "/execute/sync", {"script": script, "args": []})

    def log(self, kind: str) -> list[dict]:
        return self._cmd("POST", "/se/log", {"type": kind})

    def close(self) -> None:
        try:
            if hasattr(self, "session"):
                self.http.delete(self.session)
        finally:
            self.http.close()
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def driver(browser_tools):
    d = WebDriver(browser_tools)
    yield d
    d.close()


def _requested_urls(driver: WebDriver) -> list[str]:
    urls = []
    for entry in driver.log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_run_page_draws_per_class_chart_offline(driver, live_server, finished):
    url = f"{live_server}/runs/{finished.mr2}?compare={finished.erm}"
    driver.get(url)
    wait_for(lambda: driver.js("return document.querySelector('main').dataset.ready === 'run'"), 60,
             interval=0.2, what="run page rendered")
    bars = driver.js("""return Array.from(document.querySelectorAll('#per-class-chart rect.bar')).map(
        r => [r.dataset.class, r.dataset.series, Number(r.dataset.value), r.getAttribute('height')]);""")
    report = httpx.get(f"{live_server}/api/reports/{finished.mr2}").json()
    erm = httpx.get(f"{live_server}/api/reports/{finished.erm}").json()
    runs = {r["id"]: r["name"] for r in httpx.get(f"{live_server}/api/runs").json()}
    mr2_bars = [(c, v) for c, s, v, _ in bars if s == runs[finished.mr2]]
    erm_bars = [(c, v) for c, s, v, _ in bars if s == runs[finished.erm]]
    expected = sorted(report["per_class"], key=lambda r: (r["accuracy"], r["index"]))  # worst → best
    assert [c for c, _ in mr2_bars] == [r["name"] for r in expected]
    assert all(float(h) > 0 for c, s, v, h in bars if v > 0)
    assert dict(mr2_bars) == {r["name"]: r["accuracy"] for r in report["per_class"]}
    assert dict(erm_bars) == {r["name"]: r["accuracy"] for r in erm["per_class"]}
    for chart in ("group-chart", "r-scatter", "margin-chart"):
        assert driver.js(f"return document.getElementById('{chart}') !== null"), chart
    assert driver.js("return document.querySelectorAll('#r-scatter circle').length") == 6
    kpi = driver.js("return document.querySelector('.kpi[data-metric=overall] .value').textContent")
    assert kpi == f"{100 * report['summary']['overall']:.1f}%"
    assert driver.js("return document.getElementById('csv-link').getAttribute('href')") == \
        f"/api/reports/{finished.mr2}.csv"
    note = driver.js("return document.getElementById('selection-note').textContent")
    assert note == f"Selection (overall, on val): {report['selection']['reason']}"  # no preset: no preset line
    urls = _requested_urls(driver)
    assert any(u.endswith(f"/api/reports/{finished.mr2}") for u in urls)
    outside = [u for u in urls if not u.startswith(live_server + "/") and not u.startswith(("data:", "blob:"))]
    assert outside == [], f"requests left localhost: {outside}"
    errors = [e for e in driver.log("browser") if e.get("level") == "SEVERE"]
    assert errors == [], errors


def test_home_page_lists_jobs_and_runs(driver, live_server, finished):
    driver.get(live_server + "/")
    wait_for(lambda: driver.js("return document.querySelectorAll('#runs tr[data-run]').length") == len(
        httpx.get(f"{live_server}/api/runs").json()), 60, interval=0.2, what="runs listed")
    statuses = driver.js("return Array.from(document.querySelectorAll('#jobs tr[data-job] .status')).map(s => s.dataset.status)")
    assert statuses and set(statuses) <= {"succeeded", "cancelled"}
    link = driver.js(f"return document.querySelector('#runs tr[data-run=\"{finished.mr2}\"] a').getAttribute('href')")
    assert link == f"/runs/{finished.mr2}?compare={finished.erm}"
    urls = _requested_urls(driver)
    assert [u for u in urls if not u.startswith(live_server + "/") and not u.startswith(("data:", "blob:"))] == []


def test_token_field_unlocks_a_protected_server(driver, finished):
    settings = finished.settings.model_copy(update={"api_token": SecretStr("dash-token")})
    server, thread, base = _serve(create_app(settings, start_worker=False))
    try:
        driver.get(f"{base}/runs/{finished.mr2}")
        wait_for(lambda: "needs an API token" in driver.js("return document.getElementById('banner').textContent"),
                 60, interval=0.2, what="token banner")
        assert driver.js("return document.querySelectorAll('#per-class-chart rect.bar').length") == 0
        driver.js("""document.getElementById('token-input').value = 'dash-token';
                     document.querySelector('#token-form button[type=submit]').click();""")
        wait_for(lambda: driver.js("return document.querySelector('main').dataset.ready === 'run'"), 60,
                 interval=0.2, what="run page rendered with the token")
        # 3 classes × (this run + its reference ERM run, compared by default)
        assert driver.js("return document.querySelectorAll('#per-class-chart rect.bar').length") == 6
        assert driver.js("return sessionStorage.getItem('mr2probe-token')") == "dash-token"
        assert driver.js("return localStorage.length") == 0  # never persisted beyond the tab
    finally:
        driver.js("sessionStorage.clear()")
        server.should_exit = True
        thread.join(10)
