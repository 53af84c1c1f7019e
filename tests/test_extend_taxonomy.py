"""A taxonomy that grows after training (issue 21): a trained hybrid model extended by new leaves, a new inner node with
children and a child under a former leaf keeps its old labels' ids and parameters, scores the new labels from their
names, answers with them through both pipelines, `handler.py` and the demo, reloads through remote code in a clean
interpreter with the same logits, and fine-tunes; a paper-fusion or flat model refuses in one line."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import LABEL_NAMES, ROOT, WITHOUT_PROJECT, make_model, write_jsonl
from test_handler import SERVE
from test_hub import CLEAN_LOAD
from transformers import AutoTokenizer

from modeling_htla import HTLAModel, Taxonomy

TEXTS = ["goal match striker referee", "quantum particle energy photon", "acid molecule reaction bond",
         "guitar melody concert song"]
# Chemistry joins an old family, Wimbledon goes under the old leaf tennis (one level deeper), Arts is a new inner
# node with two new children.
NEW_NAMES = {"chemistry": "Chemistry", "wimbledon": "The Championships", "arts": "Arts", "music": "Music",
             "painting": "Painting"}
BIGGER = ("Root\tscience\tsport\tarts\nscience\tbiology\tphysics\tchemistry\nsport\tfootball\ttennis\n"
          "tennis\twimbledon\narts\tmusic\tpainting\n")
NAMES = LABEL_NAMES | NEW_NAMES
OLD = ["science", "sport", "biology", "physics", "football", "tennis"]


def run(argv):
    sys.path.insert(0, str(ROOT))
    import run_htc

    run_htc.main([*argv, "--max_seq_length", "16", "--per_device_eval_batch_size", "8", "--report_to", "none"])


@pytest.fixture(scope="module")
def hybrid(encoder_dir, data_dir, tmp_path_factory):
    """A tiny hybrid HTLA trained by run_htc.py, and the bigger taxonomy with the new labels' names."""
    out = tmp_path_factory.mktemp("hybrid") / "htla-hybrid"
    run(["--model_name_or_path", encoder_dir, "--train_file", str(data_dir / "train.jsonl"),
         "--validation_file", str(data_dir / "validation.jsonl"), "--taxonomy_file", str(data_dir / "labels.taxonomy"),
         "--label_names_file", str(data_dir / "label_names.json"), "--fusion", "hybrid", "--use_tla", "false",
         "--output_dir", str(out), "--do_train", "--max_steps", "4", "--per_device_train_batch_size", "8",
         "--learning_rate", "1e-3", "--save_strategy", "no"])
    bigger = out.parent / "bigger.taxonomy"
    bigger.write_text(BIGGER, encoding="utf-8")
    (out.parent / "names.json").write_text(json.dumps(NEW_NAMES), encoding="utf-8")
    return out, bigger, out.parent / "names.json"


@pytest.fixture(scope="module")
def extended(hybrid, data_dir, tmp_path_factory):
    """The checkpoint extended by `run_htc.py --taxonomy_file BIGGER --do_predict`, and its log."""
    out, bigger, names = hybrid
    folder = tmp_path_factory.mktemp("extended") / "htla-extended"
    handler = logging.Handler()
    records = []
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("run_htc").addHandler(handler)
    try:
        run(["--model_name_or_path", str(out), "--taxonomy_file", str(bigger), "--label_names_file", str(names),
             "--test_file", str(data_dir / "test.jsonl"), "--do_predict", "--output_dir", str(folder)])
    finally:
        logging.getLogger("run_htc").removeHandler(handler)
    return folder, records


