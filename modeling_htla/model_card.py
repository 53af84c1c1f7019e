"""The model card (README.md) of an HTLA checkpoint: Hub metadata (widget, model-index) and a readable report."""

from __future__ import annotations

from collections import Counter

import yaml

from configuration_htla import HTLAConfig

CITATION = """@inproceedings{kumar2024htla,
  title     = {Modeling Text-Label Alignment for Hierarchical Text Classification},
  author    = {Kumar, Ashish and Toshniwal, Durga},
  booktitle = {Machine Learning and Knowledge Discovery in Databases (ECML PKDD 2024)},
  year      = {2024},
  eprint    = {2409.00788},
  archivePrefix = {arXiv}
}"""

HYPER_PARAMETERS = ("pooling", "use_graph_encoder", "graph_num_layers", "graph_num_heads", "edge_dim", "use_tla",
                    "tla_weight", "tla_temperature", "negative_mining", "num_negatives")
TRAINING_ARGUMENTS = ("learning_rate", "head_learning_rate", "per_device_train_batch_size", "num_train_epochs",
                      "max_steps", "warmup_steps", "weight_decay", "seed")


def _percent(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def model_card(
    config: HTLAConfig,
    model_name: str,
    dataset_name: str,
    metrics: dict[str, float] | None = None,
    metrics_split: str = "test",
    widget_texts: list[str] | None = None,
    training_arguments: dict | None = None,
    base_model: str | None = None,
) -> str:
    """README.md text for a checkpoint. `metrics` are the metric module's keys (optionally with a split prefix)."""
    taxonomy = config.get_taxonomy()
    metrics = {key.split("_", 1)[1] if key.startswith(f"{metrics_split}_") else key: value
               for key, value in (metrics or {}).items()}
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["htla", "hierarchical-text-classification", "multi-label-classification", "text-classification"],
    }
    if base_model:
        metadata["base_model"] = base_model
    if widget_texts:
        metadata["widget"] = [{"text": text} for text in widget_texts]
    if "micro_f1" in metrics:
        metadata["model-index"] = [{
            "name": model_name,
            "results": [{
                "task": {"type": "text-classification", "name": "Hierarchical text classification"},
                "dataset": {"name": dataset_name, "type": dataset_name, "split": metrics_split},
                "metrics": [
                    {"type": "f1", "name": "Micro-F1", "value": round(100 * metrics["micro_f1"], 2)},
                    {"type": "f1", "name": "Macro-F1", "value": round(100 * metrics["macro_f1"], 2)},
                ],
            }],
        }]

    per_level = Counter(taxonomy.depths)
    levels = "\n".join(f"| {depth} | {per_level[depth]} | {', '.join(taxonomy.labels[i] for i, d in enumerate(taxonomy.depths) if d == depth)[:120]} |"
                       for depth in sorted(per_level))
    settings = "\n".join(f"| `{key}` | {getattr(config, key)} |" for key in HYPER_PARAMETERS)
    settings += "".join(f"\n| `{key}` | {training_arguments[key]} |" for key in TRAINING_ARGUMENTS
                        if training_arguments and training_arguments.get(key) is not None)
    if "micro_f1" in metrics:
        rows = [("all labels", metrics.get("micro_f1"), metrics.get("macro_f1"))]
        rows += [(f"level {d}", metrics.get(f"level_{d}_micro_f1"), metrics.get(f"level_{d}_macro_f1"))
                 for d in sorted(per_level)]
        results = "| labels | Micro-F1 | Macro-F1 |\n| --- | --- | --- |\n" + "\n".join(
            f"| {name} | {_percent(micro)} | {_percent(macro)} |" for name, micro, macro in rows)
        results += f"\n\nMeasured on the {metrics_split} split of {dataset_name} (sigmoid > 0.5; Macro-F1 is the mean " \
                   "per-label F1 over all taxonomy labels)."
    else:
        results = "No evaluation results were recorded for this checkpoint."
    example = (widget_texts or ["A document to classify."])[0].replace('"', "'")[:200]

    body = f"""
# {model_name}

A hierarchical text classifier trained with **HTLA** (Kumar & Toshniwal, *Modeling Text-Label Alignment for
Hierarchical Text Classification*, ECML-PKDD 2024). HTLA encodes the text with a pretrained encoder
({config.text_config.model_type}, {config.text_config.num_hidden_layers} layers, hidden size {config.hidden_size}),
encodes the label tree with a graph transformer (GPTrans), adds the text vector to every label vector and scores
each sum with one shared linear classifier; training adds a Text-Label Alignment loss to BCE.

## Taxonomy

{len(taxonomy)} labels on {taxonomy.num_levels} levels; a prediction is a set of labels, normally a path from the
top level down.

| level | labels | examples |
| --- | --- | --- |
{levels}

## Training data and hyper-parameters

Trained on {dataset_name}.

| setting | value |
| --- | --- |
{settings}

## Results

{results}

## Usage

```python
from transformers import pipeline

# One score per label (sigmoid), what the Hub widget shows:
classifier = pipeline("text-classification", model="{model_name}", trust_remote_code=True, top_k=None)
classifier("{example}")

# Label paths consistent with the tree:
htc = pipeline("hierarchical-text-classification", model="{model_name}", trust_remote_code=True)
htc(["{example}"], threshold=0.5)
```

```python
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{model_name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_name}", trust_remote_code=True)
probabilities = model(**tokenizer("{example}", return_tensors="pt")).logits.sigmoid()
```

## Limitations

- The model only predicts labels of its own taxonomy; new labels need retraining.
- Scores are independent sigmoids: plain thresholding can give a child without its parent; the
  `hierarchical-text-classification` pipeline decodes top-down to keep answers consistent with the tree.
- Texts are truncated to the encoder's maximum length; rare labels are learned less well than frequent ones
  (see the frequency-group results in `all_results.json` when present).

## Citation

```bibtex
{CITATION}
```
"""
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n" + body
