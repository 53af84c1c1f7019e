"""Benchmark 6: serving an HTLA checkpoint with ONNX Runtime (`python -m modeling_htla.onnx`). On one trained
checkpoint (the default run's, `python run_htc.py`), in one process and interleaved so machine noise hits every
variant alike: texts per second at batch 1 and 32 of 128 tokens for PyTorch fp32 (SDPA attention, under
`torch.inference_mode`), ONNX fp32 and ONNX int8, beside a plain `AutoModelForSequenceClassification` of the same
encoder with as many labels, exported the same way; texts per second on a realistic mix (20 Newsgroups test posts at
up to 128 tokens, in length-sorted batches); the largest logit difference of ONNX fp32 from PyTorch; and test
Micro/Macro-F1 of int8 and fp32 on the embedded ICD-10-CM test split of the default run (same seed, same 4,000 texts
at 64 tokens).

The load average is read first: over 0.5 (1 minute), the result is saved with `idle: false` and a warning says the
figures are not a result, the machine being busy.

    python benchmarks/bench_export.py [--checkpoint outputs/htla-icd10cm] [--rounds 5]
    python benchmarks/bench_export.py --rounds 1 --seconds 0.2 --mix_texts 64 --f1_texts 200   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction

from common import machine_load, save_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import run_htc  # noqa: E402
from modeling_htla import HTLAModel  # noqa: E402
from modeling_htla.batching import length_sorted_batches  # noqa: E402
from modeling_htla.onnx import SESSION_OPTIONS, build_graph, export_onnx  # noqa: E402
from modeling_htla.onnx_model import HTLAOnnxModel, saved_session_options  # noqa: E402

TARGETS = {"onnx_int8_over_pytorch_fp32": ">= 2.0 at batch 1 and 32, on an idle machine",
           "htla_onnx_over_plain_onnx": ">= 0.95 (fp32 and int8)", "int8_minus_fp32_f1": "within 0.5 points, Micro and Macro"}
NEWSGROUPS_TEST = ROOT.parent / "shared" / "data" / "20newsgroups" / "test.jsonl"


class PlainLogits(torch.nn.Module):
    """A plain sequence classifier's logits as the only output, for `build_graph`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def plain_model(htla: HTLAModel):
    """`AutoModelForSequenceClassification` of the checkpoint's encoder (its trained weights) and as many labels."""
    torch.manual_seed(0)
    text_config = htla.config.text_config
    config = type(text_config).from_dict(text_config.to_dict(), id2label=dict(htla.config.id2label),
                                         problem_type="multi_label_classification")
    plain = AutoModelForSequenceClassification.from_config(config)
    getattr(plain, plain.base_model_prefix).load_state_dict(htla.text_encoder.state_dict(), strict=False)
    return plain.eval()


def export_plain(plain, inputs: dict, folder: Path) -> dict[str, HTLAOnnxModel]:
    """The plain model as ONNX fp32 and int8, exported, optimized and quantized as HTLA's and served with the same
    session options, each behind `HTLAOnnxModel`'s call (the same path as HTLA's)."""
    import onnxruntime

    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for precision, quantize in (("fp32", None), ("int8", "int8")):
        build_graph(PlainLogits(plain), plain, inputs, folder / f"{precision}.onnx", quantize=quantize)
        session = onnxruntime.InferenceSession(str(folder / f"{precision}.onnx"), saved_session_options(SESSION_OPTIONS),
                                               providers=["CPUExecutionProvider"])
        models[precision] = HTLAOnnxModel(session, plain.config)
    return models


def throughput(models: dict, batches: dict[int, dict], rounds: int, seconds: float = 2.0) -> dict:
    """Texts per second of every model at every batch size: in each round each model runs each batch for about
    `seconds`, models interleaved; the median over rounds (after one warm-up round)."""
    rates = {(name, size): [] for name in models for size in batches}
    calls = {}
    with torch.inference_mode():
        for round_ in range(rounds + 1):
            for size, inputs in batches.items():
                for name, model in models.items():
                    n = calls.get((name, size), 1)
                    start = time.perf_counter()
                    for _ in range(n):
                        model(**inputs)
                    elapsed = time.perf_counter() - start
                    if round_ == 0:  # warm-up: choose the number of calls per measurement
                        calls[(name, size)] = max(1, round(seconds / elapsed))
                    else:
                        rates[(name, size)].append(n * size / elapsed)
    return {f"{name}_batch{size}": statistics.median(values) for (name, size), values in rates.items()}


