"""Benchmark 4: training-step time and peak memory of HTLA against taxonomy size (synthetic trees with 8 children
per node, and the real ICD-10-CM chapter/block/category tree as `icd10`). GPTrans takes its form from the size
(`graph_attention="auto"`: dense up to 2,048 labels, sparse 2-hop above) unless `--graph_attention` is given.
Each size runs in its own process (peak RSS is per process); a size that fails is reported with its error.

    python benchmarks/bench_scaling.py [--sizes 100 500 1000 icd10 5000 10000] [--graph_attention auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from common import median_seconds, save_result


def synthetic_taxonomy(num_labels: int, branching: int = 8):
    from modeling_htla import Taxonomy

    parents = {}
    for i in range(num_labels):
        parents[f"l{i}"] = None if i < branching else f"l{(i - branching) // branching}"
    return Taxonomy.from_parents(parents)


def worker(size: str, batch: int, seq_len: int, steps: int, graph_attention: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    from modeling_htla import HTLAModel, resolve_encoder
    from modeling_htla.data import load_icd10cm

    if size == "icd10":
        _, taxonomy = load_icd10cm(depth=3)
    else:
        taxonomy = synthetic_taxonomy(int(size))
    encoder = resolve_encoder(None)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = HTLAModel.from_encoder(encoder, taxonomy, pooling="mean", graph_attention=graph_attention).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = tokenizer(["a document about something"] * batch, padding="max_length", max_length=seq_len,
                       return_tensors="pt")
    labels = torch.zeros(batch, len(taxonomy))
    labels[:, taxonomy.ancestors(len(taxonomy) - 1)] = 1

    def step():
        out = model(**inputs, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_time, _ = median_seconds(step, repeats=steps, warmup=1)
    return {"labels": len(taxonomy), "levels": taxonomy.num_levels, "step_median_s": step_time,
            "graph_form": "sparse" if model.config.use_sparse_graph else "dense",
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100", "500", "1000", "icd10", "5000", "10000"])
    parser.add_argument("--graph_attention", default="auto", choices=["auto", "dense", "sparse"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.seq_len, args.steps, args.graph_attention)))
        return
    rows = []
    print(f"HTLA training step, B={args.batch}, {args.seq_len} tokens, median of {args.steps}, {args.graph_attention}")
    print(f"{'taxonomy':<10}{'labels':>8}{'GPTrans':>9}{'step s':>10}{'peak RSS MiB':>14}")
    for size in args.sizes:
        command = [sys.executable, __file__, "--worker", size, "--batch", str(args.batch), "--seq_len",
                   str(args.seq_len), "--steps", str(args.steps), "--graph_attention", args.graph_attention]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            row = {"taxonomy": size, **json.loads(done.stdout.strip().splitlines()[-1])}
            print(f"{size:<10}{row['labels']:>8}{row['graph_form']:>9}{row['step_median_s']:>10.2f}"
                  f"{row['peak_rss_mib']:>14.0f}")
        else:
            row = {"taxonomy": size, "error": (done.stderr.strip().splitlines() or ["killed"])[-1][:300],
                   "returncode": done.returncode}
            print(f"{size:<10}{'':>8}  failed: {row['error'][:80]} (exit {done.returncode})")
        rows.append(row)
    name = "scaling" if args.graph_attention == "auto" else f"scaling_{args.graph_attention}"
    print(f"saved {save_result(name, {'benchmark': 'scaling', 'settings': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
