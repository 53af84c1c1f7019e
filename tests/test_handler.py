"""The Inference Endpoints handler shipped in every checkpoint: in a fresh interpreter without this package and with
the network cut, a model loaded through remote code and saved again keeps its code, and `handler.py` from the re-saved
folder answers like the text-classification task, gives hierarchical paths, rejects bad requests in one line, and
answers the issue's bad inputs (empty, None, a number, an object, 100,000 characters, an unknown parameter) with a
prediction or a one-line error."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import WITHOUT_PROJECT, LABEL_NAMES, ROOT, path_ends
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.export import AUTO_MAP, CUSTOM_PIPELINES, REMOTE_CODE_FILES

TEXTS = ["quantum particle energy photon", "goal match striker referee"]
LONG = "quantum particle energy photon " * 3_226  # 100,006 characters, far more tokens than the encoder's positions

SERVE = WITHOUT_PROJECT + r"""
import json, socket
attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network is cut in this test")

socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse
from transformers import AutoModel, AutoTokenizer
source, resaved, requests = sys.argv[1], sys.argv[2], json.load(sys.stdin)  # 100,000-character texts
AutoModel.from_pretrained(source, trust_remote_code=True).save_pretrained(resaved)
AutoTokenizer.from_pretrained(source, trust_remote_code=True).save_pretrained(resaved)
spec = importlib.util.spec_from_file_location("handler", f"{resaved}/handler.py")  # as Inference Endpoints load it
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
handler = module.EndpointHandler(resaved)
answers = []
for request in requests:
    try:
        answers.append(handler(request))
    except ValueError as err:
        answers.append({"error": str(err)})
