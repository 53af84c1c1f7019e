"""Benchmarks 2 and 3: training step time and peak memory, and inference throughput, of HTLA against a plain
`AutoModelForSequenceClassification` multi-label model on the same encoder (default all-MiniLM-L6-v2), on
20 Newsgroups texts and its 34-label taxonomy. Each model trains in its own process so peak RSS is its own; inference is timed alternately in one process.

    python benchmarks/bench_train_inference.py [--steps 12] [--data ../shared/data/20newsgroups]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from common import median_seconds, save_result

ROOT = Path(__file__).resolve().parents[1]


def load(kind: str, data: Path, rows_needed: int):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from modeling_htla import HTLAModel, Taxonomy, resolve_encoder

    torch.manual_seed(0)
    taxonomy = Taxonomy.from_file(data / "20newsgroups.taxonomy")
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()[:rows_needed]]
    encoder = resolve_encoder(None)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    if kind == "htla":
        model = HTLAModel.from_encoder(encoder, taxonomy, pooling="mean")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            encoder, num_labels=len(taxonomy), problem_type="multi_label_classification")
    return model, tokenizer, taxonomy, rows


def worker(kind: str, data: Path, batch: int, seq_len: int, steps: int) -> dict:
    """Training step time and this process's peak RSS."""
    import torch

    model, tokenizer, taxonomy, rows = load(kind, data, batch * steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batches = []
    for start in range(0, batch * steps, batch):
        chunk = rows[start : start + batch]
        inputs = tokenizer([r["text"] for r in chunk], truncation=True, max_length=seq_len, padding="max_length",
                           return_tensors="pt")
        inputs["labels"] = torch.tensor([taxonomy.encode(r["labels"]) for r in chunk])
        batches.append(inputs)
    position = iter(range(10**9))

    def step():
        model.train()
        out = model(**batches[next(position) % len(batches)])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_time, _ = median_seconds(step, repeats=steps, warmup=2)
    return {
        "model": kind,
        "step_median_s": step_time,
        "train_samples_per_s": batch / step_time,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def inference(data: Path, seq_len: int, docs: int, rounds: int = 5) -> dict[str, float]:
    """Docs/s of both models in eval mode, timed alternately in one process so machine noise hits both alike."""
    import statistics
    import time

    import torch

    models = {kind: load(kind, data, docs) for kind in ("plain", "htla")}
    times = {kind: [] for kind in models}
    with torch.no_grad():
        for _ in range(rounds + 1):  # the first round warms up (and fills HTLA's label-feature cache)
            for kind, (model, tokenizer, _, rows) in models.items():
                model.eval()
                start = time.perf_counter()
                for first in range(0, docs, 32):
                    inputs = tokenizer([r["text"] for r in rows[first : first + 32]], truncation=True,
                                       max_length=seq_len, padding=True, return_tensors="pt")
                    model(**inputs)
                times[kind].append(time.perf_counter() - start)
    return {kind: docs / statistics.median(values[1:]) for kind, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "20newsgroups")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--infer_docs", type=int, default=128)
    parser.add_argument("--worker", choices=["plain", "htla"])
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.batch, args.seq_len, args.steps)))
        return
    results = {}
    for kind in ("plain", "htla"):
        command = [sys.executable, __file__, "--worker", kind, "--data", str(args.data), "--batch", str(args.batch),
                   "--seq_len", str(args.seq_len), "--steps", str(args.steps)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
    for kind, docs_per_s in inference(args.data, args.seq_len, args.infer_docs).items():
        results[kind]["infer_docs_per_s"] = docs_per_s
    plain, htla = results["plain"], results["htla"]
    ratios = {
        "step_time_htla_over_plain": htla["step_median_s"] / plain["step_median_s"],
        "peak_rss_htla_over_plain": htla["peak_rss_mib"] / plain["peak_rss_mib"],
        "inference_throughput_htla_over_plain": htla["infer_docs_per_s"] / plain["infer_docs_per_s"],
    }
    print(f"B={args.batch}, {args.seq_len} tokens, 34-label 20 Newsgroups taxonomy, median of {args.steps} steps")
    print(f"{'model':<8}{'step s':>10}{'samples/s':>12}{'infer docs/s':>14}{'peak RSS MiB':>14}")
    for kind in ("plain", "htla"):
        r = results[kind]
        print(f"{kind:<8}{r['step_median_s']:>10.3f}{r['train_samples_per_s']:>12.2f}{r['infer_docs_per_s']:>14.2f}"
              f"{r['peak_rss_mib']:>14.0f}")
    print("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    path = save_result("train_inference", {
        "benchmark": "train_inference",
        "settings": vars(args) | {"data": str(args.data)},
        "results": results,
        "ratios": ratios,
        "targets": {"step_time_htla_over_plain": "<= 1.15", "peak_rss_htla_over_plain": "<= 1.10",
                    "inference_throughput_htla_over_plain": ">= 0.95"},
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
