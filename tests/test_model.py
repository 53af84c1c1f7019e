import math

import pytest
import torch
import torch.nn.functional as F

from transformers import AutoTokenizer

from conftest import chain_taxonomy, make_model, save_tiny_encoder
from modeling_htla import HTLAModel, tla_loss
from modeling_htla.loss import cosine_similarity, select_negatives


def batch(taxonomy, leaves, seq_len=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 120, (len(leaves), seq_len), generator=generator)
    labels = torch.tensor([taxonomy.encode(leaf) for leaf in leaves])
    return input_ids, torch.ones_like(input_ids), labels


# ---------------------------------------------------------------- fusion


def test_vectorized_fusion_equals_pairwise_linear(small_taxonomy):
    model = make_model(small_taxonomy).eval()
    input_ids, mask, _ = batch(small_taxonomy, [["a11"], ["b1"], []])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
        h, f = out.text_embeds, out.label_embeds
        expected = torch.empty_like(out.logits)
        for i in range(h.shape[0]):
            for j in range(f.shape[0]):
                expected[i, j] = model.classifier(h[i] + f[j])[j]
    assert (out.logits - expected).abs().max() <= 1e-5


def test_add_fusion_is_a_flat_classifier_with_shifted_bias(small_taxonomy):
    """The paper's algebra: w_j·(h_i + f_j) + b_j = w_j·h_i + (b_j + w_j·f_j), a flat linear head at inference."""
    model = make_model(small_taxonomy).eval()
    input_ids, mask, _ = batch(small_taxonomy, [["a11"], ["b1"], []])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
        weight, bias = model.classifier.weight, model.classifier.bias
        flat = torch.nn.Linear(weight.shape[1], weight.shape[0])
        flat.weight.copy_(weight)
        flat.bias.copy_(bias + (weight * out.label_embeds).sum(-1))
        assert (out.logits - flat(out.text_embeds)).abs().max() <= 1e-5


@pytest.mark.parametrize("fusion", ["dot", "hybrid"])
def test_cosine_heads_score_the_scaled_cosine_and_train_the_graph(small_taxonomy, fusion):
    """dot: `s·cos(h_i, f_j) + b_j`; hybrid adds a free per-label weight: `w_j·h_i + s·cos(h_i, f_j) + b_j`."""
    model = make_model(small_taxonomy, fusion=fusion, tla_temperature=0.1, initializer_range=0.5).eval()
    head = model.classifier
    assert torch.isclose(head.logit_scale.exp(), torch.tensor(10.0))
    started = make_model(small_taxonomy, fusion=fusion, tla_temperature=0.1, cosine_scale_init=1.0).classifier
    assert torch.isclose(started.logit_scale.exp(), torch.tensor(1.0))  # the small-data start, apart from TLA's τ
    if fusion == "dot":
        assert not hasattr(head, "weight")  # the label features are the classifier
    else:
        assert head.weight.shape == (len(small_taxonomy), model.config.hidden_size)
        assert float(head.weight.detach().std()) > 0.4  # drawn from initializer_range, not left empty
    input_ids, mask, labels = batch(small_taxonomy, [["a11"], ["b1"], ["a2"]])
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    h, f = out.text_embeds, out.label_embeds
    expected = torch.empty_like(out.logits)
    for i in range(h.shape[0]):
        for j in range(f.shape[0]):
            cos = (h[i] @ f[j]) / (h[i].norm() * f[j].norm())
            free = head.weight[j] @ h[i] if fusion == "hybrid" else 0.0
            expected[i, j] = free + head.logit_scale.exp() * cos + head.bias[j]
    assert (out.logits - expected).abs().max() <= 1e-5
    # The label graph acts at inference: the BCE part alone moves the graph encoder (and hybrid's free weight).
    model.zero_grad()
    torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels.float()).backward()
    assert model.graph_encoder.layers[0].attention.qkv.weight.grad.abs().sum() > 0
    assert fusion == "dot" or head.weight.grad.abs().sum() > 0


