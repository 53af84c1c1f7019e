"""A ready Gradio Space for an HTLA model on the Hub: `app.py` (the demo, `demo.py`, with the model id filled in),
`requirements.txt` and the Space card (`README.md`).

    python -m modeling_htla.space org/htla-icd10cm --output_dir space/
    hf upload org/htla-icd10cm-demo space/ --repo-type space
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DEMO_FILE = Path(__file__).resolve().parent / "demo.py"
# What app.py and the model's code import; gradio itself comes with the Space SDK at `sdk_version`.
SPACE_PACKAGES = ("torch", "transformers", "huggingface-hub", "safetensors", "numpy")
MODEL_ID = re.compile(r"[\w.-]+/[\w.-]+")


def space_requirements() -> list[str]:
    """`requirements.txt` lines: this package's own lower bounds for the packages the Space needs."""
    bounds = {}
    for line in metadata.requires("htla") or []:
        requirement = Requirement(line)
        if requirement.marker is None and canonicalize_name(requirement.name) in SPACE_PACKAGES:
            bounds[canonicalize_name(requirement.name)] = str(requirement)
    return [bounds[name] for name in SPACE_PACKAGES if name in bounds]


def write_space(folder: str | Path, model_id: str) -> Path:
    """Write the Space for Hub model `model_id` into `folder` (created if needed); returns the folder."""
    if not MODEL_ID.fullmatch(model_id):
        raise ValueError(f"model id: expected 'owner/name' as on the Hub, got {model_id!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    app, found = re.subn(r"^DEFAULT_MODEL = None\b", f"DEFAULT_MODEL = {model_id!r}", DEMO_FILE.read_text(
        encoding="utf-8"), count=1, flags=re.M)
    if not found:
        raise RuntimeError(f"{DEMO_FILE}: no 'DEFAULT_MODEL = None' line to fill in")
    (folder / "app.py").write_text(app, encoding="utf-8")
    (folder / "requirements.txt").write_text("\n".join(space_requirements()) + "\n", encoding="utf-8")
    name = model_id.split("/")[1]
    data = SpaceCardData(
        title=name, sdk="gradio", sdk_version=metadata.version("gradio"), app_file="app.py", models=[model_id],
        tags=["htla", "hierarchical-text-classification"], emoji="🌳", colorFrom="green", colorTo="blue",
        short_description="Hierarchical text classification with HTLA", pinned=False,
    )
    body = f"""
# {name}

A demo of [{model_id}](https://huggingface.co/{model_id}), a hierarchical text classifier trained with HTLA
(Kumar & Toshniwal, ECML-PKDD 2024). Type a text to see the predicted label paths, the scores per level and every
label of the tree; the threshold slider decides which labels are kept.

Run it on your machine: `pip install gradio -r requirements.txt && python app.py`
(or `python app.py path/to/checkpoint` for a local folder).
"""
    SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}").save(folder / "README.md")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a Gradio Space folder for an HTLA model on the Hub.")
    parser.add_argument("model_id", help="the model's Hub id, e.g. org/htla-icd10cm")
    parser.add_argument("--output_dir", required=True, help="folder to write app.py, requirements.txt, README.md to")
    args = parser.parse_args(argv)
    try:
        print(write_space(args.output_dir, args.model_id))
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
