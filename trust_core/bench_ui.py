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

Three waits beside them: ``cold_page_ms``, the median first load of each page on the fresh server (until it
has settled and its viewer, where it has one, has painted); ``new_image_ms``, the median switch to an image
this session has not viewed but whose maps are in the cache (the demo evaluation's images); and
``busy_switch_ms``, the median switch between two viewed images while three other sessions compute maps at
the paper's preset (each stepping to an image whose maps are not cached, again and again).

The last line is ``RESULT warm_median_ms=<median> warm_p90_ms=<p90> idle_cpu_percent=<percent>
new_image_ms=<median> cold_page_ms=<median> busy_switch_ms=<median>``; the first three are the median and
90th percentile over the warm explorer interactions (opacity, window, method switch, image switch) and the
idle server's CPU.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
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
        for path, viewer in COLD_PAGES:  # each page's first load on this fresh server
            started = time.perf_counter()
            app.driver.get(f"{app.url}/{path}")
            app.settle()
            if viewer:
                app.viewer_ready()
                app.driver.switch_to.default_content()
            times.setdefault("cold page", []).append(1000 * (time.perf_counter() - started))
            log(f"first load of {path or 'the scorecard'}: {times['cold page'][-1] / 1000:.1f} s")
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
        times["new image"] = _new_images(app, repeats)
        times["busy switch"] = _busy_switches(app, repeats, log)
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
    waits = {name: statistics.median(times[label]) for name, label in
             (("new_image_ms", "new image"), ("cold_page_ms", "cold page"), ("busy_switch_ms", "busy switch"))}
    log(f"RESULT warm_median_ms={median:.0f} warm_p90_ms={p90:.0f} idle_cpu_percent={idle:.1f} "
        + " ".join(f"{name}={value:.0f}" for name, value in waits.items()))
    return {"times_ms": times, "warm_median_ms": median, "warm_p90_ms": p90, "idle_cpu_percent": idle, **waits}


COLD_PAGES = (("", False), ("explorer", True), ("randomization", True), ("metrics", False), ("compare", True))


def _image_key(app) -> str:
    app._into_viewer()
    key = app.driver.execute_script("return window.__viewer.dataKey")
    app.driver.switch_to.default_content()
    return key


def _new_images(app, repeats: int) -> list[float]:
    """Switches to images this session has not viewed (the explorer's list, further down than the warm
    switches went), whose maps the demo evaluation left in the cache."""
    from selenium.webdriver.common.keys import Keys

    out = []
    for k in range(repeats + 2):  # the first two land on images the warm switches viewed
        ms = app.rerun_timed(app.choose("Image", Keys.ARROW_DOWN), viewer=True, changed_from=_image_key(app))
        if k >= 2:
            out.append(ms)
    return out


def _busy_switches(app, repeats: int, log) -> list[float]:
    """Switches between two viewed images while three other sessions compute maps at the paper's preset,
    each stepping to the next image whenever its maps are done (not cached: the demo scored the fast preset)."""
    from selenium.webdriver.common.keys import Keys

    main, stop, drivers, workers = app.driver, threading.Event(), [], []
    pages = ("Image explorer", "Randomization", "Image explorer")
    try:
        for page, models_down in zip(pages, (0, 0, 1)):
            drivers.append(_driver())
            app.driver = drivers[-1]
            app.open("")
            app.rerun_timed(app.choose("Preset", Keys.ARROW_UP))  # arun2021, the paper's preset
            for _ in range(models_down):  # another model: its maps are computed apart
                app.rerun_timed(app.choose("Model", Keys.ARROW_DOWN))
            app.page(page)()
        app.driver = main

        def keep_busy(driver):  # the next image each time this session has finished its maps
            helper = _App.__new__(_App)
            helper.driver, helper.url = driver, app.url
            while not stop.is_set():
                try:
                    if helper._state() == "notRunning":
                        helper.choose("Image", Keys.ARROW_DOWN)()
                except Exception:  # noqa: BLE001 - a page being replaced; try again
                    pass
                stop.wait(0.5)

        workers = [threading.Thread(target=keep_busy, args=(d,), daemon=True) for d in drivers]
        for worker in workers:
            worker.start()
        time.sleep(3.0)  # all three computing
        cpu, wall = _cpu_seconds(app.server.pid), time.perf_counter()
        out = []
        for k in range(repeats + 2):  # between the two images the warm switches viewed
            ms = app.rerun_timed(app.choose("Image", Keys.ARROW_UP if k % 2 == 0 else Keys.ARROW_DOWN),
                                 viewer=True, changed_from=_image_key(app))
            if k >= 2:
                out.append(ms)
        busy = 100 * (_cpu_seconds(app.server.pid) - cpu) / (time.perf_counter() - wall)
        log(f"server CPU while the busy switches were timed: {busy:.0f} % of one core (the three sessions' maps)")
        return out
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
        app.driver = main
        for driver in drivers:
            driver.quit()
