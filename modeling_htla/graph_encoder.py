"""GPTrans label-graph encoder: label node features from their names, edge features from the tree,
and Graph Propagation Attention layers (Chen et al., 2023) as used by HTLA."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from configuration_htla import HTLAConfig


class LabelTree:
    """Tree index tensors of a taxonomy, built once from the config and moved lazily to each device.

    They are plain tensors, not module buffers: they derive from the config, never from a checkpoint, and so are
    independent of how `transformers` materializes parameters when loading.
    """

    def __init__(self, config: HTLAConfig):
        taxonomy = config.get_taxonomy()
        ancestors, lca, distance = taxonomy.tree_arrays()
        ids = config.label_name_ids or [[] for _ in taxonomy.labels]
        width = max((len(x) for x in ids), default=0) or 1
        name_ids = np.zeros((len(ids), width), dtype=np.int64)
        name_mask = np.zeros((len(ids), width), dtype=np.float32)
        for i, tokens in enumerate(ids):
            name_ids[i, : len(tokens)] = tokens
            name_mask[i, : len(tokens)] = 1.0
        self.num_labels = len(taxonomy)
        self.max_distance = int(distance.max(initial=0))
        self._arrays = {
            "ancestors": ancestors,  # [L+1, L+1]
            "lca": lca,  # [L, L]
            "distance": distance,  # [L, L]
            "name_ids": name_ids,  # [L, T]
            "name_mask": name_mask,  # [L, T]
        }
        self._on_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = {k: torch.from_numpy(v).to(device) for k, v in self._arrays.items()}
        return self._on_device[device]


class LabelEdgeFeatures(nn.Module):
    """Edge feature of every label pair: embedding of their tree distance plus the mean of learned
    embeddings of the labels on the path between them (virtual root included when the path crosses it)."""

    def __init__(self, config: HTLAConfig, max_distance: int, num_labels: int):
        super().__init__()
        self.distance_embeddings = nn.Embedding(max_distance + 1, config.edge_dim)
        self.path_embeddings = nn.Embedding(num_labels + 1, config.edge_dim)  # last row = virtual root

    def forward(self, tree: dict[str, torch.Tensor]) -> torch.Tensor:
        ancestors, lca, distance = tree["ancestors"], tree["lca"], tree["distance"]
        n = lca.shape[0]
        # Sum over the path i -> lca -> j from prefix sums along root-to-node chains.
        prefix = ancestors.to(self.path_embeddings.weight.dtype) @ self.path_embeddings.weight  # [L+1, E]
        path_sum = prefix[:n, None, :] + prefix[None, :n, :] - 2 * prefix[lca] + self.path_embeddings.weight[lca]
        path_len = (distance + 1).unsqueeze(-1).to(path_sum.dtype)  # nodes on the path
        return self.distance_embeddings(distance) + path_sum / path_len  # [L, L, E]


class GraphPropagationAttention(nn.Module):
    """Node-to-node attention biased by edges, node-to-edge update, and edge-to-node aggregation."""

    def __init__(self, config: HTLAConfig):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.graph_num_heads
        self.head_dim = hidden // self.num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.edge_bias = nn.Linear(config.edge_dim, self.num_heads)  # edge -> one scalar per head
        self.edge_update = nn.Linear(2 * self.num_heads, config.edge_dim)  # (scores, attention) -> edge
        self.edge_gate = nn.Linear(config.edge_dim, self.num_heads)  # edge -> aggregation weights
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(config.graph_dropout)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, hidden = nodes.shape
        q, k, v = self.qkv(nodes).view(n, 3, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # 3 x [h, L, d]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [h, L, L]
        scores = scores + self.edge_bias(edges).permute(2, 0, 1)
        attention = self.dropout(scores.softmax(-1))
        node_to_node = attention @ v  # [h, L, d]
        edges = edges + self.edge_update(torch.cat([scores, attention], 0).permute(1, 2, 0))  # [L, L, E]
        gate = self.edge_gate(edges).permute(2, 0, 1).softmax(-1)  # [h, L, L]
        edge_to_node = self.dropout(gate) @ v
        merged = (node_to_node + edge_to_node).transpose(0, 1).reshape(n, hidden)
        return self.out(merged), edges


class GPTransLayer(nn.Module):
    """Graph Propagation Attention then a feed-forward refiner, each with residual and LayerNorm."""

    def __init__(self, config: HTLAConfig):
        super().__init__()
        hidden = config.hidden_size
        self.attention = GraphPropagationAttention(config)
        self.attention_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(config.graph_dropout), nn.Linear(4 * hidden, hidden)
        )
        self.output_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.graph_dropout)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        update, edges = self.attention(nodes, edges)
        nodes = self.attention_norm(nodes + self.dropout(update))
        nodes = self.output_norm(nodes + self.dropout(self.feed_forward(nodes)))
        return nodes, edges


class LabelGraphEncoder(nn.Module):
    """Label features `F` [L, H]: node init from label names and ids, then GPTrans layers over the tree."""

    def __init__(self, config: HTLAConfig):
        super().__init__()
        self.tree = LabelTree(config)
        self.label_embeddings = nn.Embedding(self.tree.num_labels, config.hidden_size)
        self.edge_features = LabelEdgeFeatures(config, self.tree.max_distance, self.tree.num_labels)
        self.layers = nn.ModuleList(GPTransLayer(config) for _ in range(config.graph_num_layers))

    def forward(self, word_embeddings: nn.Embedding) -> torch.Tensor:
        tree = self.tree.to(self.label_embeddings.weight.device)
        mask = tree["name_mask"].to(word_embeddings.weight.dtype)
        names = (word_embeddings(tree["name_ids"]) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        nodes = names + self.label_embeddings.weight  # [L, H]
        edges = self.edge_features(tree)  # [L, L, E]
        for layer in self.layers:
            nodes, edges = layer(nodes, edges)
        return nodes
