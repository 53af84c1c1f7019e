"""Graph Propagation Attention against a per-pair loop written from the GPTrans equations (Chen et al., 2023):

    S_ij = q_i·k_j/√d + Reduce(E_ij)            per head
    A_ij = softmax over the neighbours j of i of S_ij
    E'_ij = Expand(S_ij + A_ij)
    w_ijc = softmax over j of E'_ijc             per edge channel c
    node_i = Out(Σ_j A_ij v_j + FC(Σ_j w_ijc E'_ijc)),   edges out: E_ij + E'_ij
"""

import math

import pytest
import torch

from conftest import chain_taxonomy, make_model


def linear(layer, x):
    return layer.weight @ x + layer.bias


def reference(attention, nodes, edges, neighbours):
    """Node outputs `[L, H]` and new edges `{(i, j): [E]}`, one label pair at a time."""
    heads, hidden = attention.num_heads, nodes.shape[1]
    d = hidden // heads
    qkv = [linear(attention.qkv, x).view(3, heads, d) for x in nodes]
    outputs, new_edges = [], {}
    for i, around in enumerate(neighbours):
        q = qkv[i][0]
        scores = {j: (q * qkv[j][1]).sum(-1) / math.sqrt(d) + linear(attention.reduce, edges[i, j]) for j in around}
        total = sum(torch.exp(scores[j]) for j in around)  # [heads]
        weights = {j: torch.exp(scores[j]) / total for j in around}
        node_to_node = sum(weights[j][:, None] * qkv[j][2] for j in around).reshape(hidden)
        update = {j: linear(attention.expand, scores[j] + weights[j]) for j in around}  # E'_ij, [E]
        channel_total = sum(torch.exp(update[j]) for j in around)
        pooled = sum(torch.exp(update[j]) / channel_total * update[j] for j in around)
        outputs.append(linear(attention.out, node_to_node + linear(attention.edge_to_node, pooled)))
        new_edges.update({(i, j): edges[i, j] + update[j] for j in around})
    return torch.stack(outputs), new_edges


@pytest.mark.parametrize(
    "form, hops, max_siblings", [("dense", None, 32), ("sparse", 8, 32), ("sparse", 2, 32), ("sparse", 1, 32),
                                 ("sparse", 3, 0)]
)
def test_graph_propagation_attention_matches_the_equations(form, hops, max_siblings):
    tax = chain_taxonomy(3, branching=2)  # 14 labels, 3 levels
    kwargs = {"graph_attention": form, "graph_max_siblings": max_siblings} | ({"graph_max_hops": hops} if hops else {})
    model = make_model(tax, **kwargs).double().eval()
    attention = model.graph_encoder.layers[0].attention
    tree = model.graph_encoder.tree.to(torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    n, hidden, edge_dim = len(tax), model.config.hidden_size, model.config.edge_dim
    nodes = torch.randn(n, hidden, generator=generator, dtype=torch.float64, requires_grad=True)
    dense_edges = torch.randn(n, n, edge_dim, generator=generator, dtype=torch.float64, requires_grad=True)
    lca, distance = tax.tree_arrays()
    # With no siblings allowed in families above one child, a label meets only its ancestors and descendants.
    neighbours = [
        [j for j in range(n) if (hops is None or distance[i, j] <= hops) and (max_siblings or lca[i, j] in (i, j))]
        for i in range(n)
    ]
    if form == "sparse":
        pairs = list(zip(tree["source"].tolist(), tree["target"].tolist()))
        assert sorted(pairs) == sorted((i, j) for i in range(n) for j in neighbours[i])
        edges = dense_edges[tree["source"], tree["target"]]
    else:
        pairs = [(i, j) for i in range(n) for j in range(n)]
        edges = dense_edges

    out_nodes, update = attention(nodes, attention.reduce(edges), tree)
    out_edges = edges + update
    out_edges = out_edges if form == "sparse" else out_edges.reshape(n * n, edge_dim)
    ref_nodes, ref_edges = reference(attention, nodes, dense_edges, neighbours)
    ref_edges = torch.stack([ref_edges[pair] for pair in pairs])
    assert (out_nodes - ref_nodes).abs().max() <= 1e-5
    assert (out_edges - ref_edges).abs().max() <= 1e-5

    weights = [torch.randn(x.shape, generator=generator, dtype=torch.float64) for x in (out_nodes, out_edges)]
    inputs = [nodes, dense_edges, *attention.parameters()]

    def gradients(node_out, edge_out):
        loss = (node_out * weights[0]).sum() + (edge_out * weights[1]).sum()
        return torch.autograd.grad(loss, inputs, allow_unused=True)

    for got, want in zip(gradients(out_nodes, out_edges), gradients(ref_nodes, ref_edges)):
        assert (got - want).abs().max() <= 1e-5
