"""`HTLATrainer`: the transformers `Trainer` with HTLA's loss (BCE + λ·TLA) in `compute_loss`, both parts logged,
and a separate learning rate for the layers HTLA adds on top of the pretrained encoder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.integrations.integration_utils import is_tensorboard_available



@dataclass
class HTLATrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the learning rate of the new layers; logs to TensorBoard when it is installed."""

    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the layers HTLA adds (label graph encoder, label embeddings, classifier). "
            "They start from random weights and learn faster at a higher rate than the pretrained encoder "
            "(`learning_rate`). Default: `learning_rate`."
        },
    )
    graph_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the label graph encoder (GPTrans, label embeddings), whose output is the target "
            "of the TLA loss. Default: `head_learning_rate`."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a gain in `early_stopping_metrics` (the paper: 6)."},
    )
    early_stopping_metrics: list[str] | None = field(
        default=None,
        metadata={
            "help": "Validation metrics of which any gain resets the early-stopping count (the paper: macro_f1 "
            "micro_f1). Default: `metric_for_best_model`."
        },
    )
    report_to: None | str | list[str] = field(
        default="tensorboard" if is_tensorboard_available() else "none",
        metadata={"help": "Integrations to report to; default TensorBoard when installed, else none."},
    )


class HTLATrainer(Trainer):
    """Trains an [`HTLAModel`]: `compute_loss` adds λ·TLA to the BCE loss and logs `loss_bce` / `loss_tla`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loss_parts: list[torch.Tensor] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's own `BCE + λ·TLA` (it computes the loss once, given `labels`), with its parts kept for logging."""
        outputs = model(**inputs, return_dict=True)
        if model.training:
            self._loss_parts.append(torch.stack([outputs.bce_loss.detach(), outputs.tla_loss.detach()]))
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean BCE and TLA parts since the last training log."""
        if "loss" in logs and self._loss_parts:
            bce, tla = torch.stack(self._loss_parts).mean(0).tolist()
            logs["loss_bce"], logs["loss_tla"] = round(bce, 4), round(tla, 4)
            self._loss_parts.clear()
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        """The default optimizer, with the new layers' parameters in groups at `head_learning_rate` and the label
        graph encoder's at `graph_learning_rate`."""
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        graph_lr = getattr(self.args, "graph_learning_rate", None)
        if (head_lr is None and graph_lr is None) or getattr(optimizer, "_htla_head_groups", False):
            return optimizer
        htla = self.accelerator.unwrap_model(self.model)
        encoder = {id(p) for p in htla.text_encoder.parameters()}
        graph = {id(p) for p in htla.graph_encoder.parameters()} if htla.graph_encoder is not None else set()
        groups = []
        for group in optimizer.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            head = head_lr if head_lr is not None else settings["lr"]
            params = {"pretrained": [], "graph": [], "head": []}
            for p in group["params"]:
                params["pretrained" if id(p) in encoder else "graph" if id(p) in graph else "head"].append(p)
            groups += [
                {**settings, "params": params["pretrained"]},
                {**settings, "params": params["graph"], "lr": graph_lr if graph_lr is not None else head},
                {**settings, "params": params["head"], "lr": head},
            ]
        optimizer.param_groups.clear()
        for group in groups:
            if group["params"]:
                optimizer.add_param_group(group)
        optimizer._htla_head_groups = True
        return optimizer

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """Save as the Trainer does, but keep the training arguments as JSON instead of a pickle."""
        super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            pickled = os.path.join(output_dir, "training_args.bin")
            if os.path.exists(pickled):
                os.remove(pickled)
            with open(os.path.join(output_dir, "training_args.json"), "w", encoding="utf-8") as handle:
                handle.write(self.args.to_json_string())


class AnyMetricEarlyStopping(TrainerCallback, ExportableState):
    """Stops training after `patience` evaluations in which none of `metrics` beat its best value so far, as in the
    paper (a gain in validation Macro- or Micro-F1 restarts the count). Lower is better for losses, higher for the
    rest. The best values and the count are saved in checkpoints and come back on resume with
    `--restore_callback_states_from_checkpoint`."""

    def __init__(self, patience: int, metrics: list[str], best: dict[str, float] | None = None, count: int = 0):
        if patience < 1 or not metrics:
            raise ValueError("early stopping needs a patience of at least 1 and at least one metric")
        self.patience = patience
        self.metrics = [name if name.startswith("eval_") else f"eval_{name}" for name in metrics]
        self.best = dict(best or {})
        self.count = count

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        missing = [name for name in self.metrics if name not in (metrics or {})]
        if missing:
            raise ValueError(f"early_stopping_metrics: {', '.join(missing)} not among the evaluation metrics")
        gained = [name for name in self.metrics if name not in self.best or _better(name, metrics[name], self.best[name])]
        for name in gained:
            self.best[name] = metrics[name]
        self.count = 0 if gained else self.count + 1
        if self.count >= self.patience:
            control.should_training_stop = True

    def state(self) -> dict:
        return {"args": {"patience": self.patience, "metrics": self.metrics, "best": self.best, "count": self.count},
                "attributes": {}}


def _better(name: str, value: float, best: float) -> bool:
    return value < best if name.endswith("loss") else value > best


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder in `output_dir` whose `trainer_state.json` (written last by the Trainer)
    is present and readable; a folder left half-written by a killed run is skipped."""
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        prefix, _, step = name.partition("-")
        if prefix == "checkpoint" and step.isdigit():
            steps.append((int(step), os.path.join(output_dir, name)))
    for _, path in sorted(steps, reverse=True):
        try:
            with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as handle:
                json.load(handle)
        except (OSError, ValueError):
            continue
        return path
    return None
