"""Every encoder family users pick for classification works end to end: a tiny random encoder of the family is
trained for a few steps by run_htc.py, saved, reloaded through remote code in a clean interpreter, and both
pipelines answer an empty and a 100,000-character text."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoTokenizer

from conftest import ENCODER_FAMILIES, ROOT, WITHOUT_PROJECT, save_tiny_encoder
from modeling_htla import HTLAModel

# Every family is tested, none dropped quietly: one missing from the installed transformers (ModernBERT needs
# transformers>=4.48) fails its own test, naming what is missing.
FAMILIES = ENCODER_FAMILIES
POSITIONS = 64  # of the tiny encoders
TEXTS = ["", "long text " * 10_000]  # the second has 100,000 characters

# One clean interpreter loads every family's checkpoint, so its start-up is paid once.
CLEAN_LOAD = r"""
import json
from transformers import AutoConfig, AutoModel, pipeline
folders, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
answers = {}
for family, folder in folders.items():
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    flat = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
    paths = pipeline("hierarchical-text-classification", model=folder, trust_remote_code=True)
    answers[family] = {"module": type(model).__module__, "encoder": config.text_config.model_type,
                       "flat": flat(texts), "paths": paths(texts, threshold=0.0)}
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """Each family trained for 3 steps by run_htc.py in this process, then all reloaded in one clean interpreter."""
    sys.path.insert(0, str(ROOT))
    try:
        import run_htc
    finally:
        sys.path.remove(str(ROOT))
    base = tmp_path_factory.mktemp("families")
    folders = {}
    for family in [family for family in FAMILIES if family in CONFIG_MAPPING]:
        folders[family] = base / family
        run_htc.main([
            "--model_name_or_path", save_tiny_encoder(family, base / f"{family}-encoder", POSITIONS),
            "--train_file", str(data_dir / "train.jsonl"), "--taxonomy_file", str(data_dir / "labels.taxonomy"),
            "--output_dir", str(folders[family]), "--do_train", "--max_steps", "3", "--learning_rate", "1e-3",
            "--per_device_train_batch_size", "8", "--max_seq_length", "16", "--logging_steps", "1",
            "--report_to", "none"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROJECT + CLEAN_LOAD, json.dumps({k: str(v) for k, v in folders.items()}),
         json.dumps(TEXTS)], cwd=base, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return folders, json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_encoder_family_end_to_end(runs, family):
    if family not in CONFIG_MAPPING:
        import transformers

        pytest.fail(f"encoder family {family!r} is not in transformers {transformers.__version__}'s CONFIG_MAPPING: "
                    "upgrade transformers (setup.cfg) or drop the family from ENCODER_FAMILIES")
    folders, answers = runs
    out, answer = folders[family], answers[family]
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert state["global_step"] == 3 and len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert answer["encoder"] == family and answer["module"].startswith("transformers_modules")

    # The pipelines answer what the model gives on the text cut to the encoder's positions, closing token kept.
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        inputs = tokenizer(TEXTS, truncation=True, max_length=POSITIONS, padding=True, return_tensors="pt")
        assert inputs["input_ids"].shape[1] == POSITIONS  # the long text really is cut
        probabilities = model(**inputs).logits.sigmoid()
    labels = model.config.id2label
    for scores, expected in zip(answer["flat"], probabilities):
        assert {item["label"]: pytest.approx(item["score"], abs=1e-4) for item in scores} == {
            labels[j]: float(p) for j, p in enumerate(expected)}
    taxonomy = model.taxonomy
    for paths, expected in zip(answer["paths"], probabilities):
        # threshold 0 keeps every label: one answer per leaf path, scored by the leaf's probability
        assert {item["label"]: pytest.approx(item["score"], abs=1e-4) for item in paths} == {
            taxonomy.path(j): float(expected[j]) for j in range(len(taxonomy)) if not taxonomy.children[j]}
