"""Inference Endpoints handler of an HTLA checkpoint (the custom-handler convention: `handler.py` with an
`EndpointHandler` class in the model repository).

Requests are the text-classification task's: `{"inputs": str | list[str], "parameters": {"top_k": k,
"function_to_apply": "sigmoid" | "softmax" | "none", "threshold": t}}` answers, per text, the labels sorted by score
(every label unless `top_k` is given), each `{"label", "name", "score", "predicted"}`; `{"parameters": {"output":
"paths", "threshold": t}}` answers the label paths the tree allows instead. Labels are decided at the model's decision
thresholds (learned per level on validation) unless `threshold` gives one number, or one per level. The file imports
only transformers: the model, its pipelines and taxonomy come from the checkpoint folder itself (`trust_remote_code`),
so serving needs neither network nor the htla package. The model is the class the folder's `auto_map` names: the
PyTorch `HTLAModel` in a checkpoint, `HTLAOnnxModel` (ONNX Runtime) in a folder exported by
`python -m modeling_htla.onnx`; both answer alike. A list of texts runs as the pipelines run it: in batches of similar
length, each padded to its own longest text, the answers in the list's order.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig
from transformers.dynamic_module_utils import get_class_from_dynamic_module

LABELS_TASK = "text-classification"
PATHS_TASK = "hierarchical-text-classification"
# `parameters.output` -> the pipeline that answers and the parameters it takes.
OUTPUTS = {"labels": (LABELS_TASK, ("top_k", "function_to_apply", "threshold")), "paths": (PATHS_TASK, ("threshold",))}


class EndpointHandler:
    """Loads the model and tokenizer from `path` (a checkpoint folder or Hub id) once; each call classifies texts."""

    def __init__(self, path: str = ""):
        auto_map = PretrainedConfig.get_config_dict(path)[0]["auto_map"]
        # The folder's own class, also where this process has another registered for HTLA's config (the htla package).
        model_class = get_class_from_dynamic_module(auto_map["AutoModelForSequenceClassification"], path)
        self.model = model_class.from_pretrained(path).eval()
        # Registered as the Auto class registers remote code, so the pipelines know the model class.
        AutoModelForSequenceClassification.register(type(self.model.config), model_class, exist_ok=True)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.pipelines = {
            task: get_class_from_dynamic_module(spec["impl"], path)(model=self.model, tokenizer=self.tokenizer)
            for task, spec in self.model.config.custom_pipelines.items()
        }

    def __call__(self, data: dict[str, Any]) -> list:
        """One answer (a list) per text for a list of texts; the answer itself for one text."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('request: expected a JSON object {"inputs": ..., "parameters": {...}}')
        inputs = data["inputs"]
        if not (isinstance(inputs, str) or isinstance(inputs, list) and all(isinstance(t, str) for t in inputs)):
            raise ValueError("inputs: expected a string or a list of strings, got "
                             f"{'None' if inputs is None else type(inputs).__name__}")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"parameters: expected a JSON object, got {type(parameters).__name__}")
        parameters = dict(parameters)
        output = parameters.pop("output", "labels")
        if output not in OUTPUTS:
            raise ValueError(f"parameters.output: expected one of {sorted(OUTPUTS)}, got {output!r}")
        task, allowed = OUTPUTS[output]
        unknown = sorted(set(parameters) - set(allowed))
        if unknown:
            raise ValueError(f"parameters: {', '.join(unknown)} not understood with output {output!r} "
                             f"(expected {', '.join(allowed)})")
        if output == "labels":
            parameters.setdefault("top_k", None)  # the task's top_k only limits when given
        if inputs == []:
            return []  # one answer per text (transformers' pipelines fail on an empty batch)
        return self.pipelines[task](inputs, **parameters)
