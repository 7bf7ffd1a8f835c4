"""End to end in a real headless Chromium: start the server with the shipped configuration, open the
image explorer on a workspace, wait for the overlays to render, save a screenshot; upload a corrupt file
and read the message; and check that the server listens on the loopback interface only."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                reason="chromium/chromedriver not installed (make test installs them)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(app_workspace):
    port = free_port()
    env = {**os.environ, "TRUST_WORKSPACE": str(app_workspace), "OMP_NUM_THREADS": "1"}
    # No --server.address: the shipped .streamlit/config.toml decides where it listens.
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _chrome(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-gpu", "--window-size=1400,1100", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the listening TCP sockets on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_server_listens_on_loopback_only(server):
    port = int(server.rsplit(":", 1)[1])
    addresses = _listening_addresses(port)
    assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses


def test_corrupt_upload_shows_a_message_in_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "chest_PA.dcm"
    bad.write_bytes(b"DICM" * 10)
    driver = _chrome(tmp_path)
    try:
        driver.get(server + "/upload")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stMain'] input[type='file']"))
        driver.find_element(By.CSS_SELECTOR, "[data-testid='stMain'] input[type='file']").send_keys(str(bad))
        wait.until(lambda d: "cannot be used" in d.find_element(By.TAG_NAME, "body").text)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "chest_PA.dcm" in text and "not a DICOM file" in text
        assert "Traceback" not in text
        # the app keeps running: another page still renders
        driver.get(server + "/scorecard")
        wait.until(lambda d: "Scorecard" in d.find_element(By.TAG_NAME, "body").text)
    finally:
        driver.quit()


def test_image_explorer_renders_overlay_in_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chrome(tmp_path)
    try:
        driver.get(server + "/explorer")
        wait = WebDriverWait(driver, 120)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stImage'] img")))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")) >= 9)
        time.sleep(1)
        shot = ROOT / "cache" / "screenshots" / "explorer.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Image explorer" in text and "Traceback" not in text
    finally:
        driver.quit()
