"""HTLA's pipelines: `text-classification` with readable label names, and `hierarchical-text-classification`, the
predicted label paths consistent with the tree.

Both answer a label by its identifier in `label` (what `config.id2label` holds, so `config.label2id[answer["label"]]`
keeps working) and by its readable name in `name` (the taxonomy's names; the identifier when a label has none).
"""

from __future__ import annotations

from functools import cached_property

from transformers import Pipeline, TextClassificationPipeline
from transformers.pipelines.text_classification import ClassificationFunction

from .decoding import decode_scores, path_answer, path_ends


class HTLATextClassificationPipeline(TextClassificationPipeline):
    """transformers' `text-classification` pipeline (sigmoid scores, `top_k`, `function_to_apply`), each answer with
    the label's readable `name` next to its identifier `label`."""

    def _sanitize_parameters(self, function_to_apply=None, top_k="", **tokenizer_kwargs):
        if isinstance(function_to_apply, str) and function_to_apply.upper() not in ClassificationFunction.__members__:
            raise ValueError(f"function_to_apply: expected one of {[f.value for f in ClassificationFunction]}, "
                             f"got {function_to_apply!r}")
        if top_k not in ("", None) and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k: expected a positive integer or None (every label), got {top_k!r}")
        return super()._sanitize_parameters(function_to_apply=function_to_apply, top_k=top_k, **tokenizer_kwargs)

    @cached_property
    def label_names(self) -> dict[str, str]:
        """Identifier -> readable name of every label."""
        taxonomy = self.model.config.taxonomy
        return dict(zip(taxonomy["labels"], taxonomy["names"]))

    def postprocess(self, model_outputs, **kwargs):
        result = super().postprocess(model_outputs, **kwargs)

        def named(answer: dict) -> dict:
            return {"label": answer["label"], "name": self.label_names[answer["label"]], "score": answer["score"]}

        return [named(answer) for answer in result] if isinstance(result, list) else named(result)


class HierarchicalTextClassificationPipeline(Pipeline):
    """Predicts label paths such as `{"label": "cs > ml", "name": "Computer Science > Machine learning", "score": 0.93}`
    with the score of their deepest label.

    A child label is kept only under a kept parent (top-down decoding), so every answer is a sub-tree of the
    taxonomy. Call arguments: `threshold` (default 0.5), `max_length` (tokens kept per text, default the model's).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, threshold: float | None = None, max_length: int | None = None, **kwargs):
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 <= threshold <= 1):
            raise ValueError(f"threshold: expected a number between 0 and 1, got {threshold!r}")
        preprocess = {"max_length": max_length} if max_length is not None else {}
        postprocess = {"threshold": threshold} if threshold is not None else {}
        return preprocess, {}, postprocess

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

    def postprocess(self, outputs, threshold: float = 0.5):
        scores = outputs["logits"][0].float().sigmoid().numpy()
        chosen = decode_scores(scores[None], self.taxonomy, threshold, "consistent")[0]
        return [path_answer(self.taxonomy, j, score) for j, score in path_ends(scores, chosen, self.taxonomy)]


__all__ = ["HTLATextClassificationPipeline", "HierarchicalTextClassificationPipeline"]