print(json.dumps({"answers": answers, "attempts": attempts}))
"""

GOOD = [
    {"inputs": TEXTS[0]},
    {"inputs": TEXTS, "parameters": {"top_k": 2}},
    {"inputs": TEXTS[0], "parameters": {"top_k": 3, "function_to_apply": "none"}},
    {"inputs": TEXTS[1], "parameters": {"top_k": 1, "function_to_apply": "softmax"}},
    {"inputs": TEXTS, "parameters": {"output": "paths", "threshold": 0.0}},
    {"inputs": TEXTS, "parameters": {"output": "paths", "threshold": 0.3}},
    {"inputs": TEXTS[0], "parameters": {"output": "paths"}},
    {"inputs": [], "parameters": {"output": "paths"}},
    {"inputs": [], "parameters": {"top_k": 2}},
]
BAD = [
    ({"text": "no inputs key"}, 'request: expected a JSON object {"inputs": ..., "parameters": {...}}'),
    ({"inputs": 3}, "inputs: expected a string or a list of strings, got int"),
    ({"inputs": ["a", 3]}, "inputs: expected a string or a list of strings, got list"),
    ({"inputs": "a", "parameters": [1]}, "parameters: expected a JSON object, got list"),
    ({"inputs": "a", "parameters": {"output": "tree"}}, "parameters.output: expected one of ['labels', 'paths'], got 'tree'"),
    ({"inputs": "a", "parameters": {"threshold": [0.3]}},
     "threshold: expected a number between 0 and 1, or 2 of them (one per level), got [0.3]"),
    ({"inputs": "a", "parameters": {"output": "paths", "threshold": 2}},
     "threshold: expected a number between 0 and 1, or 2 of them (one per level), got 2"),
    ({"inputs": "a", "parameters": {"top_k": 0}}, "top_k: expected a positive integer or None (every label), got 0"),
    ({"inputs": "a", "parameters": {"function_to_apply": "relu"}},
     "function_to_apply: expected one of ['sigmoid', 'softmax', 'none'], got 'relu'"),
]
# The bad inputs: each gets a prediction (no message here) or a one-line error naming the field.
EDGE = [
    ("empty", {"inputs": ""}, None),
    ("empty-paths", {"inputs": "", "parameters": {"output": "paths", "threshold": 0.0}}, None),
    ("None", {"inputs": None}, "inputs: expected a string or a list of strings, got None"),
    ("number", {"inputs": 42}, "inputs: expected a string or a list of strings, got int"),
    ("object", {"inputs": {"text": TEXTS[0]}}, "inputs: expected a string or a list of strings, got dict"),
    ("100000-chars", {"inputs": LONG, "parameters": {"top_k": 3}}, None),
    ("100000-chars-paths", {"inputs": LONG, "parameters": {"output": "paths", "threshold": 0.0}}, None),
    ("unknown-parameter", {"inputs": TEXTS[0], "parameters": {"temperature": 0.5}},
     "parameters: temperature not understood with output 'labels' (expected top_k, function_to_apply, threshold)"),
    ("unknown-parameter-paths", {"inputs": TEXTS[0], "parameters": {"output": "paths", "top_k": 2}},
     "parameters: top_k not understood with output 'paths' (expected threshold)"),
]


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """The answers of handler.py to GOOD + BAD + EDGE requests, served from a remote-code re-save of the checkpoint."""
    out, _ = trained
    work = tmp_path_factory.mktemp("endpoint")
    source, resaved = work / "repository", work / "resaved"
    shutil.copytree(out, source, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.endswith("_OFFLINE")}
    requests = GOOD + [request for request, _ in BAD] + [request for _, request, _ in EDGE]
    result = subprocess.run([sys.executable, "-c", f"REPO = {str(ROOT)!r}\n" + SERVE, str(source), str(resaved)],
                            input=json.dumps(requests), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, source, resaved, json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1])


def model_logits(out, texts):
    """The package's model and its logits for `texts`, each cut to the encoder's positions (as the model cuts a
    longer input)."""
    model = HTLAModel.from_pretrained(out).eval()
    positions = model.config.text_config.max_position_embeddings
    inputs = AutoTokenizer.from_pretrained(out)(texts, truncation=True, max_length=positions, padding=True,
                                                return_tensors="pt")
    with torch.no_grad():
        return model, model(**inputs).logits


def ranked(model, values, k=None):
    """The text-classification answer for one row of scores: labels best first, `k` of them."""
    order = values.argsort(descending=True)[:k].tolist()
    id2label = model.config.id2label
    return [{"label": id2label[j], "name": LABEL_NAMES[id2label[j]], "score": float(values[j])} for j in order]


def expected_paths(model, p, threshold):
    """(label path, name path, score) of each predicted path, walked here over the tree."""
    tax = model.taxonomy
    return [(" > ".join(tax.labels[a] for a in tax.ancestors(j)),
             " > ".join(LABEL_NAMES[tax.labels[a]] for a in tax.ancestors(j)), float(p[j]))
            for j in path_ends(tax, p, threshold)]


def assert_same_answers(got, expected):
    assert [(a["label"], a["name"]) for a in got] == [(e["label"], e["name"]) for e in expected]
    assert [a["score"] for a in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def assert_same_paths(got, expected):
    assert [(a["label"], a["name"]) for a in got] == [e[:2] for e in expected]
    assert [a["score"] for a in got] == pytest.approx([e[2] for e in expected], abs=1e-5)


def test_remote_code_resave_keeps_handler_pipelines_and_registration(served):
    _, source, resaved, answer = served
    assert answer["attempts"] == []  # nothing tried the network
    for name in REMOTE_CODE_FILES:
        assert (resaved / name).read_text() == (source / name).read_text(), name
    config = json.loads((resaved / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP and config["custom_pipelines"] == CUSTOM_PIPELINES


def test_handler_answers_like_the_text_classification_task(served):
    out, _, _, answer = served
    model, logits = model_logits(out, TEXTS)
    one, top2, raw, softmax = answer["answers"][:4]
    for got, expected in [(one, ranked(model, logits[0].sigmoid())), (raw, ranked(model, logits[0], 3)),
                          (softmax, ranked(model, logits[1].softmax(-1), 1)),
                          *zip(top2, [ranked(model, row.sigmoid(), 2) for row in logits])]:
        assert_same_answers(got, expected)
    assert len(one) == 6 and len(top2) == 2 and all(len(answer) == 2 for answer in top2)


def test_handler_paths_follow_the_tree_at_each_threshold(served):
    out, _, _, answer = served
    model, logits = model_logits(out, TEXTS)
    probabilities = logits.sigmoid()
    everything, at_03, default = answer["answers"][4:7]
    for got, threshold, rows in [(everything, 0.0, probabilities), (at_03, 0.3, probabilities),
                                 ([default], model.config.label_thresholds(), probabilities[:1])]:  # learned ones
        assert len(got) == len(rows)
        for paths, p in zip(got, rows):
            assert_same_paths(paths, expected_paths(model, p, threshold))
    assert all(len(paths) == 4 for paths in everything)  # every leaf at threshold 0
    assert answer["answers"][7:9] == [[], []]  # no texts, no answers


def test_handler_rejects_bad_requests_in_one_line(served):
    *_, answer = served
    errors = answer["answers"][len(GOOD):len(GOOD) + len(BAD)]
    assert [error.get("error") for error in errors] == [message for _, message in BAD]


@pytest.mark.parametrize("case", range(len(EDGE)), ids=[name for name, *_ in EDGE])
def test_handler_answers_bad_input_with_a_prediction_or_one_line(served, case):
    out, _, _, answer = served
    _, request, error = EDGE[case]
    got = answer["answers"][len(GOOD) + len(BAD) + case]
    if error is not None:
        assert got == {"error": error}
        return
    assert isinstance(got, list) and got, got  # a prediction, the model's on the text cut to its positions
    model, logits = model_logits(out, [request["inputs"]])
    parameters = request.get("parameters", {})
    if parameters.get("output") == "paths":
        assert_same_paths(got, expected_paths(model, logits[0].sigmoid(), parameters["threshold"]))
    else:
        assert_same_answers(got, ranked(model, logits[0].sigmoid(), parameters.get("top_k")))