def test_cosine_similarity_divides_by_the_label_norms_after_the_product():
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(4, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.randn(9, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    got = cosine_similarity(text, labels)
    want = F.normalize(text, dim=-1) @ F.normalize(labels, dim=-1).T
    assert got.shape == (4, 9) and (got - want).abs().max() <= 1e-12
    weights = torch.randn(4, 9, dtype=torch.float64, generator=generator)
    for a, b in zip(torch.autograd.grad((got * weights).sum(), (text, labels)),
                    torch.autograd.grad((want * weights).sum(), (text, labels))):
        assert (a - b).abs().max() <= 1e-12


def test_tla_through_a_projection_head(small_taxonomy):
    model = make_model(small_taxonomy, tla_projection_dim=8, tla_weight=0.5).train()
    input_ids, mask, labels = batch(small_taxonomy, [["a11"], ["b1"], ["a2"]])
    torch.manual_seed(0)
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    projected = tla_loss(model.tla_projection(out.text_embeds), model.tla_projection(out.label_embeds), labels)
    assert torch.isclose(out.tla_loss, projected) and torch.isclose(out.loss, out.bce_loss + 0.5 * projected)
    assert not torch.isclose(out.tla_loss, tla_loss(out.text_embeds, out.label_embeds, labels))
    out.loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in model.tla_projection.parameters())
    assert make_model(small_taxonomy, tla_projection_dim=8, use_tla=False).tla_projection is None


def test_unknown_fusion_is_refused(small_taxonomy):
    with pytest.raises(ValueError, match="fusion must be one of"):
        make_model(small_taxonomy, fusion="concat")


# ---------------------------------------------------------------- TLA loss


def tla_reference(h, f, labels, tau, negatives):
    """Per-sample loop straight from the formula, given each sample's negative set."""
    s = F.normalize(h, dim=-1) @ F.normalize(f, dim=-1).T
    losses = []
    for i in range(h.shape[0]):
        pos = [j for j in range(f.shape[0]) if labels[i, j] > 0.5]
        if not pos:
            continue
        neg = negatives(i, pos, s[i])
        denominator = torch.logsumexp(torch.stack([s[i, j] / tau for j in pos + neg]), 0)
        losses.append(torch.stack([denominator - s[i, p] / tau for p in pos]).mean())
    return torch.stack(losses).mean()


def random_tla_inputs(seed=0, batch_size=6, num_labels=11, hidden=8):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(batch_size, hidden, generator=generator, requires_grad=True)
    f = torch.randn(num_labels, hidden, generator=generator, requires_grad=True)
    labels = torch.zeros(batch_size, num_labels)
    for i in range(batch_size):  # 1..4 positives, varying per sample
        k = 1 + i % 4
        labels[i, torch.randperm(num_labels, generator=generator)[:k]] = 1
    return h, f, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_negatives", [None, 3])
def test_hard_tla_matches_per_sample_loop(seed, num_negatives):
    h, f, labels = random_tla_inputs(seed)

    def hard(i, pos, s_i):
        k = len(pos) if num_negatives is None else num_negatives
        candidates = sorted((j for j in range(len(s_i)) if j not in pos), key=lambda j: -float(s_i[j].detach()))
        return candidates[:k]

    expected = tla_reference(h, f, labels, 0.07, hard)
    got = tla_loss(h, f, labels, temperature=0.07, negative_mining="hard", num_negatives=num_negatives)
    assert abs(float(got - expected)) <= 1e-5


def test_all_negatives_matches_loop_and_gradients_flow():
    h, f, labels = random_tla_inputs(3)
    expected = tla_reference(h, f, labels, 0.2, lambda i, pos, s_i: [j for j in range(len(s_i)) if j not in pos])
    got = tla_loss(h, f, labels, temperature=0.2, negative_mining="all")
    assert abs(float(got - expected)) <= 1e-5
    got.backward()
    assert h.grad.abs().sum() > 0 and f.grad.abs().sum() > 0


def test_negative_masks():
    positives = torch.tensor([[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    similarity = torch.tensor([[0.9, 0.8, 0.1, 0.7, 0.2, 0.5]] * 3)
    hard = select_negatives(similarity, positives, "hard", None)
    assert hard[0].tolist() == [False, True, False, True, False, False]  # 2 most similar non-gold
    assert hard[1].tolist() == [True, False, False, False, False, False]
    assert not hard[2].any()  # no positives -> no negatives
    everything = select_negatives(similarity, positives, "all", None)
    assert torch.equal(everything, ~positives)
    torch.manual_seed(0)
    random = select_negatives(similarity, positives, "random", 3)
    assert random.sum(1).tolist() == [3, 3, 3]
    assert not (random & positives).any()
    draws = {tuple(select_negatives(similarity, positives, "random", 2)[0].tolist()) for _ in range(30)}
    assert len(draws) > 1  # random, not always the same labels


def test_sample_without_positives_gives_no_nan():
    h, f, labels = random_tla_inputs(4)
    labels[0] = 0
    with_empty = tla_loss(h, f, labels)
    without = tla_loss(h[1:], f, labels[1:])
    assert torch.isfinite(with_empty) and abs(float(with_empty - without)) <= 1e-6
    with_empty.backward()
    assert torch.isfinite(h.grad).all() and h.grad[0].abs().sum() == 0
    nothing = tla_loss(h, f, torch.zeros_like(labels))
    assert float(nothing) == 0.0 and torch.isfinite(nothing)


# ---------------------------------------------------------------- GPTrans


def test_edge_inputs_follow_the_tree(small_taxonomy):
    model = make_model(small_taxonomy)
    tree = model.graph_encoder.tree.to(torch.device("cpu"))
    ids = small_taxonomy.label2id
    distance = tree["distance"]
    assert torch.all(distance.diagonal() == 0)
    assert distance[ids["a1"], ids["a11"]] == 1 and distance[ids["a11"], ids["a12"]] == 2
    edges = model.graph_encoder.edge_features(tree)
    assert edges.shape == (len(small_taxonomy), len(small_taxonomy), model.config.edge_dim)
    # The edge of a pair is its distance embedding plus the mean embedding of the labels on its path.
    emb = model.graph_encoder.edge_features.path_embeddings.weight
    dist = model.graph_encoder.edge_features.distance_embeddings.weight
    root = len(small_taxonomy)
    path = [ids["a11"], ids["a1"], ids["a"], root, ids["b"], ids["b1"]]
    expected = dist[5] + emb[path].mean(0)
    assert torch.allclose(edges[ids["a11"], ids["b1"]], expected, atol=1e-6)
    assert torch.allclose(edges[ids["a1"], ids["a1"]], dist[0] + emb[ids["a1"]], atol=1e-6)


@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_projected_edge_features_equal_the_projection_of_the_edge_features(small_taxonomy, form):
    model = make_model(small_taxonomy, graph_attention=form, graph_max_hops=2).double()
    edges = model.graph_encoder.edge_features
    tree = model.graph_encoder.tree.to(torch.device("cpu"))
    projection = torch.nn.Linear(model.config.edge_dim, 3).double()
    folded, explicit = edges(tree, projection), projection(edges(tree))
    assert folded.shape == explicit.shape == edges(tree).shape[:-1] + (3,)
    assert (folded - explicit).abs().max() <= 1e-10
    weights = torch.randn_like(folded)
    inputs = [*edges.parameters(), *projection.parameters()]
    for got, want in zip(torch.autograd.grad((folded * weights).sum(), inputs),
                         torch.autograd.grad((explicit * weights).sum(), inputs)):
        assert (got - want).abs().max() <= 1e-10


@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_stacked_layers_pass_the_edges_plus_each_update_on(form):
    """Layer l sees E_0 + E'_1 + … + E'_{l-1}: the encoder, which never builds E_0, equals the layers run on the
    explicit edges."""
    tax = chain_taxonomy(3, branching=2)
    model = make_model(tax, graph_attention=form, graph_num_layers=3).double().eval()
    encoder = model.graph_encoder
    tree = encoder.tree.to(torch.device("cpu"))
    embeddings = model.text_encoder.get_input_embeddings()
    nodes, edges = encoder.node_features(embeddings.double(), tree), encoder.edge_features(tree)
    for layer in encoder.layers:
        nodes, update = layer(nodes, layer.attention.reduce(edges), tree)
        edges = edges + update
    assert (encoder(embeddings) - nodes).abs().max() <= 1e-10


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_gptrans_shapes_and_gradients_reach_every_parameter(small_taxonomy, layers):
    model = make_model(small_taxonomy, graph_num_layers=layers).train()
    input_ids, mask, labels = batch(small_taxonomy, [["a11"], ["b1"], ["a2"]])
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, len(small_taxonomy))
    assert out.label_embeds.shape == (len(small_taxonomy), 32)
    out.loss.backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_grad == []


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8])
def test_trees_of_any_depth(depth):
    tax = chain_taxonomy(depth, branching=2 if depth < 6 else 1)
    model = make_model(tax)
    deepest = [label for i, label in enumerate(tax.labels) if tax.depths[i] == depth]
    input_ids, mask, labels = batch(tax, [[deepest[0]], [deepest[-1]]])
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, len(tax)) and torch.isfinite(out.loss)
    assert labels.sum(1).tolist() == [depth, depth]  # ancestors included


