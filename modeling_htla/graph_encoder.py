"""GPTrans label-graph encoder: label node features from their names, edge features from the tree,
and Graph Propagation Attention layers (Chen et al., 2023) as used by HTLA."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from configuration_htla import HTLAConfig


class LabelTree:
    """Tree index tensors of a taxonomy, built once from the config and moved lazily to each device.

    Dense form: every label pair (`lca`, `distance` are `[L, L]`). Sparse form (`config.use_sparse_graph`): the
    pairs of `Taxonomy.neighbour_pairs(graph_max_hops, graph_max_siblings)` (`source`, `target`, `lca`, `distance`
    are `[P]`), so memory grows with the neighbourhoods instead of `L²`. They are plain tensors, not module
    buffers: they derive from the config, never from a checkpoint, and so are independent of how `transformers`
    materializes parameters when loading.
    """

    def __init__(self, config: HTLAConfig):
        taxonomy = config.get_taxonomy()
        ids = config.label_name_ids or [[] for _ in taxonomy.labels]
        # Label names as bags of token ids (flat ids + each label's offset), so the mean name embedding never
        # materializes an [L, longest name, H] tensor.
        name_ids = np.asarray([token for tokens in ids for token in tokens], dtype=np.int64)
        offsets = np.cumsum([0] + [len(tokens) for tokens in ids], dtype=np.int64)[:-1]
        self.num_labels = len(taxonomy)
        self.num_distances = 2 * taxonomy.num_levels + 1  # longest path goes up to the root and down again
        self.sparse = config.use_sparse_graph
        rows, cols = taxonomy.ancestor_pairs()
        self._arrays = {"ancestor_rows": rows, "ancestor_cols": cols, "name_ids": name_ids, "name_offsets": offsets}
        if self.sparse:
            pairs = taxonomy.neighbour_pairs(config.graph_max_hops, config.graph_max_siblings)
            source, target, lca, distance = pairs  # [P] each, sorted by source then target: CSR order
            by_target = np.lexsort((source, target))  # the transposed CSR order, for the backward pass
            self._arrays.update(
                source=source, target=target, lca=lca, distance=distance, crow=_row_pointers(source, self.num_labels),
                by_target=by_target, source_by_target=source[by_target],
                crow_by_target=_row_pointers(target, self.num_labels),
            )
            self._arrays.update(label_source=source, label_target=target)  # node rows are the labels themselves
        else:
            lca, distance = taxonomy.tree_arrays()
            self._arrays.update(lca=lca, distance=distance)  # [L, L] each
        self.num_pairs = len(self._arrays["source"]) if self.sparse else self.num_labels**2  # label pairs attended
        self._on_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = {k: torch.from_numpy(v).to(device) for k, v in self._arrays.items()}
        return self._on_device[device]

    def _neighbours(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The pairs whose source is one of `rows` (global ids), grouped by position in `rows`:
        `(position of the source, target, lca, distance)`, the same pairs the whole-tree form lists for them."""
        if self.sparse:
            crow = self._arrays["crow"]
            counts = crow[rows + 1] - crow[rows]
            position = np.repeat(np.arange(len(rows)), counts)
            index = np.arange(counts.sum()) + np.repeat(crow[rows] - np.cumsum(counts) + counts, counts)
            return (position, *(self._arrays[key][index] for key in ("target", "lca", "distance")))
        position = np.repeat(np.arange(len(rows)), self.num_labels)
        targets = np.tile(np.arange(self.num_labels), len(rows))
        return position, targets, self._arrays["lca"][rows].ravel(), self._arrays["distance"][rows].ravel()

    def subgraph(self, rows: np.ndarray, num_layers: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
        """Index tensors, one dict per layer, that compute the outputs of `num_layers` layers for `rows` (distinct
        global ids) only, with the same values as the whole tree: layer l's outputs need its inputs on the
        neighbours of its output rows, so the node sets grow by one neighbourhood per layer going down.

        Each set is a prefix of the next (`rows` first, in their order), so the pairs of a layer are a prefix of the
        pairs of the layer below and the edge updates carry over by slicing. Pairs use the sparse kernels whatever
        the tree's form: `source` and `target` are positions in the node table, `label_source`/`label_target` the
        labels, `labels` the global id of each node row of the first layer.
        """
        sets = [np.asarray(rows, dtype=np.int64)]
        for _ in range(num_layers):
            position, target, lca, distance = self._neighbours(sets[-1])
            new = np.setdiff1d(target, sets[-1])  # sorted, distinct
            sets.append(np.concatenate([sets[-1], new]))
        labels = sets[-1]  # node rows of the first layer's input
        node_of = np.empty(self.num_labels, dtype=np.int64)
        node_of[labels] = np.arange(len(labels))
        target = node_of[target]  # pairs of sets[-2], the first layer's output rows
        crow = _row_pointers(position, len(sets[-2]))
        name_offsets, name_ids = self._arrays["name_offsets"], self._arrays["name_ids"]
        lengths = np.diff(np.append(name_offsets, len(name_ids)))[labels]
        token = np.arange(lengths.sum()) + np.repeat(name_offsets[labels] - np.cumsum(lengths) + lengths, lengths)
        names = {"labels": labels, "name_ids": name_ids[token],
                 "name_offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)}
        whole = self.to(device)  # the ancestor pairs of every label: the edge features' path sums need them all
        trees = []
        for layer in range(num_layers):
            outputs, inputs = len(sets[num_layers - 1 - layer]), len(sets[num_layers - layer])
            pairs = crow[outputs]
            source, tail = position[:pairs], target[:pairs]
            by_target = np.lexsort((source, tail))
            arrays = dict(
                names if layer == 0 else {}, source=source, target=tail, lca=lca[:pairs], distance=distance[:pairs],
                label_source=labels[source], label_target=labels[tail], crow=crow[: outputs + 1],
                by_target=by_target, source_by_target=source[by_target], crow_by_target=_row_pointers(tail, inputs),
            )
            tree = {key: torch.from_numpy(np.ascontiguousarray(v)).to(device) for key, v in arrays.items()}
            trees.append(tree | {key: whole[key] for key in ("ancestor_rows", "ancestor_cols")})
        return trees


def _row_pointers(rows: np.ndarray, num_rows: int) -> np.ndarray:
    """CSR row pointers `[num_rows + 1]` of sorted row ids."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_rows))]).astype(np.int64)


class LabelEdgeFeatures(nn.Module):
    """Edge feature of a label pair: embedding of their tree distance plus the mean of learned embeddings of the
    labels on the path between them (virtual root included when the path crosses it). `[L, L, E]` dense,
    `[P, E]` sparse.

    Given a linear `projection` (E → C), returns `projection(edge feature)` (`[L, L, C]` / `[P, C]`) computed by
    mapping the two embedding tables first: every step is linear in them, so this is the same value, and the
    per-pair work runs over C channels instead of E (GPTrans' `Reduce` has one channel per head).
    """

    def __init__(self, config: HTLAConfig, num_distances: int, num_labels: int):
        super().__init__()
        self.distance_embeddings = nn.Embedding(num_distances, config.edge_dim)
        self.path_embeddings = nn.Embedding(num_labels + 1, config.edge_dim)  # last row = virtual root

    def forward(self, tree: dict[str, torch.Tensor], projection: nn.Linear | None = None) -> torch.Tensor:
        embeddings, distances = self.path_embeddings.weight, self.distance_embeddings.weight  # [L+1, E], [D, E]
        if projection is not None:
            embeddings, distances = F.linear(embeddings, projection.weight), projection(distances)  # [L+1, C], [D, C]
        # prefix[i] = sum of the embeddings on the chain root -> i; the path i -> lca -> j follows from three of them.
        prefix = torch.zeros_like(embeddings).index_add(0, tree["ancestor_rows"], embeddings[tree["ancestor_cols"]])
        lca, distance = tree["lca"], tree["distance"]
        if "source" in tree:
            source, target = tree["label_source"], tree["label_target"]
        else:
            source = torch.arange(lca.shape[0], device=lca.device)[:, None]
            target = source.T
        path_sum = _rows(prefix, source) + _rows(prefix, target) - 2 * _rows(prefix, lca) + _rows(embeddings, lca)
        path_len = (distance + 1).unsqueeze(-1).to(path_sum.dtype)  # nodes on the path
        return F.embedding(distance, distances) + path_sum / path_len


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table[index]` (`[*index.shape, C]`) through `index_select`, whose forward and backward (an `index_add`)
    run several times faster on CPU than advanced indexing's gather and `index_put`."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, columns: int) -> torch.Tensor:
    """`[len(crow) - 1, columns]` sparse CSR matrix over the listed pairs (row pointers `crow`, column ids `col`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR tensor support is in beta state"
        return torch.sparse_csr_tensor(crow, col, values, (crow.shape[0] - 1, columns))


def _sparse_dtype(x: torch.Tensor) -> torch.dtype:
    """The sparse kernels take float32/float64 only (not bfloat16 or float16 on CPU): others run in float32, with
    autocast off around them (`_no_autocast`), which would cast them back."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _no_autocast(x: torch.Tensor):
    return torch.autocast(x.device.type, enabled=False)


def _sddmm(x: torch.Tensor, y: torch.Tensor, crow: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """`[h, P]`: per head, `x_h[i]·y_h[j]` for every listed pair `(i, j)` in CSR order; `x` `[h, rows, d]`,
    `y` `[h, columns, d]`."""
    dtype = _sparse_dtype(x)
    pattern = _csr(crow, col, x.new_zeros(col.shape[0], dtype=dtype), y.shape[1])
    with _no_autocast(x):
        out = [torch.sparse.sampled_addmm(pattern, xh, yh.T, beta=0).values() for xh, yh in zip(x.to(dtype), y.to(dtype))]
    return torch.stack(out).to(x.dtype)


def _spmm(values: torch.Tensor, y: torch.Tensor, crow: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """`[h, rows, d]`: per head, `out_h[i] = Σ_j values_h[(i, j)] · y_h[j]` over the listed pairs; `values` `[h, P]`,
    `y` `[h, columns, d]`."""
    dtype = _sparse_dtype(y)
    values, dense = values.to(dtype), y.to(dtype)
    with _no_autocast(y):
        out = [_csr(crow, col, vh, y.shape[1]) @ yh for vh, yh in zip(values, dense)]
    return torch.stack(out).to(y.dtype)


class PairDot(torch.autograd.Function):
    """`[P, h]` per-head dot products `x_i·y_j` of the listed label pairs (a sampled dense-dense matrix product).

    Runs on sparse CSR kernels, and its backward on sparse-dense products (one per head): autograd over gathers
    would keep `x[source]` and `y[target]`, `[P, H]` each (1.5 KiB a pair at H = 384), and be several times slower.
    """

    @staticmethod
    def forward(ctx, x, y, tree):  # x, y [h, L, d]
        ctx.save_for_backward(x, y)
        ctx.tree = tree
        return _sddmm(x, y, tree["crow"], tree["target"]).T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # [P, h]
        x, y = ctx.saved_tensors
        tree = ctx.tree
        grad = grad.T.contiguous()  # [h, P]
        grad_x = _spmm(grad, y, tree["crow"], tree["target"])
        grad_y = _spmm(grad[:, tree["by_target"]], x, tree["crow_by_target"], tree["source_by_target"])
        return grad_x, grad_y, None


class PairSum(torch.autograd.Function):
    """`[h, L, d]`: `out_i = Σ_j a_ij v_j` over the listed label pairs, per head (a sparse-dense matrix product),
    keeping only `a` `[P, h]` and `v` `[h, L, d]` for the backward pass."""

    @staticmethod
    def forward(ctx, weights, values, tree):  # weights [P, h], values [h, L, d]
        ctx.save_for_backward(weights, values)
        ctx.tree = tree
        return _spmm(weights.T.contiguous(), values, tree["crow"], tree["target"])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # [h, L, d]
        weights, values = ctx.saved_tensors
        tree = ctx.tree
        grad_weights = _sddmm(grad.contiguous(), values, tree["crow"], tree["target"]).T
        by_target = weights.T[:, tree["by_target"]]
        grad_values = _spmm(by_target, grad.contiguous(), tree["crow_by_target"], tree["source_by_target"])
        return grad_weights, grad_values, None


class SegmentSoftmax(torch.autograd.Function):
    """Softmax of `scores` `[P, C]` within each group of rows sharing a `segments` id (the sparse row softmax).

    Keeps only its output for the backward pass (`grad_in = y · (grad − Σ_segment grad · y)`), where autograd
    over the composed ops would keep three `[P, C]` tensors.
    """

    @staticmethod
    def forward(ctx, scores, segments, num_segments):
        index = segments[:, None].expand_as(scores)
        maxima = scores.new_full((num_segments, scores.shape[1]), float("-inf"))
        maxima = maxima.scatter_reduce(0, index, scores, "amax")
        out = (scores - _rows(maxima, segments)).exp_()
        totals = torch.zeros_like(maxima).index_add_(0, segments, out)
        out /= _rows(totals, segments)
        ctx.save_for_backward(out, segments)
        ctx.num_segments = num_segments
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        out, segments = ctx.saved_tensors
        weighted = grad * out
        totals = weighted.new_zeros(ctx.num_segments, out.shape[1]).index_add_(0, segments, weighted)
        return weighted.sub_(out * _rows(totals, segments)), None, None


class GraphPropagationAttention(nn.Module):
    """Graph Propagation Attention (GPTrans, Chen et al., IJCAI 2023), as in the HTLA authors' code.

    Per head, with `S_ij = q_i·k_j/√d + Reduce(E_ij)` and `A_ij = softmax_j(S_ij)`:

    - node-to-node: `Σ_j A_ij v_j`;
    - node-to-edge: `E'_ij = Expand(S_ij + A_ij)` (`Reduce`: edge_dim → heads, `Expand`: heads → edge_dim);
    - edge-to-node: per edge channel c, `w_ijc = softmax_j(E'_ijc)`, and node i receives `FC(Σ_j w_ijc E'_ijc)`
      (`FC`: edge_dim → hidden), added to the node-to-node output before the output projection.

    Takes the attention bias `Reduce(E)` rather than the edges `E`, so that the caller can compute it without
    building `E` (see `LabelEdgeFeatures`), and returns the node update and `E'`. The caller passes `E + E'` on to
    the next layer: the residual on the edges is GPTrans' block-level residual, kept so that the tree-distance and
    path features reach every layer, not only the first.
    """

    def __init__(self, config: HTLAConfig):
        super().__init__()
        hidden = config.graph_hidden_size
        self.num_heads = config.graph_num_heads
        self.head_dim = hidden // self.num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.reduce = nn.Linear(config.edge_dim, self.num_heads)  # edge -> attention bias per head
        self.expand = nn.Linear(self.num_heads, config.edge_dim)  # scores + attention -> edge update
        self.edge_to_node = nn.Linear(config.edge_dim, hidden)  # FC
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(config.graph_dropout)

    def forward(self, nodes: torch.Tensor, edge_bias: torch.Tensor, tree: dict[str, torch.Tensor]):
        """`nodes` `[L, G]`, `edge_bias` `Reduce(E)` (`[L, L, h]` dense, `[P, h]` sparse) -> `[L, G]`, `E'`.

        Over a subgraph (`LabelTree.subgraph`) the pairs' sources are the first rows of `nodes`, and only they are
        updated: `[sources, G]`."""
        if "source" in tree:
            return self._sparse(nodes, edge_bias, tree)
        n, hidden = nodes.shape
        q, k, v = self.qkv(nodes).view(n, 3, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # 3 x [h, L, d]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [h, L, L]
        scores = scores + edge_bias.permute(2, 0, 1)
        attention = self.dropout(scores.softmax(-1))
        node_to_node = (attention @ v).transpose(0, 1).reshape(n, hidden)  # [L, H]
        update = self.expand((scores + attention).permute(1, 2, 0))  # E' [L, L, E]
        weights = update.softmax(1)  # over j, per channel
        edge_to_node = self.edge_to_node((weights * update).sum(1))  # [L, H]
        return self.out(node_to_node + edge_to_node), update

    def _sparse(self, nodes, edge_bias, tree):
        """The same propagation over the listed pairs (i = `source`, j = `target`): softmaxes and sums run over
        each source's neighbours. Memory per pair is a few `[h]` and `[E]` rows, never `[H]`."""
        hidden, source = nodes.shape[1], tree["source"]
        n = tree["crow"].shape[0] - 1  # sources: all labels, or the first rows of a subgraph's node table
        # Queries of the sources only; keys and values of every node row.
        q, k, v = (F.linear(rows, weight, bias).view(-1, self.num_heads, self.head_dim).transpose(0, 1).contiguous()
                   for rows, weight, bias in zip((nodes[:n], nodes, nodes), self.qkv.weight.split(hidden),
                                                 self.qkv.bias.split(hidden)))  # [h, n, d], 2 x [h, L, d]
        scores = PairDot.apply(q, k, tree) / math.sqrt(self.head_dim) + edge_bias  # [P, h]
        attention = self.dropout(SegmentSoftmax.apply(scores, source, n))
        node_to_node = PairSum.apply(attention, v, tree).transpose(0, 1)  # [L, h, d]
        update = self.expand(scores + attention)  # E' [P, E]
        weights = SegmentSoftmax.apply(update, source, n)  # over each source's neighbours, per channel
        pooled = update.new_zeros(n, update.shape[1]).index_add(0, source, weights * update)  # [L, E]
        return self.out(node_to_node.reshape(n, hidden) + self.edge_to_node(pooled)), update  # [L, H], [P, E]


# Feed-forward activations (label rows × hidden width) per chunk of the recomputed feed-forward
# (`GPTransLayer._feed_forward`): 32,768 labels at H = 384. Smaller graphs keep them, as every layer does.
FEED_FORWARD_CHUNK = 32768 * 384


class GPTransLayer(nn.Module):
    """Graph Propagation Attention then a feed-forward refiner, each with residual and LayerNorm."""

    def __init__(self, config: HTLAConfig):
        super().__init__()
        hidden = config.graph_hidden_size
        self.attention = GraphPropagationAttention(config)
        self.attention_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(config.graph_dropout), nn.Linear(4 * hidden, hidden)
        )
        self.output_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.graph_dropout)

    def forward(self, nodes: torch.Tensor, edge_bias: torch.Tensor, tree: dict[str, torch.Tensor]):
        """Nodes `[L, G]` and the attention's edge bias -> new nodes and the edge update `E'`."""
        update, edge_update = self.attention(nodes, edge_bias, tree)  # update: [sources, G]
        nodes = self.attention_norm(nodes[: update.shape[0]] + self.dropout(update))
        nodes = self.output_norm(nodes + self.dropout(self._feed_forward(nodes)))
        return nodes, edge_update

    def _feed_forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """The label-wise feed-forward. Above `FEED_FORWARD_CHUNK` label-row elements it runs on chunks of labels
        whose `[chunk, 4H]` activations are recomputed in the backward pass instead of kept: kept, two `[L, 4H]`
        float tensors and a dropout mask take 1.4 GB at 100,000 labels and H = 384, and their gradients as much."""
        chunk = max(1, FEED_FORWARD_CHUNK // nodes.shape[1])  # labels per chunk
        if nodes.shape[0] <= chunk or not torch.is_grad_enabled():
            return self.feed_forward(nodes)
        chunks = nodes.split(chunk)
        return torch.cat([checkpoint(self.feed_forward, chunk, use_reentrant=False) for chunk in chunks])


class LabelGraphEncoder(nn.Module):
    """Label features `F` [L, H]: node init from label names and ids, then GPTrans layers over the tree.

    With `graph_hidden_size` G below the text width H, the name embeddings are mapped to G on the way in
    (`input_projection`, no bias) and the label features back to H on the way out (`output_projection`).
    """

    def __init__(self, config: HTLAConfig):
        super().__init__()
        self.tree = LabelTree(config)
        width = config.graph_hidden_size
        self.input_projection = self.output_projection = None
        if width != config.hidden_size:
            self.input_projection = nn.Linear(config.hidden_size, width, bias=False)
            self.output_projection = nn.Linear(width, config.hidden_size)
        self.label_embeddings = nn.Embedding(self.tree.num_labels, width)
        self.edge_features = LabelEdgeFeatures(config, self.tree.num_distances, self.tree.num_labels)
        self.layers = nn.ModuleList(GPTransLayer(config) for _ in range(config.graph_num_layers))

    def node_features(self, word_embeddings: nn.Embedding, tree: dict[str, torch.Tensor]) -> torch.Tensor:
        """`[L, G]` initial label nodes (or those of a subgraph's `labels`): the mean embedding of each label's name
        tokens (zero for a label without any), mapped to the graph width, plus the label's own embedding."""
        table = word_embeddings.weight  # [V, H]
        own = self.label_embeddings.weight
        if "labels" in tree:
            own = _rows(own, tree["labels"])
        # A mean commutes with a bias-free linear map: project the vocabulary or the names, whichever has fewer rows.
        project_table = self.input_projection is not None and table.shape[0] < own.shape[0]
        if project_table:
            table = self.input_projection(table)  # [V, G]
        names = F.embedding_bag(tree["name_ids"], table, tree["name_offsets"], mode="mean")  # [L, H] or [L, G]
        if self.input_projection is not None and not project_table:
            names = self.input_projection(names)
        return names + own

    def forward(self, word_embeddings: nn.Embedding, rows: torch.Tensor | None = None) -> torch.Tensor:
        """`[L, H]` features of every label, or `[len(rows), H]` those of `rows` (distinct label ids) alone: the same
        values, computed on their neighbourhoods (`LabelTree.subgraph`) at a fraction of the cost on a large tree."""
        device = self.label_embeddings.weight.device
        if rows is None:
            trees = [self.tree.to(device)] * len(self.layers)
        else:
            trees = self.tree.subgraph(rows.cpu().numpy(), len(self.layers), device)
        nodes = self.node_features(word_embeddings, trees[0])  # [L, G]
        # Layer l sees the edges E_0 + U, U the sum of the earlier layers' updates E' ([L, L, E] dense, [P, E]
        # sparse), through Reduce(E_0 + U) = Reduce(E_0) + W·U. Reduce(E_0) comes from the edge-feature tables mapped
        # to the heads first, so E_0 is never built, and the last layer's update is not carried further. A
        # subgraph's layer lists a prefix of the pairs of the layer below, hence the slice.
        updates = None
        for index, (layer, tree) in enumerate(zip(self.layers, trees)):
            reduce = layer.attention.reduce
            edge_bias = self.edge_features(tree, reduce)  # [L, L, h] dense, [P, h] sparse
            if updates is not None:
                edge_bias = edge_bias + F.linear(updates[: edge_bias.shape[0]], reduce.weight)
            nodes, update = layer(nodes, edge_bias, tree)
            if index < len(self.layers) - 1:
                updates = update if updates is None else updates[: update.shape[0]] + update
        return nodes if self.output_projection is None else self.output_projection(nodes)  # [L, H]
