"""Hub-ready checkpoints: the model's source files written flat beside the weights, and `auto_map` /
`custom_pipelines` in `config.json`, so `AutoModel.from_pretrained(folder, trust_remote_code=True)` works on a
machine without this package (the Hub's dynamic-module loader takes no sub-packages)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Never run. transformers copies a remote-code module's relative imports (found by pattern) into its module cache,
    # and copies them again when such a model is saved; these make a checkpoint loaded through remote code keep
    # every file below, so its re-save is complete.
    from .handler import EndpointHandler  # noqa: F401
    from .pipeline import HierarchicalTextClassificationPipeline  # noqa: F401

PACKAGE_DIR = Path(__file__).resolve().parent

# Flat file name in the checkpoint -> source file in this repository. Only what loading and the pipeline need.
REMOTE_CODE_FILES = {
    "configuration_htla.py": PACKAGE_DIR.parent / "configuration_htla.py",
    "taxonomy.py": PACKAGE_DIR / "taxonomy.py",
    "graph_encoder.py": PACKAGE_DIR / "graph_encoder.py",
    "loss.py": PACKAGE_DIR / "loss.py",
    "positions.py": PACKAGE_DIR / "positions.py",
    "default_encoder.py": PACKAGE_DIR / "default_encoder.py",
    "decoding.py": PACKAGE_DIR / "decoding.py",
    "batching.py": PACKAGE_DIR / "batching.py",
    "modeling_htla.py": PACKAGE_DIR / "modeling.py",
    "pipeline_htla.py": PACKAGE_DIR / "pipeline.py",
    "export.py": PACKAGE_DIR / "export.py",
    "handler.py": PACKAGE_DIR / "handler.py",  # Inference Endpoints' custom handler
}

AUTO_MAP = {
    "AutoConfig": "configuration_htla.HTLAConfig",
    "AutoModel": "modeling_htla.HTLAModel",
    "AutoModelForSequenceClassification": "modeling_htla.HTLAModel",
}

# An ONNX export (`python -m modeling_htla.onnx`): the same config, pipelines and handler, with the Auto classes
# loading `HTLAOnnxModel` (ONNX Runtime) instead of the PyTorch model, whose files it does not need.
ONNX_REMOTE_CODE_FILES = {
    name: REMOTE_CODE_FILES[name]
    for name in ("configuration_htla.py", "taxonomy.py", "positions.py", "decoding.py", "batching.py",
                 "pipeline_htla.py", "handler.py")
} | {"modeling_htla_onnx.py": PACKAGE_DIR / "onnx_model.py"}
ONNX_AUTO_MAP = {
    "AutoConfig": "configuration_htla.HTLAConfig",
    "AutoModel": "modeling_htla_onnx.HTLAOnnxModel",
    "AutoModelForSequenceClassification": "modeling_htla_onnx.HTLAOnnxModel",
}

PIPELINE_TASK = "hierarchical-text-classification"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_htla.HierarchicalTextClassificationPipeline",
        "pt": ["AutoModel"],
        "tf": [],
        "type": "text",
    },
    # transformers' own task, answered with readable label names next to the identifiers.
    "text-classification": {
        "impl": "pipeline_htla.HTLATextClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "tf": [],
        "type": "text",
    },
}

# Package-style imports -> sibling imports inside the flat checkpoint folder.
_IMPORT_REWRITES = [
    (re.compile(r"^([ \t]*)from configuration_htla import", re.M), r"\1from .configuration_htla import"),
    (re.compile(r"^([ \t]*)from modeling_htla\.(\w+) import", re.M), r"\1from .\2 import"),
    (re.compile(r"^([ \t]*)from \.(modeling|pipeline) import", re.M), r"\1from .\2_htla import"),
]


def flat_source(path: Path) -> str:
    """A source file with its imports rewritten for the flat layout."""
    text = path.read_text(encoding="utf-8")
    for pattern, replacement in _IMPORT_REWRITES:
        text = pattern.sub(replacement, text)
    return text


def source_files(files: dict[str, Path]) -> dict[str, Path]:
    """Flat file name -> its source: this repository's files, or for a model loaded through remote code (this file
    then being the flat `export.py` in transformers' module cache) the flat files beside it."""
    if (PACKAGE_DIR / "modeling_htla.py").is_file():
        return {name: PACKAGE_DIR / name for name in files}
    return files


def write_remote_code(folder: str | Path, files: dict[str, Path] = REMOTE_CODE_FILES,
                      auto_map: dict[str, str] = AUTO_MAP) -> None:
    """Write the flat source files into `folder` and register them in its `config.json` (by default the PyTorch
    model's; an ONNX export passes `ONNX_REMOTE_CODE_FILES` and `ONNX_AUTO_MAP`)."""
    folder = Path(folder)
    for name, source in source_files(files).items():
        (folder / name).write_text(flat_source(source), encoding="utf-8")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["auto_map"] = auto_map
    config["custom_pipelines"] = CUSTOM_PIPELINES
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# What a checkpoint folder uploads: the model, its code, tokenizer, card and results; not intermediate
# checkpoints, logs or predictions (which hold the data).
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "predictions.jsonl", ".*"]


def push_folder(folder: str | Path, repo_id: str, token: str | None = None, private: bool | None = None,
                commit_message: str = "Upload HTLA model") -> str:
    """Create the Hub repository if needed and upload the checkpoint folder; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                               ignore_patterns=PUSH_IGNORE)
    return str(getattr(commit, "commit_url", commit))