# ---------------------------------------------------------------- label-feature cache


def test_label_features_cached_in_eval_and_dropped_on_train_or_load(small_taxonomy, tmp_path):
    model = make_model(small_taxonomy).eval()
    input_ids, mask, _ = batch(small_taxonomy, [["a11"], ["b1"]])
    calls = []
    model.graph_encoder.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        first = model(input_ids=input_ids, attention_mask=mask).logits
        second = model(input_ids=input_ids, attention_mask=mask).logits
    assert len(calls) == 1 and torch.equal(first, second)

    model.train()
    assert model._label_cache is None
    model.eval()
    with torch.no_grad():
        third = model(input_ids=input_ids, attention_mask=mask).logits
    assert len(calls) == 2 and torch.equal(first, third)

    # A weight load changes the label features: the cache must notice.
    other = make_model(small_taxonomy, seed=1)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        fourth = model(input_ids=input_ids, attention_mask=mask).logits
        fresh = other.eval()(input_ids=input_ids, attention_mask=mask).logits
    assert len(calls) == 3 and torch.allclose(fourth, fresh, atol=1e-6)

    # With autograd on nothing cached is reused, so gradients stay correct: the eval-mode cache above holds
    # gradient-free features, and reusing them would leave the graph encoder without a gradient (the classifier would
    # still get one through the text path, so it alone cannot tell).
    out = model(input_ids=input_ids, attention_mask=mask)
    out.logits.sum().backward()
    assert len(calls) == 4 and out.label_embeds.requires_grad
    assert model.classifier.weight.grad is not None
    graph_grads = [p.grad for p in model.graph_encoder.parameters() if p.requires_grad]
    assert graph_grads and all(g is not None for g in graph_grads)
    assert any(bool(g.abs().sum() > 0) for g in graph_grads)


