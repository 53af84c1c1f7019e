"""Turning label scores into label sets: plain thresholding or hierarchy-consistent top-down decoding."""

from __future__ import annotations

import numpy as np

from .taxonomy import PATH_SEPARATOR, Taxonomy

DECODING = ("threshold", "consistent")
NAME_SEPARATOR = " — "


def decode_scores(scores: np.ndarray, taxonomy: Taxonomy, threshold: float = 0.5, decoding: str = "threshold") -> np.ndarray:
    """Boolean decisions `[N, L]` from probabilities `scores` `[N, L]`.

    `"threshold"` keeps every label above `threshold`; `"consistent"` keeps a label only when its parent is kept
    too (top-down), so every predicted set is a sub-tree of the taxonomy.
    """
    if decoding not in DECODING:
        raise ValueError(f"decoding must be one of {DECODING}, got {decoding!r}")
    chosen = scores > threshold
    if decoding == "consistent":  # the metric's consistency_rate checks the same, in its own standalone copy
        parents = np.asarray(taxonomy.parent_ids)
        for depth in range(2, taxonomy.num_levels + 1):
            level = np.flatnonzero(np.asarray(taxonomy.depths) == depth)
            chosen[:, level] &= chosen[:, parents[level]]
    return chosen


def path_ends(scores: np.ndarray, chosen: np.ndarray, taxonomy: Taxonomy) -> list[tuple[int, float]]:
    """One document's deepest chosen labels (the ends of its predicted paths) with their scores, most confident first."""
    ends = [int(j) for j in np.flatnonzero(chosen) if not chosen[taxonomy.children[j]].any()]
    return sorted(((j, float(scores[j])) for j in ends), key=lambda item: -item[1])


def display_label(taxonomy: Taxonomy, label_id: int) -> str:
    """A label as people read it: identifier and readable name (`"E08-E13 — Diabetes mellitus"`), or the identifier
    alone when the name adds nothing to it (the same text, or the identifier's last path segment)."""
    label, name = taxonomy.labels[label_id], taxonomy.names[label_id]
    if name in (label, label.rsplit(PATH_SEPARATOR, 1)[-1]):
        return label
    return f"{label}{NAME_SEPARATOR}{name}"


def path_answer(taxonomy: Taxonomy, label_id: int, score: float) -> dict:
    """The path to a label as the pipelines answer it: identifiers in `label` (`"4 > E08-E13"`, matching
    `config.id2label`), readable names in `name` (`"Endocrine, … diseases > Diabetes mellitus"`)."""
    names = PATH_SEPARATOR.join(taxonomy.names[i] for i in taxonomy.ancestors(label_id))
    return {"label": taxonomy.path(label_id), "name": names, "score": score}


def prediction_records(scores: np.ndarray, taxonomy: Taxonomy, chosen: np.ndarray, top_k: int = 0) -> list[dict]:
    """One JSON-ready record per document: chosen labels with their readable names and scores, and the paths to the
    deepest ones; with `top_k`, also the `top_k` best-scored labels, chosen or not, best first."""
    records = []
    for row_scores, row_chosen in zip(scores, chosen):
        ids = sorted(np.flatnonzero(row_chosen), key=lambda j: (taxonomy.depths[j], -row_scores[j]))
        record = {
            "labels": [taxonomy.labels[j] for j in ids],
            "names": [taxonomy.names[j] for j in ids],
            "scores": {taxonomy.labels[j]: round(float(row_scores[j]), 5) for j in ids},
            "paths": [taxonomy.path(j) for j, _ in path_ends(row_scores, row_chosen, taxonomy)],
        }
        if top_k:
            best = np.argpartition(-row_scores, min(top_k, len(row_scores)) - 1)[:top_k]
            best = sorted(best, key=lambda j: (-row_scores[j], j))
            record["top_k"] = [{"label": taxonomy.labels[j], "name": taxonomy.names[j],
                                "score": round(float(row_scores[j]), 5)} for j in best]
        records.append(record)
    return records
