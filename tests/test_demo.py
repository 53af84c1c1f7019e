"""The demo app and its Space: the written Space folder, and the Space's app.py served from a fresh interpreter without
this package on a copied checkpoint, driven in headless Chromium (type a text, read the shown paths)."""

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata

import pytest
import torch
from conftest import WITHOUT_PROJECT, ROOT, path_ends
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.decoding import display_label
from modeling_htla.space import DEMO_FILE, write_space

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
TEXT = "quantum particle energy photon"

RUN_APP = WITHOUT_PROJECT + r"""
import runpy
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return write_space(tmp_path_factory.mktemp("space") / "htla-tiny-demo", "org/htla-tiny")


def test_space_folder_holds_the_app_requirements_and_card(space):
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    card = SpaceCard.load(space / "README.md")
    assert (card.data.sdk, card.data.app_file, card.data.models) == ("gradio", "app.py", ["org/htla-tiny"])
    assert card.data.sdk_version == metadata.version("gradio") and "org/htla-tiny" in card.text
    # app.py is demo.py with the model filled in; it imports nothing from this package.
    app, demo = (space / "app.py").read_text(), DEMO_FILE.read_text()
    assert app.replace("DEFAULT_MODEL = 'org/htla-tiny'", "DEFAULT_MODEL = None") == demo != app
    assert not re.search(r"^\s*(from|import) (modeling_htla|configuration_htla)\b", app, re.M)
    required = {Requirement(line).name: str(Requirement(line).specifier)
                for line in (space / "requirements.txt").read_text().splitlines()}
    ours = {Requirement(line).name: str(Requirement(line).specifier) for line in metadata.requires("htla")}
    assert {"torch", "transformers", "numpy"} <= set(required) and all(ours[n] == s for n, s in required.items())
    with pytest.raises(ValueError, match="model id: expected 'owner/name' as on the Hub, got 'htla-tiny'"):
        write_space(space, "htla-tiny")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_served(url: str, server: subprocess.Popen, log, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the app exited: {open(log.name).read()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the app did not answer at {url} within {timeout} s: {open(log.name).read()[-3000:]}")


def chromium() -> webdriver.Chrome:
    """Headless Chromium that reaches only this machine (any other host name fails to resolve)."""
    assert os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER), \
        "the browser test needs Chromium: apt-get install chromium chromium-driver (or set CHROMIUM, CHROMEDRIVER)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='htla-chromium-')}", "--window-size=1280,1100",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def test_app_shows_the_predicted_paths_in_a_browser(trained, space, tmp_path):
    out, _ = trained
    folder = tmp_path / "htla-tiny"  # outside the repository, as a download would be
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    model = HTLAModel.from_pretrained(out).eval()
    tax = model.taxonomy
    with torch.no_grad():
        p = model(**AutoTokenizer.from_pretrained(out)(TEXT, return_tensors="pt")).logits[0].sigmoid()
    # A threshold just under the best leaf: its path is shown, and paths that end higher up.
    leaves = [j for j in range(len(tax)) if not tax.children[j]]
    threshold = math.floor(100 * max(float(p[j]) for j in leaves)) / 100
    ends = path_ends(tax, p, threshold)
    assert any(j in leaves for j in ends) and len(ends) < len(leaves)
    expected = [" > ".join(display_label(tax, a) for a in tax.ancestors(j)) + f" {float(p[j]):.3f}" for j in ends]

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-c", f"REPO = {str(ROOT)!r}\n" + RUN_APP, str(space / "app.py"), str(folder),
               "--port", str(port), "--threshold", str(threshold)]
    with open(tmp_path / "app.log", "w") as log:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        browser = None
        try:
            wait_until_served(f"http://127.0.0.1:{port}/", server, log)
            browser = chromium()
            browser.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(browser, 300)
            wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#htla-text textarea")).send_keys(TEXT)
            browser.find_element(By.CSS_SELECTOR, "#htla-classify").click()
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#htla-paths li")) == len(expected))
            shown = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#htla-paths li")]
            level1 = browser.find_element(By.ID, "htla-level-1").text
            browser.find_element(By.CSS_SELECTOR, "#htla-all button").click()  # open the collapsible tree
            tree = wait.until(lambda b: b.find_element(By.ID, "htla-tree")).get_attribute("textContent")
            browser.save_screenshot(str(tmp_path / "demo.png"))
        finally:
            if browser is not None:
                browser.quit()
            server.terminate()
            server.wait(timeout=30)
    assert shown == expected
    assert display_label(tax, ends[0] if tax.depths[ends[0]] == 1 else tax.ancestors(ends[0])[0]) in level1
    assert all(display_label(tax, j) in tree for j in range(len(tax)))  # every label in the collapsible tree
    assert (tmp_path / "demo.png").stat().st_size > 10_000
