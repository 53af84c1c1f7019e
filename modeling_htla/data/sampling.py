"""Few-shot training sets: a seeded sample of k examples per leaf (the deepest label of an example's path), and the
number of examples per leaf a training set has (the size measure of `run_htc.py`'s small-data rule)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .labels import labels_column
from .splits import select_rows


def per_leaf_indices(leaves: Sequence[str], k: int, seed: int) -> list[int]:
    """Indices of `k` examples of every leaf in `leaves` (one key per example), all of a leaf's examples when it has
    fewer; shuffled together.

    Each leaf's examples are put in a seeded order that does not depend on `k` and the first `k` are taken, so under
    one seed the sample of a smaller `k` is contained in that of a larger one (a learning curve adds examples to the
    same documents instead of drawing new ones).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (examples per leaf) must be a positive integer, got {k!r}")
    groups: dict[str, list[int]] = {}
    for index, leaf in enumerate(leaves):
        groups.setdefault(leaf, []).append(index)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for leaf in sorted(groups):  # a fixed order of the leaves: the same draws for every leaf under a seed
        chosen.extend(int(i) for i in rng.permutation(groups[leaf])[:k])
    return np.random.default_rng(seed).permutation(chosen).tolist()


def sample_per_leaf(dataset: Dataset, k: int, seed: int = 42) -> Dataset:
    """`k` examples per leaf of `dataset` (a split with a ``labels`` column; an example's leaf is its last label, as
    `split_validation` stratifies), all of a leaf's examples when it has fewer; each keeps its whole label path."""
    leaves = [labels[-1] if labels else "" for labels in labels_column(dataset)]
    return select_rows(dataset, per_leaf_indices(leaves, k, seed), f"sample{k}", 0.0, seed)


def examples_per_leaf(label_ids: Sequence[Sequence[int]], parent_ids: Sequence[int]) -> float:
    """The median number of examples per leaf over the leaves that have any, an example's leaves being its labels
    that are no other of its labels' parent (the deepest label of each of its paths; `parent_ids` as
    `Taxonomy.parent_ids`). On a set of k examples per leaf (`sample_per_leaf`) it is k; the median keeps a few
    frequent leaves from hiding many rare ones. 0 for no examples."""
    counts: Counter[int] = Counter()
    for ids in label_ids:
        parents = {parent_ids[i] for i in ids}
        counts.update(i for i in set(ids) if i not in parents)
    return float(np.median(list(counts.values()))) if counts else 0.0
