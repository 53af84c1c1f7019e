"""Classifying a corpus (`modeling_htla/predict.py`, `run_htc.py --do_predict`): unlabelled documents in input order,
metrics from streamed counts equal to those of the whole arrays, a killed run resumed to the same file, two processes
writing what one writes, and memory that does not hold an `[N, L]` matrix."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from conftest import TOPICS, two_cpu_processes_launcher, write_jsonl
from modeling_htla import HTLAModel, Taxonomy
from modeling_htla.collator import multi_hot
from modeling_htla.metrics import htc_scores
from modeling_htla.predict import classify_corpus, read_rows, release_freed_memory

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "run_htc.py")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def corpus(size: int, seed: int = 0) -> list[dict]:
    """`size` unlabelled documents of mixed lengths (some empty), with string ids in a shuffled order."""
    rng = random.Random(seed)
    words = " ".join(leaf for top in TOPICS.values() for leaf in top.values()).split()
    rows = [{"id": f"doc-{i}", "text": " ".join(rng.choices(words, k=rng.choice([0, 1, 3, 8, 20])))}
            for i in range(size)]
    rng.shuffle(rows)
    return rows


def predict_args(checkpoint, test_file, out, *extra):
    return ["--model_name_or_path", str(checkpoint), "--test_file", str(test_file), "--do_predict",
            "--output_dir", str(out), "--max_seq_length", "32", "--report_to", "none", *extra]


def run_in_process(args):
    sys.path.insert(0, str(ROOT))
    try:
        import run_htc
    finally:
        sys.path.remove(str(ROOT))
    run_htc.main(args)


def test_unlabelled_documents_are_classified_in_input_order(trained, tmp_path):
    checkpoint, _ = trained
    rows = corpus(23)
    out = tmp_path / "out"
    run_in_process(predict_args(checkpoint, write_jsonl(tmp_path / "docs.jsonl", rows), out,
                                "--predict_chunk_size", "5", "--per_device_eval_batch_size", "2",
                                "--predict_top_k", "3"))
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [row["id"] for row in rows]  # one line per document, empty ones too
    assert any(not row["text"] for row in rows)
    for line in lines:
        assert set(line["scores"]) == set(line["labels"]) and len(line["names"]) == len(line["labels"])
        assert [entry["score"] for entry in line["top_k"]] == sorted((e["score"] for e in line["top_k"]), reverse=True)
        assert len(line["top_k"]) == 3
    results = json.loads((out / "predict_results.json").read_text())
    assert results["predict_samples"] == 23 and "predict_micro_f1" not in results  # no labels, no metrics
    assert not (out / "predictions.jsonl.parts").exists()

    # A Parquet input with the same rows, and CSV and Parquet outputs: the same records.
    parquet_in = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_in)
    for fmt in ("csv", "parquet"):
        run_in_process(predict_args(checkpoint, parquet_in, tmp_path / fmt, "--predictions_format", fmt,
                                    "--predict_chunk_size", "7"))
        if fmt == "csv":
            with open(tmp_path / fmt / "predictions.csv", encoding="utf-8", newline="") as handle:
                table = [{key: value if key == "id" else json.loads(value) for key, value in row.items()}
                         for row in csv.DictReader(handle)]
        else:
            table = pq.read_table(tmp_path / fmt / "predictions.parquet").to_pylist()
        assert [row["id"] for row in table] == [line["id"] for line in lines]
        assert [row["labels"] for row in table] == [line["labels"] for line in lines]
        assert [row["paths"] for row in table] == [line["paths"] for line in lines]


def test_streamed_metrics_equal_the_metrics_of_the_whole_arrays(encoder_dir, tmp_path):
    """Counts summed over chunks of 5 documents and batches of 2 give `htc_scores` of all the documents at once, for
    a fixed threshold, per-label thresholds and a constant baseline, with P1..P5 from given frequencies."""
    taxonomy = Taxonomy.from_parents({"a": None, "b": None, "a1": "a", "a2": "a", "b1": "b", "a11": "a1", "a12": "a1"})
    model = HTLAModel.from_encoder(encoder_dir, taxonomy=taxonomy).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    rng = np.random.default_rng(0)
    words = ["goal", "cell", "quantum", "serve", "gene", "match"]
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(23)]
    label_ids = [taxonomy.label_set([taxonomy.labels[j]], True) for j in rng.integers(0, len(taxonomy), size=23)]
    dataset = Dataset.from_dict({"text": texts, "label_ids": label_ids})
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
    logits = logits.numpy()
    per_label = np.quantile(1 / (1 + np.exp(-logits)), 0.5, axis=0)  # every label decided for about half the texts
    frequencies = rng.integers(0, 50, size=len(taxonomy)).tolist()
    result = classify_corpus(model, tokenizer, dataset, taxonomy, tmp_path / "predictions.jsonl", thresholds=0.5,
                             max_length=32, batch_size=2, chunk_size=5,
                             metric_thresholds={"fixed": 0.5, "learned": per_label}, baselines={"baseline": [0, 2]},
                             label_frequencies=frequencies)
    gold = multi_hot(label_ids, len(taxonomy)).astype(int)
    constant = np.full(logits.shape, -10.0, dtype=np.float32)
    constant[:, [0, 2]] = 10.0
    expected = {
        "fixed": htc_scores(logits, gold, taxonomy.parent_ids, 0.5, True, frequencies),
        "learned": htc_scores(logits, gold, taxonomy.parent_ids, per_label.tolist(), True, frequencies),
        "baseline": htc_scores(constant, gold, taxonomy.parent_ids, 0.5, True, frequencies),
    }
    assert result.documents == 23 and result.metrics.keys() == expected.keys()
    for rule, scores in expected.items():
        assert result.metrics[rule] == pytest.approx(scores, abs=1e-12), rule
    assert 0 < expected["learned"]["micro_f1"] != expected["fixed"]["micro_f1"]  # the rules really differ
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 23


def test_a_killed_run_resumes_to_the_same_file(trained, tmp_path):
    """SIGKILL after some chunks are written, then the same command: the finished chunks are kept, and the file equals
    an uninterrupted run's; no half-written file stood under the final name."""
    checkpoint, _ = trained
    docs = write_jsonl(tmp_path / "docs.jsonl", corpus(3000))
    extra = ["--predict_chunk_size", "50", "--per_device_eval_batch_size", "16"]
    # The uninterrupted run is the same command in the same environment (one thread): scores are written to 5
    # digits, and a different thread count sums in another order, which can move the last digit.
    whole = subprocess.run([sys.executable, SCRIPT] + predict_args(checkpoint, docs, tmp_path / "whole", *extra),
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    command = [sys.executable, SCRIPT] + predict_args(checkpoint, docs, out, *extra)
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "predictions.jsonl.parts"
    deadline = time.time() + 120
    while len(list(parts.glob("chunk-*.safetensors"))) < 5 and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "predictions.jsonl").exists()  # it died before the end (60 chunks)
    again = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    done = int(again.stderr.split(" already done")[0].rsplit(" ", 1)[1])
    assert 5 <= done < 60
    assert (out / "predictions.jsonl").read_bytes() == (tmp_path / "whole" / "predictions.jsonl").read_bytes()
    assert not parts.exists()


