"""Benchmark 4: one HTLA training step on taxonomies of any shape, and what HTLA adds to the encoder's own step.

Each taxonomy (named as in `shapes.py`: `icd10` is the full ICD-10-CM tree, `10x1000` ten top labels with 1,000
children each, `random:100000` a random tree) runs in its own process, so that its peak RSS is its own: HTLA on
the default encoder (all-MiniLM-L6-v2, mean pooling, `graph_attention` as given, default `auto`), AdamW, batch
B × T tokens, every text with `--paths` random gold labels and their ancestors. One warm-up step (it allocates
the optimizer state), then `--steps` timed steps; CPU time (process time, one thread) is reported beside wall time
because the machine is shared. For the taxonomies in `--ratio` the same process then builds the plain classifier
(same encoder and labels, a linear head and BCE) and times the two alternately: the ratio of their step times,
within one run, is what everything HTLA adds (graph encoder, fusion, head, loss) costs. On taxonomies of more
than `graph_labels_per_step` labels a step recomputes only that many labels' features, and every label's features
are recomputed without gradients every `graph_refresh_steps` steps: that refresh is timed on its own and spread
over its steps in the amortized ratio.

    python benchmarks/bench_scaling.py [--shapes icd10 10x1000 4x2500 2x10000 1x50000 random:100000]
        [--ratio icd10 10x1000] [--graph_attention auto] [--graph_labels_per_step auto] [--batch 16]
        [--seq_len 128] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

from common import save_result

SHAPES = ["icd10", "10x1000", "4x2500", "2x10000", "1x50000", "random:100000"]
RSS_TARGET_MIB = 8 * 1024
ADDED_TARGET = 0.5  # HTLA's step may take at most 1.5x the plain classifier's


def timed(step) -> tuple[float, float]:
    """CPU and wall seconds of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    step()
    return time.process_time() - cpu, time.perf_counter() - wall


