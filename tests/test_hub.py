"""Hub-ready checkpoints: remote code loads in a clean process, pipelines work, the card parses, pushes upload
exactly the checkpoint, and damaged folders are named in the error."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import LABEL_NAMES, ROOT, WITHOUT_PROJECT
from huggingface_hub import ModelCard
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.export import AUTO_MAP, CUSTOM_PIPELINES, REMOTE_CODE_FILES
from test_run_htc import run_in_process

TEXTS = ["goal match striker referee", "quantum particle energy photon", "", "cell gene protein 🧬 клетка"]

# Runs after WITHOUT_PROJECT in a fresh interpreter.
CLEAN_LOAD = r"""
import json
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline
folder, texts = sys.argv[1], json.loads(sys.argv[2])
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
inputs = tokenizer(texts, return_tensors="pt", padding=True)
logits = {}
for auto in (AutoModel, AutoModelForSequenceClassification):
    model = auto.from_pretrained(folder, trust_remote_code=True).eval()
    assert "modeling_htla" in type(model).__module__ and type(model).__module__.startswith("transformers_modules")
    with torch.no_grad():
        logits[auto.__name__] = model(**inputs).logits.tolist()
flat = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
htc = pipeline("hierarchical-text-classification", model=folder, trust_remote_code=True)
print(json.dumps({
    "config_class": type(config).__name__,
    "pipeline_classes": [type(flat).__name__, type(htc).__name__],
    "num_labels": config.num_labels,
    "logits": logits,
    "flat": flat(texts),
    "htc": htc(texts, threshold=0.3),
    "htc_one": htc(texts[0]),
}))
"""


def test_checkpoint_folder_holds_code_config_weights_tokenizer_card(trained):
    out, _ = trained
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP and config["custom_pipelines"] == CUSTOM_PIPELINES
    assert config["problem_type"] == "multi_label_classification" and config["id2label"]["0"] == "science"
    assert config["taxonomy"]["parents"][2] == "science"
    for name in list(REMOTE_CODE_FILES) + ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"]:
        assert (out / name).is_file(), name
    # The flat files import each other as siblings, never the package.
    for name in REMOTE_CODE_FILES:
        text = (out / name).read_text()
        assert not re.search(r"^\s*(from|import) (modeling_htla|configuration_htla)\b", text, re.M), name
    # Every auto_map / custom pipeline entry points at a class defined in a shipped file.
    for reference in list(AUTO_MAP.values()) + [spec["impl"] for spec in CUSTOM_PIPELINES.values()]:
        module, cls = reference.split(".")
        assert f"class {cls}(" in (out / f"{module}.py").read_text(), reference
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))


def test_model_card_metadata_widget_outputs_and_results(trained):
    out, _ = trained
    card = ModelCard.load(out / "README.md")
    meta = card.data
    assert meta.library_name == "transformers" and meta.pipeline_tag == "text-classification"
    predicted = json.loads((out / "predict_results.json").read_text())
    micro = next(r for r in meta.eval_results if r.metric_name == "Micro-F1")
    assert micro.metric_value == round(100 * predicted["predict_micro_f1"], 2) and micro.dataset_split == "test"
    assert meta.to_dict()["model-index"][0]["name"] == "org/htla-tiny"

    # Each widget example carries the model's own top-5 scores, labels written "identifier — name".
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(meta.widget) == 3
    for example in meta.widget:
        with torch.no_grad():
            scores = model(**tokenizer(example["text"], return_tensors="pt")).logits[0].sigmoid()
        top = scores.topk(5)
        expected = [f"{model.config.id2label[j]} — {LABEL_NAMES[model.config.id2label[j]]}" for j in top.indices.tolist()]
        assert [item["label"] for item in example["output"]] == expected
        assert [item["score"] for item in example["output"]] == pytest.approx(top.values.tolist(), abs=1e-4)

    body = card.text
    for section in ["## Taxonomy", "## Training data and hyper-parameters", "## Results", "## Usage", "## Limitations",
                    "## Citation", "| level 2 |", "2409.00788", "handler.py", "modeling_htla.space"]:
        assert section in body, section
    assert "| 1 | 2 | science — Natural sciences; sport — Sports |" in body
    assert "a flat classifier plus the scaled cosine between the text and label features" in body  # default: hybrid
    assert "**Decision thresholds**, learned on the validation split" in body


def test_push_uploads_exactly_the_checkpoint(trained):
    out, calls = trained
    assert calls["create"][0] == "org/htla-tiny"
    repo_id, files = calls["upload"]
    assert repo_id == "org/htla-tiny"
    assert not any(f.startswith("checkpoint-") or f.startswith("runs/") for f in files)
    assert "predictions.jsonl" not in files
    expected = {"config.json", "model.safetensors", "README.md", "tokenizer.json", "tokenizer_config.json",
                "training_args.json", "all_results.json", "train_results.json", "eval_results.json",
                "predict_results.json", "trainer_state.json", *REMOTE_CODE_FILES}
    assert expected <= set(files)
    assert set(files) - expected <= {"special_tokens_map.json", "vocab.txt"}
    assert calls["card"] == (out / "README.md").read_text()


def test_clean_process_loads_through_auto_classes_and_pipelines(trained, tmp_path):
    out, _ = trained
    folder = tmp_path / "htla-tiny"  # a copy outside the repository, as a Hub download would be
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = WITHOUT_PROJECT + CLEAN_LOAD
    result = subprocess.run([sys.executable, "-c", script, str(folder), json.dumps(TEXTS)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1])  # the last line is the script's answer
    assert loaded["config_class"] == "HTLAConfig" and loaded["num_labels"] == 6

    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
    for name, logits in loaded["logits"].items():
        assert torch.allclose(torch.tensor(logits), expected, atol=1e-5), name

    # text-classification: one sigmoid score per label, best first, identifier in `label`, readable `name` beside it.
    assert loaded["pipeline_classes"] == ["HTLATextClassificationPipeline", "HierarchicalTextClassificationPipeline"]
    for text_scores, row in zip(loaded["flat"], expected):
        scores = {item["label"]: item["score"] for item in text_scores}
        assert set(scores) == set(model.config.id2label.values())
        assert [item["score"] for item in text_scores] == sorted(scores.values(), reverse=True)
        assert all(item["name"] == LABEL_NAMES[item["label"]] for item in text_scores)
        for j, label in model.config.id2label.items():
            assert abs(scores[label] - float(row[j].sigmoid())) < 1e-5
    # hierarchical-text-classification: tree-consistent paths with the deepest label's score.
    probabilities = expected.sigmoid()
    for answer, row in zip(loaded["htc"], probabilities):
        for item in answer:
            labels = item["label"].split(" > ")
            ids = [model.config.label2id[label] for label in labels]
            assert all(row[j] > 0.3 for j in ids) and model.taxonomy.ancestors(ids[-1]) == ids
            assert abs(item["score"] - float(row[ids[-1]])) < 1e-5
            assert item["name"] == " > ".join(LABEL_NAMES[label] for label in labels)
    # A single string gives one answer (not a batch of one), decoded at the decision thresholds learned in training.
    assert isinstance(loaded["htc_one"], list)
    thresholds = model.config.label_thresholds()
    for item in loaded["htc_one"]:
        ids = [model.config.label2id[label] for label in item["label"].split(" > ")]
        assert all(probabilities[0, j] > thresholds[j] for j in ids) and model.taxonomy.ancestors(ids[-1]) == ids


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors: missing"),
        (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:1000]),
         "model.safetensors: damaged or truncated"),
        (lambda f: (f / "config.json").unlink(), "config.json: missing"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (lambda f: (f / "config.json").write_text(json.dumps({
            **json.loads((f / "config.json").read_text()),
            "taxonomy": {"labels": ["x", "y"], "parents": [None, "x"], "names": ["x", "y"]}})),
         "config.json: taxonomy has 2 labels but .*model.safetensors holds a classifier for 6"),
    ],
)
def test_damaged_folder_names_the_file(trained, tmp_path, damage, message):
    """Loading the model directly names the damaged file."""
    out, _ = trained
    folder = tmp_path / "damaged"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    damage(folder)
    with pytest.raises((OSError, ValueError), match=message):
        HTLAModel.from_pretrained(folder)


EDGE_TEXTS = ["", "   \n\t ", "x" * 100_000, "word " * 20_000, "東京で会いましょう", "Привет мир", "🚀🔥👍",
              "ctrl\x00\x07\x1b[31m chars", "مرحبا بالعالم"]


def test_edge_inputs_through_model_and_both_pipelines(trained):
    from transformers import pipeline

    out, _ = trained
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        untruncated = tokenizer(EDGE_TEXTS, padding=True, return_tensors="pt")  # far longer than 64 positions
        logits = model(**untruncated).logits
        many = model(**tokenizer(["short text"] * 1024, padding=True, return_tensors="pt")).logits
        one = model(**tokenizer(["short text"], return_tensors="pt")).logits
    assert logits.shape == (len(EDGE_TEXTS), 6) and torch.isfinite(logits).all()
    assert many.shape == (1024, 6) and torch.allclose(many[0], one[0], atol=1e-5)
    flat = pipeline("text-classification", model=str(out), trust_remote_code=True, top_k=None)
    paths = pipeline("hierarchical-text-classification", model=str(out), trust_remote_code=True)
    flat_answers = flat(EDGE_TEXTS)
    path_answers = paths(EDGE_TEXTS, threshold=0.0)
    assert len(flat_answers) == len(path_answers) == len(EDGE_TEXTS)
    assert all(len(answer) == 6 for answer in flat_answers)
    assert all(answer and all(" > " in item["label"] for item in answer) for answer in path_answers)


def test_run_htc_on_a_checkpoint_without_tokenizer_names_it(trained, data_dir, tmp_path):
    out, _ = trained
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs", "tokenizer*", "vocab.txt",
                                                                "special_tokens_map.json"))
    with pytest.raises(SystemExit) as stopped:
        run_in_process(["--model_name_or_path", str(folder), "--test_file", str(data_dir / "test.jsonl"),
                        "--do_predict", "--output_dir", str(tmp_path / "out")])
    assert str(stopped.value.code) == (
        f"run_htc.py: error: {folder}: no tokenizer files (tokenizer.json, tokenizer_config.json); "
        "save the tokenizer with the model")


# Runs in a fresh interpreter started with online settings, as a plain `pytest` in such an environment would.
OFFLINE_CHECK = r"""
import json, os, runpy, sys
runpy.run_path(sys.argv[1])  # what pytest loads before any test module
import datasets.config, evaluate.config, huggingface_hub.constants
print(json.dumps({
    "hub": huggingface_hub.constants.HF_HUB_OFFLINE, "telemetry": huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY,
    "datasets": datasets.config.HF_DATASETS_OFFLINE, "evaluate": evaluate.config.HF_EVALUATE_OFFLINE,
    "gradio_analytics": os.environ["GRADIO_ANALYTICS_ENABLED"]}))
"""


def test_the_suite_is_offline_whatever_the_environment_says(tmp_path):
    """conftest.py turns the Hub, datasets, evaluate and Gradio's analytics (and version check) off before the libraries
    read their settings, even when the environment explicitly turns them on."""
    online = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_EVALUATE_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
              "HF_HUB_DISABLE_TELEMETRY": "0", "GRADIO_ANALYTICS_ENABLED": "True"}
    env = dict(os.environ, **online)
    result = subprocess.run([sys.executable, "-c", OFFLINE_CHECK, str(ROOT / "tests" / "conftest.py")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1]) == {
        "hub": True, "telemetry": True, "datasets": True, "evaluate": True, "gradio_analytics": "False"}
