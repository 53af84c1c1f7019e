"""The model card (README.md) of an HTLA checkpoint, built with `huggingface_hub`'s `ModelCard`: Hub metadata (widget
examples with the model's own outputs, model-index from `EvalResult`s) and a readable report."""

from __future__ import annotations

from collections import Counter

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from configuration_htla import HTLAConfig

from .decoding import display_label
from .pipeline import HTLATextClassificationPipeline
from .taxonomy import Taxonomy

CITATION = """@inproceedings{kumar2024htla,
  title     = {Modeling Text-Label Alignment for Hierarchical Text Classification},
  author    = {Kumar, Ashish and Toshniwal, Durga},
  booktitle = {Machine Learning and Knowledge Discovery in Databases (ECML PKDD 2024)},
  year      = {2024},
  eprint    = {2409.00788},
  archivePrefix = {arXiv}
}"""

HYPER_PARAMETERS = ("pooling", "use_graph_encoder", "fusion", "graph_num_layers", "graph_hidden_size",
                    "graph_num_heads", "edge_dim", "use_tla", "tla_weight", "tla_temperature", "cosine_scale_init",
                    "negative_mining", "num_negatives")
TRAINING_ARGUMENTS = ("learning_rate", "head_learning_rate", "per_device_train_batch_size", "num_train_epochs",
                      "max_steps", "warmup_steps", "weight_decay", "seed")
WIDGET_TOP_K = 5  # label scores stored per widget example
LEVEL_EXAMPLES_CHARS = 160  # length of a taxonomy-table cell before it is cut with "…"

# What the model computes at inference, per `config.fusion` (h: text feature, f_j: GPTrans feature of label j).
AT_INFERENCE = {
    "add": "At inference this model is exactly a flat linear classifier on the text feature: `logit_j = w_j·(h + f_j) "
           "+ b_j = w_j·h + (b_j + w_j·f_j)`, so each label's graph feature only adds a fixed per-label bias; the "
           "label graph shapes the predictions through training, not at inference.",
    "dot": "At inference the label graph takes part in every prediction: each label's graph feature is its classifier "
           "weight, `logit_j = s·cos(h, f_j) + b_j` (a scaled cosine between the text and label features).",
    "hybrid": "At inference the label graph takes part in every prediction, beside a free linear classifier: "
              "`logit_j = w_j·h + s·cos(h, f_j) + b_j` (a flat classifier plus the scaled cosine between the text and "
              "label features).",
}
AT_INFERENCE_FLAT = ("At inference this model is a flat classifier: one linear layer scores every label from the text "
                     "feature, with no label graph.")


