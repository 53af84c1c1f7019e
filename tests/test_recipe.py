"""One recipe wherever a model is trained (issue 28): run_htc.py's defaults for every data source, single flags that
override one value, one-line errors for runs that would do nothing and unknown flags, early stopping that stops, and
the Python API's default head."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.trainer import EPOCH_CAP_EXAMPLES, MAX_EPOCHS, MIN_EPOCHS, epoch_cap
from test_run_htc import ROOT, SCRIPT, common_args, import_script, read_json, run_in_process

RECIPE_KEYS = ("learning_rate", "head_learning_rate", "graph_learning_rate", "warmup_steps",
               "per_device_train_batch_size", "metric_for_best_model", "load_best_model_at_end",
               "early_stopping_patience", "save_total_limit")


def user_data(data_dir, out):
    """The README's "Train on your data" command on the test data, no hyper-parameter flag."""
    return ["--train_file", str(data_dir / "train.jsonl"), "--validation_file", str(data_dir / "validation.jsonl"),
            "--test_file", str(data_dir / "test.jsonl"), "--taxonomy_file", str(data_dir / "labels.taxonomy"),
            "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict"]


def recipe_values(training_args) -> dict:
    return {key: getattr(training_args, key) for key in RECIPE_KEYS}


def test_every_single_flag_keeps_the_embedded_recipe():
    run_htc = import_script()
    _, data_default, default = run_htc.parse_args([])
    for flag, value, field in (("--output_dir", "mydir", "output_dir"), ("--seed", 7, "seed"),
                               ("--num_train_epochs", 3.0, "num_train_epochs"), ("--learning_rate", 3e-4, "learning_rate")):
        _, data_args, training_args = run_htc.parse_args([flag, str(value)])
        assert getattr(training_args, field) == value
        assert training_args.do_train and training_args.do_eval and training_args.do_predict, flag
        assert data_args.max_train_samples == data_default.max_train_samples == 16000
        expected = {**recipe_values(default), **({field: float(value)} if field == "learning_rate" else {})}
        assert recipe_values(training_args) == expected, flag
        if field != "output_dir":
            assert training_args.output_dir == "outputs/htla-icd10cm"


def test_user_data_gets_the_recipe_and_an_epoch_cap_by_size(data_dir, tmp_path):
    run_htc = import_script()
    model_args, data_args, training_args = run_htc.parse_args(user_data(data_dir, tmp_path / "out"))
    assert {key: getattr(training_args, key) for key in ("learning_rate", "head_learning_rate", "graph_learning_rate",
                                                          "warmup_steps", "early_stopping_patience")} == {
        key: float(run_htc.RECIPE[key]) if key != "early_stopping_patience" else run_htc.RECIPE[key]
        for key in ("learning_rate", "head_learning_rate", "graph_learning_rate", "warmup_steps",
                    "early_stopping_patience")}
    assert training_args.eval_strategy == "epoch" and training_args.load_best_model_at_end
    assert training_args.num_train_epochs is None  # resolved by the trainer from the training set's size
    assert data_args.max_train_samples is None and (model_args.fusion, model_args.use_tla) == ("hybrid", False)
    # a file's value and a flag each override one value; `null` in a file unsets a recipe value
    config = tmp_path / "args.yaml"
    config.write_text("head_learning_rate: 3.0e-3\ngraph_learning_rate: null\n")
    _, _, training_args = run_htc.parse_args([str(config), *user_data(data_dir, tmp_path / "out"), "--seed", "5"])
    assert (training_args.head_learning_rate, training_args.graph_learning_rate, training_args.seed) == (3e-3, None, 5)
    assert training_args.learning_rate == run_htc.RECIPE["learning_rate"]
    # a checkpoint schedule given alone brings the evaluations along (the best checkpoint is an evaluated one)
    _, _, training_args = run_htc.parse_args([*user_data(data_dir, tmp_path / "out"), "--save_strategy", "steps",
                                              "--save_steps", "7"])
    assert (training_args.eval_strategy, training_args.eval_steps) == ("steps", 7)
    _, _, training_args = run_htc.parse_args([*user_data(data_dir, tmp_path / "out"), "--eval_strategy", "no"])
    assert not training_args.load_best_model_at_end and not training_args.early_stopping_patience


