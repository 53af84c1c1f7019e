"""Benchmark 5: the work of GPTrans' dense and sparse forms, from which `graph_attention="auto"` chooses.

For each taxonomy and form it builds the label-graph encoder at the default encoder's width (all-MiniLM-L6-v2:
hidden 384, 12 heads; edge_dim 30, one layer) and times forward + backward of the label features alone (the text
encoder is the same for both forms). It reports the label pairs each form attends over (`L²` dense, `P` sparse),
the median CPU time of the step (process time on one thread, so that other jobs on the machine count less than in
wall time) and the memory the step keeps for its backward pass (every tensor autograd saves, counted once per
storage). A least-squares fit over all rows, `time = a·L + c_dense·L²` (dense) and `time = a·L + s + c_sparse·P`
(sparse), gives the per-pair costs that `configuration_htla.SPARSE_PAIR_COST` and `SPARSE_FIXED_COST` hold, in
units of one dense pair.

    python benchmarks/bench_graph_forms.py [--taxonomies 20newsgroups.taxonomy icd10:2 tree:1000 ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import save_result

DEFAULT_TAXONOMIES = ["tree:100", "icd10:2", "tree:300", "5x100", "tree:1000", "10x100", "tree:2000", "icd10:3"]


def saved_bytes(step):
    """`step()`'s output, and the bytes of the activations autograd keeps for its backward pass (weights, which
    live anyway, are not counted)."""
    import torch

    storages = {}

    def pack(tensor):
        if not (tensor.is_leaf and tensor.requires_grad):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = step()
    return output, sum(storages.values())


def measure(spec: str, form: str, repeats: int) -> dict:
    import torch
    from transformers import BertConfig

    from modeling_htla import HTLAConfig
    from modeling_htla.graph_encoder import LabelGraphEncoder
    from shapes import build_taxonomy

    taxonomy = build_taxonomy(spec)
    text = BertConfig(hidden_size=384, num_attention_heads=12, vocab_size=1000, num_hidden_layers=1)
    name_ids = [[(7 * i + k) % 1000 for k in range(1 + i % 5)] for i in range(len(taxonomy))]
    config = HTLAConfig(text_config=text, taxonomy=taxonomy.to_dict(), label_name_ids=name_ids, graph_attention=form)
    torch.manual_seed(0)
    encoder = LabelGraphEncoder(config).train()
    words = torch.nn.Embedding(1000, 384)
    cpu, wall = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        features, kept = saved_bytes(lambda: encoder(words))
        features.sum().backward()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return {"taxonomy": spec, "form": form, "labels": len(taxonomy), "pairs": encoder.tree.num_pairs,
            "cpu_s": statistics.median(cpu[1:]), "wall_s": statistics.median(wall[1:]), "saved_mib": kept / 2**20}


def fit(rows: list[dict]) -> dict:
    """Least-squares `a, c_dense, s, c_sparse` over the rows, and the costs relative to one dense pair."""
    import numpy as np

    design = [[r["labels"], r["pairs"] * (r["form"] == "dense"), r["form"] == "sparse",
               r["pairs"] * (r["form"] == "sparse")] for r in rows]
    (per_label, dense_pair, sparse_fixed, sparse_pair), *_ = np.linalg.lstsq(
        np.asarray(design, dtype=float), np.asarray([r["cpu_s"] for r in rows]), rcond=None)
    return {"per_label_s": per_label, "dense_pair_s": dense_pair, "sparse_fixed_s": sparse_fixed,
            "sparse_pair_s": sparse_pair, "sparse_pair_cost": sparse_pair / dense_pair,
            "sparse_fixed_cost": sparse_fixed / dense_pair}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taxonomies", nargs="+", default=DEFAULT_TAXONOMIES)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(f"GPTrans forward + backward at H=384, median CPU time of {args.repeats}, 1 thread")
    print(f"{'taxonomy':<22}{'labels':>8}{'form':>8}{'pairs':>12}{'CPU s':>9}{'wall s':>9}{'saved MiB':>11}")
    for spec in args.taxonomies:
        for form in ("dense", "sparse"):
            row = measure(spec, form, args.repeats)
            rows.append(row)
            print(f"{spec[-22:]:<22}{row['labels']:>8}{form:>8}{row['pairs']:>12}{row['cpu_s']:>9.3f}"
                  f"{row['wall_s']:>9.3f}{row['saved_mib']:>11.1f}", flush=True)
    costs = fit(rows)
    print(f"fit: a dense pair costs {costs['dense_pair_s'] * 1e9:.1f} ns, a sparse pair "
          f"{costs['sparse_pair_s'] * 1e9:.1f} ns ({costs['sparse_pair_cost']:.1f} dense pairs), the sparse form's "
          f"fixed cost {costs['sparse_fixed_s'] * 1e3:.1f} ms ({costs['sparse_fixed_cost']:.0f} dense pairs)")
    result = {"benchmark": "graph_forms", "settings": vars(args), "rows": rows, "fit": costs}
    print(f"saved {save_result('graph_forms', result)}")


if __name__ == "__main__":
    main()
