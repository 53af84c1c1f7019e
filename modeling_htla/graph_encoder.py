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

    Dense form: every label pair (`lca`, `distance` are `[L, L]`). Sparse form (`config.use_sparse_graph`): only
    pairs at most `graph_max_hops` apart (`source`, `target`, `lca`, `distance` are `[P]`), so memory grows with
    the neighbourhoods instead of `L²`. They are plain tensors, not module buffers: they derive from the config,
    never from a checkpoint, and so are independent of how `transformers` materializes parameters when loading.
    """

    def __init__(self, config: HTLAConfig):
        taxonomy = config.get_taxonomy()
        ids = config.label_name_ids or [[] for _ in taxonomy.labels]
        width = max((len(x) for x in ids), default=0) or 1
        name_ids = np.zeros((len(ids), width), dtype=np.int64)
        name_mask = np.zeros((len(ids), width), dtype=np.float32)
        for i, tokens in enumerate(ids):
            name_ids[i, : len(tokens)] = tokens
            name_mask[i, : len(tokens)] = 1.0
        self.num_labels = len(taxonomy)
        self.num_distances = 2 * taxonomy.num_levels + 1  # longest path goes up to the root and down again
        self.sparse = config.use_sparse_graph
        rows, cols = taxonomy.ancestor_pairs()
        self._arrays = {"ancestor_rows": rows, "ancestor_cols": cols, "name_ids": name_ids, "name_mask": name_mask}
        if self.sparse:
            source, target, lca, distance = taxonomy.neighbour_pairs(config.graph_max_hops)
            self._arrays.update(source=source, target=target, lca=lca, distance=distance)  # [P] each
        else:
            lca, distance = taxonomy.tree_arrays()
            self._arrays.update(lca=lca, distance=distance)  # [L, L] each
        self._on_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = {k: torch.from_numpy(v).to(device) for k, v in self._arrays.items()}
        return self._on_device[device]


class LabelEdgeFeatures(nn.Module):
    """Edge feature of a label pair: embedding of their tree distance plus the mean of learned embeddings of the
    labels on the path between them (virtual root included when the path crosses it). `[L, L, E]` dense,
    `[P, E]` sparse."""

    def __init__(self, config: HTLAConfig, num_distances: int, num_labels: int):
        super().__init__()
        self.distance_embeddings = nn.Embedding(num_distances, config.edge_dim)
        self.path_embeddings = nn.Embedding(num_labels + 1, config.edge_dim)  # last row = virtual root

    def forward(self, tree: dict[str, torch.Tensor]) -> torch.Tensor:
        embeddings = self.path_embeddings.weight  # [L+1, E]
        # prefix[i] = sum of the embeddings on the chain root -> i; the path i -> lca -> j follows from three of them.
        prefix = torch.zeros_like(embeddings).index_add(0, tree["ancestor_rows"], embeddings[tree["ancestor_cols"]])
        lca, distance = tree["lca"], tree["distance"]
        if "source" in tree:
            source, target = tree["source"], tree["target"]
        else:
            source = torch.arange(lca.shape[0], device=lca.device)[:, None]
            target = source.T
        path_sum = prefix[source] + prefix[target] - 2 * prefix[lca] + embeddings[lca]
        path_len = (distance + 1).unsqueeze(-1).to(path_sum.dtype)  # nodes on the path
        return self.distance_embeddings(distance) + path_sum / path_len


def segment_softmax(scores: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of `scores` `[P, h]` within each group of rows sharing a `segments` id (the sparse row softmax)."""
    index = segments[:, None].expand_as(scores)
    maxima = torch.full((num_segments, scores.shape[1]), float("-inf"), dtype=scores.dtype, device=scores.device)
    maxima = maxima.scatter_reduce(0, index, scores.detach(), "amax")
    exp = (scores - maxima[segments]).exp()
    totals = torch.zeros_like(maxima).index_add(0, segments, exp)
    return exp / totals[segments]


