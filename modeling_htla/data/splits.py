"""Seeded validation splits, stratified by each example's deepest label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .fingerprint import fingerprint
from .labels import labels_column


def split_validation(
    train: Dataset, validation_fraction: float = 0.1, seed: int = 42
) -> tuple[Dataset, Dataset]:
    """Seeded split of `train` into (train, validation), stratified by each example's last (deepest) label.

    Labels with at least two examples are stratified (each keeps at least one example in train); examples
    whose last label is unique are pooled and split at random, so with no repeated label the split is a plain
    seeded random split. The validation part has ``round(validation_fraction * len(train))`` examples.
    """
    keys = [labels[-1] if labels else "" for labels in labels_column(train)]
    keep, holdout = split_keys(keys, validation_fraction, seed)
    return (
        select_rows(train, keep, "train", validation_fraction, seed),
        select_rows(train, holdout, "validation", validation_fraction, seed),
    )


def select_rows(dataset: Dataset, indices: list[int], part: str, fraction: float, seed: int) -> Dataset:
    """In-memory `select` with a cheap deterministic fingerprint (hashing long index lists is slow)."""
    key = fingerprint("split", dataset._fingerprint, part, fraction, seed, len(indices))
    return dataset.select(indices, keep_in_memory=True, new_fingerprint=key)


def split_keys(keys: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices for holding out ``round(fraction * n)`` examples stratified by `keys`."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    n = len(keys)
    if n < 2:
        raise ValueError(f"cannot split a validation set from {n} example(s)")
    n_holdout = min(max(round(n * fraction), 1), n - 1)
    keep, holdout = _stratified_indices(keys, n_holdout, seed)
    # Shuffle both parts (seeded) so that taking the first N examples (max_*_samples) is a random sample.
    rng = np.random.default_rng(seed)
    return rng.permutation(keep).tolist(), rng.permutation(holdout).tolist()


def _stratified_indices(keys: Sequence[str], n_holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) sorted indices; per-stratum counts by the largest-remainder method."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    strata = [groups[key] for key in sorted(groups) if len(groups[key]) >= 2]
    pool = [index for key in sorted(groups) if len(groups[key]) < 2 for index in groups[key]]
    caps = [len(members) - 1 for members in strata]  # every repeated label keeps one training example
    if pool:
        strata.append(pool)
        caps.append(len(pool))
    rng = np.random.default_rng(seed)
    sizes = np.array([len(members) for members in strata], dtype=np.float64)
    quota = n_holdout * sizes / sizes.sum()
    alloc = np.minimum(np.floor(quota).astype(np.int64), caps)
    order = np.lexsort((rng.random(len(strata)), -(quota - alloc)))  # largest remainder first, random ties
    remaining = n_holdout - int(alloc.sum())
    for limits in (np.asarray(caps), sizes.astype(np.int64)):  # relax the caps only if the fraction needs it
        while remaining > 0:
            progressed = False
            for s in order:
                if remaining and alloc[s] < limits[s]:
                    alloc[s] += 1
                    remaining -= 1
                    progressed = True
            if not progressed:
                break
    holdout: list[int] = []
    for members, count in zip(strata, alloc):
        holdout.extend(int(i) for i in rng.permutation(members)[:count])
    held = set(holdout)
    return [i for i in range(len(keys)) if i not in held], sorted(holdout)
