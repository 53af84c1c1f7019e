"""The picture of the demo app in docs/hub.md: serve it on a checkpoint, classify a text in headless Chromium, open the tree
of every label and save the page.

    python docs/screenshot_demo.py outputs/htla-icd10cm docs/demo_icd10cm.png \
        --text "Type 2 diabetes mellitus with diabetic chronic kidney disease"

The app runs as `python -m modeling_htla.demo CHECKPOINT` on a free local port; the browser reaches only this machine.
Needs the `dev` and `demo` extras (selenium, gradio) and Chromium with its driver (Debian: `apt-get install chromium
chromium-driver`; or set CHROMIUM and CHROMEDRIVER). tests/test_demo.py drives the browser with these functions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1280, 1360)  # wide enough for two columns; tall enough for the results and the opened branch


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(command: list[str], log: Path, port: int, timeout: float = 600, **popen) -> Iterator[str]:
    """Run `command` (an app serving on 127.0.0.1:`port`), output to `log`; yield its URL once it answers, stop it
    at the end."""
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert server.poll() is None, f"the app exited: {log.read_text()[-3000:]}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    assert time.monotonic() < deadline, \
                        f"the app did not answer at {url} within {timeout} s: {log.read_text()[-3000:]}"
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def chromium(window: tuple[int, int] = WINDOW) -> Iterator[webdriver.Chrome]:
    """Headless Chromium that reaches only this machine (any other host name fails to resolve)."""
    assert os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER), \
        "the browser needs Chromium: apt-get install chromium chromium-driver (or set CHROMIUM, CHROMEDRIVER)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='htla-chromium-')}", "--window-size={},{}".format(*window),
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def classify_in_browser(browser: webdriver.Chrome, url: str, text: str, paths: int | None = None,
                        timeout: float = 300) -> dict:
    """Type `text` into the demo at `url`, press Classify, wait for the predicted paths (`paths` of them, or any)
    and open the tree of every label. Returns what the page shows: `paths` (one string per path), `level1` (the
    first level's bars) and `tree` (the tree's text)."""
    browser.get(url)
    wait = WebDriverWait(browser, timeout)
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#htla-text textarea")).send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "#htla-classify").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#htla-paths li")) == paths if paths is not None
               else b.find_elements(By.CSS_SELECTOR, "#htla-paths li, #htla-paths p"))
    shown = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#htla-paths li")]
    level1 = browser.find_element(By.ID, "htla-level-1").text
    browser.find_element(By.CSS_SELECTOR, "#htla-all button").click()  # open the collapsible tree
    tree = wait.until(lambda b: b.find_element(By.ID, "htla-tree")).get_attribute("textContent")
    browser.execute_script("window.scrollTo(0, 0)")
    return {"paths": shown, "level1": level1, "tree": tree}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Screenshot of the HTLA demo app after a prediction.")
    parser.add_argument("checkpoint", help="checkpoint folder (e.g. outputs/htla-icd10cm, what `make demo` writes)")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--text", required=True, help="the text to classify")
    parser.add_argument("--threshold", type=float, default=None,
                        help="every level's threshold (default: the checkpoint's, learned on validation)")
    args = parser.parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "modeling_htla.demo", args.checkpoint, "--port", str(port),
               *(["--threshold", str(args.threshold)] if args.threshold is not None else [])]
    env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryDirectory() as work:
        with serve(command, Path(work) / "app.log", port, env=env) as url, chromium() as browser:
            shown = classify_in_browser(browser, url, args.text)
            browser.save_screenshot(args.output)
    print(f"{args.output}: {'; '.join(shown['paths']) or 'no path above the threshold'}")


if __name__ == "__main__":
    main()
