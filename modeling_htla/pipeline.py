"""The `hierarchical-text-classification` pipeline: per text, the predicted label paths consistent with the tree."""

from __future__ import annotations

from transformers import Pipeline

from .decoding import decode_scores, predicted_paths


class HierarchicalTextClassificationPipeline(Pipeline):
    """Predicts label paths such as `"Computer Science > Machine learning"` with the score of their deepest label.

    A child label is kept only under a kept parent (top-down decoding), so every answer is a sub-tree of the
    taxonomy. Call arguments: `threshold` (default 0.5), `max_length` (tokens kept per text, default the model's).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, threshold: float | None = None, max_length: int | None = None, **kwargs):
        preprocess = {"max_length": max_length} if max_length is not None else {}
        postprocess = {"threshold": threshold} if threshold is not None else {}
        return preprocess, {}, postprocess

    def preprocess(self, text: str, max_length: int | None = None):
        if not isinstance(text, str):
            raise ValueError(f"hierarchical-text-classification expects a string, got {type(text).__name__}")
        max_length = max_length or self.model.config.text_config.max_position_embeddings
        return self.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")

    def _forward(self, inputs):
        return {"logits": self.model(**inputs).logits}

    def postprocess(self, outputs, threshold: float = 0.5):
        if not hasattr(self, "_taxonomy"):
            self._taxonomy = self.model.config.get_taxonomy()
        scores = outputs["logits"][0].float().sigmoid().numpy()
        chosen = decode_scores(scores[None], self._taxonomy, threshold, "consistent")[0]
        return [{"label": path, "score": score} for path, score in predicted_paths(scores, chosen, self._taxonomy)]


__all__ = ["HierarchicalTextClassificationPipeline"]
