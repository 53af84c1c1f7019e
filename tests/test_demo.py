"""The demo app and its Space: the written Space folder, and the Space's app.py served from a fresh interpreter without
this package on a copied checkpoint, driven in headless Chromium with the README screenshot's code (type a text, read
the shown paths)."""

import importlib.util
import math
import os
import re
import shutil
import sys
from importlib import metadata

import pytest
import torch
from conftest import WITHOUT_PROJECT, ROOT, path_ends
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.decoding import display_label
from modeling_htla.space import DEMO_FILE, write_space

# The script that takes the README's screenshot; its browser code drives the browser here too.
_spec = importlib.util.spec_from_file_location("screenshot_demo", ROOT / "docs" / "screenshot_demo.py")
screenshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshot)

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


def test_app_shows_the_predicted_paths_in_a_browser(trained, space, tmp_path):
    out, _ = trained
    folder = tmp_path / "htla-tiny"  # outside the repository, as a download would be
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    model = HTLAModel.from_pretrained(out).eval()
    tax = model.taxonomy
    with torch.no_grad():
        p = model(**AutoTokenizer.from_pretrained(out)(TEXT, return_tensors="pt")).logits[0].sigmoid()
    # A threshold just under the best leaf: its path is shown, and paths that end higher up.
    threshold = math.floor(100 * max(float(p[j]) for j in range(len(tax)) if tax.is_leaf(j))) / 100
    ends = path_ends(tax, p, threshold)
    assert any(tax.is_leaf(j) for j in ends) and len(ends) < sum(map(tax.is_leaf, range(len(tax))))
    expected = [" > ".join(display_label(tax, a) for a in tax.ancestors(j)) + f" {float(p[j]):.3f}" for j in ends]

    port = screenshot.free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-c", f"REPO = {str(ROOT)!r}\n" + RUN_APP, str(space / "app.py"), str(folder),
               "--port", str(port), "--threshold", str(threshold)]
    with screenshot.serve(command, tmp_path / "app.log", port, cwd=tmp_path, env=env) as url, \
            screenshot.chromium() as browser:
        shown = screenshot.classify_in_browser(browser, url, TEXT, paths=len(expected))
        browser.save_screenshot(str(tmp_path / "demo.png"))
    assert shown["paths"] == expected
    assert display_label(tax, ends[0] if tax.depths[ends[0]] == 1 else tax.ancestors(ends[0])[0]) in shown["level1"]
    assert all(display_label(tax, j) in shown["tree"] for j in range(len(tax)))  # every label in the collapsible tree
    assert (tmp_path / "demo.png").stat().st_size > 10_000