# ---------------------------------------------------------------- save/load and training


@pytest.mark.parametrize("fusion,width", [("add", None), ("dot", None), ("dot", 16), ("hybrid", None)])
def test_save_load_round_trip_gives_the_same_weights_and_logits(small_taxonomy, tmp_path, fusion, width):
    model = make_model(small_taxonomy, tla_temperature=0.1, fusion=fusion, graph_hidden_size=width).eval()
    input_ids, mask, _ = batch(small_taxonomy, [["a11"], ["b1"], ["a2"]])
    with torch.no_grad():
        before = model(input_ids=input_ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    assert (tmp_path / "modeling_htla.py").exists() and (tmp_path / "configuration_htla.py").exists()
    assert "auto_map" in (tmp_path / "config.json").read_text()
    loaded = HTLAModel.from_pretrained(tmp_path).eval()
    assert loaded.config.tla_temperature == 0.1 and loaded.config.fusion == fusion
    assert loaded.config.graph_hidden_size == (width or 32)
    assert loaded.taxonomy == small_taxonomy
    with torch.no_grad():
        after = loaded(input_ids=input_ids, attention_mask=mask).logits
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), loaded.state_dict().values()))
    # Equal up to float rounding: the loaded weights sit in other memory, which can change a kernel's summation order.
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_new_layers_start_at_initializer_range_and_the_encoder_is_the_base_model(small_taxonomy):
    model = make_model(small_taxonomy, fusion="dot", tla_projection_dim=8, initializer_range=0.5)
    for name in ("graph_encoder.label_embeddings.weight", "graph_encoder.edge_features.path_embeddings.weight",
                 "graph_encoder.layers.0.attention.qkv.weight", "tla_projection.0.weight"):
        assert 0.4 < float(model.get_parameter(name).detach().std()) < 0.6, name
    assert not model.get_parameter("graph_encoder.layers.0.attention.qkv.bias").any()
    assert float(make_model(small_taxonomy, initializer_range=0.5).classifier.weight.detach().std()) > 0.4
    assert math.isclose(model.classifier.logit_scale.item(), math.log(1 / model.config.tla_temperature), rel_tol=1e-6)
    assert model.base_model is model.text_encoder
    assert model.get_input_embeddings() is model.text_encoder.get_input_embeddings()


