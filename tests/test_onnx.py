"""ONNX export (`python -m modeling_htla.onnx`): the folded head equals the model for every fusion; a tiny trained
checkpoint and a hybrid one, exported (attention fused by ONNX Runtime's optimizer) to fp32 and int8, load in a fresh
interpreter without this package and answer like the PyTorch model through `pipeline("text-classification")`, HTLA's
pipelines and `handler.py` (fp32 logits within 1e-4, int8 the same top label); left-padded batches too; the session
opens with the saved options, and a folder from before they were saved still loads; the folder's card keeps the
checkpoint's metadata."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import onnx
import pytest
import torch
from conftest import LABEL_NAMES, WITHOUT_PROJECT
from huggingface_hub import ModelCard
from transformers import AutoTokenizer

from modeling_htla import HTLAModel, Taxonomy
from modeling_htla.export import ONNX_AUTO_MAP, ONNX_REMOTE_CODE_FILES
from modeling_htla.onnx import InferenceGraph, export_onnx, main
from modeling_htla.onnx_model import HTLAOnnxModel

TEXTS = ["quantum particle energy photon", "goal match striker referee", "cell gene protein enzyme",
         "serve racket wimbledon volley", "", "photon " * 300]  # the last one longer than the encoder's positions

# Runs after WITHOUT_PROJECT in a fresh interpreter: each exported folder through the Auto class, transformers'
# text-classification pipeline given the model object, HTLA's two pipelines by folder, and handler.py.
SERVE = r"""
import json
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
folders, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
answers = {}
for folder in folders:
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer)
    labels = pipeline("text-classification", model=folder, trust_remote_code=True)
    paths = pipeline("hierarchical-text-classification", model=folder, trust_remote_code=True)
    spec = importlib.util.spec_from_file_location("handler", f"{folder}/handler.py")  # as Inference Endpoints do
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.EndpointHandler(folder)
    answers[folder] = {
        "class": type(model).__module__ + "." + type(model).__name__,
        "pipeline_classes": [type(p).__name__ for p in (plain, labels, paths)],
        "logits": model(**inputs).logits.tolist(),
        "plain": plain(texts, top_k=1),
        "labels": labels(texts, top_k=None),
        "paths": paths(texts, threshold=0.3),
        "handler": handler({"inputs": texts, "parameters": {"top_k": 2}}),
        "handler_paths": handler({"inputs": texts, "parameters": {"output": "paths", "threshold": 0.3}}),
    }
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def hybrid(encoder_dir, tmp_path_factory):
    """A hybrid-head HTLA on the tiny encoder, its weights moved off their initial values, saved with its tokenizer."""
    folder = tmp_path_factory.mktemp("hybrid") / "htla-hybrid"
    taxonomy = Taxonomy.from_parents({"science": None, "sport": None, "biology": "science", "physics": "science",
                                      "football": "sport", "tennis": "sport"}, names=LABEL_NAMES)
    torch.manual_seed(0)
    model = HTLAModel.from_encoder(encoder_dir, taxonomy, fusion="hybrid", pooling="mean")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(trained, hybrid, tmp_path_factory):
    """(checkpoint, precision) -> exported folder, for the run_htc-trained checkpoint (fusion "add") and the hybrid."""
    out, _ = trained
    work = tmp_path_factory.mktemp("onnx")
    return {(name, precision): export_onnx(checkpoint, work / f"{name}-{precision}", quantize)
            for name, checkpoint in (("add", out), ("hybrid", hybrid))
            for precision, quantize in (("fp32", None), ("int8", "int8"))}


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """Every exported folder's answers from a fresh interpreter that cannot import this package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    folders = [str(folder) for folder in exported.values()]
    result = subprocess.run([sys.executable, "-c", WITHOUT_PROJECT + SERVE, json.dumps(folders), json.dumps(TEXTS)],
                            cwd=tmp_path_factory.mktemp("serve"), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1])


def pytorch_logits(checkpoint) -> tuple[HTLAModel, torch.Tensor]:
    model = HTLAModel.from_pretrained(checkpoint).eval()
    inputs = AutoTokenizer.from_pretrained(checkpoint)(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model, model(**inputs).logits


@pytest.mark.parametrize("variant", [dict(fusion="add"), dict(fusion="dot"), dict(fusion="hybrid"),
                                     dict(use_graph_encoder=False, use_tla=False)], ids=["add", "dot", "hybrid", "flat"])
def test_folded_head_computes_the_models_logits(encoder_dir, small_taxonomy, variant):
    torch.manual_seed(0)
    model = HTLAModel.from_encoder(encoder_dir, small_taxonomy, pooling="mean", **variant)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.eval()
    inputs = AutoTokenizer.from_pretrained(encoder_dir)(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.testing.assert_close(InferenceGraph(model)(**inputs), expected, atol=1e-5, rtol=0)


def test_exported_folder_holds_graph_code_config_tokenizer_card(exported, trained):
    out, _ = trained
    folder = exported[("add", "int8")]
    for name in [*ONNX_REMOTE_CODE_FILES, "model.onnx", "config.json", "tokenizer.json", "README.md"]:
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.safetensors")) and not (folder / "modeling_htla.py").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == ONNX_AUTO_MAP and config["taxonomy"]["labels"][0] == "science"
    record = config["onnx_export"]
    assert record["precision"] == "int8" and record["quantization"]["weight_type"] == "QInt8"
    # the tiny encoder's 2 layers: each attention fused into one node, quantized with the other products
    assert record["fused_nodes"] == {"Attention": 2, "BiasGelu": 2, "EmbedLayerNormalization": 1,
                                     "SkipLayerNormalization": 4}
    nodes = Counter(node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node)
    assert nodes["QAttention"] == 2 and nodes["Attention"] == 0 and nodes["Softmax"] == 0 and nodes["MatMulInteger"] > 0
    assert record["session_options"] == {"graph_optimization_level": "ORT_ENABLE_ALL",
                                         "execution_mode": "ORT_SEQUENTIAL", "intra_op_num_threads": 0,
                                         "inter_op_num_threads": 1}
    assert record["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and record["max_positions"] == 128
    card, source = ModelCard.load(folder / "README.md"), ModelCard.load(out / "README.md")
    assert "onnx" in card.data.tags and card.data.license == source.data.license
    assert card.data.eval_results[0].metric_value == source.data.eval_results[0].metric_value
    assert "## ONNX Runtime export" in card.text and "int8" in card.text


@pytest.mark.parametrize("name", ["add", "hybrid"])
def test_clean_process_serves_fp32_like_pytorch(exported, served, trained, hybrid, name):
    model, expected = pytorch_logits(trained[0] if name == "add" else hybrid)
    answer = served[str(exported[(name, "fp32")])]
    assert answer["class"].startswith("transformers_modules.") and answer["class"].endswith(
        "modeling_htla_onnx.HTLAOnnxModel")
    assert answer["pipeline_classes"] == ["TextClassificationPipeline", "HTLATextClassificationPipeline",
                                          "HierarchicalTextClassificationPipeline"]
    torch.testing.assert_close(torch.tensor(answer["logits"]), expected, atol=1e-4, rtol=0)
    probabilities = expected.sigmoid()
    for got, p in zip(answer["labels"], probabilities):
        order = p.argsort(descending=True).tolist()
        assert [a["label"] for a in got] == [model.config.id2label[j] for j in order]
        assert [a["score"] for a in got] == pytest.approx(p[order].tolist(), abs=1e-4)
        assert [a["name"] for a in got] == [LABEL_NAMES[a["label"]] for a in got]
    assert [a[0]["label"] for a in answer["plain"]] == [model.config.id2label[j] for j in probabilities.argmax(1).tolist()]
    assert answer["handler"] == [labels[:2] for labels in answer["labels"]]
    assert answer["handler_paths"] == answer["paths"]


@pytest.mark.parametrize("name", ["add", "hybrid"])
def test_clean_process_serves_int8_with_the_same_top_label(exported, served, trained, hybrid, name):
    model, expected = pytorch_logits(trained[0] if name == "add" else hybrid)
    answer = served[str(exported[(name, "int8")])]
    top = [model.config.id2label[j] for j in expected.argmax(1).tolist()]
    assert torch.tensor(answer["logits"]).argmax(1).tolist() == expected.argmax(1).tolist()
    assert [a[0]["label"] for a in answer["plain"]] == top
    assert [labels[0]["label"] for labels in answer["labels"]] == top
    assert [labels[0]["label"] for labels in answer["handler"]] == top
    assert answer["handler_paths"] == answer["paths"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_left_padded_batch_answers_like_pytorch(exported, hybrid, precision):
    """The fused attention takes the 0/1 mask itself, not token counts (which would assume right padding)."""
    model = HTLAModel.from_pretrained(hybrid).eval()
    tokenizer = AutoTokenizer.from_pretrained(hybrid, padding_side="left")
    inputs = tokenizer(TEXTS[:5], return_tensors="pt", padding=True)
    assert inputs["attention_mask"][:, 0].tolist() == [0, 0, 0, 1, 0]  # all but the longest padded on the left
    with torch.no_grad():
        expected = model(**inputs).logits
    logits = HTLAOnnxModel.from_pretrained(exported[("hybrid", precision)])(**inputs).logits
    if precision == "fp32":
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    else:
        assert logits.argmax(1).tolist() == expected.argmax(1).tolist()


def test_session_opens_with_the_saved_options_and_old_folders_load(exported, tmp_path):
    folder = tmp_path / "pinned"
    shutil.copytree(exported[("add", "fp32")], folder)
    config = json.loads((folder / "config.json").read_text())
    config["onnx_export"]["session_options"] |= {"intra_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_BASIC"}
    (folder / "config.json").write_text(json.dumps(config))
    options = HTLAOnnxModel.from_pretrained(folder).session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level.name == "ORT_ENABLE_BASIC"
    inputs = AutoTokenizer.from_pretrained(folder)(TEXTS[:4], return_tensors="pt", padding=True)
    expected = HTLAOnnxModel.from_pretrained(exported[("add", "fp32")])(**inputs).logits
    for key in ("session_options", "fused_nodes"):  # as a folder exported before they were recorded
        del config["onnx_export"][key]
    (folder / "config.json").write_text(json.dumps(config))
    old = HTLAOnnxModel.from_pretrained(folder)
    assert old.session.get_session_options().graph_optimization_level.name == "ORT_ENABLE_ALL"  # ONNX Runtime's default
    torch.testing.assert_close(old(**inputs).logits, expected, atol=0, rtol=0)


def test_in_process_load_and_bad_arguments(exported, trained, tmp_path, capsys):
    model = HTLAOnnxModel.from_pretrained(exported[("add", "fp32")])
    assert model.device == torch.device("cpu") and model.to("cpu") is model and not model.can_generate()
    with pytest.raises(ValueError, match="device: an ONNX Runtime model runs where its session's providers run"):
        model.to("meta")
    with pytest.raises(ValueError, match=r"quantize: expected one of \['int8'\] or None, got 'int4'"):
        export_onnx(trained[0], tmp_path / "out", quantize="int4")
    with pytest.raises(ValueError, match=r"threads: expected a non-negative integer \(0: one per physical core\), got -1"):
        export_onnx(trained[0], tmp_path / "out", threads=-1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"^python -m modeling_htla.onnx: error: .*empty/config.json: missing"):
        main([str(tmp_path / "empty"), str(tmp_path / "out")])
