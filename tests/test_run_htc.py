"""End to end: run_htc.py trains, evaluates and predicts on a tiny random BERT (with the real packaged vocabulary)."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import (decided_micro_f1, labels_of, micro_f1_of_predictions, two_cpu_processes_launcher,
                      write_jsonl)
from modeling_htla import HTLAModel

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "run_htc.py")

def common_args(encoder_dir, data_dir, out):
    return [
        "--model_name_or_path", encoder_dir,
        "--train_file", str(data_dir / "train.jsonl"),
        "--validation_file", str(data_dir / "validation.jsonl"),
        "--test_file", str(data_dir / "test.jsonl"),
        "--taxonomy_file", str(data_dir / "labels.taxonomy"),
        "--output_dir", str(out),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "8",
        "--learning_rate", "1e-3",
        "--max_seq_length", "16",
        "--report_to", "none",
        "--seed", "7",
    ]


def import_script():
    sys.path.insert(0, str(ROOT))
    try:
        import run_htc
    finally:
        sys.path.remove(str(ROOT))
    return run_htc


def run_in_process(args):
    """`run_htc.main` in this process: no interpreter start-up, for runs whose files are all the test needs."""
    import_script().main(args + ["--report_to", "none"])


def run_script(args, launcher=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT))
    command = (launcher or [sys.executable]) + [SCRIPT] + args
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def read_json(path):
    return json.loads(Path(path).read_text())


def test_train_eval_predict_and_reload(encoder_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    run_script(
        common_args(encoder_dir, data_dir, out)
        + ["--do_train", "--do_eval", "--do_predict", "--num_train_epochs", "2", "--eval_strategy", "epoch",
           "--save_strategy", "epoch", "--load_best_model_at_end", "--metric_for_best_model", "macro_f1",
           "--logging_steps", "1", "--gradient_accumulation_steps", "2", "--head_learning_rate", "3e-3"]
    )
    for name in ["train_results.json", "eval_results.json", "predict_results.json", "all_results.json",
                 "trainer_state.json", "predictions.jsonl", "model.safetensors", "config.json", "tokenizer.json"]:
        assert (out / name).exists(), name
    assert not list(out.glob("*.bin"))
    eval_results = read_json(out / "eval_results.json")
    for key in ["eval_micro_f1", "eval_macro_f1", "eval_level_2_macro_f1", "eval_p5_macro_f1", "eval_hierarchical_f1",
                "eval_consistency_rate"]:
        assert 0.0 <= eval_results[key] <= 1.0, key
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == 4  # 32 samples / (8 x 2 accumulation) x 2 epochs
    # The best of the epochs' validation Macro-F1s is kept, and it is what the final evaluation of that model gives.
    epochs = [entry["eval_macro_f1"] for entry in state["log_history"] if "eval_macro_f1" in entry]
    assert len(epochs) == 2 and state["best_metric"] == max(epochs)
    assert eval_results["eval_macro_f1"] == pytest.approx(state["best_metric"], abs=1e-12)
    # The test Micro-F1 is the one of the predictions written, counted independently.
    assert decided_micro_f1(read_json(out / "predict_results.json")) == pytest.approx(
        micro_f1_of_predictions(out / "predictions.jsonl", data_dir / "test.jsonl"), abs=1e-12)
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert logged and all("loss_bce" in e and "loss_tla" in e for e in logged)
    assert state["best_metric"] is not None and state["best_model_checkpoint"]

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 8
    assert all(set(p["scores"]) == set(p["labels"]) for p in predictions)
    assert [p["id"] for p in predictions] == list(range(8))  # no id column: the row index

    # The checkpoint predicts with its own taxonomy (no --taxonomy_file) and gives the same predictions.
    again = tmp_path / "again"
    run_script(["--model_name_or_path", str(out), "--test_file", str(data_dir / "test.jsonl"), "--do_predict",
                "--output_dir", str(again), "--per_device_eval_batch_size", "3", "--report_to", "none"])
    assert (again / "predictions.jsonl").read_text() == (out / "predictions.jsonl").read_text()
    reloaded = HTLAModel.from_pretrained(out)
    assert reloaded.taxonomy.labels == ["science", "sport", "biology", "physics", "football", "tennis"]


def test_arguments_from_a_yaml_file_and_training_continues_from_a_checkpoint(encoder_dir, data_dir, tmp_path):
    first = tmp_path / "first"
    args = common_args(encoder_dir, data_dir, first)  # flag/value pairs
    settings = {args[i][2:]: args[i + 1] for i in range(0, len(args), 2)}
    settings.update(do_train=True, max_steps=2, fusion="dot", graph_hidden_size=16, graph_max_siblings=3)
    config_file = tmp_path / "args.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    run_script([str(config_file)])
    assert read_json(first / "trainer_state.json")["global_step"] == 2
    # A trained HTLA as --model_name_or_path: training continues from its weights and taxonomy.
    # One Adam step moves every weight by at most the learning rate (its first update is lr·g/(|g| + eps)), so the
    # weights continue from the checkpoint's: a re-initialized model would differ by the initializer's scale.
    second = tmp_path / "second"
    learning_rate = 1e-4
    run_script(["--model_name_or_path", str(first), "--train_file", str(data_dir / "train.jsonl"),
                "--output_dir", str(second), "--do_train", "--max_steps", "1", "--report_to", "none",
                "--learning_rate", str(learning_rate), "--head_learning_rate", str(learning_rate),
                "--graph_learning_rate", str(learning_rate),
                "--warmup_steps", "0"])  # the recipe's warm-up would hold the one step's rate at 0
    before = HTLAModel.from_pretrained(first).state_dict()
    after = HTLAModel.from_pretrained(second).state_dict()
    assert before.keys() == after.keys()
    moved = {key: float((after[key].float() - before[key].float()).abs().max()) for key in before}
    assert max(moved.values()) > learning_rate / 2  # it trained
    assert all(change <= learning_rate * (1 + 1e-3) for change in moved.values()), moved
    assert read_json(second / "config.json")["taxonomy"] == read_json(first / "config.json")["taxonomy"]
    saved = read_json(second / "config.json")  # the checkpoint's model, not the flags' defaults
    assert (saved["fusion"], saved["graph_hidden_size"], saved["graph_max_siblings"]) == ("dot", 16, 3)


def test_consistent_decoding_gives_subtrees_and_label_names_are_used(encoder_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"sport": "Sports and games"}))
    run_script(common_args(encoder_dir, data_dir, out)
               + ["--do_train", "--max_steps", "1", "--do_predict", "--decoding", "consistent", "--threshold", "0.3",
                  "--label_names_file", str(names)])
    parents = {"biology": "science", "physics": "science", "football": "sport", "tennis": "sport"}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        labels = set(json.loads(line)["labels"])
        assert all(parents.get(label) in labels for label in labels if label in parents)
    config = read_json(out / "config.json")
    assert config["taxonomy"]["names"][config["taxonomy"]["labels"].index("sport")] == "Sports and games"


def decoding_checkpoint(encoder_dir, data_dir, folder, probabilities: dict[str, float]):
    """An HTLA whose classifier ignores the text and gives every document these label probabilities (weights 0,
    biases at their log-odds), saved with its tokenizer."""
    from transformers import AutoTokenizer

    from modeling_htla import Taxonomy

    model = HTLAModel.from_encoder(encoder_dir, taxonomy=Taxonomy.from_file(data_dir / "labels.taxonomy"), fusion="add")
    p = torch.tensor([probabilities[label] for label in model.taxonomy.labels])
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.log(p) - torch.log1p(-p))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(folder)
    return str(folder)


def test_decode_scores_threshold_and_consistent_decoding_differ(small_taxonomy):
    """A hand-made score matrix in which thresholding keeps a label whose parent it drops, and consistent decoding
    drops that label (and everything below a dropped label)."""
    from modeling_htla.decoding import decode_scores

    rows = [
        {"a": 0.9, "a1": 0.2, "a11": 0.8},  # a11 without its parent a1
        {"a": 0.3, "a1": 0.9, "a11": 0.9, "b": 0.7, "b1": 0.6},  # a whole branch under a dropped top label
        {"a": 0.6, "a1": 0.7, "a12": 0.55, "a2": 0.51},  # already a sub-tree: both agree
        {},  # nothing above the threshold
    ]
    scores = np.array([[row.get(label, 0.1) for label in small_taxonomy.labels] for row in rows])
    expected = {
        "threshold": [{"a", "a11"}, {"a1", "a11", "b", "b1"}, {"a", "a1", "a12", "a2"}, set()],
        "consistent": [{"a"}, {"b", "b1"}, {"a", "a1", "a12", "a2"}, set()],
    }
    for decoding, sets in expected.items():
        chosen = decode_scores(scores, small_taxonomy, threshold=0.5, decoding=decoding)
        assert [set(labels_of(small_taxonomy, row)) for row in chosen] == sets, decoding
    with pytest.raises(ValueError, match="decoding must be one of .*'top-down'"):
        decode_scores(scores, small_taxonomy, decoding="top-down")


def test_run_htc_predicts_with_the_decoding_asked_for(encoder_dir, data_dir, tmp_path):
    """`--decoding` reaches the predictions: on a checkpoint scoring football above the threshold but its parent sport
    below it, thresholding predicts football and consistent decoding does not."""
    checkpoint = decoding_checkpoint(encoder_dir, data_dir, tmp_path / "fixed", {
        "science": 0.9, "biology": 0.8, "physics": 0.2, "sport": 0.3, "football": 0.9, "tennis": 0.1})
    expected = {"threshold": ({"science", "biology", "football"}, ["science > biology", "sport > football"]),
                "consistent": ({"science", "biology"}, ["science > biology"])}
    for decoding, (labels, paths) in expected.items():
        out = tmp_path / decoding
        run_in_process(["--model_name_or_path", checkpoint, "--test_file", str(data_dir / "test.jsonl"), "--do_predict",
                        "--output_dir", str(out), "--max_seq_length", "16", "--decoding", decoding])
        predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(predictions) == 8
        assert all(set(p["labels"]) == labels and sorted(p["paths"]) == paths for p in predictions), decoding


def test_embedded_icd10cm_slice(encoder_dir, tmp_path):
    out = tmp_path / "icd"
    run_script(["--model_name_or_path", encoder_dir, "--output_dir", str(out), "--do_train", "--do_eval",
                "--do_predict", "--max_train_samples", "64", "--max_eval_samples", "32", "--max_predict_samples", "32",
                "--max_steps", "3", "--per_device_train_batch_size", "16", "--max_seq_length", "24",
                "--graph_labels_per_step", "20", "--graph_refresh_steps", "2", "--report_to", "none"])
    results = read_json(out / "all_results.json")
    assert results["train_samples"] == 64 and results["predict_samples"] == 32
    assert "predict_baseline_macro_f1" in results
    config = read_json(out / "config.json")
    assert config["taxonomy"]["names"][0].startswith("Certain infectious and parasitic diseases")
    assert len([p for p in config["taxonomy"]["parents"] if p is None]) == 22  # ICD-10-CM chapters
    # Trained on 20 of the 307 labels' features a step, across a refresh; evaluated on all.
    assert (config["graph_labels_per_step"], config["graph_refresh_steps"]) == (20, 2)


def test_resume_from_checkpoint_continues_at_its_step_and_reaches_the_same_weights(
        encoder_dir, data_dir, tmp_path, training_steps, caplog):
    """A seeded retraining from step 0 reaches the same step, loss and weights as a resume: only the steps this process
    trained tell them apart. `--resume_from_checkpoint last` with no checkpoint yet trains from scratch, and says so."""
    def args(out, resume):
        return common_args(encoder_dir, data_dir, out) + [
            "--do_train", "--max_steps", "6", "--save_steps", "3", "--save_strategy", "steps", "--logging_steps", "1",
            "--save_total_limit", "10", "--resume_from_checkpoint", resume]  # keep checkpoint-3 (the recipe keeps 1)

    whole = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        run_in_process(args(whole, "last"))
    assert training_steps == [0, 1, 2, 3, 4, 5]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "scratch" in r.getMessage()] == [
        f"--resume_from_checkpoint last: no complete checkpoint in {whole}; training from scratch"]
    # Pretend the run died after step 3: resume from that checkpoint in a fresh output folder.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    os.rename(whole / "checkpoint-3", resumed / "checkpoint-3")
    training_steps.clear()
    run_in_process(args(resumed, str(resumed / "checkpoint-3")))
    assert training_steps == [3, 4, 5]
    assert read_json(resumed / "trainer_state.json")["global_step"] == 6
    expected, got = HTLAModel.from_pretrained(whole).state_dict(), HTLAModel.from_pretrained(resumed).state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)


def test_a_missing_checkpoint_to_resume_from_is_an_error(encoder_dir, data_dir, tmp_path):
    """An explicit checkpoint that is not there stops the run in one line before anything is written, instead of a
    traceback from inside the Trainer (or a silent start from scratch)."""
    missing = tmp_path / "out" / "checkpoint-3"
    args = common_args(encoder_dir, data_dir, tmp_path / "out") + ["--do_train", "--resume_from_checkpoint", str(missing)]
    with pytest.raises(SystemExit, match=f"^run_htc.py: error: --resume_from_checkpoint {re.escape(str(missing))}: "
                                         "no such checkpoint folder$"):
        run_in_process(args)
    assert not (tmp_path / "out").exists()


def test_accelerate_launch_two_cpu_processes(encoder_dir, data_dir, tmp_path):
    """Two processes really train together. `accelerate launch --cpu --num_processes 2` starts one process only, and
    torchrun's two (`--multi_gpu`) each train alone on a machine without GPUs unless `--use_cpu` joins them over gloo:
    both pass a check of the step count, which `--max_steps` fixes; only the share of an epoch a step covers tells."""
    out = tmp_path / "ddp"
    launcher = two_cpu_processes_launcher()
    run_script(common_args(encoder_dir, data_dir, out) + ["--do_train", "--do_eval", "--do_predict", "--max_steps", "2",
                                                          "--use_cpu"], launcher=launcher)
    state = read_json(out / "trainer_state.json")
    # Two processes of 8 documents a step see all 32 training documents in 2 steps: one epoch (one process: half).
    assert state["global_step"] == 2
    assert state["epoch"] == pytest.approx(2 * 8 * 2 / 32)
    assert (out / "model.safetensors").exists() and (out / "predictions.jsonl").exists()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 8
    assert "eval_macro_f1" in read_json(out / "all_results.json")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: {"--train_file": str(d / "missing.jsonl")}, "missing.jsonl"),
        (lambda d: {"--text_column": "body"}, "body"),
        (lambda d: {"--train_file": write_jsonl(d / "unknown.jsonl", [{"text": "x", "labels": "sport > golf"}])}, "golf"),
        (lambda d: {"--train_file": write_jsonl(d / "empty_text.jsonl", [{"text": "  ", "labels": "sport"}])}, "empty_text.jsonl"),
        (lambda d: {"--taxonomy_file": str(d / "cycle.taxonomy")}, "cycle.taxonomy"),
        (lambda d: {"--taxonomy_file": str(d / "two_parents.taxonomy")}, "already listed under 'sport' on line 2"),
        (lambda d: {"--train_file": str(d / "latin1.jsonl")}, "not UTF-8"),
        (lambda d: {"--validation_file": str(d / "empty.jsonl")}, "empty.jsonl"),
    ],
)
def test_bad_input_exits_with_one_line_and_keeps_output(encoder_dir, data_dir, tmp_path, mutate, message):
    (data_dir / "cycle.taxonomy").write_text("Root\tsport\nsport\tfootball\nfootball\tsport\n", encoding="utf-8")
    (data_dir / "two_parents.taxonomy").write_text("Root\tsport\tscience\nsport\tfootball\tfootball\n")
    (data_dir / "latin1.jsonl").write_bytes('{"text": "café", "labels": "sport"}\n'.encode("latin-1"))
    (data_dir / "empty.jsonl").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("keep me")
    args = common_args(encoder_dir, data_dir, out) + ["--do_train"]
    for flag, value in mutate(data_dir).items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    with pytest.raises(SystemExit) as stopped:  # a shell sees this message as stderr's one line: test_recipe.py
        run_in_process(args)
    line = str(stopped.value.code)
    assert line.startswith("run_htc.py: error:") and message in line and "\n" not in line
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt"]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("list.yaml", "- do_train\n", "list.yaml: expected a mapping of argument names to values"),
        ("broken.json", "{oops", "broken.json: cannot read arguments (Expecting property name"),
        ("missing.yaml", None, "missing.yaml: cannot read arguments ("),
    ],
)
def test_an_unreadable_argument_file_exits_with_one_line(tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        import_script().parse_args([str(tmp_path / name)])
    assert str(exit_info.value).startswith("run_htc.py: error: ") and message in str(exit_info.value)


@pytest.mark.parametrize("text, message", [("[1]", "expected a JSON object {label: name}"), ("{", "cannot read label names")])
def test_an_unreadable_label_names_file_is_named(encoder_dir, data_dir, tmp_path, text, message):
    names = tmp_path / "names.json"
    names.write_text(text, encoding="utf-8")
    args = common_args(encoder_dir, data_dir, tmp_path / "out") + ["--do_train", "--label_names_file", str(names)]
    with pytest.raises(SystemExit, match=f"^run_htc.py: error: {names}: {re.escape(message)}"):
        run_in_process(args)
    assert not (tmp_path / "out").exists()


def test_two_runs_with_the_same_seed_give_identical_metrics(encoder_dir, data_dir, tmp_path):
    results = []
    for name in ("one", "two"):
        out = tmp_path / name
        run_script(common_args(encoder_dir, data_dir, out) + ["--do_train", "--do_eval", "--max_steps", "3",
                                                               "--negative_mining", "random"])
        metrics = read_json(out / "eval_results.json")
        results.append({k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k})
    assert results[0] == results[1] and "eval_loss" in results[0]


def test_run_killed_mid_epoch_resumes_to_the_same_metrics(encoder_dir, data_dir, tmp_path):
    import signal
    import time

    def args(out):
        return common_args(encoder_dir, data_dir, out) + [
            "--do_train", "--do_eval", "--num_train_epochs", "5", "--per_device_train_batch_size", "4",
            "--save_strategy", "steps", "--save_steps", "5", "--logging_steps", "5",
            "--early_stopping_patience", "0"]  # all 40 steps: the recipe's early stopping could end sooner

    run_script(args(tmp_path / "whole"))
    expected = read_json(tmp_path / "whole" / "eval_results.json")

    out = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, SCRIPT] + args(out), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint-10" / "trainer_state.json").exists() and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "eval_results.json").exists()  # it really died before the end (40 steps)
    run_script(args(out) + ["--resume_from_checkpoint", "last"])
    resumed = read_json(out / "eval_results.json")
    for key in ("eval_micro_f1", "eval_macro_f1", "eval_hierarchical_f1"):
        assert resumed[key] == expected[key], key
    assert abs(resumed["eval_loss"] - expected["eval_loss"]) < 1e-4
    assert read_json(out / "trainer_state.json")["global_step"] == 40


def test_last_complete_checkpoint_skips_half_written_folders(tmp_path):
    from modeling_htla.trainer import last_complete_checkpoint

    for step, state in [(5, "{}"), (10, "{}"), (15, None), (20, '{"trunc')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert last_complete_checkpoint(str(tmp_path / "missing")) is None


def test_predict_on_edge_texts_with_bounded_batches(encoder_dir, data_dir, tmp_path):
    texts = ["", "   \n\t ", "x" * 100_000, "東京で会いましょう", "🚀🔥👍", "ctrl\x00\x07\x1b chars", "goal striker"]
    test_file = write_jsonl(tmp_path / "edge.jsonl", [{"text": t, "labels": "sport > football"} for t in texts])
    out = tmp_path / "edge"
    args = common_args(encoder_dir, data_dir, out)
    args[args.index("--test_file") + 1] = test_file
    # Memory at prediction is bounded by documents per batch and tokens per document.
    run_script(args + ["--do_predict", "--per_device_eval_batch_size", "1", "--max_seq_length", "32"])
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(texts)
    assert read_json(out / "predict_results.json")["predict_samples"] == len(texts)


def test_a_name_under_two_parents_is_two_labels_everywhere(encoder_dir, tmp_path):
    """Web of Science style: 'Depression' under 'Psychology' and under 'Medical' are two labels, identified by their
    paths in the config, predictions, metrics, card and both pipelines, and initialized from the name 'Depression'."""
    from transformers import AutoTokenizer, pipeline

    areas = [("Psychology", "Depression"), ("Medical", "Depression"), ("Medical", "Cancer"), ("Psychology", "Attention")]
    rows = [{"text": f"{area.lower()} text {i}", "labels": f"{domain} > {area}"}
            for i, (domain, area) in enumerate(areas * 5)]
    data = {split: write_jsonl(tmp_path / f"{split}.jsonl", part)
            for split, part in (("train", rows[:12]), ("validation", rows[12:16]), ("test", rows[16:]))}
    out = tmp_path / "wos"
    run_in_process(["--model_name_or_path", encoder_dir, "--train_file", data["train"],
                    "--validation_file", data["validation"], "--test_file", data["test"], "--output_dir", str(out),
                    "--do_train", "--do_eval", "--do_predict", "--max_steps", "2", "--max_seq_length", "16",
                    "--threshold", "0.0"])
    both = {"Psychology > Depression", "Medical > Depression"}
    config = read_json(out / "config.json")
    labels, names = config["taxonomy"]["labels"], config["taxonomy"]["names"]
    assert both <= set(labels) and set(config["id2label"].values()) == set(labels)
    tokenizer = AutoTokenizer.from_pretrained(out)
    depression = tokenizer("Depression", add_special_tokens=False)["input_ids"]
    for label in both:
        assert names[labels.index(label)] == "Depression"
        assert config["label_name_ids"][labels.index(label)] == depression
    # Threshold 0 predicts every label: each document gets both Depression labels and both paths.
    for line in (out / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert both <= set(record["labels"]) and both <= set(record["paths"])
    # Two gold labels per document among all 6: micro-F1 = 2PR / (P + R) with R = 1 and P = 2/6, at --threshold 0.
    assert read_json(out / "predict_results.json")["predict_micro_f1"] == pytest.approx(2 * (2 / 6) / (2 / 6 + 1))
    assert all(f"{label}" in (out / "README.md").read_text() for label in both)
    flat = pipeline("text-classification", model=str(out), trust_remote_code=True, top_k=None)
    assert both <= {item["label"] for item in flat(["a sad mood"])[0]}
    paths = pipeline("hierarchical-text-classification", model=str(out), trust_remote_code=True)
    assert both <= {item["label"] for item in paths(["a sad mood"], threshold=0.0)[0]}


def test_no_graph_encoder_alone_trains_the_flat_classifier(encoder_dir, data_dir, tmp_path):
    out = tmp_path / "flat"
    run_in_process(common_args(encoder_dir, data_dir, out) + ["--do_train", "--max_steps", "1",
                                                              "--no_use_graph_encoder"])
    config = read_json(out / "config.json")
    assert config["use_graph_encoder"] is False and config["use_tla"] is False
    assert not any(key.startswith("graph_encoder.") for key in HTLAModel.from_pretrained(out).state_dict())


def test_predictions_carry_the_input_id(encoder_dir, data_dir, tmp_path):
    rows = [json.loads(line) for line in (data_dir / "test.jsonl").read_text().splitlines()]
    shuffled = [dict(row, id=f"doc-{i}") for i, row in enumerate(rows)][::-1]
    args = common_args(encoder_dir, data_dir, tmp_path / "out")
    args[args.index("--test_file") + 1] = write_jsonl(tmp_path / "test.jsonl", shuffled)
    run_in_process(args + ["--do_predict", "--per_device_eval_batch_size", "3"])
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [row["id"] for row in shuffled]