def test_a_weight_missing_from_a_checkpoint_starts_as_in_a_fresh_model(small_taxonomy, tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model(small_taxonomy, fusion="dot", tla_temperature=0.1)
    with torch.no_grad():
        model.classifier.logit_scale.fill_(7.0)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["classifier.logit_scale"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = HTLAModel.from_pretrained(tmp_path)
    assert math.isclose(loaded.classifier.logit_scale.item(), math.log(10), rel_tol=1e-6)  # 1/τ, not left empty
    assert torch.equal(loaded.classifier.bias, model.classifier.bias)


@pytest.mark.parametrize(
    "variant",
    [
        {},  # HTLA
        {"use_tla": False},  # BERT-GPTrans
        {"use_tla": False, "use_graph_encoder": False},  # flat BERT
        {"negative_mining": "random"},
        {"negative_mining": "all", "pooling": "mean"},
        {"fusion": "dot"},
        {"fusion": "dot", "use_tla": False},
        {"fusion": "hybrid"},
        {"tla_projection_dim": 16},
    ],
)
def test_variants_learn_a_separable_task(small_taxonomy, variant):
    model = make_model(small_taxonomy, **variant).train()
    # Two token patterns, two leaves: the task is separable from the first token.
    leaves = [["a11"], ["b1"]] * 4
    input_ids = torch.tensor([[7 if leaf == ["a11"] else 9] + [3] * 7 for leaf in leaves])
    labels = torch.tensor([small_taxonomy.encode(leaf) for leaf in leaves])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss))
    assert losses[-1] < 0.5 * losses[0]
    if variant.get("use_graph_encoder", True) is False:
        assert out.label_embeds is None
    if variant.get("use_tla", True) is False:
        assert float(out.tla_loss) == 0.0
    model.eval()
    with torch.no_grad():
        probs = model(input_ids=input_ids).logits.sigmoid()
    assert (probs[0, small_taxonomy.label2id["a11"]] > 0.5) and (probs[1, small_taxonomy.label2id["b1"]] > 0.5)
    assert math.isfinite(losses[-1])


# ---------------------------------------------------------------- sparse (k-hop) GPTrans