def training_step(model, inputs, labels):
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def worker(spec: str, args) -> dict:
    import torch
    from transformers import AutoTokenizer

    from modeling_htla import HTLAModel, resolve_encoder
    from shapes import build_taxonomy, fan_out

    torch.set_num_threads(1)
    start = time.perf_counter()
    taxonomy = build_taxonomy(spec)
    encoder = resolve_encoder(None)
    model = HTLAModel.from_encoder(encoder, taxonomy, pooling="mean", graph_attention=args.graph_attention,
                                   graph_hidden_size=args.graph_hidden_size, graph_num_heads=args.graph_num_heads,
                                   fusion=args.fusion, graph_labels_per_step=args.graph_labels_per_step).train()
    build = time.perf_counter() - start
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    inputs = tokenizer(["a document about something"] * args.batch, padding="max_length", max_length=args.seq_len,
                       return_tensors="pt")
    rng = random.Random(0)
    labels = torch.tensor([taxonomy.encode(rng.sample(taxonomy.labels, args.paths)) for _ in range(args.batch)])
    htla = training_step(model, inputs, labels)
    htla()  # warm-up: allocates the optimizer state
    times = [timed(htla) for _ in range(args.steps)]
    tree = model.graph_encoder.tree
    row = {"labels": len(taxonomy), "levels": taxonomy.num_levels, "fan_out": fan_out(taxonomy),
           "gold_per_text": float(labels.sum(1).mean()), "graph_form": "sparse" if tree.sparse else "dense",
           "pairs": tree.num_pairs, "build_s": build,
           "step_cpu_s": statistics.median(t[0] for t in times), "step_wall_s": statistics.median(t[1] for t in times),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if spec in args.ratio:
        plain_model = HTLAModel.from_encoder(encoder, taxonomy, pooling="mean", use_graph_encoder=False, use_tla=False)
        plain = training_step(plain_model.train(), inputs, labels)
        plain()
        pairs = [(timed(plain), timed(htla)) for _ in range(args.steps)]  # alternately, so both see the same load
        for name, index in (("cpu", 0), ("wall", 1)):
            row[f"plain_step_{name}_s"] = statistics.median(p[index] for p, _ in pairs)
            row[f"htla_step_{name}_s"] = statistics.median(h[index] for _, h in pairs)
            row[f"ratio_{name}"] = row[f"htla_step_{name}_s"] / row[f"plain_step_{name}_s"]
        if model._samples_labels(labels):
            with torch.no_grad():  # the refresh: every label, without gradients, as evaluation computes them
                model.graph_encoder.eval()
                row["refresh_cpu_s"] = timed(lambda: model.graph_encoder(model.text_encoder.get_input_embeddings()))[0]
            row["ratio_cpu_amortized"] = (row["htla_step_cpu_s"] + row["refresh_cpu_s"] / model.config.graph_refresh_steps) / row[
                "plain_step_cpu_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    parser.add_argument("--ratio", nargs="*", default=["icd10", "10x1000"])
    parser.add_argument("--graph_attention", default="auto", choices=["auto", "dense", "sparse"])
    parser.add_argument("--graph_hidden_size", type=int, help="GPTrans width (default: the encoder's, 384)")
    parser.add_argument("--graph_num_heads", type=int, help="GPTrans heads (default: the encoder's, 12)")
    parser.add_argument("--fusion", default="add", choices=["add", "dot", "hybrid"])
    parser.add_argument("--graph_labels_per_step", default="auto", help="a number, 'all' or 'auto'")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--paths", type=int, default=4, help="random gold labels per text (plus their ancestors)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    options = {"graph_attention": "auto", "graph_hidden_size": None, "graph_num_heads": None, "fusion": "add",
               "graph_labels_per_step": "auto"}
    changed = "".join(f"_{key}{getattr(args, key)}" for key, default in options.items() if getattr(args, key) != default)
    rows, name = [], f"scaling{changed}"
    width = args.graph_hidden_size or "of the encoder"
    print(f"HTLA training step on MiniLM, B={args.batch} x {args.seq_len} tokens, median of {args.steps}, "
          f"graph_attention={args.graph_attention}, graph width {width}, fusion {args.fusion}; targets: peak RSS <= "
          f"{RSS_TARGET_MIB} MiB, HTLA/plain <= {1 + ADDED_TARGET}")
    print(f"{'taxonomy':<14}{'labels':>8}{'fan-out':>8}{'form':>7}{'pairs':>10}{'CPU s':>8}{'wall s':>8}"
          f"{'peak MiB':>10}{'HTLA/plain CPU':>16}{'wall':>6}{'amortized':>10}")
    for spec in args.shapes:
        command = [sys.executable, __file__, "--worker", spec] + [f"--{key}={value}" for key, value in vars(args).items()
                                                                  if key not in ("worker", "shapes", "ratio") and value is not None]
        command += ["--ratio", *args.ratio]
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
        if done.returncode == 0:
            row = {"taxonomy": spec, **json.loads(done.stdout.strip().splitlines()[-1])}
            row["rss_target_met"] = row["peak_rss_mib"] <= RSS_TARGET_MIB
            ratio = ""
            if "ratio_cpu" in row:
                row["ratio_target_met"] = row.get("ratio_cpu_amortized", row["ratio_cpu"]) <= 1 + ADDED_TARGET
                ratio = f"{row['ratio_cpu']:>16.2f}{row['ratio_wall']:>6.2f}"
                ratio += f"{row['ratio_cpu_amortized']:>10.2f}" if "ratio_cpu_amortized" in row else ""
            print(f"{spec:<14}{row['labels']:>8}{row['fan_out']:>8}{row['graph_form']:>7}{row['pairs']:>10}"
                  f"{row['step_cpu_s']:>8.1f}{row['step_wall_s']:>8.1f}{row['peak_rss_mib']:>10.0f}{ratio}")
        else:
            row = {"taxonomy": spec, "error": (done.stderr.strip().splitlines() or ["killed"])[-1][:300],
                   "returncode": done.returncode}
            print(f"{spec:<14}  failed: {row['error'][:80]} (exit {done.returncode})")
        rows.append(row)
        saved = save_result(name, {"benchmark": "scaling", "settings": vars(args), "rows": rows})  # after each shape
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
