"""The model card's parts: readable labels and the cut of long levels in the taxonomy table, the sentence on what the
model is at inference for each fusion, a card without results or examples, the widget outputs of the embedded
default run's card, and the Hub metadata (base model, datasets, license, language) read back by `ModelCard.load`."""

import sys

import pytest
from conftest import ROOT, make_model
from huggingface_hub import ModelCard
from transformers import pipeline

from modeling_htla import DEFAULT_ENCODER_NAME, Taxonomy
from modeling_htla.decoding import display_label
from modeling_htla.model_card import at_inference, level_examples, model_card

sys.path.insert(0, str(ROOT))
from run_htc import base_model_id  # noqa: E402


def test_display_label_adds_the_name_only_when_it_says_more():
    tax = Taxonomy.from_parents({"C15": None, "C152": "C15", "Medical > Depression": None, "plain": None},
                                names={"C152": "COMMENT/FORECASTS", "Medical > Depression": "Depression"})
    shown = [display_label(tax, j) for j in range(len(tax))]
    assert shown == ["C15", "C152 — COMMENT/FORECASTS", "Medical > Depression", "plain"]


def test_long_level_ends_with_an_ellipsis_and_a_count():
    parents = {f"C{i}": None for i in range(40)}
    tax = Taxonomy.from_parents(parents, names={f"C{i}": f"Topic {i} | part" for i in range(40)})
    cell = level_examples(tax, 1, limit=100)
    shown, rest = cell.rsplit("; … (", 1)
    items = shown.split("; ")
    assert items[:2] == ["C0 — Topic 0 \\| part", "C1 — Topic 1 \\| part"]  # pipes escaped for the Markdown table
    assert rest == f"{40 - len(items)} more)" and len(shown) <= 100 and all(" — Topic " in item for item in items)
    assert level_examples(tax, 1, limit=10_000).count(";") == 39 and "…" not in level_examples(tax, 1, limit=10_000)
    one = Taxonomy.from_parents({"x": None}, names={"x": "a name far longer than the limit " * 5})
    assert level_examples(one, 1, limit=10) == display_label(one, 0)  # a label is never cut in the middle


def test_inference_sentence_follows_the_fusion(small_taxonomy):
    config = make_model(small_taxonomy).config
    assert "exactly a flat linear classifier" in at_inference(config)  # no `fusion` attribute: the paper's "add"
    config.fusion = "add"
    assert "b_j + w_j·f_j" in at_inference(config)
    config.fusion = "dot"
    assert "s·cos(h, f_j)" in at_inference(config) and "every prediction" in at_inference(config)
    config.fusion = "hybrid"
    assert "w_j·h + s·cos(h, f_j)" in at_inference(config) and "free linear classifier" in at_inference(config)
    config.fusion = "concat"
    with pytest.raises(ValueError, match="fusion: expected one of \\['add', 'dot', 'hybrid'\\], got 'concat'"):
        at_inference(config)
    flat = make_model(small_taxonomy, use_graph_encoder=False, use_tla=False).config
    assert "flat classifier" in at_inference(flat) and "no label graph" in at_inference(flat)


def test_card_without_results_or_examples_is_valid(small_taxonomy):
    card = model_card(make_model(small_taxonomy).config, model_name="org/m", dataset_name="d")
    loaded = ModelCard(str(card))
    assert loaded.data.eval_results is None and loaded.data.get("widget") is None
    assert "No evaluation results were recorded" in loaded.text
    assert "| 1 | 2 | a — Alpha topics; b |" in loaded.text and "| 2 | 3 | a1 — Alpha one; a2; b1 |" in loaded.text


def test_default_run_widget_outputs_are_the_pipelines_top_scores_with_names(icd10cm_trained):
    """The Hub widget cannot run the model, so the card's examples carry its outputs: on the embedded default run's
    checkpoint (ICD-10-CM, every label named), the text-classification pipeline's top 5, as `identifier — name`."""
    card = ModelCard.load(icd10cm_trained / "README.md")
    classify = pipeline("text-classification", model=str(icd10cm_trained), trust_remote_code=True)
    assert len(card.data.widget) == 3
    for example in card.data.widget:
        top = classify(example["text"], top_k=5)
        assert [item["label"] for item in example["output"]] == [f"{a['label']} — {a['name']}" for a in top]
        assert [item["score"] for item in example["output"]] == pytest.approx([a["score"] for a in top], abs=1e-4)
    assert "| 1 | 22 | 1 — Certain infectious and parasitic diseases (A00-B99);" in card.text


def test_card_metadata_round_trips_through_model_card_load(small_taxonomy, tmp_path):
    """`base_model`, `datasets`, `license` and `language` reach the Hub's metadata and read back, with the
    model-index as two `EvalResult`s."""
    card = model_card(make_model(small_taxonomy).config, model_name="org/m", dataset_name="org/data",
                      metrics={"test_micro_f1": 0.81234, "test_macro_f1": 0.6}, base_model=DEFAULT_ENCODER_NAME,
                      datasets=["org/data"], license="apache-2.0", language=["en"])
    card.save(tmp_path / "README.md")
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.datasets == ["org/data"]
    assert data.license == "apache-2.0" and data.language == ["en"]
    assert [(r.metric_name, r.metric_value, r.dataset_type) for r in data.eval_results] == [
        ("Micro-F1", 81.23, "org/data"), ("Macro-F1", 60.0, "org/data")]
    assert data.to_dict()["model-index"][0]["name"] == "org/m"


def test_run_htc_card_names_base_model_license_and_language(icd10cm_trained, encoder_dir, tmp_path):
    data = ModelCard.load(icd10cm_trained / "README.md").data
    assert data.license == "apache-2.0" and data.language == ["en"]  # the embedded ICD-10-CM data is English
    assert data.base_model is None and data.datasets is None  # a local encoder folder, no Hub dataset
    assert [r.metric_name for r in data.eval_results] == ["Micro-F1", "Macro-F1"]
    assert base_model_id(None) == base_model_id("all-MiniLM-L6-v2") == DEFAULT_ENCODER_NAME
    assert base_model_id("FacebookAI/roberta-base") == "FacebookAI/roberta-base" and base_model_id(encoder_dir) is None


def test_card_says_how_long_the_model_trained():
    """The card's results name their budget: one epoch and a run to convergence read differently."""
    from modeling_htla.model_card import training_budget

    assert training_budget({"num_train_epochs": 1.0, "max_steps": -1}) == "1 epoch of training"
    assert training_budget({"num_train_epochs": 3, "max_steps": -1, "early_stopping_patience": 1}) == \
        "training to convergence (at most 3 epochs, early stopping with patience 1)"
    assert training_budget({"num_train_epochs": 3, "max_steps": 4}) == "4 training steps"
