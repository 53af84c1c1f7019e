"""Taxonomies of any shape: the graph form `auto` picks, wide families, and TLA at 100,000 labels."""

import pytest
import torch

from conftest import NEWSGROUPS_TAXONOMY, make_model, tiny_text_config
from modeling_htla import HTLAConfig, Taxonomy, tla_loss
from modeling_htla.loss import select_negatives


def config(taxonomy, **kwargs):
    return HTLAConfig(text_config=tiny_text_config(), taxonomy=taxonomy.to_dict(), **kwargs)


def star(children, tops=1):
    """`tops` top-level labels with `children` children each."""
    labels = [f"t{t}" for t in range(tops)] + [f"t{t}.{c}" for t in range(tops) for c in range(children)]
    return Taxonomy(labels, [None] * tops + [f"t{t}" for t in range(tops) for _ in range(children)])


def test_auto_keeps_small_trees_dense_and_decides_by_work_not_label_count(tmp_path):
    path = tmp_path / "20newsgroups.taxonomy"
    path.write_text(NEWSGROUPS_TAXONOMY, encoding="utf-8")
    assert not config(Taxonomy.from_file(path)).use_sparse_graph  # unchanged: dense, every pair
    # 1,500 top-level labels: with every sibling pair the sparse form would attend over all L² pairs anyway, so
    # dense is cheaper; with the sibling bound it attends over ~34 pairs a label and is chosen.
    flat = star(0, tops=1500)
    assert not config(flat, graph_max_siblings=None).use_sparse_graph
    assert config(flat).use_sparse_graph
    assert config(flat, graph_attention="sparse", graph_max_siblings=None).use_sparse_graph  # as asked
    with pytest.raises(ValueError, match="graph_max_siblings must be >= 0 or None, got -1"):
        config(flat, graph_max_siblings=-1)


