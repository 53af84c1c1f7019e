"""Inputs longer than the text encoder has positions for: how many tokens it takes, and cutting longer inputs to fit.

Shared by the PyTorch model and its ONNX export, so a plain `pipeline` call on a very long text gets the same
prediction from both: that of the properly truncated text, instead of an index error.
"""

from __future__ import annotations

import torch
from torch import nn


def position_limit(encoder: nn.Module) -> int | None:
    """How many tokens the encoder has positions for: `max_position_embeddings`, less the offset of encoders whose
    positions start after the padding index (RoBERTa family: 514 -> 512); `None` when unbounded."""
    limit = getattr(encoder.config, "max_position_embeddings", None)
    positions = getattr(getattr(encoder, "embeddings", None), "position_embeddings", None)
    if isinstance(positions, nn.Embedding) and positions.padding_idx is not None:
        limit = positions.num_embeddings - positions.padding_idx - 1
    return limit


def cut_to_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     token_type_ids: torch.Tensor | None, limit: int | None):
    """`(input_ids, attention_mask, token_type_ids)` cut to `limit` tokens (`[B, S]` -> `[B, min(S, limit)]`), each
    cut text keeping its closing token ([SEP], </s>) last; returned unchanged when they fit."""
    if not limit or input_ids.shape[1] <= limit:
        return input_ids, attention_mask, token_type_ids
    real = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
    last = (real * torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)).argmax(1)  # last real token
    closing = input_ids.gather(1, last[:, None]).squeeze(1)
    cut = last >= limit
    input_ids = input_ids[:, :limit].clone()
    input_ids[cut, limit - 1] = closing[cut]
    attention_mask = attention_mask[:, :limit] if attention_mask is not None else None
    token_type_ids = token_type_ids[:, :limit] if token_type_ids is not None else None
    return input_ids, attention_mask, token_type_ids