@pytest.mark.parametrize("layers", [1, 2])
def test_sparse_graph_equals_dense_when_hops_cover_the_tree(layers):
    tax = chain_taxonomy(4, branching=3)  # 120 labels, longest path 8 edges
    dense = make_model(tax, graph_num_layers=layers, graph_attention="dense").eval()
    sparse = make_model(tax, graph_num_layers=layers, graph_attention="sparse", graph_max_hops=8).eval()
    sparse.load_state_dict(dense.state_dict())
    assert sparse.graph_encoder.tree.sparse and not dense.graph_encoder.tree.sparse
    input_ids, mask, labels = batch(tax, [[tax.labels[-1]], [tax.labels[50]]])
    outputs = []
    for model in (dense, sparse):
        model.zero_grad()
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        outputs.append((out, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (dense_out, dense_grads), (sparse_out, sparse_grads) = outputs
    assert (dense_out.label_embeds - sparse_out.label_embeds).abs().max() <= 1e-5
    assert (dense_out.logits - sparse_out.logits).abs().max() <= 1e-5
    assert abs(float(dense_out.loss - sparse_out.loss)) <= 1e-5
    assert max(float((dense_grads[n] - sparse_grads[n]).abs().max()) for n in dense_grads) <= 1e-5


def test_sparse_graph_with_few_hops_differs_by_design_and_trains():
    tax = chain_taxonomy(4, branching=3)
    model = make_model(tax, graph_attention="sparse", graph_max_hops=1).train()
    tree = model.graph_encoder.tree.to(torch.device("cpu"))
    assert int(tree["distance"].max()) == 1 and len(tree["source"]) < len(tax) ** 2
    input_ids, mask, labels = batch(tax, [[tax.labels[-1]], [tax.labels[50]]])
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []


def test_graph_form_is_chosen_by_work_and_dense_refuses_huge_taxonomies():
    from conftest import tiny_text_config
    from modeling_htla import HTLAConfig, Taxonomy

    def config(size, **kwargs):
        labels = [f"l{i}" for i in range(size)]
        tax = Taxonomy(labels, [None] * 8 + [labels[(i - 8) // 8] for i in range(8, size)])
        return HTLAConfig(text_config=tiny_text_config(), taxonomy=tax.to_dict(), **kwargs)

    # dense while its pair activations fit in 128 MiB (~560 labels at edge_dim 30 and the tiny encoder's 4 heads),
    # sparse above, where an 8-ary tree has ~12 pairs a label instead of L
    assert not config(560).use_sparse_graph and config(570).use_sparse_graph
    assert config(560, graph_num_layers=2).use_sparse_graph and not config(850, edge_dim=10).use_sparse_graph
    assert config(2049).use_sparse_graph
    assert config(100, graph_attention="sparse").use_sparse_graph
    with pytest.raises(ValueError, match="too large for graph_attention='dense'.*use graph_attention='sparse'"):
        config(5000, graph_attention="dense")


def test_crash_while_saving_leaves_the_previous_model_intact(small_taxonomy, tmp_path, monkeypatch):
    import transformers.modeling_utils

    good = make_model(small_taxonomy, seed=0)
    good.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        make_model(small_taxonomy, seed=1).save_pretrained(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(".htla-save-")]
    HTLAModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_long_inputs_are_cut_to_the_positions_keeping_the_closing_token(family, tmp_path):
    """RoBERTa's positions start after the padding index: 514 position embeddings hold 512 tokens (here 34 hold 32).
    An untruncated batch gives the same logits as the tokenizer's own truncation, which keeps </s> last."""
    folder = save_tiny_encoder(family, tmp_path, positions=32)
    model = HTLAModel.from_encoder(folder, taxonomy=chain_taxonomy(2), pooling="mean").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["abc " * 200, "short", "x" * 40]
    with torch.no_grad():
        cut = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        truncated = model(**tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
    assert torch.allclose(cut, truncated, atol=1e-5)


@pytest.mark.parametrize("graph", [True, False])
def test_weights_from_names_point_each_label_at_its_centred_name(encoder_dir, small_taxonomy, graph):
    """`init_weights_from_names`: row j of the free weight is label j's name feature less the names' mean, at length
    `scale / mean name-feature length`, in the hybrid head and in the flat classifier; the cosine-only head refuses."""
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    model = HTLAModel.from_encoder(encoder_dir, small_taxonomy, use_graph_encoder=graph)
    model.init_weights_from_names(tokenizer, 4.0)
    names = model._read_texts(small_taxonomy.names, tokenizer)
    weight = model.classifier.weight.detach()
    cosines = F.cosine_similarity(weight, names - names.mean(0), dim=1)
    assert bool((cosines > 0.9999).all())
    assert torch.allclose(weight.norm(dim=1), 4.0 / names.norm(dim=1).mean().expand(len(small_taxonomy)), rtol=1e-5)
    with pytest.raises(ValueError, match="scale must be > 0"):
        model.init_weights_from_names(tokenizer, 0.0)
    with pytest.raises(ValueError, match="fusion='dot'"):
        HTLAModel.from_encoder(encoder_dir, small_taxonomy, fusion="dot").init_weights_from_names(tokenizer, 4.0)