def test_epoch_cap_follows_the_data_size():
    assert epoch_cap(10) == MAX_EPOCHS == 30
    assert epoch_cap(200) == 30 and epoch_cap(2000) == 10 and epoch_cap(16000) == MIN_EPOCHS == 3
    assert epoch_cap(EPOCH_CAP_EXAMPLES // 4) == 4 and epoch_cap(EPOCH_CAP_EXAMPLES // 4 + 1) == 4
    assert epoch_cap(500_000) == 3


@pytest.mark.parametrize("argv, message", [
    (["--train_file", "{train}", "--output_dir", "{out}"],
     "run_htc.py: error: nothing to do: give --do_train, --do_eval and/or --do_predict"),
    (["--no_use_tla"], "run_htc.py: error: unknown flag --no_use_tla (did you mean --use_tla false?)"),
    (["--num_train_epoch", "2"], "run_htc.py: error: unknown flag --num_train_epoch (did you mean --num_train_epochs?)"),
])
def test_runs_that_would_do_nothing_and_unknown_flags_stop_in_one_line(data_dir, tmp_path, argv, message):
    argv = [a.format(train=data_dir / "train.jsonl", out=tmp_path / "out") for a in argv]
    with pytest.raises(SystemExit) as stopped:
        run_in_process(argv)
    assert str(stopped.value.code) == message
    assert not (tmp_path / "out").exists()


def test_a_stopped_run_is_one_stderr_line_and_a_non_zero_exit(data_dir, tmp_path):
    """What a shell sees of those stops: the message alone as stderr's last line, no traceback, exit status 1."""
    argv = ["--train_file", str(data_dir / "train.jsonl"), "--output_dir", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, SCRIPT, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        "run_htc.py: error: nothing to do: give --do_train, --do_eval and/or --do_predict"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_short_run_of_the_readme_command_trains_the_recipe(encoder_dir, data_dir, tmp_path):
    out = tmp_path / "out"
    run_in_process([*user_data(data_dir, out), "--model_name_or_path", encoder_dir, "--max_seq_length", "16"])
    saved = read_json(out / "training_args.json")
    run_htc = import_script()
    for key in ("learning_rate", "head_learning_rate", "graph_learning_rate", "warmup_steps", "early_stopping_patience",
                "metric_for_best_model", "per_device_train_batch_size"):
        assert saved[key] == run_htc.RECIPE[key], key
    train_size = read_json(out / "all_results.json")["train_samples"]
    assert saved["num_train_epochs"] == epoch_cap(train_size)
    results = read_json(out / "all_results.json")
    assert {"train_epochs_trained", "train_best_epoch", "train_stop_reason", "predict_learned_macro_f1"} <= results.keys()
    config = read_json(out / "config.json")
    assert (config["fusion"], config["pooling"], config["use_tla"]) == ("hybrid", "mean", False)
    assert config["decision_thresholds"] is not None
    # 32 documents over 4 leaves: 8 per leaf, within the small-data rule's boundary, so the cosine scale started at 1
    # and the classifier weights at the names
    assert 8 <= run_htc.SMALL_DATA_EXAMPLES_PER_LEAF and config["cosine_scale_init"] == run_htc.SMALL_DATA_COSINE_SCALE
    assert results["train_init_weights_from_names"] == run_htc.SMALL_DATA_NAMES_SCALE


def test_early_stopping_stops_before_the_cap_and_keeps_the_best_epoch(encoder_dir, data_dir, tmp_path, caplog):
    """At learning rate 0 validation never improves after the first epoch: patience 2 stops at epoch 3 of 10, keeps
    epoch 1, and the log, the results and the model card say so."""
    out = tmp_path / "out"
    with caplog.at_level("INFO"):
        run_in_process([*user_data(data_dir, out), "--model_name_or_path", encoder_dir, "--max_seq_length", "16",
                        "--learning_rate", "0", "--head_learning_rate", "0", "--graph_learning_rate", "0",
                        "--num_train_epochs", "10", "--early_stopping_patience", "2", "--warmup_steps", "0",
                        "--do_predict", "false"])
    results = read_json(out / "all_results.json")
    assert results["train_epochs_trained"] == 3.0 and results["train_best_epoch"] == 1.0
    assert results["train_stop_reason"] == "early stopping: validation macro_f1 did not improve for 2 evaluations"
    assert any("Training stopped after 3.0 epochs (early stopping" in r.getMessage() and "epoch 1.0" in r.getMessage()
               for r in caplog.records)
    card = (out / "README.md").read_text()
    assert "Training stopped after 3 epochs: early stopping" in card and "that of epoch 1, the best" in card


RULE = "rule"  # the small-data rule's value of a setting, at or below the boundary; unset above it


@pytest.mark.parametrize("flags, scale, names", [
    ([], RULE, RULE),
    (["--cosine_scale_init", "5"], 5.0, RULE),
    (["--init_weights_from_names", "0"], RULE, 0.0),  # 0 turns the names' start off, the scale's still applies
    (["--cosine_scale_init", "5", "--init_weights_from_names", "3"], 5.0, 3.0),
    (["--no_use_graph_encoder"], None, None),
    (["--fusion", "add"], None, None),
])
def test_the_small_data_rule_applies_up_to_its_boundary_and_yields_to_flags(small_taxonomy, data_dir, tmp_path, flags,
                                                                            scale, names):
    run_htc = import_script()
    boundary = run_htc.SMALL_DATA_EXAMPLES_PER_LEAF
    leaves = [j for j in range(len(small_taxonomy)) if j not in small_taxonomy.parent_ids]
    for per_leaf, applies in ((boundary, True), (boundary + 1, False)):
        model_args, _, _ = run_htc.parse_args([*user_data(data_dir, tmp_path / "out"), *flags])
        paths = [small_taxonomy.ancestors(leaf) + [leaf] for leaf in leaves for _ in range(per_leaf)]
        reported = run_htc.apply_small_data_rule(model_args, paths, small_taxonomy)
        ruled = applies and RULE in (scale, names)
        assert reported == (per_leaf if ruled else None)
        expected_scale = (run_htc.SMALL_DATA_COSINE_SCALE if applies else None) if scale == RULE else scale
        expected_names = (run_htc.SMALL_DATA_NAMES_SCALE if applies else None) if names == RULE else names
        assert (model_args.cosine_scale_init, model_args.init_weights_from_names) == (expected_scale, expected_names)


def test_the_python_api_builds_the_default_head_and_old_checkpoints_keep_theirs(encoder_dir, small_taxonomy, tmp_path):
    model = HTLAModel.from_encoder(encoder_dir, small_taxonomy)
    assert (model.config.fusion, model.config.pooling, model.config.use_tla) == ("hybrid", "mean", False)
    paper = HTLAModel.from_encoder(encoder_dir, small_taxonomy, fusion="add", pooling="cls", use_tla=True)
    paper.save_pretrained(tmp_path / "paper")
    saved = json.loads((tmp_path / "paper" / "config.json").read_text())
    assert (saved["fusion"], saved["pooling"], saved["use_tla"]) == ("add", "cls", True)  # recorded, though defaults
    # a checkpoint saved before the fusion was always recorded: no key, so the class default, the paper's add
    for key in ("fusion", "pooling", "use_tla"):
        del saved[key]
    (tmp_path / "paper" / "config.json").write_text(json.dumps(saved))
    old = HTLAModel.from_pretrained(tmp_path / "paper")
    assert (old.config.fusion, old.config.pooling, old.config.use_tla) == ("add", "cls", True)


def test_weights_from_names_flag_starts_a_fresh_classifier_at_the_names(encoder_dir, data_dir, tmp_path):
    """`--init_weights_from_names 4` at learning rate 0: the saved free weights are still the names' imprint."""
    out = tmp_path / "out"
    run_in_process([*user_data(data_dir, out), "--model_name_or_path", encoder_dir, "--max_seq_length", "16",
                    "--learning_rate", "0", "--head_learning_rate", "0", "--graph_learning_rate", "0",
                    "--num_train_epochs", "1", "--warmup_steps", "0", "--do_predict", "false",
                    "--init_weights_from_names", "4"])
    model = HTLAModel.from_pretrained(out)
    names = model._read_texts(model.taxonomy.names, AutoTokenizer.from_pretrained(out))
    cosines = torch.nn.functional.cosine_similarity(model.classifier.weight.detach(), names - names.mean(0), dim=1)
    assert bool((cosines > 0.999).all())
