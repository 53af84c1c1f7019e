"""HTLA's pipelines: `text-classification` with readable label names, and `hierarchical-text-classification`, the
predicted label paths consistent with the tree.

Both answer a label by its identifier in `label` (what `config.id2label` holds, so `config.label2id[answer["label"]]`
keeps working) and by its readable name in `name` (the taxonomy's names; the identifier when a label has none).

Both decide labels at the model's decision thresholds (`config.decision_thresholds`, learned per level on validation
by `run_htc.py`; 0.5 without them) unless the call gives `threshold`: one number for every label, or one per level.

Both run a list of texts in batches of similar length (`batch_size`, default 32), each padded to its own longest text,
and answer in the list's order.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from transformers import Pipeline, TextClassificationPipeline
from transformers.pipelines.text_classification import ClassificationFunction

from .batching import length_sorted_batches
from .decoding import decode_scores, path_answer, path_ends

# Texts per forward pass when a call gives a list and neither it nor the pipeline gives `batch_size`.
LIST_BATCH_SIZE = 32


def check_threshold(threshold, num_levels: int):
    """`threshold` as a call gives it (`None`, a number, or one number per level), or a one-line `ValueError`."""

    def is_probability(value) -> bool:
        return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1

    if threshold is None or is_probability(threshold):
        return threshold
    if isinstance(threshold, (list, tuple)) and len(threshold) == num_levels and all(map(is_probability, threshold)):
        return list(threshold)
    raise ValueError(f"threshold: expected a number between 0 and 1, or {num_levels} of them (one per level), "
                     f"got {threshold!r}")


def label_thresholds(config, taxonomy, threshold=None) -> np.ndarray:
    """Every label's decision threshold `[L]`: the call's `threshold` (checked by `check_threshold`) or the model's,
    spread over `taxonomy`'s labels (the pipeline's own, built once rather than from the config on every text)."""
    if threshold is None:
        threshold = config.decision_thresholds or 0.5
    if isinstance(threshold, list):
        return np.asarray(taxonomy.per_label(threshold))
    return np.full(len(taxonomy), float(threshold))


class LengthBatching:
    """Pipeline mixin: a list of texts runs in batches of similar length (`length_sorted_batches`, so each is padded to
    its own longest text rather than the list's), the answers put back in the list's order. Other inputs run as the
    pipeline runs them."""

    def __call__(self, inputs, *args, batch_size: int | None = None, **kwargs):
        if not (isinstance(inputs, list) and len(inputs) > 1 and all(isinstance(text, str) for text in inputs)):
            return super().__call__(inputs, *args, batch_size=batch_size, **kwargs)
        batch_size = batch_size or self._batch_size or LIST_BATCH_SIZE
        lengths = [len(ids) for ids in self.tokenizer(inputs, truncation=True)["input_ids"]]
        answers = [None] * len(inputs)
        for rows in length_sorted_batches(lengths, batch_size):
            batch = super().__call__([inputs[row] for row in rows], *args, batch_size=len(rows), **kwargs)
            for row, answer in zip(rows, batch):
                answers[row] = answer
        return answers


class HTLATextClassificationPipeline(LengthBatching, TextClassificationPipeline):
    """transformers' `text-classification` pipeline (sigmoid scores, `top_k`, `function_to_apply`), each answer with
    the label's readable `name` next to its identifier `label`, and `predicted`: whether the label's sigmoid score is
    above its decision threshold (`threshold` when the call gives one)."""

    def _sanitize_parameters(self, function_to_apply=None, top_k="", threshold=None, **tokenizer_kwargs):
        if isinstance(function_to_apply, str) and function_to_apply.upper() not in ClassificationFunction.__members__:
            raise ValueError(f"function_to_apply: expected one of {[f.value for f in ClassificationFunction]}, "
                             f"got {function_to_apply!r}")
        if top_k not in ("", None) and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k: expected a positive integer or None (every label), got {top_k!r}")
        threshold = check_threshold(threshold, self.taxonomy.num_levels)
        preprocess, forward, postprocess = super()._sanitize_parameters(
            function_to_apply=function_to_apply, top_k=top_k, **tokenizer_kwargs)
        return preprocess, forward, {**postprocess, "threshold": threshold}

    @cached_property
    def taxonomy(self):
        return self.model.config.get_taxonomy()

    @cached_property
    def label_names(self) -> dict[str, str]:
        """Identifier -> readable name of every label."""
        taxonomy = self.model.config.taxonomy
        return dict(zip(taxonomy["labels"], taxonomy["names"]))

    def _forward(self, model_inputs):
        # The logits only: a batch's other outputs are not all per text (the label features are `[L, H]`).
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs, threshold=None, **kwargs):
        result = super().postprocess(model_outputs, **kwargs)
        predicted = model_outputs["logits"][0].float().sigmoid().numpy() > label_thresholds(
            self.model.config, self.taxonomy, threshold)
        label2id = self.model.config.label2id

        def named(answer: dict) -> dict:
            return {"label": answer["label"], "name": self.label_names[answer["label"]], "score": answer["score"],
                    "predicted": bool(predicted[label2id[answer["label"]]])}

        return [named(answer) for answer in result] if isinstance(result, list) else named(result)


class HierarchicalTextClassificationPipeline(LengthBatching, Pipeline):
    """Predicts label paths such as `{"label": "cs > ml", "name": "Computer Science > Machine learning", "score": 0.93}`
    with the score of their deepest label.

    A child label is kept only under a kept parent (top-down decoding), so every answer is a sub-tree of the
    taxonomy. Call arguments: `threshold` (one number, or one per level; default the model's decision thresholds),
    `max_length` (tokens kept per text, default the model's).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, threshold=None, max_length: int | None = None, **kwargs):
        threshold = check_threshold(threshold, self.taxonomy.num_levels)
        preprocess = {"max_length": max_length} if max_length is not None else {}
        return preprocess, {}, {"threshold": threshold}

    @cached_property
    def taxonomy(self):
        return self.model.config.get_taxonomy()

    def preprocess(self, text: str, max_length: int | None = None):
        if not isinstance(text, str):
            raise ValueError(f"hierarchical-text-classification expects a string, got {type(text).__name__}")
        max_length = max_length or self.model.config.text_config.max_position_embeddings
        return self.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")

    def _forward(self, inputs):
        return {"logits": self.model(**inputs).logits}

    def postprocess(self, outputs, threshold=None):
        scores = outputs["logits"][0].float().sigmoid().numpy()
        thresholds = label_thresholds(self.model.config, self.taxonomy, threshold)
        chosen = decode_scores(scores[None], self.taxonomy, thresholds, "consistent")[0]
        return [path_answer(self.taxonomy, j, score) for j, score in path_ends(scores, chosen, self.taxonomy)]


__all__ = ["HTLATextClassificationPipeline", "HierarchicalTextClassificationPipeline", "LengthBatching"]