def test_two_processes_write_what_one_writes(trained, tmp_path):
    checkpoint, _ = trained
    docs = write_jsonl(tmp_path / "docs.jsonl", corpus(120))
    extra = ["--predict_chunk_size", "16", "--per_device_eval_batch_size", "4", "--use_cpu"]
    run_in_process(predict_args(checkpoint, docs, tmp_path / "one", *extra))
    launcher = two_cpu_processes_launcher()
    result = subprocess.run(launcher + [SCRIPT] + predict_args(checkpoint, docs, tmp_path / "two", *extra), cwd=ROOT,
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2: 4 chunks" in result.stderr  # 8 chunks, every other one
    assert (tmp_path / "two" / "predictions.jsonl").read_bytes() == (tmp_path / "one" / "predictions.jsonl").read_bytes()


def test_an_onnx_export_classifies_like_its_checkpoint(trained, data_dir, tmp_path, capsys):
    from modeling_htla.onnx import export_onnx

    checkpoint, _ = trained
    exported = export_onnx(checkpoint, tmp_path / "onnx")
    test = data_dir / "test.jsonl"
    for model, out in ((checkpoint, tmp_path / "torch"), (exported, tmp_path / "ort")):
        run_in_process(predict_args(model, test, out, "--predict_chunk_size", "3", "--predict_top_k", "2"))
    torch_lines, ort_lines = ([json.loads(line) for line in (tmp_path / name / "predictions.jsonl").read_text().splitlines()]
                              for name in ("torch", "ort"))
    assert [line["labels"] for line in ort_lines] == [line["labels"] for line in torch_lines]
    for ort, pt in zip(ort_lines, torch_lines):
        assert [e["label"] for e in ort["top_k"]] == [e["label"] for e in pt["top_k"]]
        assert np.allclose([e["score"] for e in ort["top_k"]], [e["score"] for e in pt["top_k"]], atol=1e-4)
    torch_results, ort_results = (json.loads((tmp_path / name / "predict_results.json").read_text())
                                  for name in ("torch", "ort"))
    assert ort_results["predict_samples"] == 8
    assert ort_results["predict_micro_f1"] == pytest.approx(torch_results["predict_micro_f1"])
    assert json.loads((tmp_path / "ort" / "all_results.json").read_text()) == ort_results

    # Several processes on one machine share its cores instead of each taking a thread per core.
    sys.path.insert(0, str(ROOT))
    import run_htc

    sys.path.remove(str(ROOT))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCAL_WORLD_SIZE", "1")
        assert run_htc.shared_session_options(str(exported)) is None
        patch.setenv("LOCAL_WORLD_SIZE", "2")
        options = run_htc.shared_session_options(str(exported))
        assert options.intra_op_num_threads == max(1, (os.cpu_count() or 1) // 2)
        assert options.inter_op_num_threads == 1  # the rest of the saved options kept

    # An export classifies only: training or evaluating with it, or extending its taxonomy, is a one-line error.
    for extra in (["--do_train", "--train_file", str(data_dir / "train.jsonl")],
                  ["--taxonomy_file", str(data_dir / "labels.taxonomy")]):
        with pytest.raises(SystemExit) as error:
            run_in_process(predict_args(exported, test, tmp_path / "bad", *extra))
        assert str(error.value).startswith("run_htc.py: error: ") and "\n" not in str(error.value)
        assert "ONNX export" in str(error.value)
    assert not (tmp_path / "bad").exists()


WIDE_PROBE = """
import sys, tracemalloc
import numpy as np, torch
from datasets import Dataset
from transformers import AutoTokenizer
from modeling_htla import HTLAModel, Taxonomy
from modeling_htla.predict import classify_corpus, read_rows, release_freed_memory

encoder, out, num_labels, num_docs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
labels = [f"l{i}" for i in range(num_labels)]
taxonomy = Taxonomy(labels, [None if i < 8 else f"l{(i - 8) // 8}" for i in range(num_labels)])
model = HTLAModel.from_encoder(encoder, taxonomy=taxonomy, use_graph_encoder=False)
tokenizer = AutoTokenizer.from_pretrained(encoder)
rng = np.random.default_rng(0)
dataset = Dataset.from_dict({"text": ["goal cell gene"[: int(n)] for n in rng.integers(0, 14, num_docs)],
                             "label_ids": [taxonomy.label_set([labels[j]], True) for j in rng.integers(0, num_labels, num_docs)]})
tracemalloc.start()
result = classify_corpus(model, tokenizer, dataset, taxonomy, out, thresholds=0.9, max_length=8, batch_size=32,
                         chunk_size=500, metric_thresholds={"fixed": 0.5})
print(tracemalloc.get_traced_memory()[1], result.documents)
"""


def test_a_wide_tree_over_thousands_of_documents_never_holds_an_n_by_l_matrix(encoder_dir, tmp_path):
    """30,000 labels and 3,000 documents: a float32 `[N, L]` score matrix alone is 360 MB; the peak of what numpy and
    Python allocate stays that of a few `[batch, L]` arrays (tracemalloc counts numpy's buffers)."""
    num_labels, num_docs = 30_000, 3_000
    result = subprocess.run([sys.executable, "-c", WIDE_PROBE, encoder_dir, str(tmp_path / "p.jsonl"), str(num_labels),
                             str(num_docs)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    peak, documents = map(int, result.stdout.split())
    assert documents == num_docs
    full = num_docs * num_labels * 4
    assert peak < full / 6, f"peak {peak / 1e6:.0f} MB against {full / 1e6:.0f} MB for [N, L] float32"
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == num_docs


def test_chunks_are_read_as_the_dataset_slices_them(tmp_path):
    """`read_rows` opens a one-file dataset's Arrow file for each chunk; what it returns is the dataset's own slice,
    for a file-backed dataset, one with an indices mapping (a selection) and one in memory."""
    rows = [{"id": f"d{i}", "text": f"text {i} " * (i % 7), "label_ids": [i % 3, 3 + i % 2]} for i in range(250)]
    write_jsonl(tmp_path / "docs.jsonl", rows)
    from modeling_htla.data.formats import read_file

    on_file = read_file(tmp_path / "docs.jsonl")
    assert len(on_file.cache_files) == 1
    for dataset in (on_file, on_file.select(range(249, -1, -2)), Dataset.from_list(rows)):
        for start, end in ((0, 64), (64, 200), (200, len(dataset))):
            assert read_rows(dataset, start, end) == dataset[start:end]
    release_freed_memory()  # callable everywhere (a no-op without glibc)