def test_extending_keeps_old_labels_and_parameters(hybrid):
    out, bigger, _ = hybrid
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        old_logits = model(**inputs).logits
    added = model.extend_taxonomy(Taxonomy.from_file(bigger, NEW_NAMES), tokenizer)

    config, count = model.config, len(OLD)
    assert added == list(range(count, count + len(NEW_NAMES)))
    assert [config.id2label[j] for j in range(count)] == OLD and config.num_labels == count + len(NEW_NAMES)
    assert {config.id2label[j] for j in added} == set(NEW_NAMES) and config.label2id["tennis"] == 5
    taxonomy = model.taxonomy
    assert taxonomy.names[:count] == [LABEL_NAMES[label] for label in OLD]
    assert {taxonomy.labels[j]: taxonomy.names[j] for j in added} == NEW_NAMES
    assert taxonomy.path(taxonomy.label2id["wimbledon"]) == "sport > tennis > wimbledon"
    assert config.labels_without_examples == [config.id2label[j] for j in added]
    assert len(config.label_name_ids) == config.num_labels
    assert config.label_name_ids[-1] == tokenizer("Painting", add_special_tokens=False)["input_ids"]

    after = {name: parameter.detach() for name, parameter in model.named_parameters()}
    per_label = {"graph_encoder.label_embeddings.weight", "classifier.bias", "classifier.weight"}
    for name, old in before.items():
        new = after[name]
        if name in per_label:
            assert new.shape[0] == config.num_labels and torch.equal(new[:count], old), name
        elif name == "graph_encoder.edge_features.path_embeddings.weight":  # the virtual root's row stays last
            assert torch.equal(new[:count], old[:count]) and torch.equal(new[-1], old[-1])
        elif name == "graph_encoder.edge_features.distance_embeddings.weight":  # one level deeper: 2 more distances
            assert new.shape[0] == old.shape[0] + 2 and torch.equal(new[: len(old)], old)
        else:
            assert torch.equal(new, old), name
    # New labels: no label-id embedding; a free weight along the trained encoder's feature of the name, as long as
    # the family's weights; a bias that gives them the family's mean logit over the labels' names.
    assert not after["graph_encoder.label_embeddings.weight"][count:].any()
    chemistry = config.label2id["chemistry"]
    with torch.no_grad():
        name = model.encode_text(**tokenizer(["Chemistry"], return_tensors="pt"))[0]
    weight = after["classifier.weight"][chemistry]
    assert torch.nn.functional.cosine_similarity(weight, name, dim=0) == pytest.approx(1, abs=1e-5)
    assert weight.norm() == pytest.approx(float(before["classifier.weight"][2:4].norm(dim=1).mean()), rel=1e-5)
    with torch.no_grad():
        names = model.encode_text(**tokenizer(model.taxonomy.names, return_tensors="pt", padding=True))
        mean = model(**tokenizer(model.taxonomy.names, return_tensors="pt", padding=True)).logits.mean(0)
    assert names.shape[0] == config.num_labels and mean[chemistry] == pytest.approx(float(mean[2:4].mean()), abs=1e-4)

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (len(TEXTS), config.num_labels)
    assert (logits[:, added].std(0) > 1e-3).all()  # the new labels' scores vary with the text
    assert (logits[:, :count] - old_logits).abs().max() < 5  # old labels move only through the graph's attention


def test_run_htc_extends_and_saves_a_checkpoint_with_the_new_labels(extended):
    folder, records = extended
    assert [line for line in records if line.startswith("Extended the checkpoint by 5 labels")]
    config = json.loads((folder / "config.json").read_text())
    labels = config["taxonomy"]["labels"]
    assert labels[: len(OLD)] == OLD and sorted(labels[len(OLD):]) == sorted(NEW_NAMES)
    assert sorted(config["labels_without_examples"]) == sorted(NEW_NAMES)
    card = (folder / "README.md").read_text()
    assert "## Labels added without training examples" in card
    assert "- wimbledon — The Championships (under tennis — Lawn tennis)" in card
    assert "- arts — Arts (top level)" in card
    assert (folder / "tokenizer.json").is_file() and (folder / "handler.py").is_file()
    assert len((folder / "predictions.jsonl").read_text().splitlines()) == 8


