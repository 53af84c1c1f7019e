"""`graph_labels_per_step`: GPTrans on a few labels' neighbourhoods (exact), and training steps that recompute only
those labels' features while the others keep their last ones."""

import pytest
import torch

from conftest import chain_taxonomy, make_model
from modeling_htla import Taxonomy
from modeling_htla.modeling import AddFusionLogits


@pytest.mark.parametrize(
    "form, layers, width", [("dense", 1, None), ("sparse", 1, None), ("sparse", 3, None), ("dense", 2, 16),
                            ("sparse", 2, 16)]
)
def test_features_of_some_labels_equal_those_of_the_whole_tree(form, layers, width):
    tax = chain_taxonomy(4, branching=3)  # 120 labels
    kwargs = {"graph_attention": form, "graph_num_layers": layers, "graph_max_siblings": 1}  # sparse: bounded families
    if width:
        kwargs |= {"graph_hidden_size": width, "graph_num_heads": 4}
    model = make_model(tax, **kwargs).double().eval()
    word_embeddings = model.text_encoder.get_input_embeddings()
    rows = torch.tensor([5, 0, 30, 17, 119])  # any order: the output follows it
    whole = model.graph_encoder(word_embeddings)
    some = model.graph_encoder(word_embeddings, rows)
    assert some.shape == (5, model.config.hidden_size)
    assert (some - whole[rows]).abs().max() <= 1e-10
    weights = torch.randn(some.shape, dtype=torch.float64)
    inputs = [word_embeddings.weight, *model.graph_encoder.parameters()]
    got = torch.autograd.grad((some * weights).sum(), inputs, allow_unused=True)
    want = torch.autograd.grad((whole[rows] * weights).sum(), inputs, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None and w is None) or (g - w).abs().max() <= 1e-10


def test_add_fusion_logits_and_gradients_equal_the_autograd_expression():
    generator = torch.Generator().manual_seed(0)
    text, weight, features = (torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
                              for shape in ((3, 8), (11, 8), (11, 8)))
    bias = torch.randn(11, generator=generator, dtype=torch.float64, requires_grad=True)
    got = AddFusionLogits.apply(text, weight, bias, features)
    want = text @ weight.T + bias + (weight * features).sum(-1)
    assert torch.allclose(got, want, atol=1e-12)
    grad = torch.randn(got.shape, generator=generator, dtype=torch.float64)
    inputs = (text, weight, bias, features)
    for g, w in zip(torch.autograd.grad(got, inputs, grad), torch.autograd.grad(want, inputs, grad)):
        assert torch.allclose(g, w, atol=1e-12)


def sampled_model(fusion, use_tla, per_step=10, refresh=100):
    tax = chain_taxonomy(4, branching=3)  # 120 labels
    model = make_model(tax, fusion=fusion, use_tla=use_tla, graph_labels_per_step=per_step, graph_dropout=0.0,
                       graph_refresh_steps=refresh,
                       classifier_dropout=0.0, graph_attention="sparse", graph_max_hops=1).train()
    input_ids = torch.randint(1, 120, (4, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(4, len(tax))
    labels[:, [0, 3, 12]] = 1  # one path: 3 gold labels
    labels[1, [1, 6]] = 1  # and another for one text: 5 in the batch
    return model, input_ids, labels


@pytest.mark.parametrize("fusion, use_tla", [("add", True), ("hybrid", False), ("dot", True)])
def test_a_training_step_recomputes_gold_and_top_labels_and_keeps_the_others(fusion, use_tla):
    model, input_ids, labels = sampled_model(fusion, use_tla)
    word_embeddings = model.text_encoder.get_input_embeddings()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(input_ids=input_ids, labels=labels).loss.backward()  # first step: every label's features computed
    with torch.no_grad():
        before = model.graph_encoder(word_embeddings)  # step 1's weights
    optimizer.step()
    optimizer.zero_grad()
    kept_rows, _ = model._fresh_features
    assert len(kept_rows) == 10 and {0, 1, 3, 6, 12} <= set(kept_rows.tolist())
    out = model(input_ids=input_ids, labels=labels)
    rows, fresh = model._fresh_features
    assert len(rows) == 10 and {0, 1, 3, 6, 12} <= set(rows.tolist())  # gold first, then the top-scored
    with torch.no_grad():
        now = model.graph_encoder(word_embeddings)
    assert torch.allclose(fresh, now[rows], atol=1e-5)  # fresh: the current weights
    # The others score with the features step 1 computed (refresh and fresh rows alike), not with today's.
    assert torch.allclose(out.label_embeds, before, atol=1e-5)
    assert not torch.allclose(now, before, atol=1e-4)  # the weights did move
    features = out.label_embeds.index_copy(0, rows, fresh)
    text = out.text_embeds
    assert torch.allclose(out.logits, model._logits(text, features), atol=1e-5)
    out.loss.backward()
    graph_grads = [p.grad for p in model.graph_encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in graph_grads)
    # Gradients reach the label nodes of the fresh rows' neighbourhoods only.
    touched = model.graph_encoder.label_embeddings.weight.grad.abs().sum(1) > 0
    assert touched[rows].all() and not touched.all()


def test_kept_features_are_refreshed_and_evaluation_computes_every_label():
    model, input_ids, labels = sampled_model("hybrid", False, refresh=2)
    word_embeddings = model.text_encoder.get_input_embeddings()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        model(input_ids=input_ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = model(input_ids=input_ids, labels=labels)  # third step: refresh, then a fresh sample
    with torch.no_grad():
        now = model.graph_encoder(word_embeddings)
    assert torch.allclose(out.label_embeds, now, atol=1e-5)
    model.eval()
    with torch.no_grad():
        evaluated = model(input_ids=input_ids, labels=labels)
    assert torch.allclose(evaluated.label_embeds, now, atol=1e-5)
    assert torch.allclose(evaluated.logits, model._logits(evaluated.text_embeds, now), atol=1e-5)


@pytest.mark.parametrize("per_step", [None, "all", 120, "auto"])  # "auto": every label below 4,096 labels
def test_small_taxonomies_all_and_auto_compute_every_label_each_step(per_step):
    model, input_ids, labels = sampled_model("add", True, per_step=per_step)
    assert model.config.labels_per_step is None
    model(input_ids=input_ids, labels=labels)
    assert model._fresh_features is None and model._step_features is None


def test_labels_per_step_is_resolved_and_checked():
    wide = Taxonomy([f"l{i}" for i in range(5000)], [None] * 5000)
    assert make_model(wide).config.labels_per_step == 512  # "auto" above 4,096 labels
    assert make_model(chain_taxonomy(2), graph_labels_per_step="3").config.labels_per_step == 3  # from the CLI
    with pytest.raises(ValueError, match="graph_labels_per_step must be >= 1, 'auto' or None, got 0"):
        make_model(chain_taxonomy(2), graph_labels_per_step=0)
    with pytest.raises(ValueError, match="graph_labels_per_step must be 'auto', 'all' or a number, got 'some'"):
        make_model(chain_taxonomy(2), graph_labels_per_step="some")


@pytest.mark.parametrize("per_step", [10, None])
def test_sparse_graph_trains_and_evaluates_under_bfloat16_autocast(per_step):
    # The sparse kernels have no bfloat16 CPU implementation: they run in float32 with autocast off around them.
    model, input_ids, labels = sampled_model("add", True, per_step=per_step)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=input_ids, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.graph_encoder.layers[0].attention.qkv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=input_ids).logits
    assert logits.shape == labels.shape and torch.isfinite(logits).all()