def _percent(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def at_inference(config: HTLAConfig) -> str:
    """One sentence on what the model computes at inference, for the fusion it uses."""
    if not config.use_graph_encoder:
        return AT_INFERENCE_FLAT
    fusion = getattr(config, "fusion", "add")
    if fusion not in AT_INFERENCE:
        raise ValueError(f"fusion: expected one of {sorted(AT_INFERENCE)}, got {fusion!r}")
    return AT_INFERENCE[fusion]


def level_examples(taxonomy: Taxonomy, depth: int, limit: int = LEVEL_EXAMPLES_CHARS) -> str:
    """The labels of one level as `identifier — name`, in taxonomy order, cut after whole labels at about `limit`
    characters and then ending with "…" and how many are not shown."""
    ids = [j for j, d in enumerate(taxonomy.depths) if d == depth]
    shown: list[str] = []
    for j in ids:
        label = display_label(taxonomy, j)
        if shown and len("; ".join(shown + [label])) > limit:
            break
        shown.append(label)
    text = "; ".join(shown) + (f"; … ({len(ids) - len(shown)} more)" if len(shown) < len(ids) else "")
    return text.replace("|", "\\|")


def widget_examples(model, tokenizer, texts: list[str], top_k: int = WIDGET_TOP_K) -> list[dict]:
    """`widget:` entries for the card: each text with the model's own top `top_k` label scores, labels written as
    `identifier — name` for the Hub page (which cannot run remote-code models itself)."""
    if not texts:
        return []
    classify = HTLATextClassificationPipeline(model=model.eval(), tokenizer=tokenizer, device=model.device)
    taxonomy = model.config.get_taxonomy()
    return [
        {"text": text, "output": [{"label": display_label(taxonomy, taxonomy.label2id[item["label"]]),
                                   "score": round(item["score"], 4)} for item in answer]}
        for text, answer in zip(texts, classify(texts, top_k=top_k, truncation=True))
    ]


def training_budget(training_arguments: dict | None) -> str:
    """How long the model trained, as the results are read: a number of epochs (or steps), or up to a number of epochs
    under early stopping."""
    arguments = training_arguments or {}
    if arguments.get("max_steps", -1) > 0:
        return f"{arguments['max_steps']} training steps"
    epochs = arguments.get("num_train_epochs")
    if epochs is None:
        return "training"
    budget = f"{epochs:g} epoch{'s' if epochs != 1 else ''} of training"
    if arguments.get("early_stopping_patience"):
        budget = f"training to convergence (at most {budget.split(' of ')[0]}, early stopping with patience " \
                 f"{arguments['early_stopping_patience']})"
    return budget


def model_card(
    config: HTLAConfig,
    model_name: str,
    dataset_name: str,
    metrics: dict[str, float] | None = None,
    metrics_split: str = "test",
    widget: list[dict] | None = None,
    training_arguments: dict | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
    language: list[str] | None = None,
    training_outcome: dict | None = None,
) -> ModelCard:
    """The card of a checkpoint. `metrics` are the metric module's keys (optionally with a split prefix); `widget`
    comes from `widget_examples`. The Hub reads the rest of the metadata: `base_model` (the text encoder's Hub id,
    for the model tree), `datasets` (Hub dataset ids), `license` and `language` (ISO 639-1 codes), each left out when
    `None`. `training_outcome` (`trainer.training_outcome`) says how training ended and which epoch was kept."""
    taxonomy = config.get_taxonomy()
    metrics = {key.split("_", 1)[1] if key.startswith(f"{metrics_split}_") else key: value
               for key, value in (metrics or {}).items()}
    eval_results = None
    if "micro_f1" in metrics:
        eval_results = [
            EvalResult(task_type="text-classification", task_name="Hierarchical text classification",
                       dataset_type=dataset_name, dataset_name=dataset_name, dataset_split=metrics_split,
                       metric_type="f1", metric_name=name, metric_value=round(100 * metrics[key], 2))
            for key, name in (("micro_f1", "Micro-F1"), ("macro_f1", "Macro-F1"))
        ]
    data = ModelCardData(
        model_name=model_name, base_model=base_model, datasets=datasets, license=license, language=language,
        library_name="transformers", pipeline_tag="text-classification",
        tags=["htla", "hierarchical-text-classification", "multi-label-classification", "text-classification"],
        eval_results=eval_results, widget=widget or None,
    )

    per_level = Counter(taxonomy.depths)
    levels = "\n".join(f"| {depth} | {per_level[depth]} | {level_examples(taxonomy, depth)} |"
                       for depth in sorted(per_level))
    settings = "\n".join(f"| `{key}` | {getattr(config, key)} |" for key in HYPER_PARAMETERS if hasattr(config, key))
    settings += "".join(f"\n| `{key}` | {training_arguments[key]} |" for key in TRAINING_ARGUMENTS
                        if training_arguments and training_arguments.get(key) is not None)
    if "micro_f1" in metrics:
        rows = [("all labels", metrics.get("micro_f1"), metrics.get("macro_f1"))]
        rows += [(f"level {d}", metrics.get(f"level_{d}_micro_f1"), metrics.get(f"level_{d}_macro_f1"))
                 for d in sorted(per_level)]
        results = "| labels | Micro-F1 | Macro-F1 |\n| --- | --- | --- |\n" + "\n".join(
            f"| {name} | {_percent(micro)} | {_percent(macro)} |" for name, micro, macro in rows)
        if "learned_micro_f1" in metrics:
            results += f"\n| all labels, learned thresholds | {_percent(metrics['learned_micro_f1'])} | " \
                       f"{_percent(metrics['learned_macro_f1'])} |"
        results += f"\n\nMeasured on the {metrics_split} split of {dataset_name} after {training_budget(training_arguments)} " \
                   "(sigmoid > 0.5 unless the row says otherwise; Macro-F1 is the mean per-label F1 over all taxonomy labels)."
    else:
        results = "No evaluation results were recorded for this checkpoint."
    if training_outcome:
        kept = training_outcome.get("best_epoch")
        results += f"\n\nTraining stopped after {training_outcome['epochs_trained']:g} epochs: " \
                   f"{training_outcome['stop_reason']}. " + (
                       f"The checkpoint kept is that of epoch {kept:g}, the best on validation." if kept is not None
                       else "The checkpoint kept is the last one.")
    if config.decision_thresholds:
        results += "\n\n**Decision thresholds**, learned on the validation split to maximize its Macro-F1 and used by " \
                   "both pipelines, `handler.py` and the demo unless a call gives `threshold`: " + ", ".join(
                       f"level {depth} {value:.2f}" for depth, value in enumerate(config.decision_thresholds, 1)) + "."
    else:
        results += "\n\nLabels are predicted at a score above 0.5 (no thresholds were learned)."
    unseen = [taxonomy.label2id[label] for label in getattr(config, "labels_without_examples", None) or []]
    added = ""
    if unseen:
        parents = [taxonomy.parent_ids[j] for j in unseen]
        listed = "\n".join(f"- {display_label(taxonomy, j)} ("
                           f"{'under ' + display_label(taxonomy, p) if p >= 0 else 'top level'})"
                           for j, p in zip(unseen, parents))
        added = f"""
## Labels added without training examples

These {len(unseen)} labels were added to the taxonomy after training (`HTLAModel.extend_taxonomy`) and no training
example has had them since (`config.labels_without_examples`). The model scores them from their names, as its text
encoder reads them, and from their places in the tree; expect them to be predicted less reliably than the trained
labels.

{listed}
"""
    texts = [entry["text"] for entry in widget or []]
    example = (texts or ["A document to classify."])[0].replace('"', "'")[:200]
    if config.use_graph_encoder:
        architecture = "a graph transformer (GPTrans) over the label tree, trained with BCE" + (
            f" plus the Text-Label Alignment loss (λ = {config.tla_weight})" if config.use_tla else "")
    else:
        architecture = "one linear classifier over all labels, trained with BCE (the flat baseline)"

    body = f"""
# {model_name}

A hierarchical text classifier from the `htla` package, which implements **HTLA** (Kumar & Toshniwal, *Modeling
Text-Label Alignment for Hierarchical Text Classification*, ECML-PKDD 2024): a pretrained text encoder
({config.text_config.model_type}, {config.text_config.num_hidden_layers} layers, hidden size {config.hidden_size}) and
{architecture}.

{at_inference(config)}

## Taxonomy

{len(taxonomy)} labels on {taxonomy.num_levels} levels; a prediction is a set of labels, normally a path from the
top level down. A label has an identifier (`config.id2label`) and a readable name, written `identifier — name`.

| level | count | labels (identifier — name) |
| --- | --- | --- |
{levels}
{added}
## Training data and hyper-parameters

Trained on {dataset_name}.

| setting | value |
| --- | --- |
{settings}

## Results

{results}

## Usage

The Hub's widget cannot run models that need `trust_remote_code`; the examples on this page show this model's own
scores, computed when the card was written. Both pipelines answer each label by its identifier (`label`, as in
`config.id2label`) and its readable name (`name`).

```python
from transformers import pipeline

# One sigmoid score per label, best first:
classifier = pipeline("text-classification", model="{model_name}", trust_remote_code=True, top_k=5)
classifier("{example}")   # [{{"label": ..., "name": ..., "score": ..., "predicted": ...}}, ...]

# Label paths consistent with the tree:
htc = pipeline("hierarchical-text-classification", model="{model_name}", trust_remote_code=True)
htc(["{example}"])   # at the decision thresholds: [[{{"label": "a > b", "name": "A > B", "score": ...}}]]
```

```python
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{model_name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_name}", trust_remote_code=True)
probabilities = model(**tokenizer("{example}", return_tensors="pt")).logits.sigmoid()
```

**Inference Endpoints.** This repository holds a custom `handler.py`: deploy it as an Inference Endpoint and send
`{{"inputs": "a text", "parameters": {{"top_k": 5}}}}` for label scores, or
`{{"inputs": "a text", "parameters": {{"output": "paths"}}}}` for the predicted paths (`"threshold"` overrides the
decision thresholds: one number, or one per level).

**Demo.** `python -m modeling_htla.space {model_name} --output_dir space/` (in the htla repository) writes a Gradio
Space for this model: predicted paths, scores per level and the whole tree, with a threshold slider per level that
starts at the decision thresholds.

## Limitations

- The model only predicts labels of its own taxonomy. Labels can be added without retraining
  (`HTLAModel.extend_taxonomy`, or `run_htc.py` with a bigger `--taxonomy_file`) to models with `fusion="dot"` or
  `"hybrid"`, scored from their names and places in the tree; they are predicted less reliably than trained labels.
- Scores are independent sigmoids: plain thresholding can give a child without its parent; the
  `hierarchical-text-classification` pipeline decodes top-down to keep answers consistent with the tree.
- Texts are truncated to the encoder's maximum length; rare labels are learned less well than frequent ones
  (see the frequency-group results in `all_results.json` when present).

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def onnx_card(card: ModelCard, export: dict) -> ModelCard:
    """The card of an ONNX export (`python -m modeling_htla.onnx`): the checkpoint's card, its metadata kept, tagged
    `onnx` and with a section on what the folder serves. `export` is the config's `onnx_export` record."""
    data = card.data
    data.tags = sorted(set(data.tags or []) | {"onnx"})
    settings = export.get("quantization")
    precision = ("float32" if not settings else "int8, dynamically quantized with onnxruntime.quantization (" +
                 ", ".join(f"{key}={value}" for key, value in settings.items()) + ")")
    fused = export.get("fused_nodes")
    fused = (f" Its attention, layer norms and GELU are fused into ONNX Runtime's kernels by its transformer optimizer "
             f"({', '.join(f'{count} {op}' for op, count in fused.items())}).") if fused else ""
    section = f"""## ONNX Runtime export

This folder serves the model with ONNX Runtime: `{export["file"]}` ({precision}, opset {export["opset"]}) is the text
encoder, its pooling and the head, with the label features computed once and folded in as constants (no label graph
runs at inference).{fused} The logits differ from the PyTorch checkpoint's by at most {export.get("max_abs_logit_difference",
float("nan")):.1e} on the exporter's sample texts. It needs `onnxruntime` and `transformers`, not the htla package:
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` loads it as `HTLAOnnxModel`, which
both pipelines and `handler.py` take like the PyTorch model (the usage below works unchanged).
"""
    title, _, rest = card.text.lstrip("\n").partition("\n")
    body = f"{title}\n\n{section}{rest}" if title.startswith("# ") else f"{section}\n{card.text}"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
