"""The paper-reproduction configs in examples/ parse and run as written, on a tiny stand-in for the HGCLR data."""

import json
from pathlib import Path

import pytest
import yaml

from conftest import TOPICS, decided_micro_f1, micro_f1_of_predictions
from test_run_htc import ROOT, read_json, run_in_process


def write_hgclr_layout(folder: Path, settings: dict) -> dict:
    """Tiny train/val/test files in the HGCLR layout (JSON lines with doc_token / doc_label) at the config's file names."""
    folder.mkdir(parents=True)
    rows = []
    for i in range(40):
        top = sorted(TOPICS)[i % 2]
        leaf = sorted(TOPICS[top])[(i // 2) % 2]
        rows.append({"doc_token": f"{TOPICS[top][leaf]} example {i}".split(), "doc_label": [top, leaf]})
    paths = {}
    for key, part in (("train_file", rows[:24]), ("validation_file", rows[24:32]), ("test_file", rows[32:])):
        paths[key] = folder / Path(settings[key]).name
        paths[key].write_text("".join(json.dumps(row) + "\n" for row in part), encoding="utf-8")
    paths["taxonomy_file"] = folder / Path(settings["taxonomy_file"]).name
    paths["taxonomy_file"].write_text(
        "Root\tscience\tsport\nscience\tbiology\tphysics\nsport\tfootball\ttennis\n", encoding="utf-8"
    )
    return {key: str(path) for key, path in paths.items()}


@pytest.mark.parametrize("name", ["paper_wos", "paper_rcv1", "paper_nyt"])
def test_paper_config_runs_and_stops_early(name, encoder_dir, tmp_path):
    settings = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    assert (settings["learning_rate"], settings["per_device_train_batch_size"], settings["graph_num_layers"],
            settings["edge_dim"], settings["tla_temperature"], settings["tla_weight"],
            settings["early_stopping_patience"], settings["early_stopping_metrics"]) == (
        1e-5, 10, 1, 30, 0.07, 1.0, 6, ["macro_f1", "micro_f1"])
    # Only what a CPU test needs changes: a tiny encoder and data, no bf16, a short run. With a learning rate of 0 the
    # validation scores never gain, so patience 1 must stop training after the second of five epochs.
    settings.update(write_hgclr_layout(tmp_path / "data", settings), model_name_or_path=encoder_dir,
                    output_dir=str(tmp_path / "out"), bf16=False, max_seq_length=16, num_train_epochs=5,
                    early_stopping_patience=1, learning_rate=0.0, report_to="none")
    config_file = tmp_path / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    run_in_process([str(config_file)])

    out = tmp_path / "out"
    state = read_json(out / "trainer_state.json")
    assert state["epoch"] == 2.0
    assert json.loads((out / "config.json").read_text())["graph_num_layers"] == 1
    assert decided_micro_f1(read_json(out / "predict_results.json")) == pytest.approx(
        micro_f1_of_predictions(out / "predictions.jsonl", settings["test_file"]), abs=1e-12)


NEWSGROUPS_CONFIGS = ["20newsgroups", "20newsgroups_dot", "20newsgroups_recommended", "20newsgroups_flat"]
BUDGET = ("num_train_epochs", "max_seq_length", "per_device_train_batch_size", "learning_rate", "head_learning_rate",
          "warmup_steps", "seed", "pooling", "train_file", "validation_file", "test_file", "skip_empty_texts")


def test_20newsgroups_configs_compare_at_one_budget():
    """The paper's HTLA, the dot-fusion HTLA, the recommended configuration and the flat classifier differ in the
    model only, never in the budget."""
    configs = {name: yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text()) for name in NEWSGROUPS_CONFIGS}
    budgets = [{key: settings.get(key) for key in BUDGET} for settings in configs.values()]
    assert all(budget == budgets[0] for budget in budgets)
    assert configs["20newsgroups_flat"]["use_graph_encoder"] is False
    assert configs["20newsgroups"].get("fusion", "add") == "add" and configs["20newsgroups_dot"]["fusion"] == "dot"
    assert configs["20newsgroups_recommended"]["fusion"] == "hybrid" and configs["20newsgroups_recommended"]["use_tla"] is False


@pytest.mark.parametrize("name", NEWSGROUPS_CONFIGS)
def test_20newsgroups_config_runs_as_written(name, encoder_dir, data_dir, tmp_path):
    """Each config, with only its data, encoder and run length swapped for tiny stand-ins, trains and predicts."""
    settings = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    settings.update({key: str(data_dir / file) for key, file in (
        ("train_file", "train.jsonl"), ("validation_file", "validation.jsonl"), ("test_file", "test.jsonl"),
        ("taxonomy_file", "labels.taxonomy"))})
    settings.update(model_name_or_path=encoder_dir, output_dir=str(tmp_path / "out"), max_steps=2, max_seq_length=16,
                    warmup_steps=0, report_to="none")
    config_file = tmp_path / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    run_in_process([str(config_file)])
    config = read_json(tmp_path / "out" / "config.json")
    assert (config["use_graph_encoder"], config.get("fusion", "add"), config.get("use_tla", True)) == {
        "20newsgroups": (True, "add", True), "20newsgroups_dot": (True, "dot", True),
        "20newsgroups_recommended": (True, "hybrid", False)}.get(name, (False, config.get("fusion", "add"), False))
    # The reported test Micro-F1 is the one of the predictions written, counted independently.
    assert decided_micro_f1(read_json(tmp_path / "out" / "predict_results.json")) == pytest.approx(
        micro_f1_of_predictions(tmp_path / "out" / "predictions.jsonl", data_dir / "test.jsonl"), abs=1e-12)


def test_icd10cm_paper_config_is_the_default_run_with_the_papers_model():
    """`python run_htc.py examples/icd10cm_paper.yaml` (the README's way to the paper's HTLA) keeps the default run's
    data and budget and changes the model only: additive fusion with TLA at λ 1, GPTrans at the head's rate."""
    import run_htc

    paper = yaml.safe_load((ROOT / "examples" / "icd10cm_paper.yaml").read_text())
    default = dict(run_htc.DEFAULT_RUN)
    model = {key: paper.pop(key) for key in ("fusion", "use_tla", "tla_weight")}
    assert model == {"fusion": "add", "use_tla": True, "tla_weight": 1.0}
    assert default.pop("graph_learning_rate") == 1e-3 and paper.pop("graph_learning_rate") is None
    assert paper.pop("output_dir") != default.pop("output_dir")
    default.pop("early_stopping_patience")  # the file inherits it (moot at its one epoch)
    assert paper == default
    model_args, data_args, training_args = run_htc.parse_args([str(ROOT / "examples" / "icd10cm_paper.yaml")])
    assert (model_args.fusion, model_args.use_tla, training_args.graph_learning_rate) == ("add", True, None)
    defaults = run_htc.parse_args([])[0]
    assert (defaults.fusion, defaults.use_tla) == ("hybrid", False)