class GraphPropagationAttention(nn.Module):
    """Graph Propagation Attention (GPTrans, Chen et al., IJCAI 2023), as in the HTLA authors' code.

    Per head, with `S_ij = q_i·k_j/√d + Reduce(E_ij)` and `A_ij = softmax_j(S_ij)`:

    - node-to-node: `Σ_j A_ij v_j`;
    - node-to-edge: `E'_ij = Expand(S_ij + A_ij)` (`Reduce`: edge_dim → heads, `Expand`: heads → edge_dim);
    - edge-to-node: per edge channel c, `w_ijc = softmax_j(E'_ijc)`, and node i receives `FC(Σ_j w_ijc E'_ijc)`
      (`FC`: edge_dim → hidden), added to the node-to-node output before the output projection.

    Returns the node update and `E + E'` for the next layer: the residual on the edges is GPTrans' block-level
    residual, kept so that the tree-distance and path features reach every layer, not only the first.
    """

    def __init__(self, config: HTLAConfig):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.graph_num_heads
        self.head_dim = hidden // self.num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.reduce = nn.Linear(config.edge_dim, self.num_heads)  # edge -> attention bias per head
        self.expand = nn.Linear(self.num_heads, config.edge_dim)  # scores + attention -> edge update
        self.edge_to_node = nn.Linear(config.edge_dim, hidden)  # FC
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(config.graph_dropout)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, tree: dict[str, torch.Tensor]):
        if "source" in tree:
            return self._sparse(nodes, edges, tree["source"], tree["target"])
        n, hidden = nodes.shape
        q, k, v = self.qkv(nodes).view(n, 3, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # 3 x [h, L, d]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [h, L, L]
        scores = scores + self.reduce(edges).permute(2, 0, 1)
        attention = self.dropout(scores.softmax(-1))
        node_to_node = (attention @ v).transpose(0, 1).reshape(n, hidden)  # [L, H]
        update = self.expand((scores + attention).permute(1, 2, 0))  # E' [L, L, E]
        weights = update.softmax(1)  # over j, per channel
        edge_to_node = self.edge_to_node((weights * update).sum(1))  # [L, H]
        return self.out(node_to_node + edge_to_node), edges + update

    def _sparse(self, nodes, edges, source, target):
        """The same propagation over the listed pairs (i = `source`, j = `target`): softmaxes and sums run over
        each source's neighbours."""
        n, hidden = nodes.shape
        q, k, v = self.qkv(nodes).view(n, 3, self.num_heads, self.head_dim).unbind(1)  # 3 x [L, h, d]
        scores = (q[source] * k[target]).sum(-1) / math.sqrt(self.head_dim) + self.reduce(edges)  # [P, h]
        attention = self.dropout(segment_softmax(scores, source, n))
        node_to_node = torch.zeros_like(q).index_add(0, source, attention.unsqueeze(-1) * v[target])  # [L, h, d]
        update = self.expand(scores + attention)  # E' [P, E]
        pooled = update.new_zeros(n, update.shape[1]).index_add(0, source, segment_softmax(update, source, n) * update)
        return self.out(node_to_node.reshape(n, hidden) + self.edge_to_node(pooled)), edges + update  # [L, H], [P, E]


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

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, tree: dict[str, torch.Tensor]):
        update, edges = self.attention(nodes, edges, tree)
        nodes = self.attention_norm(nodes + self.dropout(update))
        nodes = self.output_norm(nodes + self.dropout(self.feed_forward(nodes)))
        return nodes, edges


class LabelGraphEncoder(nn.Module):
    """Label features `F` [L, H]: node init from label names and ids, then GPTrans layers over the tree."""

    def __init__(self, config: HTLAConfig):
        super().__init__()
        self.tree = LabelTree(config)
        self.label_embeddings = nn.Embedding(self.tree.num_labels, config.hidden_size)
        self.edge_features = LabelEdgeFeatures(config, self.tree.num_distances, self.tree.num_labels)
        self.layers = nn.ModuleList(GPTransLayer(config) for _ in range(config.graph_num_layers))

    def forward(self, word_embeddings: nn.Embedding) -> torch.Tensor:
        tree = self.tree.to(self.label_embeddings.weight.device)
        mask = tree["name_mask"].to(word_embeddings.weight.dtype)
        names = (word_embeddings(tree["name_ids"]) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        nodes = names + self.label_embeddings.weight  # [L, H]
        edges = self.edge_features(tree)  # [L, L, E] dense, [P, E] sparse
        for layer in self.layers:
            nodes, edges = layer(nodes, edges, tree)
        return nodes
