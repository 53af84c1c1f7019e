"""HTLA losses: multi-label BCE and the contrastive Text-Label Alignment (TLA) loss, both vectorized."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity(text_embeds: torch.Tensor, label_embeds: torch.Tensor) -> torch.Tensor:
    """`[B, L]` cosines of text features `[B, H]` and label features `[L, H]`.

    The label norms divide the `[B, L]` product instead of normalizing the `[L, H]` features: the same values, but
    the backward pass works over `B × L` instead of `L × H` (at 98,000 labels that division's backward took 2 s).
    """
    return F.normalize(text_embeds, dim=-1) @ label_embeds.T / label_embeds.norm(dim=-1).clamp(min=1e-12)


def select_negatives(
    similarity: torch.Tensor, positives: torch.Tensor, mining: str, num_negatives: int | None
) -> torch.Tensor:
    """Boolean mask [B, L] of the negative labels of each text.

    `"all"` takes every non-gold label; `"hard"` the `k` non-gold labels most similar to the text and `"random"`
    `k` non-gold labels drawn uniformly, where `k = num_negatives` or, when `None`, the text's number of gold labels.
    """
    candidates = ~positives
    if mining == "all":
        return candidates
    if mining == "hard":
        ranking = similarity.detach()
    elif mining == "random":
        ranking = torch.rand_like(similarity, dtype=torch.float32)
    else:
        raise ValueError(f"unknown negative mining {mining!r}")
    wanted = positives.sum(1) if num_negatives is None else torch.full_like(positives[:, 0], num_negatives, dtype=torch.long)
    wanted = torch.minimum(wanted, candidates.sum(1))  # [B]
    k = int(wanted.max()) if wanted.numel() else 0
    negatives = torch.zeros_like(positives)
    if k == 0:
        return negatives
    ranking = ranking.float().masked_fill(positives, float("-inf"))
    top = ranking.topk(k, dim=1).indices  # [B, k]
    keep = torch.arange(k, device=top.device)[None, :] < wanted[:, None]  # [B, k]
    return negatives.scatter(1, top, keep)


def tla_loss(
    text_embeds: torch.Tensor,
    label_embeds: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.07,
    negative_mining: str = "hard",
    num_negatives: int | None = None,
) -> torch.Tensor:
    """Text-Label Alignment loss.

    With `s_ij = cos(h_i, f_j)`, gold set `P_i` and negatives `N_i`:
    `loss_i = mean_{p in P_i} -log(exp(s_ip / τ) / Σ_{j in P_i ∪ N_i} exp(s_ij / τ))`, averaged over the texts that
    have gold labels (a text without any contributes nothing).

    Args:
        text_embeds: `[B, H]` text features `h`.
        label_embeds: `[L, H]` label features `F`.
        labels: `[B, L]` multi-hot gold labels.
    """
    similarity = cosine_similarity(text_embeds, label_embeds)  # [B, L]
    return alignment_loss(similarity, labels, temperature, negative_mining, num_negatives)


def alignment_loss(
    similarity: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.07,
    negative_mining: str = "hard",
    num_negatives: int | None = None,
) -> torch.Tensor:
    """`tla_loss` from the cosines `s` (`[B, L]`) of texts and labels, for callers that build them in parts."""
    positives = labels > 0.5
    negatives = select_negatives(similarity, positives, negative_mining, num_negatives)
    logits = similarity / temperature
    log_denominator = logits.masked_fill(~(positives | negatives), float("-inf")).logsumexp(1, keepdim=True)
    num_positives = positives.sum(1)
    has_positive = num_positives > 0
    # Rows without positives have a -inf denominator; zero them before any arithmetic to keep NaN away.
    per_label = torch.where(positives, log_denominator.masked_fill(~has_positive[:, None], 0) - logits, 0.0)
    per_text = per_label.sum(1) / num_positives.clamp(min=1)  # [B]
    return (per_text * has_positive).sum() / has_positive.sum().clamp(min=1)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over all texts and labels."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def htla_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor | None,
    config,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(BCE + λ·TLA, BCE, TLA)` for an `HTLAConfig` from the logits and TLA's text-label cosines (`[B, L]` each);
    TLA is 0 when the config turns it off or `similarity` is `None`."""
    bce = bce_loss(logits, labels)
    if not config.use_tla or similarity is None:
        return bce, bce, torch.zeros_like(bce)
    tla = alignment_loss(
        similarity,
        labels,
        temperature=config.tla_temperature,
        negative_mining=config.negative_mining,
        num_negatives=config.num_negatives,
    )
    return bce + config.tla_weight * tla, bce, tla
