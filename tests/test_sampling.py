"""modeling_htla.data.sample_per_leaf: k examples per leaf, seeded, every leaf present, whole label paths kept."""

from collections import Counter

import pytest
from datasets import Dataset

from modeling_htla.data import examples_per_leaf, sample_per_leaf
from modeling_htla.data.sampling import per_leaf_indices


def corpus() -> Dataset:
    """Leaves with 40, 12, 5 and 1 examples; one path ends at an inner node (`b`)."""
    rows = [("a", "a.x", 40), ("a", "a.y", 12), ("b", None, 5), ("c", "c.z", 1)]
    texts, labels = [], []
    for parent, leaf, count in rows:
        for i in range(count):
            texts.append(f"{leaf or parent} {i}")
            labels.append([parent] + ([leaf] if leaf else []))
    return Dataset.from_dict({"text": texts, "labels": labels})


@pytest.mark.parametrize("k", [1, 2, 8, 32])
def test_k_per_leaf_and_every_leaf_present(k):
    sample = sample_per_leaf(corpus(), k, seed=42)
    counts = Counter(labels[-1] for labels in sample["labels"])
    assert counts == {"a.x": min(k, 40), "a.y": min(k, 12), "b": min(k, 5), "c.z": 1}


def test_documents_keep_their_whole_path_and_are_not_repeated():
    data = corpus()
    sample = sample_per_leaf(data, 8, seed=7)
    path_of = dict(zip(data["text"], data["labels"]))
    assert len(set(sample["text"])) == len(sample)
    assert all(path_of[text] == labels for text, labels in zip(sample["text"], sample["labels"]))
    assert all(len(labels) == 2 for labels in sample["labels"] if labels[0] != "b")


def test_reproducible_under_a_seed_and_different_under_another():
    data = corpus()
    assert sample_per_leaf(data, 8, seed=42)["text"] == sample_per_leaf(data, 8, seed=42)["text"]
    assert set(sample_per_leaf(data, 8, seed=42)["text"]) != set(sample_per_leaf(data, 8, seed=13)["text"])


def test_smaller_k_is_contained_in_larger_k_under_one_seed():
    data = corpus()
    small, large = (set(sample_per_leaf(data, k, seed=13)["text"]) for k in (2, 8))
    assert small < large


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="positive integer"):
        per_leaf_indices(["a", "b"], k, seed=0)


@pytest.mark.parametrize("k", [1, 2, 8, 32])
def test_examples_per_leaf_is_k_on_a_set_of_k_per_leaf(small_taxonomy, k):
    leaves = [j for j in range(len(small_taxonomy)) if j not in small_taxonomy.parent_ids]
    paths = [small_taxonomy.ancestors(leaf) + [leaf] for leaf in leaves for _ in range(k)]
    assert examples_per_leaf(paths, small_taxonomy.parent_ids) == k


def test_examples_per_leaf_counts_the_deepest_labels_by_their_median(small_taxonomy):
    parents = small_taxonomy.parent_ids
    leaf, other = [j for j in range(len(small_taxonomy)) if j not in parents][:2]
    inner = parents[leaf]
    # 5 examples of `leaf` (one also on the path of `other`), 1 of `other`, 2 ending at `inner`
    paths = [[inner, leaf]] * 4 + [[inner, leaf, parents[other], other]] + [[inner]] * 2
    assert examples_per_leaf(paths, parents) == 2  # median of leaf 5, other 1, inner 2
    assert examples_per_leaf([], parents) == 0
