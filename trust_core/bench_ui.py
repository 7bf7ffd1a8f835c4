"""``trust bench ui``: what a user waits for in the served app, measured in headless Chromium.

A demo workspace is served by a real ``streamlit run`` (the README's way) and driven by selenium.

- Interactions the browser viewer handles itself (opacity, window/level, method switch, randomization step)
  are timed in the page, from the input event dispatched on the viewer's own control until the frame that
  shows its effect has been painted (the viewer's draw counter has moved and the next animation frame has
  come): no server round trip is involved, and none is hidden.
- Interactions that go through Python (image switch, page switch) are timed from the input event (the key
  or click that commits it: opening a dropdown is not timed) until the rerun has finished, no element is
  stale (``data-test-script-state`` back to ``notRunning``, no ``data-stale`` element) and, where the
  viewer is shown, it has decoded and painted the new film (the later of the two, both on the browser's
  clock): the time until the page stops changing, not the script time AppTest reports.

Each interaction is warmed twice (the maps enter the cache), then repeated. Afterwards the server is left
alone and its CPU time over ``idle_seconds`` is read from ``/proc``.

The last line is ``RESULT warm_median_ms=<median> warm_p90_ms=<p90> idle_cpu_percent=<percent>``, the median
and 90th percentile over the warm explorer interactions (opacity, window, method switch, image switch).
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]  # where app.py lives
EXPLORER = ("opacity", "window", "method", "image")
# When the viewer's current film was painted (its own timestamps, for the film it now holds; 20 s at most)
PAINTED = ("const S = window.__viewer, deadline = Date.now() + 20000; return new Promise((ok, no) => (function w() {"
           " const t = S.timing; if (t && t.key === S.dataKey && t.painted) ok(t.painted);"
           " else if (Date.now() > deadline) no('the viewer did not paint'); else requestAnimationFrame(w); })())")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (Path(binary).exists() and Path(driver).exists()):
        raise ConfigError("trust bench ui needs Chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver): "
                          "`make browser` installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--window-size=1600,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


class _App:
    """A served app and a browser on it."""

    def __init__(self, workspace: Path, log):
        self.port = _free_port()
        env = {**os.environ, "TRUST_WORKSPACE": str(workspace)}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or self.server.poll() is not None:
                    self.close()
                    raise ConfigError("the app server did not start (run `streamlit run app.py` to see why)") from None
                time.sleep(0.5)
        self.driver = _driver()
        self.log = log

    def close(self):
        if getattr(self, "driver", None) is not None:
            self.driver.quit()
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()

    # -- waiting ---------------------------------------------------------------------------------------
    def _state(self) -> str:
        return self.driver.execute_script(
            "var a = document.querySelector(\"[data-testid='stApp']\");"
            "if (!a) return 'absent';"
            "if (document.querySelector('[data-stale=\"true\"]')) return 'stale';"
            "return a.getAttribute('data-test-script-state');")

    def settle(self, timeout: float = 180.0) -> None:
        """Until the app has finished its rerun and nothing on the page is stale."""
        deadline = time.perf_counter() + timeout
        quiet_since = None
        while time.perf_counter() < deadline:
            state = self._state()
            if state == "notRunning":
                quiet_since = quiet_since or time.perf_counter()
                if time.perf_counter() - quiet_since >= 0.05:  # stays settled (no rerun about to start)
                    return
            else:
                quiet_since = None
            time.sleep(0.01)
        raise TimeoutError("the app did not settle")

    def rerun_timed(self, trigger, *, viewer: bool = False, changed_from: str | None = None) -> float:
        """Milliseconds, on the browser's clock, from ``trigger`` (the event that commits an input) until the
        rerun it causes has settled and, with ``viewer``, the viewer has painted its new film."""
        started = self.driver.execute_script("return Date.now()")
        trigger()
        time.sleep(0.05)  # the rerun starts
        self.settle()
        done = self.driver.execute_script("return Date.now()") - 50  # less the settled-for check
        if viewer:
            self.viewer_ready(changed_from=changed_from)
            done = max(done, self.driver.execute_script(PAINTED))
            self.driver.switch_to.default_content()
        return float(done - started)

    # -- the viewer (an iframe): interactions it handles without Python -------------------------------
    def _into_viewer(self):
        from selenium.webdriver.common.by import By

        self.driver.switch_to.default_content()
        frames = self.driver.find_elements(By.CSS_SELECTOR, "iframe[title*='trust_viewer']") or \
            self.driver.find_elements(By.CSS_SELECTOR, "iframe")
        if not frames:
            raise ConfigError("no viewer on the page")
        self.driver.switch_to.frame(frames[0])

    def viewer_ready(self, timeout: float = 60.0, changed_from: str | None = None) -> str:
        """Wait until the viewer has painted (a new film, when ``changed_from`` names the old one)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                self._into_viewer()
                key = self.driver.execute_script(
                    "const S = window.__viewer; return S && S.draws > 0 ? S.dataKey : null")
                if key and key != changed_from:
                    return key
            except Exception:  # the iframe is being replaced
                pass
            time.sleep(0.01)
        raise TimeoutError("the viewer did not paint")

    def in_viewer(self, script: str) -> float:
        """Milliseconds from ``script`` (which dispatches one input event in the viewer) to the painted frame."""
        self._into_viewer()
        ms = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1], S = window.__viewer, before = S.draws;"
            "const t0 = performance.now();" + script +
            "(function wait() { if (S.draws > before) requestAnimationFrame(() => done(performance.now() - t0));"
            " else requestAnimationFrame(wait); })();")
        self.driver.switch_to.default_content()
        return float(ms)

    def open(self, path: str) -> None:
        self.driver.get(f"{self.url}/{path}")
        self.settle()
        time.sleep(1.0)
        self.settle()

    # -- widgets ---------------------------------------------------------------------------------------
    def _widget(self, testid: str, label: str):
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']"):
            if element.text.split("\n")[0].strip() == label:
                return element
        raise ConfigError(f"no {testid} labelled {label!r} on the page")

    def choose(self, label: str, key):
        """Move a selectbox's choice by one (``Keys.ARROW_DOWN``/``ARROW_UP``) and confirm it."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        box = self._widget("stSelectbox", label).find_element(By.CSS_SELECTOR, "input")
        box.click()
        time.sleep(0.15)
        box.send_keys(key)
        return lambda: box.send_keys(Keys.ENTER)

    def page(self, title: str):
        from selenium.webdriver.common.by import By

        for link in self.driver.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNavLink']"):
            if link.text.strip().endswith(title):
                return link.click
        raise ConfigError(f"no page {title!r} in the navigation")


def bench_ui(workspace: str | Path | None = None, *, repeats: int = 6, idle_seconds: float = 30.0, log=print) -> dict:
    """Time the warm interactions of the served app (see the module docstring); returns the figures."""
    from selenium.webdriver.common.keys import Keys

    from .layout import workspace_path

    root = Path(workspace) if workspace else workspace_path()
    if not (root / "results").is_dir():
        raise ConfigError(f"{root} is not a demo workspace with results: run `trust demo --workspace {root}` first")
    app = _App(root, log)
    times: dict[str, list[float]] = {}
    try:
        started = time.perf_counter()
        app.open("")
        log(f"first load of the scorecard: {time.perf_counter() - started:.1f} s")
        app.open("explorer")
        app.viewer_ready()
        fire = "const n = document.getElementById('{id}'); n.value = {value}; n.dispatchEvent(new Event('{event}'));"
        in_viewer = {  # the viewer's own controls, as a user's input would fire them
            "opacity": lambda k: fire.format(id="opacity", value=0.7 if k % 2 == 0 else 0.4, event="input"),
            "window": lambda k: ("document.querySelector(`#presets button[data-preset='%s']`).click();"
                                 % ("lung" if k % 2 == 0 else "mediastinum")),
            "method": lambda k: fire.format(id="method", value="'xrai'" if k % 2 == 0 else "'grad'", event="change"),
        }
        for name, script in in_viewer.items():
            for k in range(repeats + 2):
                ms = app.in_viewer(script(k))
                if k >= 2:
                    times.setdefault(name, []).append(ms)
        for k in range(repeats + 2):  # through Python: the rerun, and the viewer's new film painted
            app._into_viewer()
            old = app.driver.execute_script("return window.__viewer.dataKey")
            app.driver.switch_to.default_content()
            ms = app.rerun_timed(app.choose("Image", Keys.ARROW_DOWN if k % 2 == 0 else Keys.ARROW_UP),
                                 viewer=True, changed_from=old)
            if k >= 2:
                times.setdefault("image", []).append(ms)
        app.open("randomization")
        app.viewer_ready()
        for k in range(repeats + 2):
            ms = app.in_viewer(fire.format(id="frame", value=3 if k % 2 == 0 else 4, event="input"))
            if k >= 2:
                times.setdefault("randomization step", []).append(ms)
        for k in range(repeats + 2):  # to the explorer: until its viewer has painted the film, too
            app.driver.switch_to.default_content()
            ms = app.rerun_timed(app.page("Metrics" if k % 2 == 0 else "Image explorer"), viewer=bool(k % 2))
            if k >= 2:
                times.setdefault("page switch", []).append(ms)
        app.driver.get("about:blank")  # nobody on the app: what does the server do alone?
        time.sleep(2.0)
        before = _cpu_seconds(app.server.pid)
        time.sleep(idle_seconds)
        idle = 100.0 * (_cpu_seconds(app.server.pid) - before) / idle_seconds
    finally:
        app.close()
    for name, values in times.items():
        log(f"{name:<20} median {statistics.median(values):7.0f} ms   max {max(values):7.0f} ms   (n={len(values)})")
    warm = sorted(v for name in EXPLORER for v in times.get(name, []))
    median = statistics.median(warm)
    p90 = warm[min(len(warm) - 1, int(round(0.9 * (len(warm) - 1))))]
    log(f"idle server: {idle:.1f} % of one core over {idle_seconds:.0f} s")
    log(f"RESULT warm_median_ms={median:.0f} warm_p90_ms={p90:.0f} idle_cpu_percent={idle:.1f}")
    return {"times_ms": times, "warm_median_ms": median, "warm_p90_ms": p90, "idle_cpu_percent": idle}