def test_wide_family_trains_with_pairs_linear_in_the_labels():
    tax = star(3000, tops=2)  # 3,002 labels, fan-out 3,000
    model = make_model(tax).train()
    assert model.config.use_sparse_graph
    assert model.graph_encoder.tree.num_pairs < 40 * len(tax)  # every sibling pair would be 18 million
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, 120, (4, 10), generator=generator)
    labels = torch.zeros(4, len(tax))
    labels[:, :2] = 1
    labels[:, torch.randperm(len(tax), generator=generator)[:500]] = 1  # many gold labels per text
    out = model(input_ids=input_ids, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss) and float(out.tla_loss.detach()) > 0
    assert [n for n, p in model.graph_encoder.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []


def reference_tla(similarity, positives, negatives, temperature):
    """Per-text loop of the TLA formula, in float64."""
    losses = []
    for s, pos, neg in zip(similarity.double() / temperature, positives, negatives):
        if pos.any():
            losses.append((torch.logsumexp(s[pos | neg], 0) - s[pos]).mean())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("mining", ["hard", "random", "all"])
def test_tla_at_100000_labels_with_many_gold_labels(mining):
    num_labels, generator = 100_000, torch.Generator().manual_seed(0)
    text = torch.randn(5, 16, generator=generator, requires_grad=True)
    label_features = torch.randn(num_labels, 16, generator=generator, requires_grad=True)
    order = torch.randperm(num_labels, generator=generator)
    labels = torch.zeros(5, num_labels)
    labels[0, order[:60_000]] = 1  # more gold than non-gold labels: every non-gold label is a negative
    labels[1, order[:5_000]] = 1
    labels[2, order[0]] = 1
    labels[4] = 1  # every label gold: no negative at all; row 3 has no gold label and counts for nothing
    positives = labels > 0.5
    similarity = torch.nn.functional.normalize(text, dim=-1) @ torch.nn.functional.normalize(label_features, dim=-1).T

    torch.manual_seed(0)
    negatives = select_negatives(similarity, positives, mining, None)
    assert not (negatives & positives).any()
    expected_counts = [40_000, 5_000, 1, 0, 0] if mining != "all" else (~positives).sum(1).tolist()
    assert negatives.sum(1).tolist() == expected_counts
    if mining == "hard":  # the most similar non-gold labels, found here by a full sort per text
        for row in range(5):
            ranked = similarity[row].detach().argsort(descending=True)
            ranked = ranked[~positives[row, ranked]][: expected_counts[row]]
            assert torch.equal(negatives[row].nonzero().flatten(), ranked.sort().values)

    torch.manual_seed(0)
    loss = tla_loss(text, label_features, labels, temperature=0.07, negative_mining=mining)
    assert abs(float(loss) - float(reference_tla(similarity, positives, negatives, 0.07))) <= 1e-4
    torch.manual_seed(0)
    tla_loss(text[1:4], label_features, labels[1:4], temperature=0.07, negative_mining=mining).backward()
    torch.manual_seed(0)
    chosen = positives[1:4] | select_negatives(similarity[1:4], positives[1:4], mining, None)
    touched = label_features.grad.abs().sum(1) > 0  # only the gold labels and negatives of texts with gold labels
    assert torch.equal(touched, chosen[:2].any(0)) and int(touched.sum()) > 5_000


def test_recomputed_feed_forward_chunks_match_the_kept_activations(monkeypatch):
    import modeling_htla.graph_encoder as graph_encoder

    layer = make_model(star(30)).graph_encoder.layers[0].train()
    assert layer.feed_forward[2].p > 0  # dropout is on: the recomputation must replay its masks
    nodes = torch.randn(31, layer.attention_norm.normalized_shape[0], requires_grad=True)
    weights = torch.randn(nodes.shape)
    monkeypatch.setattr(graph_encoder, "FEED_FORWARD_CHUNK", 8 * nodes.shape[1])  # 8 labels a chunk

    def run(chunked):
        torch.manual_seed(0)
        if chunked:  # activations dropped after each chunk and recomputed in the backward pass
            out = layer._feed_forward(nodes)
        else:  # the same chunks with their activations kept
            out = torch.cat([layer.feed_forward(chunk) for chunk in nodes.split(8)])
        return out, torch.autograd.grad((out * weights).sum(), [nodes, *layer.feed_forward.parameters()])

    (out, grads), (expected, expected_grads) = run(True), run(False)
    assert torch.equal(out, expected)
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(grads, expected_grads))


@pytest.mark.parametrize("labels", [40, 300])  # fewer labels than the 120-token vocabulary, and more
def test_narrow_graph_maps_label_names_in_and_features_out(labels):
    tax = star(labels - 1)
    model = make_model(tax, graph_hidden_size=16, graph_num_heads=2).train()
    encoder = model.graph_encoder
    assert encoder.label_embeddings.weight.shape == (labels, 16) and encoder.layers[0].attention.head_dim == 8
    # The name means are projected before (few labels) or after (many labels) the bag: the same nodes either way.
    word_embeddings = model.text_encoder.get_input_embeddings()
    tree = encoder.tree.to(torch.device("cpu"))
    names = torch.nn.functional.embedding_bag(tree["name_ids"], word_embeddings.weight, tree["name_offsets"], mode="mean")
    expected = names @ encoder.input_projection.weight.T + encoder.label_embeddings.weight
    assert torch.allclose(encoder.node_features(word_embeddings, tree), expected, atol=1e-6)
    input_ids = torch.randint(1, 120, (3, 8), generator=torch.Generator().manual_seed(0))
    out = model(input_ids=input_ids, labels=torch.eye(labels)[:3])
    assert out.label_embeds.shape == (labels, 32)  # back at the text width, for the head and TLA
    out.loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []


def test_graph_width_is_checked_and_defaults_to_the_encoder_width():
    tax = star(5)
    assert config(tax).graph_hidden_size == 32
    with pytest.raises(ValueError, match="graph_hidden_size 10 is not divisible by graph_num_heads 4"):
        config(tax, graph_hidden_size=10)
    with pytest.raises(ValueError, match="graph_hidden_size must be >= 1 or None, got 0"):
        config(tax, graph_hidden_size=0)
