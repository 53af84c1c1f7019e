"""The demo app and its Space: the written Space folder; the app launched locally and called through gradio_client,
answering like the pipelines on a run_htc.py checkpoint and on the embedded default run's, and answering the issue's
bad inputs with a prediction or a one-line error; the Space's app.py served from a fresh interpreter without this
package on a copied checkpoint, driven in headless Chromium with the code of docs/hub.md's screenshot (type a text, read the
shown paths)."""

import functools
import html
import math
import os
import re
import shutil
import sys
from importlib import metadata

import pytest
import torch
from conftest import WITHOUT_PROJECT, ROOT, path_ends, screenshot_demo
from gradio_client import Client
from gradio_client.exceptions import AppError
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement
from transformers import AutoTokenizer, pipeline

from modeling_htla import HTLAModel
from modeling_htla.decoding import display_label
from modeling_htla.demo import TOP_CLASSES, build_demo
from modeling_htla.space import DEMO_FILE, write_space

screenshot = screenshot_demo()

TEXT = "quantum particle energy photon"
DIABETES = "Type 2 diabetes mellitus with diabetic chronic kidney disease"
LONG = "quantum particle energy photon " * 3_226  # 100,006 characters, far more tokens than the encoder's positions

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
    if not (os.path.isfile(screenshot.CHROMIUM) and os.path.isfile(screenshot.CHROMEDRIVER)) \
            and os.environ.get("CI", "").lower() != "true":  # `make test` installs them wherever it may
        pytest.skip("no Chromium here: run `sudo apt-get install -y chromium chromium-driver` (CI=true runs this test)")
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


@pytest.fixture(scope="module", params=[("trained", TEXT), ("icd10cm_trained", DIABETES)],
                ids=["run_htc-checkpoint", "default-run-checkpoint"])
def client(request):
    """The demo app on a checkpoint written by run_htc.py (the tiny tree; the embedded default run's ICD-10-CM
    tree), launched in this process on a local port (no share link), a gradio_client Client on it, and a text to
    classify."""
    name, text = request.param
    value = request.getfixturevalue(name)
    out = value[0] if isinstance(value, tuple) else value
    demo = build_demo(str(out))
    port = screenshot.free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True)
    try:
        yield out, Client(f"http://127.0.0.1:{port}/", verbose=False), text
    finally:
        demo.close()


@functools.cache
def pipelines(out) -> tuple:
    """The checkpoint's taxonomy, and its two pipelines loaded by transformers through remote code."""
    return (HTLAModel.from_pretrained(out).config.get_taxonomy(),
            pipeline("hierarchical-text-classification", model=str(out), trust_remote_code=True),
            pipeline("text-classification", model=str(out), trust_remote_code=True))


def slider_starts(out) -> list[float]:
    """Where the app's sliders start: the checkpoint's decision threshold of each level."""
    config = HTLAModel.from_pretrained(out).config
    tax = config.get_taxonomy()
    return [config.label_thresholds()[tax.depths.index(depth)] for depth in range(1, tax.num_levels + 1)]


def pipelines_view(out, text: str, threshold: list[float]) -> tuple[list[str], list[tuple[str, float]]]:
    """What the app should show for `text`, from transformers' pipelines on the checkpoint: each predicted path of
    the hierarchical-text-classification pipeline with its score, and the top level-1 scores of the
    text-classification pipeline, labels written as a person reads them."""
    tax, paths, labels = pipelines(out)
    ids = {tax.path(j): j for j in range(len(tax))}
    shown = [" > ".join(display_label(tax, a) for a in tax.ancestors(ids[answer["label"]])) + f" {answer['score']:.3f}"
             for answer in paths(text, threshold=threshold)]
    level1 = [(display_label(tax, tax.label2id[item["label"]]), item["score"]) for item in labels(text, top_k=None)
              if tax.depths[tax.label2id[item["label"]]] == 1][:TOP_CLASSES]
    return shown, level1


def app_view(result: tuple) -> tuple[list[str], list[tuple[str, float]]]:
    """The predicted paths and level-1 bars in what the app's /classify endpoint returned."""
    paths_html, level1 = result[0], result[1]
    paths = [f"{html.unescape(path)} {score}" for path, score in re.findall(
        r'<li><span class="htla-path">(.*?)</span> <b class="htla-score">(.*?)</b></li>', paths_html)]
    return paths, [(item["label"], item["confidence"]) for item in level1["confidences"]]


def assert_same_view(got, expected):
    assert got[0] == expected[0]
    assert [label for label, _ in got[1]] == [label for label, _ in expected[1]]
    assert [score for _, score in got[1]] == pytest.approx([score for _, score in expected[1]], abs=1e-5)


def test_app_answers_gradio_client_with_the_pipelines_paths(client):
    out, app, text = client
    starts = slider_starts(out)
    _, level1 = pipelines_view(out, text, starts)
    threshold = math.floor(100 * level1[0][1]) / 100  # just under the best first level: at least one path
    expected = pipelines_view(out, text, [threshold, *starts[1:]])  # the other levels' sliders keep their start
    assert expected[0]
    assert_same_view(app_view(app.predict(text, threshold, api_name="/classify")), expected)
    assert [endpoint for endpoint in app.view_api(print_info=False, return_format="dict")["named_endpoints"]] == \
        ["/classify"]  # the button, Enter in the text box and the slider share one endpoint


# The bad inputs through gradio_client: (arguments, keyword arguments, the one-line error or None for a
# prediction, which must be the pipelines').
APP_EDGE = [
    ("empty", ("",), {}, None),
    ("None", (None,), {}, "text: expected a string, got None"),
    ("number", (42,), {}, "text: expected a string, got int"),
    ("object", ({"text": TEXT},), {}, "text: expected a string, got dict"),
    ("100000-chars", (LONG,), {}, None),
    ("threshold-above-1", (TEXT, 2), {}, "threshold: expected a number between 0 and 1, got 2"),
    ("threshold-None", (TEXT, None), {}, "threshold: expected a number between 0 and 1, got None"),
    ("extra-value", (TEXT, 0.5, 0.5, "top_k=3"), {}, None),  # Gradio passes the declared inputs only (both trees
    # here have 2 levels: the text and two thresholds)
]


@pytest.mark.parametrize("case", range(len(APP_EDGE)), ids=[name for name, *_ in APP_EDGE])
def test_app_answers_bad_input_with_a_prediction_or_one_line(client, case):
    out, app, _ = client
    _, args, kwargs, error = APP_EDGE[case]
    if error is not None:
        with pytest.raises(AppError) as raised:
            app.predict(*args, api_name="/classify", **kwargs)
        assert str(raised.value) == error  # the gr.Error's message, not "the upstream Gradio app has raised…"
        return
    starts = slider_starts(out)
    given = list(args[1:1 + len(starts)])
    thresholds = [*given, *starts[len(given):]]  # the level sliders not given keep their start
    assert_same_view(app_view(app.predict(*args, api_name="/classify", **kwargs)),
                     pipelines_view(out, args[0], thresholds))


def test_app_names_an_unknown_parameter(client):
    out, app, _ = client
    parameters = app.view_api(print_info=False, return_format="dict")["named_endpoints"]["/classify"]["parameters"]
    names = [parameter["parameter_name"] for parameter in parameters]
    assert len(names) == 1 + len(slider_starts(out))  # the text and one threshold per level
    with pytest.raises(TypeError, match="Parameter `top_k` is not a valid key-word argument"):
        app.predict(**{names[0]: TEXT, names[1]: 0.5}, top_k=3, api_name="/classify")
