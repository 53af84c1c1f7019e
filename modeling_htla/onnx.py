"""Export an HTLA checkpoint to ONNX, optionally quantized to int8, as a folder that serves without this package.

    python -m modeling_htla.onnx CHECKPOINT OUTPUT_DIR [--quantize int8] [--threads N]

The exported graph is the text encoder, its pooling and the head, with the label features folded in as constants:
at inference they do not depend on the text, so GPTrans (sparse kernels, custom autograd functions) is computed once
here and never exported. `fusion="add"` becomes exactly the flat classifier with the shifted bias
`b + rowsum(W ⊙ F)`; the cosine heads (`dot`, `hybrid`) score with the normalized label features, times the learned
scale, as a fixed matrix; a flat model is its classifier as is.

The export takes three steps: the TorchScript exporter traces the graph with the encoder's eager attention (the form
ONNX Runtime's transformer optimizer recognizes; the dynamo exporter's is not), the optimizer fuses attention, layer
norms and GELU into ONNX Runtime's kernels, and `--quantize int8` quantizes the fused graph's weights, those of the
attention projections included. The session options the folder is served with are saved beside the graph.

`OUTPUT_DIR` holds `model.onnx`, `config.json` (the checkpoint's `HTLAConfig`, with `auto_map` pointing the Auto
classes at `HTLAOnnxModel`), the tokenizer, a model card, the pipelines and `handler.py`:
`AutoModelForSequenceClassification.from_pretrained(OUTPUT_DIR, trust_remote_code=True)` loads it anywhere
onnxruntime and transformers are installed (in a process that imported htla: `HTLAOnnxModel.from_pretrained`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel

from .export import ONNX_AUTO_MAP, ONNX_REMOTE_CODE_FILES, write_remote_code
from .model_card import model_card, onnx_card
from .modeling import COSINE_FUSIONS, HTLAModel
from .onnx_model import EXPORT_KEY, ONNX_FILE, HTLAOnnxModel
from .positions import position_limit

# Opset 17: at 18, ONNX Runtime's optimizer (1.32) left the residual adds beside the layer norms (12 Add +
# LayerNormalization in all-MiniLM-L6-v2) instead of fusing them into SkipLayerNormalization as at 17.
OPSET = 17
QUANTIZATIONS = ("int8",)
# Dynamic int8 quantization (weights int8 ahead of time, activations per batch), chosen by measuring all-MiniLM-L6-v2
# with a 307-label ICD-10-CM head on this repository's 2-core AVX-512 VNNI machine (docs/export.md, "int8 settings"):
# one scale per output channel (per-tensor scales made the logit error 2.5x larger, at no measurable speed gain),
# signed int8 weights with the full 8-bit range (reduce_range, meant for CPUs without VNNI, only added error; unsigned
# weights were as accurate and slower), the MatMul / Gemm weights and the fused Attention nodes' (their query, key and
# value projections, a quarter of the encoder's products, which stay float32 otherwise). Gather (the embeddings) is
# left out: quantizing it changed neither accuracy nor speed measurably.
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False,
                 "op_types_to_quantize": ["MatMul", "Gemm", "Attention"]}
# How `HTLAOnnxModel` opens the folder's session (`config.onnx_export["session_options"]`, `SessionOptions`
# attributes): every graph optimization, one call at a time, its products on `intra_op_num_threads` threads (0:
# ONNX Runtime's default, one per physical core of the serving machine; `--threads` pins a number).
SESSION_OPTIONS = {"graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL",
                   "intra_op_num_threads": 0, "inter_op_num_threads": 1}
SAMPLE_TEXTS = ["A document to classify.", "Another, somewhat longer document to check the export against the model."]


class InferenceGraph(nn.Module):
    """What an HTLA model computes at inference, as one traceable module: `logits = bias + h W^T + ĥ C^T` with `h`
    the pooled text feature `[B, H]`, `ĥ = h / ‖h‖`, `W` a linear classifier `[L, H]` (absent for `fusion="dot"`)
    and `C` the scaled normalized label features `s·f_j / ‖f_j‖` `[L, H]` (cosine heads only)."""

    def __init__(self, model: HTLAModel):
        super().__init__()
        self.model = model
        weight, bias, cosine = folded_head(model)
        self.register_buffer("bias", bias)
        self.register_buffer("weight", weight)
        self.register_buffer("cosine", cosine)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        text = self.model.encode_text(input_ids, attention_mask, token_type_ids)  # [B, H]
        logits = self.bias  # [L]
        if self.weight is not None:
            logits = logits + text @ self.weight.T  # [B, L]
        if self.cosine is not None:
            logits = logits + F.normalize(text, dim=-1) @ self.cosine.T
        return logits


@torch.no_grad()
def folded_head(model: HTLAModel) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """`(W, b, C)` of `InferenceGraph` for the model's head, the label features computed once (in float64, so the
    folded constants are the model's own to float32 precision)."""
    classifier = model.classifier
    if model.graph_encoder is None:
        return classifier.weight.detach().clone(), classifier.bias.detach().clone(), None
    features = model.label_features().double()  # [L, H]
    if model.config.fusion in COSINE_FUSIONS:
        scaled = classifier.logit_scale.double().exp() * features / features.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        weight = classifier.weight.detach().clone() if hasattr(classifier, "weight") else None
        return weight, classifier.bias.detach().clone(), scaled.float()
    weight = classifier.weight.double()
    return classifier.weight.detach().clone(), (classifier.bias.double() + (weight * features).sum(-1)).float(), None


