"""Batches of texts grouped by length (dynamic padding): each batch is padded to its own longest text, not the
longest of the whole input, so a mix of short and long documents costs what its tokens cost."""

from __future__ import annotations

import numpy as np


def length_sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of at most `batch_size`, longest texts first (a stable sort, so equal lengths keep
    their input order). Results are put back in input order by the caller, from these indices."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
