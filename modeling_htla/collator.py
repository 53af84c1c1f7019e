"""Batches for HTLA: padded tokens, and each batch's multi-hot `labels` built from the examples' sparse
`label_ids` (`data.encode_labels`), so no `[N, L]` matrix is ever stored for a whole data set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import DataCollatorWithPadding


def multi_hot(label_ids: list[list[int]], num_labels: int) -> np.ndarray:
    """`[N, L]` float32 multi-hot matrix of N lists of label indices."""
    matrix = np.zeros((len(label_ids), num_labels), dtype=np.float32)
    rows = np.repeat(np.arange(len(label_ids)), [len(ids) for ids in label_ids])
    matrix[rows, np.fromiter((i for ids in label_ids for i in ids), dtype=np.int64, count=len(rows))] = 1
    return matrix


@dataclass
class HTCDataCollator(DataCollatorWithPadding):
    """`DataCollatorWithPadding` that also turns each example's `label_ids` into the batch's `labels` `[B, L]`."""

    num_labels: int = 0

    def __call__(self, features: list[dict]) -> dict:
        features = [dict(feature) for feature in features]  # the dataset's rows stay untouched
        label_ids = [feature.pop("label_ids") for feature in features] if "label_ids" in features[0] else None
        batch = super().__call__(features)
        if label_ids is not None:
            batch["labels"] = torch.from_numpy(multi_hot(label_ids, self.num_labels))
        return batch
