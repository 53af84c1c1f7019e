"""Shared fixtures: tiny random BERT encoders and small taxonomies, all built in memory (no network)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig  # noqa: E402

from modeling_htla import HTLAConfig, HTLAModel, Taxonomy  # noqa: E402


def tiny_text_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )
    values.update(overrides)
    return BertConfig(**values)


def chain_taxonomy(depth: int, branching: int = 2) -> Taxonomy:
    """A full tree of the given depth: labels 'n', 'n.0', 'n.0.1', …"""
    parents = {}
    frontier = [(f"t{i}", None) for i in range(branching)]
    for level in range(depth):
        next_frontier = []
        for label, parent in frontier:
            parents[label] = parent
            if level + 1 < depth:
                next_frontier += [(f"{label}.{k}", label) for k in range(branching)]
        frontier = next_frontier
    return Taxonomy.from_parents(parents)


def make_model(taxonomy: Taxonomy, seed: int = 0, **config_kwargs) -> HTLAModel:
    torch.manual_seed(seed)
    name_ids = [[(5 + 7 * i + k) % 120 for k in range(1 + i % 3)] for i in range(len(taxonomy))]
    config = HTLAConfig(
        text_config=tiny_text_config(), taxonomy=taxonomy.to_dict(), label_name_ids=name_ids, **config_kwargs
    )
    return HTLAModel(config)


@pytest.fixture
def small_taxonomy() -> Taxonomy:
    return Taxonomy.from_parents(
        {"a": None, "b": None, "a1": "a", "a2": "a", "b1": "b", "a11": "a1", "a12": "a1"},
        names={"a": "Alpha topics", "a1": "Alpha one"},
    )