def mix_throughput(models: dict, tokenizer, texts: list[str], max_length: int, batch_size: int, rounds: int) -> dict:
    """Texts per second of every model over the whole of `texts`, cut to `max_length` tokens and run in
    length-sorted batches (as the pipelines run a list; tokenized beforehand, so the figure is the model's): each
    round runs every model over every batch, models interleaved; the median over rounds (after one warm-up round)."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    batches = [tokenizer([texts[row] for row in rows], truncation=True, max_length=max_length, padding=True,
                         return_tensors="pt") for rows in length_sorted_batches(lengths, batch_size)]
    rates = {name: [] for name in models}
    with torch.inference_mode():
        for round_ in range(rounds + 1):
            for name, model in models.items():
                start = time.perf_counter()
                for inputs in batches:
                    model(**inputs)
                if round_:  # round 0 warms up
                    rates[name].append(len(texts) / (time.perf_counter() - start))
    return {"texts": len(texts), "mean_tokens": float(np.mean(lengths)), "batch_size": batch_size,
            "texts_per_s": {name: statistics.median(values) for name, values in rates.items()}}


def logits_of(model, tokenizer, texts: list[str], max_length: int, batch: int = 64) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for first in range(0, len(texts), batch):
            inputs = tokenizer(texts[first:first + batch], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt")
            out.append(model(**inputs).logits.float().numpy())
    return np.concatenate(out)


def test_f1(models: dict, tokenizer, seed: int, thresholds: list[float], limit: int | None = None) -> dict:
    """Micro/Macro-F1 of each model on the default run's test split (its first `limit` texts when given), as
    `run_htc.py` computes them: at 0.5 and, as `learned_*`, at the checkpoint's decision thresholds (`thresholds`,
    one per label)."""
    model_args, data_args, training_args = run_htc.parse_args(run_htc.settings_to_argv(
        run_htc.DEFAULT_RUN | {"seed": seed, "output_dir": tempfile.mkdtemp(), "report_to": "none"}))
    raw, taxonomy, _ = run_htc.prepare_data(model_args, data_args, training_args)
    frequencies = np.bincount([i for ids in raw["train"]["label_ids"] for i in ids], minlength=len(taxonomy))
    test = raw["test"].select(range(min(limit, len(raw["test"])))) if limit else raw["test"]
    references = np.zeros((len(test), len(taxonomy)), dtype=np.int64)
    for row, ids in enumerate(test["label_ids"]):
        references[row, ids] = 1
    at = {"": run_htc.make_compute_metrics(taxonomy, frequencies.tolist(), 0.5),
          "learned_": run_htc.make_compute_metrics(taxonomy, frequencies.tolist(), np.asarray(thresholds))}
    texts = test["text"]
    scores = {}
    for name, model in models.items():
        prediction = EvalPrediction(logits_of(model, tokenizer, texts, data_args.max_seq_length), references)
        scores[name] = {f"{prefix}{key}": metrics[key] for prefix, compute in at.items()
                        for metrics in [compute(prediction)] for key in ("micro_f1", "macro_f1")}
    scores["test_texts"] = len(texts)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "outputs" / "htla-icd10cm")
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="each model's time per batch size per round")
    parser.add_argument("--mix_file", type=Path, default=NEWSGROUPS_TEST, help="the realistic mix: a JSON Lines file "
                        "with a text field (default: the 20 Newsgroups test posts)")
    parser.add_argument("--mix_texts", type=int, default=1000, help="how many of its texts, drawn with seed 0 (the "
                        "20 Newsgroups files are sorted by newsgroup, so the first ones would be two newsgroups)")
    parser.add_argument("--mix_max_length", type=int, default=128)
    parser.add_argument("--mix_batch_size", type=int, default=32)
    parser.add_argument("--f1_texts", type=int, default=None, help="score the first N test texts only (default all)")
    parser.add_argument("--seed", type=int, default=42, help="the checkpoint's run's seed (run_htc.py's default: 42)")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. that the machine was shared)")
    parser.add_argument("--result_name", default="export", help="results/NAME.json (default export; another name "
                        "for a quick check, so it does not replace the measurement)")
    args = parser.parse_args()
    load = machine_load()

    htla = HTLAModel.from_pretrained(args.checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    onnx = {precision: HTLAOnnxModel.from_pretrained(export_onnx(args.checkpoint, work / precision, quantize))
            for precision, quantize in (("fp32", None), ("int8", "int8"))}
    texts = [f"texts of exactly {args.seq_len} tokens, number {i}: " + "word " * args.seq_len for i in range(32)]
    batches = {size: tokenizer(texts[:size], truncation=True, max_length=args.seq_len, padding="max_length",
                               return_tensors="pt") for size in args.batch_sizes}
    plain = plain_model(htla)
    plain_onnx = export_plain(plain, dict(batches[max(args.batch_sizes)]), work / "plain")
    models = {"htla_pytorch_fp32": htla, "htla_onnx_fp32": onnx["fp32"], "htla_onnx_int8": onnx["int8"],
              "plain_pytorch_fp32": plain, "plain_onnx_fp32": plain_onnx["fp32"], "plain_onnx_int8": plain_onnx["int8"]}
    speed = throughput(models, batches, args.rounds, args.seconds)
    with args.mix_file.open(encoding="utf-8") as lines:
        posts = [json.loads(line)["text"] for line in lines]
    posts = random.Random(0).sample(posts, min(args.mix_texts, len(posts)))
    mix = mix_throughput({name: models[name] for name in ("htla_pytorch_fp32", "htla_onnx_fp32", "htla_onnx_int8")},
                         tokenizer, posts, args.mix_max_length, args.mix_batch_size, args.rounds)

    largest = max(args.batch_sizes)
    with torch.inference_mode():
        difference = float((onnx["fp32"](**batches[largest]).logits - htla(**batches[largest]).logits).abs().max())
    f1 = test_f1({"pytorch_fp32": htla, "onnx_fp32": onnx["fp32"], "onnx_int8": onnx["int8"]}, tokenizer, args.seed,
                 htla.config.label_thresholds(), args.f1_texts)
    mix_rates = mix["texts_per_s"]
    ratios = {
        **{f"onnx_{p}_over_pytorch_fp32_batch{size}": speed[f"htla_onnx_{p}_batch{size}"]
           / speed[f"htla_pytorch_fp32_batch{size}"] for p in ("int8", "fp32") for size in args.batch_sizes},
        **{f"onnx_{p}_over_pytorch_fp32_mix": mix_rates[f"htla_onnx_{p}"] / mix_rates["htla_pytorch_fp32"]
           for p in ("int8", "fp32")},
        **{f"htla_onnx_{p}_over_plain_onnx_{p}_batch{size}": speed[f"htla_onnx_{p}_batch{size}"]
           / speed[f"plain_onnx_{p}_batch{size}"] for p in ("fp32", "int8") for size in args.batch_sizes},
        **{f"int8_minus_fp32_{key}_points": 100 * (f1["onnx_int8"][key] - f1["onnx_fp32"][key])
           for key in ("micro_f1", "macro_f1", "learned_micro_f1", "learned_macro_f1")},
    }

    print(f"{args.checkpoint} (fusion {htla.config.fusion}, {htla.config.num_labels} labels), {args.seq_len} tokens, "
          f"{torch.get_num_threads()} threads; texts/s, median of {args.rounds} interleaved rounds")
    print(f"{'model':<22}" + "".join(f"{'batch ' + str(size):>12}" for size in args.batch_sizes))
    for name in models:
        print(f"{name:<22}" + "".join(f"{speed[f'{name}_batch{size}']:>12.1f}" for size in args.batch_sizes))
    print(f"realistic mix ({mix['texts']} posts of {args.mix_file.name}, {mix['mean_tokens']:.1f} tokens on average, "
          f"batches of {args.mix_batch_size} by length): " + ", ".join(f"{name} {rate:.1f}"
                                                                        for name, rate in mix_rates.items()))
    print(f"fused by the optimizer: {onnx['fp32'].config.onnx_export['fused_nodes']}")
    print(f"max |logit ONNX fp32 - PyTorch| {difference:.2e}")
    for name in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        print(f"test {name:<14} Micro-F1 {100 * f1[name]['micro_f1']:.2f}  Macro-F1 {100 * f1[name]['macro_f1']:.2f} "
              f"at 0.5; {100 * f1[name]['learned_micro_f1']:.2f} / {100 * f1[name]['learned_macro_f1']:.2f} at the "
              f"learned thresholds ({f1['test_texts']} texts)")
    print("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    path = save_result(args.result_name, {
        "benchmark": "export",
        **load,
        "settings": vars(args) | {"checkpoint": str(args.checkpoint), "mix_file": str(args.mix_file),
                                  "fusion": htla.config.fusion, "num_labels": htla.config.num_labels},
        "texts_per_s": speed,
        "realistic_mix": mix,
        "fused_nodes": onnx["fp32"].config.onnx_export["fused_nodes"],
        "session_options": onnx["fp32"].config.onnx_export["session_options"],
        "max_abs_logit_difference_onnx_fp32": difference,
        "test_f1": f1,
        "ratios": ratios,
        "targets": TARGETS,
    })
    print(f"saved {path}")
    if not load["idle"]:
        print(f"WARNING: measured on a busy machine (1-minute load {load['load_average']['1min']:.2f} before the "
              f"run): {path.name} says idle: false; these figures are not a result", file=sys.stderr)


if __name__ == "__main__":
    main()