def export_onnx(checkpoint: str | Path, output_dir: str | Path, quantize: str | None = None,
                opset: int = OPSET, threads: int = 0) -> Path:
    """Export `checkpoint` (an HTLA folder or Hub id) to `output_dir`; `quantize="int8"` serves the dynamically
    quantized graph instead of the float32 one; `threads` is the session's intra-op threads (0: one per physical
    core). Returns the folder.

    The folder's `config.json` records, under `onnx_export`, the precision, the quantization settings, the fused
    nodes, the session options and the largest logit difference from the PyTorch model on a few sample texts.
    """
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize: expected one of {list(QUANTIZATIONS)} or None, got {quantize!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads: expected a non-negative integer (0: one per physical core), got {threads!r}")
    model = HTLAModel.from_pretrained(str(checkpoint)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    samples = tokenizer(SAMPLE_TEXTS, padding=True, return_tensors="pt")
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in samples]
    limit = position_limit(model.text_encoder)
    fused = build_graph(InferenceGraph(model), model.text_encoder, {name: samples[name] for name in input_names},
                        output_dir / ONNX_FILE, opset, quantize)

    config = model.config
    record = {"file": ONNX_FILE, "precision": quantize or "fp32", "opset": opset, "max_positions": limit,
              "inputs": input_names, "quantization": INT8_SETTINGS if quantize else None, "fused_nodes": fused,
              "session_options": SESSION_OPTIONS | {"intra_op_num_threads": threads}}
    setattr(config, EXPORT_KEY, record)
    with torch.no_grad():
        expected = model(**samples).logits  # [2, L]
    served = HTLAOnnxModel.from_pretrained(output_dir, config=config)(**samples).logits
    record["max_abs_logit_difference"] = float((served - expected).abs().max())
    config.save_pretrained(output_dir)
    write_remote_code(output_dir, ONNX_REMOTE_CODE_FILES, ONNX_AUTO_MAP)
    tokenizer.save_pretrained(output_dir)
    card_file = Path(checkpoint) / "README.md"
    card = ModelCard.load(card_file) if card_file.is_file() else model_card(
        config, model_name=Path(checkpoint).name, dataset_name="its training data")
    (output_dir / "README.md").write_text(str(onnx_card(card, record)), encoding="utf-8")
    return output_dir


def build_graph(graph: nn.Module, encoder: PreTrainedModel, inputs: dict[str, torch.Tensor], target: Path,
                opset: int = OPSET, quantize: str | None = None) -> dict[str, int]:
    """`graph` (whose text encoder is `encoder`) exported, optimized and, with `quantize="int8"`, quantized, as the
    single ONNX file `target`. Returns how many nodes of each kind the optimizer fused."""
    with tempfile.TemporaryDirectory() as work:
        exported, optimized = Path(work) / "exported.onnx", Path(work) / "optimized.onnx"
        export_graph(graph, encoder, inputs, exported, opset)
        fused = optimize_graph(exported, optimized, encoder.config)
        if quantize == "int8":
            quantize_int8(optimized, target)
        else:
            shutil.copyfile(optimized, target)
    return fused


@contextmanager
def eager_attention(encoder: PreTrainedModel):
    """`encoder` with transformers' eager attention (the matrix products and softmax written out, the pattern ONNX
    Runtime fuses back into one `Attention` node), its own attention restored afterwards."""
    previous = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")
    try:
        yield encoder
    finally:
        encoder.set_attn_implementation(previous)


def export_graph(graph: nn.Module, encoder: PreTrainedModel, inputs: dict[str, torch.Tensor], path: Path,
                 opset: int = OPSET) -> None:
    """`graph` traced by the TorchScript exporter as a single ONNX file with dynamic batch and sequence axes and one
    output, `logits` `[B, L]`. The trace takes the branch of the sample inputs, which fit the encoder's positions:
    `HTLAOnnxModel` cuts longer inputs before the session runs."""
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs} | {"logits": {0: "batch"}}
    with eager_attention(encoder), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks the trace fixes, as intended
        torch.onnx.export(graph.eval(), tuple(inputs.values()), str(path), input_names=list(inputs),
                          output_names=["logits"], opset_version=opset, dynamo=False, dynamic_axes=axes)


def optimize_graph(source: Path, target: Path, text_config) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer on an exported graph: attention, embedding and skip layer norms, and
    GELU fused into its kernels. The attention keeps the raw 0/1 mask (the default, token counts, assumes
    right-padded batches). Returns the fused nodes' counts."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    optimized = optimize_model(str(source), model_type="bert", optimization_options=options,
                               num_heads=getattr(text_config, "num_attention_heads", 0),
                               hidden_size=getattr(text_config, "hidden_size", 0))
    optimized.save_model_to_file(str(target))
    return {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of an optimized graph with `INT8_SETTINGS`. The fused nodes are ONNX Runtime's own,
    which ONNX's type inference does not know: their outputs are float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = dict(INT8_SETTINGS, weight_type=QuantType[INT8_SETTINGS["weight_type"]])
    quantize_dynamic(str(source), str(target), extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modeling_htla.onnx", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="HTLA checkpoint folder or Hub id")
    parser.add_argument("output_dir", help="folder to write the exported model to")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, help="serve the dynamically quantized graph")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads the folder is served with (default 0: one per physical core)")
    args = parser.parse_args(argv)
    try:
        folder = export_onnx(args.checkpoint, args.output_dir, args.quantize, args.opset, args.threads)
    except (OSError, ValueError) as err:
        raise SystemExit(f"python -m modeling_htla.onnx: error: {' '.join(str(err).split())}") from None
    difference = getattr(HTLAOnnxModel.from_pretrained(folder).config, EXPORT_KEY)["max_abs_logit_difference"]
    print(f"exported {args.checkpoint} to {folder} ({args.quantize or 'fp32'}; largest logit difference from "
          f"PyTorch on the sample texts {difference:.2e})")


if __name__ == "__main__":
    main()
