"""`HTLAOnnxModel`: an HTLA checkpoint exported by `python -m modeling_htla.onnx`, run by ONNX Runtime and shaped
like a `PreTrainedModel` for inference (as optimum's `ORTModelForSequenceClassification`), so that transformers'
pipelines, HTLA's own pipelines and the Inference Endpoints handler take it in place of the PyTorch model.

Shipped as `modeling_htla_onnx.py` in every exported folder, whose `auto_map` points the Auto classes here: on a
machine with onnxruntime and transformers only,
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` loads it.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime
import torch
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import cached_file

from configuration_htla import HTLAConfig

from .positions import cut_to_positions

ONNX_FILE = "model.onnx"
# `config.onnx_export`: what the exporter recorded (file, precision, opset, quantization settings, token limit, fused
# nodes, session options).
EXPORT_KEY = "onnx_export"
# `SessionOptions` attributes the exporter saves by the name of their enum value.
SESSION_ENUMS = {"graph_optimization_level": onnxruntime.GraphOptimizationLevel,
                 "execution_mode": onnxruntime.ExecutionMode}


def saved_session_options(settings: dict | None) -> onnxruntime.SessionOptions | None:
    """The `SessionOptions` of a folder's `onnx_export["session_options"]`; `None` (ONNX Runtime's defaults) for a
    folder exported before they were saved."""
    if not settings:
        return None
    options = onnxruntime.SessionOptions()
    for name, value in settings.items():
        setattr(options, name, getattr(SESSION_ENUMS[name], value) if name in SESSION_ENUMS else value)
    return options


class HTLAOnnxModel:
    """The exported graph (text encoder, pooling and the head with the label features folded in) in an ONNX Runtime
    session, with `config` the checkpoint's `HTLAConfig` (taxonomy, labels, thresholds) and the call of the PyTorch
    model: `model(input_ids=..., attention_mask=...).logits` is `[B, L]`, a torch tensor.

    Runs on the CPU (`device` is `cpu`); pass `providers` to `from_pretrained` for another ONNX Runtime provider.
    """

    config_class = HTLAConfig
    main_input_name = "input_ids"
    input_modalities = ("text",)
    training = False

    def __init__(self, session: onnxruntime.InferenceSession, config: HTLAConfig, name_or_path: str = ""):
        self.session = session
        self.config = config
        self.name_or_path = name_or_path
        self.input_names = [node.name for node in session.get_inputs()]
        self.max_positions = getattr(config, EXPORT_KEY, {}).get("max_positions")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, config: HTLAConfig | None = None,
                        session_options: onnxruntime.SessionOptions | None = None, providers: list | None = None,
                        **kwargs) -> HTLAOnnxModel:
        """Load an exported folder (or Hub repository), its session opened with the options saved by the export
        unless `session_options` are given. Other keyword arguments (those transformers' Auto classes and `pipeline`
        pass, such as `trust_remote_code` or `dtype`) are accepted and ignored: the graph has its own precision."""
        path = str(pretrained_model_name_or_path)
        if config is None:
            config = HTLAConfig.from_pretrained(path)
        record = getattr(config, EXPORT_KEY, {})
        file_name = record.get("file", ONNX_FILE)
        hub = {key: kwargs[key] for key in ("cache_dir", "revision", "token", "local_files_only") if key in kwargs}
        model_file = os.path.join(path, file_name) if os.path.isdir(path) else cached_file(path, file_name, **hub)
        if not os.path.isfile(model_file):
            raise OSError(f"{model_file}: missing (an exported HTLA folder holds its graph as {file_name})")
        if session_options is None:
            session_options = saved_session_options(record.get("session_options"))
        session = onnxruntime.InferenceSession(model_file, session_options,
                                               providers=providers or ["CPUExecutionProvider"])
        return cls(session, config, path)

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModel"):
        """Called by transformers' Auto classes when they load this class as remote code; nothing to record."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def to(self, device=None, *args, **kwargs) -> HTLAOnnxModel:
        """Stay on the CPU (what pipelines ask by default); another device is an error naming the provider to use."""
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"device: an ONNX Runtime model runs where its session's providers run, not on {device} "
                             "(pass providers=[...] to HTLAOnnxModel.from_pretrained)")
        return self

    def eval(self) -> HTLAOnnxModel:
        return self

    def can_generate(self) -> bool:
        return False

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs) -> SequenceClassifierOutput:
        """`[B, L]` logits for `[B, S]` token ids (torch tensors or numpy arrays). Inputs longer than the encoder's
        positions are cut as the PyTorch model cuts them; `token_type_ids` are passed when the graph takes them."""
        input_ids = torch.as_tensor(input_ids)
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else torch.as_tensor(attention_mask)
        token_type_ids = torch.zeros_like(input_ids) if token_type_ids is None else torch.as_tensor(token_type_ids)
        inputs = dict(zip(("input_ids", "attention_mask", "token_type_ids"),
                          cut_to_positions(input_ids, attention_mask, token_type_ids, self.max_positions)))
        feeds = {name: inputs[name].numpy().astype(np.int64) for name in self.input_names}
        (logits,) = self.session.run(["logits"], feeds)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))

    __call__ = forward


__all__ = ["HTLAOnnxModel"]
