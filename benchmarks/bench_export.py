"""Benchmark 6: serving an HTLA checkpoint with ONNX Runtime (`python -m modeling_htla.onnx`). On one trained
checkpoint (the default run's, `python run_htc.py`), in one process and interleaved so machine noise hits every
variant alike: texts per second at batch 1 and 32 of 128 tokens for PyTorch fp32, ONNX fp32 and ONNX int8, beside a
plain `AutoModelForSequenceClassification` of the same encoder with as many labels, exported the same way; the
largest logit difference of ONNX fp32 from PyTorch; and test Micro/Macro-F1 of int8 and fp32 on the embedded
ICD-10-CM test split of the default run (same seed, same 4,000 texts at 64 tokens).

    python benchmarks/bench_export.py [--checkpoint outputs/htla-icd10cm] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction

from common import save_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import run_htc  # noqa: E402
from modeling_htla import HTLAModel  # noqa: E402
from modeling_htla.onnx import SESSION_OPTIONS, build_graph, export_onnx  # noqa: E402
from modeling_htla.onnx_model import HTLAOnnxModel, saved_session_options  # noqa: E402

TARGETS = {"onnx_int8_over_pytorch_fp32_batch32": ">= 2.0", "htla_onnx_over_plain_onnx": ">= 0.95 (fp32 and int8)",
           "int8_minus_fp32_f1": "within 0.5 points, Micro and Macro"}


class PlainLogits(torch.nn.Module):
    """A plain sequence classifier's logits as the only output, for `export_graph`."""

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
    with torch.no_grad():
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


def logits_of(model, tokenizer, texts: list[str], max_length: int, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for first in range(0, len(texts), batch):
            inputs = tokenizer(texts[first:first + batch], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt")
            out.append(model(**inputs).logits.float().numpy())
    return np.concatenate(out)


def test_f1(models: dict, tokenizer, seed: int, thresholds: list[float]) -> dict:
    """Micro/Macro-F1 of each model on the default run's test split, as `run_htc.py` computes them: at 0.5 and, as
    `learned_*`, at the checkpoint's decision thresholds (`thresholds`, one per label)."""
    model_args, data_args, training_args = run_htc.parse_args(run_htc.settings_to_argv(
        run_htc.DEFAULT_RUN | {"seed": seed, "output_dir": tempfile.mkdtemp(), "report_to": "none"}))
    raw, taxonomy, _ = run_htc.prepare_data(model_args, data_args, training_args)
    frequencies = np.bincount([i for ids in raw["train"]["label_ids"] for i in ids], minlength=len(taxonomy))
    references = np.zeros((len(raw["test"]), len(taxonomy)), dtype=np.int64)
    for row, ids in enumerate(raw["test"]["label_ids"]):
        references[row, ids] = 1
    at = {"": run_htc.make_compute_metrics(taxonomy, frequencies.tolist(), 0.5),
          "learned_": run_htc.make_compute_metrics(taxonomy, frequencies.tolist(), np.asarray(thresholds))}
    texts = raw["test"]["text"]
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
    parser.add_argument("--seed", type=int, default=42, help="the checkpoint's run's seed (run_htc.py's default: 42)")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. that the machine was shared)")
    args = parser.parse_args()

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
    speed = throughput(models, batches, args.rounds)

    largest = max(args.batch_sizes)
    with torch.no_grad():
        difference = float((onnx["fp32"](**batches[largest]).logits - htla(**batches[largest]).logits).abs().max())
    f1 = test_f1({"pytorch_fp32": htla, "onnx_fp32": onnx["fp32"], "onnx_int8": onnx["int8"]}, tokenizer, args.seed,
                 htla.config.label_thresholds())
    ratios = {
        f"onnx_int8_over_pytorch_fp32_batch{largest}": speed[f"htla_onnx_int8_batch{largest}"]
        / speed[f"htla_pytorch_fp32_batch{largest}"],
        f"onnx_fp32_over_pytorch_fp32_batch{largest}": speed[f"htla_onnx_fp32_batch{largest}"]
        / speed[f"htla_pytorch_fp32_batch{largest}"],
        **{f"htla_onnx_{p}_over_plain_onnx_{p}_batch{size}": speed[f"htla_onnx_{p}_batch{size}"]
           / speed[f"plain_onnx_{p}_batch{size}"] for p in ("fp32", "int8") for size in args.batch_sizes},
        "int8_minus_fp32_micro_f1_points": 100 * (f1["onnx_int8"]["micro_f1"] - f1["onnx_fp32"]["micro_f1"]),
        "int8_minus_fp32_macro_f1_points": 100 * (f1["onnx_int8"]["macro_f1"] - f1["onnx_fp32"]["macro_f1"]),
        "int8_minus_fp32_learned_micro_f1_points": 100 * (f1["onnx_int8"]["learned_micro_f1"]
                                                          - f1["onnx_fp32"]["learned_micro_f1"]),
        "int8_minus_fp32_learned_macro_f1_points": 100 * (f1["onnx_int8"]["learned_macro_f1"]
                                                          - f1["onnx_fp32"]["learned_macro_f1"]),
    }

    print(f"{args.checkpoint} (fusion {htla.config.fusion}, {htla.config.num_labels} labels), {args.seq_len} tokens, "
          f"{torch.get_num_threads()} threads; texts/s, median of {args.rounds} interleaved rounds")
    print(f"{'model':<22}" + "".join(f"{'batch ' + str(size):>12}" for size in args.batch_sizes))
    for name in models:
        print(f"{name:<22}" + "".join(f"{speed[f'{name}_batch{size}']:>12.1f}" for size in args.batch_sizes))
    print(f"max |logit ONNX fp32 - PyTorch| {difference:.2e}")
    for name in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        print(f"test {name:<14} Micro-F1 {100 * f1[name]['micro_f1']:.2f}  Macro-F1 {100 * f1[name]['macro_f1']:.2f} "
              f"at 0.5; {100 * f1[name]['learned_micro_f1']:.2f} / {100 * f1[name]['learned_macro_f1']:.2f} at the "
              "learned thresholds")
    print("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    path = save_result("export", {
        "benchmark": "export",
        "settings": vars(args) | {"checkpoint": str(args.checkpoint), "fusion": htla.config.fusion,
                                  "num_labels": htla.config.num_labels},
        "texts_per_s": speed,
        "max_abs_logit_difference_onnx_fp32": difference,
        "test_f1": f1,
        "ratios": ratios,
        "targets": TARGETS,
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
