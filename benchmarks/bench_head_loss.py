"""Benchmark 1: forward + backward of HTLA's fusion, BCE and TLA, against the reference formulation that loops
over (sample, label) pairs for the fused classifier and over samples for TLA. Same inputs, same run.

    python benchmarks/bench_head_loss.py [--repeats 20]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import median_seconds, save_result
from modeling_htla.loss import bce_loss, tla_loss


def vectorized(h, label_features, weight, bias, labels, tau):
    logits = h @ weight.T + (weight * label_features).sum(-1) + bias  # [B, L]
    return bce_loss(logits, labels) + tla_loss(h, label_features, labels, temperature=tau)


def reference(h, label_features, weight, bias, labels, tau):
    """The loop formulation: one classifier call per (text, label) pair, one TLA term per text."""
    batch, num_labels = labels.shape
    rows = []
    for i in range(batch):
        rows.append(torch.stack([(weight[j] * (h[i] + label_features[j])).sum() + bias[j] for j in range(num_labels)]))
    logits = torch.stack(rows)
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    per_text = []
    for i in range(batch):
        s = F.cosine_similarity(h[i].unsqueeze(0), label_features, dim=-1)  # [L]
        positives = [j for j in range(num_labels) if labels[i, j] > 0.5]
        if not positives:
            continue
        order = torch.argsort(s.detach(), descending=True).tolist()
        negatives = [j for j in order if j not in positives][: len(positives)]
        denominator = torch.logsumexp(s[positives + negatives] / tau, 0)
        per_text.append(torch.stack([denominator - s[p] / tau for p in positives]).mean())
    return bce + torch.stack(per_text).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--labels", type=int, default=141)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    tau = 0.07
    tensors = {
        "h": torch.randn(args.batch, args.hidden),
        "label_features": torch.randn(args.labels, args.hidden),
        "weight": torch.randn(args.labels, args.hidden) * 0.02,
        "bias": torch.zeros(args.labels),
    }
    labels = torch.zeros(args.batch, args.labels)
    for i in range(args.batch):
        labels[i, torch.randperm(args.labels)[: 1 + i % 4]] = 1

    def run(fn):
        leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
        loss = fn(**leaves, labels=labels, tau=tau)
        loss.backward()
        return loss.detach(), {k: v.grad for k, v in leaves.items()}

    fast_time, _ = median_seconds(lambda: run(vectorized), args.repeats)
    slow_time, _ = median_seconds(lambda: run(reference), args.repeats, warmup=1)
    fast_loss, fast_grads = run(vectorized)
    slow_loss, slow_grads = run(reference)
    loss_diff = float((fast_loss - slow_loss).abs())
    grad_diff = max(float((fast_grads[k] - slow_grads[k]).abs().max()) for k in tensors)
    result = {
        "benchmark": "head_loss",
        "shape": {"batch": args.batch, "labels": args.labels, "hidden": args.hidden},
        "repeats": args.repeats,
        "vectorized_median_ms": 1000 * fast_time,
        "reference_loop_median_ms": 1000 * slow_time,
        "speedup": slow_time / fast_time,
        "max_abs_diff_loss": loss_diff,
        "max_abs_diff_grad": grad_diff,
        "targets": {"speedup": ">= 100", "max_abs_diff": "<= 1e-5"},
    }
    print(f"fusion + BCE + TLA, forward+backward, B={args.batch} L={args.labels} H={args.hidden}, median of {args.repeats}")
    print(f"{'formulation':<24}{'median ms':>12}")
    print(f"{'reference loops':<24}{1000 * slow_time:>12.2f}")
    print(f"{'vectorized (htla)':<24}{1000 * fast_time:>12.3f}")
    print(f"speedup {result['speedup']:.0f}x; max |diff| loss {loss_diff:.2e}, gradients {grad_diff:.2e}")
    print(f"saved {save_result('head_loss', result)}")


if __name__ == "__main__":
    main()