def test_extended_checkpoint_loads_anywhere_and_answers_with_new_names(extended, tmp_path):
    folder, _ = extended
    copy = tmp_path / "htla-extended"  # outside the repository, as a Hub download would be
    shutil.copytree(folder, copy)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", WITHOUT_PROJECT + CLEAN_LOAD, str(copy), json.dumps(TEXTS)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.rstrip("\n").rsplit("\n", 1)[-1])
    model = HTLAModel.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(**AutoTokenizer.from_pretrained(folder)(TEXTS, return_tensors="pt", padding=True)).logits
    for name, logits in loaded["logits"].items():
        assert torch.allclose(torch.tensor(logits), expected, atol=1e-5), name
    for answer in loaded["flat"]:
        assert {item["label"]: item["name"] for item in answer} == NAMES
    paths = [item for answer in loaded["htc"] for item in answer]  # threshold 0.3
    assert all(item["name"] == " > ".join(NAMES[label] for label in item["label"].split(" > ")) for item in paths)

    # handler.py (from a remote-code re-save, network cut) answers with the new labels and their paths.
    requests = [{"inputs": TEXTS}, {"inputs": TEXTS, "parameters": {"output": "paths", "threshold": 0.0}}]
    served = subprocess.run([sys.executable, "-c", SERVE, str(copy), str(tmp_path / "resaved")],
                            input=json.dumps(requests), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    labels, paths = json.loads(served.stdout.rstrip("\n").rsplit("\n", 1)[-1])["answers"]
    for answer, row in zip(labels, expected.sigmoid()):
        assert {item["label"]: item["name"] for item in answer} == NAMES
        assert {item["label"]: item["score"] for item in answer} == pytest.approx(
            {model.config.id2label[j]: float(p) for j, p in enumerate(row)}, abs=1e-5)
    ends = {item["name"] for answer in paths for item in answer}  # threshold 0: every path of the tree
    assert {"Sports > Lawn tennis > The Championships", "Arts > Music", "Natural sciences > Chemistry"} <= ends


def test_demo_shows_the_new_labels(extended):
    from modeling_htla.demo import HTLADemo

    folder, _ = extended
    _, *levels, _ = HTLADemo(str(folder)).predict(TEXTS[2], 0.5, 0.5, 0.5)  # one threshold per level
    shown = {label for level in levels for label in level}
    assert {"chemistry — Chemistry", "arts — Arts", "wimbledon — The Championships"} <= shown and len(levels) == 3


def test_fine_tuning_after_extending(extended, data_dir, tmp_path):
    """A few examples of one new label train through run_htc.py as usual; the others stay listed as unseen."""
    folder, _ = extended
    rows = [{"text": f"acid molecule reaction bond {i}", "labels": "science > chemistry"} for i in range(4)]
    rows += [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()[:12]]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "tuned"
    run(["--model_name_or_path", str(folder), "--train_file", train, "--output_dir", str(out), "--do_train",
         "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_strategy", "no",
         "--validation_split_percentage", "20"])
    config = json.loads((out / "config.json").read_text())
    assert len(config["taxonomy"]["labels"]) == 11
    assert sorted(config["labels_without_examples"]) == ["arts", "music", "painting", "wimbledon"]
    assert "- chemistry" not in (out / "README.md").read_text()


# Unlabelled texts to calibrate on: enough for a 95th percentile, each a mix of the topics' words.
CALIBRATION_TEXTS = [f"{TEXTS[i % 4]} {TEXTS[(3 * i + 1) % 4].split()[i % 4]} note {i}" for i in range(24)]


def test_calibrating_new_labels_matches_their_family_quantile_over_the_texts(hybrid):
    out, bigger, _ = hybrid
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    added = model.extend_taxonomy(Taxonomy.from_file(bigger, NEW_NAMES), tokenizer)
    inputs = tokenizer(CALIBRATION_TEXTS, return_tensors="pt", padding=True)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    with torch.no_grad():
        old_logits = model(**inputs).logits

    shifts = model.calibrate_new_labels(CALIBRATION_TEXTS, tokenizer)
    assert sorted(shifts) == sorted(NEW_NAMES)
    for name, parameter in model.named_parameters():  # only the new labels' biases move
        if name == "classifier.bias":
            assert torch.equal(parameter[: len(OLD)], before[name][: len(OLD)])
            assert not torch.equal(parameter[added], before[name][added])
        else:
            assert torch.equal(parameter, before[name]), name
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.allclose(logits[:, : len(OLD)], old_logits[:, : len(OLD)], atol=1e-5)
    for label, shift in shifts.items():  # a constant shift: the label ranks the texts as before
        j = model.config.label2id[label]
        assert torch.allclose(logits[:, j] - old_logits[:, j], torch.full((len(logits),), shift), atol=1e-4)
        family = model.taxonomy.nearest_known(j, range(len(OLD)))
        own, theirs = logits[:, j].quantile(0.95), logits[:, family].quantile(0.95, dim=0).mean()
        assert float(own) == pytest.approx(float(theirs), abs=1e-4)
    # Calibrated again, from the texts' features instead of the texts: nothing left to shift.
    with torch.no_grad():
        features = model.encode_text(**inputs)
    again = model.calibrate_new_labels(text_features=features)
    assert all(abs(value) < 1e-4 for value in again.values())


def test_calibrating_refuses_too_few_texts_and_unknown_labels(hybrid):
    out, bigger, _ = hybrid
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.calibrate_new_labels(CALIBRATION_TEXTS, tokenizer) == {}  # nothing without examples yet
    model.extend_taxonomy(Taxonomy.from_file(bigger, NEW_NAMES), tokenizer)
    with pytest.raises(ValueError, match="needs at least 20 texts to place a 95% quantile, got 4"):
        model.calibrate_new_labels(TEXTS, tokenizer)
    with pytest.raises(ValueError, match=r"labels \['opera'\] are not in the model's taxonomy"):
        model.calibrate_new_labels(CALIBRATION_TEXTS, tokenizer, labels=["opera"])


def test_run_htc_calibrates_new_labels_on_the_texts_to_predict(hybrid, extended, tmp_path):
    """With 20 texts or more to predict, the saved extended checkpoint carries the biases `calibrate_new_labels` gives
    on them; with fewer (the `extended` run's 8), a warning says the biases stay as set from the names."""
    out, bigger, names = hybrid
    _, records = extended
    assert "New labels not calibrated: 8 texts to predict, fewer than 20; their biases stay as set from their names" \
        in records
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": text, "labels": "science > physics"}
                                                 for text in CALIBRATION_TEXTS])
    folder = tmp_path / "calibrated"
    run(["--model_name_or_path", str(out), "--taxonomy_file", str(bigger), "--label_names_file", str(names),
         "--test_file", test, "--do_predict", "--output_dir", str(folder)])
    saved = HTLAModel.from_pretrained(folder).classifier.bias.detach()

    model, tokenizer = HTLAModel.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    model.extend_taxonomy(Taxonomy.from_file(bigger, NEW_NAMES), tokenizer)
    names_rule = model.classifier.bias.detach().clone()
    model.calibrate_new_labels(CALIBRATION_TEXTS, tokenizer, max_length=16)
    assert torch.allclose(saved, model.classifier.bias.detach(), atol=1e-5)
    assert not torch.allclose(saved, names_rule, atol=1e-3)


