"""Turning label scores into label sets: plain thresholding or hierarchy-consistent top-down decoding."""

from __future__ import annotations

import numpy as np

from .taxonomy import Taxonomy

DECODING = ("threshold", "consistent")


def decode_scores(scores: np.ndarray, taxonomy: Taxonomy, threshold: float = 0.5, decoding: str = "threshold") -> np.ndarray:
    """Boolean decisions `[N, L]` from probabilities `scores` `[N, L]`.

    `"threshold"` keeps every label above `threshold`; `"consistent"` keeps a label only when its parent is kept
    too (top-down), so every predicted set is a sub-tree of the taxonomy.
    """
    if decoding not in DECODING:
        raise ValueError(f"decoding must be one of {DECODING}, got {decoding!r}")
    chosen = scores > threshold
    if decoding == "consistent":
        parents = np.asarray(taxonomy.parent_ids)
        for depth in range(2, taxonomy.num_levels + 1):
            level = np.flatnonzero(np.asarray(taxonomy.depths) == depth)
            chosen[:, level] &= chosen[:, parents[level]]
    return chosen


def predicted_paths(scores: np.ndarray, chosen: np.ndarray, taxonomy: Taxonomy) -> list[tuple[str, float]]:
    """The root-to-node paths of one document's deepest chosen labels with their scores, most confident first."""
    ends = [j for j in np.flatnonzero(chosen) if not chosen[taxonomy.children[j]].any()]
    return sorted(((taxonomy.path(j), float(scores[j])) for j in ends), key=lambda item: -item[1])


def prediction_records(scores: np.ndarray, taxonomy: Taxonomy, chosen: np.ndarray) -> list[dict]:
    """One JSON-ready record per document: chosen labels with scores, and the paths to the deepest ones."""
    records = []
    for row_scores, row_chosen in zip(scores, chosen):
        ids = sorted(np.flatnonzero(row_chosen), key=lambda j: (taxonomy.depths[j], -row_scores[j]))
        records.append(
            {
                "labels": [taxonomy.labels[j] for j in ids],
                "scores": {taxonomy.labels[j]: round(float(row_scores[j]), 5) for j in ids},
                "paths": [path for path, _ in predicted_paths(row_scores, row_chosen, taxonomy)],
            }
        )
    return records