def test_bigger_taxonomy_must_keep_every_label_and_parent(small_taxonomy, encoder_dir):
    model, tokenizer = make_model(small_taxonomy, fusion="hybrid"), AutoTokenizer.from_pretrained(encoder_dir)
    parents = dict(zip(small_taxonomy.labels, small_taxonomy.to_dict()["parents"]))
    with pytest.raises(ValueError, match=r"lacks 1 of the 7 labels it must keep, e\.g\. \['a12'\]"):
        model.extend_taxonomy(Taxonomy.from_parents({k: v for k, v in parents.items() if k != "a12"} | {"c": None}),
                              tokenizer)
    with pytest.raises(ValueError, match="label 'b1' has parent 'b' but 'a'"):
        model.extend_taxonomy(Taxonomy.from_parents(parents | {"b1": "a"}), tokenizer)
    assert model.extend_taxonomy(Taxonomy.from_parents(parents), tokenizer) == [] and model.config.num_labels == 7


@pytest.mark.parametrize("settings, setting", [({"fusion": "add"}, "fusion='add'"),
                                               ({"use_graph_encoder": False}, "use_graph_encoder=False")])
def test_paper_fusion_and_flat_models_refuse_in_one_line(small_taxonomy, encoder_dir, settings, setting):
    model = make_model(small_taxonomy, **settings)
    bigger = Taxonomy.from_parents(dict(zip(small_taxonomy.labels, small_taxonomy.to_dict()["parents"])) | {"a3": "a"})
    with pytest.raises(ValueError) as error:
        model.extend_taxonomy(bigger, AutoTokenizer.from_pretrained(encoder_dir))
    assert str(error.value) == (
        f"extend_taxonomy: a model with {setting} has no way to score a label it was not trained on; only models "
        "with the graph encoder and fusion 'dot' or 'hybrid' can be extended")
    assert model.config.num_labels == len(small_taxonomy)
