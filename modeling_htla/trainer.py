"""`HTLATrainer`: the transformers `Trainer` training on the model's own loss (BCE + λ·TLA) with both parts logged,
and a separate learning rate for the layers HTLA adds on top of the pretrained encoder."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.trainer_optimizer import is_optimizer_factory
from transformers.integrations.integration_utils import is_tensorboard_available
from transformers.utils import logging

logger = logging.get_logger(__name__)

# The epoch cap of a run that sets none (`num_train_epochs=None`): enough epochs to see about `EPOCH_CAP_EXAMPLES`
# training examples, within [`MIN_EPOCHS`, `MAX_EPOCHS`] (200 documents: 30 epochs; 2,000: 10; 10,000 and more: 3).
# Early stopping on validation usually ends training before the cap (docs/training.md#the-recipe).
EPOCH_CAP_EXAMPLES = 20_000
MIN_EPOCHS, MAX_EPOCHS = 3, 30


def epoch_cap(num_examples: int) -> int:
    """The most epochs a run over `num_examples` training examples takes when no `num_train_epochs` is given."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(EPOCH_CAP_EXAMPLES / max(num_examples, 1))))


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
    num_train_epochs: float | None = field(
        default=None,
        metadata={"help": "Epochs to train (at most, under early stopping). Default: by the training set's size "
                  "(`epoch_cap`: 3 epochs from 6,667 examples up, up to 30 for a few hundred)."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a gain in `early_stopping_metrics` (the paper: 6; "
                  "run_htc.py's recipe: 3; 0 or unset: no early stopping)."},
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
    """Trains an [`HTLAModel`] on the loss it returns (`BCE + λ·TLA`), logging the parts as `loss_bce` / `loss_tla`."""

    def __init__(self, *args, **kwargs):
        arguments, train_dataset = kwargs.get("args"), kwargs.get("train_dataset")
        if arguments is not None and arguments.num_train_epochs is None:  # the cap follows the data's size
            arguments.num_train_epochs = epoch_cap(len(train_dataset)) if train_dataset is not None else 3
            if train_dataset is not None:
                logger.info("num_train_epochs: %d for %d training examples (epoch_cap)", arguments.num_train_epochs,
                            len(train_dataset))
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
        """The optimizer `--optim` names, made as the Trainer makes it, over the groups of `parameter_groups` when
        `head_learning_rate` or `graph_learning_rate` is set; otherwise the Trainer's own."""
        opt_model = self.model if model is None else model
        if self.optimizer is None and self._part_learning_rates() is not None:
            optimizer_cls, optimizer_kwargs = (
                self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            )
            if is_optimizer_factory(optimizer_cls) or {"params", "model", "optimizer_dict"} & optimizer_kwargs.keys():
                raise ValueError(
                    f"--optim {self.args.optim} groups the parameters itself, so it cannot take head_learning_rate or "
                    "graph_learning_rate: leave them unset"
                )
            self.optimizer = optimizer_cls(self.parameter_groups(opt_model), **optimizer_kwargs)
        return super().create_optimizer(opt_model)  # the optimizer made above, or the Trainer's

    def parameter_groups(self, model) -> list[dict]:
        """The Trainer's two weight-decay groups (`get_decay_parameter_names`), each split into the pretrained text
        encoder's parameters at `learning_rate`, the label graph encoder's at `graph_learning_rate` and the other new
        layers' at `head_learning_rate`; empty groups are left out."""
        htla = self.accelerator.unwrap_model(model)
        # part of each parameter: 0 text encoder, 1 graph encoder, 2 (the default) classifier and TLA projection
        part = {id(p): 0 for p in htla.text_encoder.parameters()}
        if htla.graph_encoder is not None:
            part.update((id(p), 1) for p in htla.graph_encoder.parameters())
        rates = self._part_learning_rates() or (self.args.learning_rate,) * 3
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[bool, int], list[torch.nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name not in decay, part.get(id(param), 2)), []).append(param)
        return [
            {"params": params, "weight_decay": 0.0 if no_decay else self.args.weight_decay, "lr": rates[index]}
            for (no_decay, index), params in sorted(groups.items())
        ]

    def _part_learning_rates(self) -> tuple[float, float, float] | None:
        """(text encoder, graph encoder, other new layers) learning rates, or None when neither HTLA rate is set."""
        head = getattr(self.args, "head_learning_rate", None)
        graph = getattr(self.args, "graph_learning_rate", None)
        if head is None and graph is None:
            return None
        head = self.args.learning_rate if head is None else head
        return self.args.learning_rate, head if graph is None else graph, head

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
    paper (a gain in validation Macro- or Micro-F1 restarts the count). Evaluations during the learning-rate warm-up
    do not count: on a few dozen documents an epoch is a few steps, and no label has crossed 0.5 yet. Lower is better for losses, higher for the
    rest. The best values and the count are saved in checkpoints and come back on resume with
    `--restore_callback_states_from_checkpoint`."""

    def __init__(self, patience: int, metrics: list[str], best: dict[str, float] | None = None, count: int = 0):
        if patience < 1 or not metrics:
            raise ValueError("early stopping needs a patience of at least 1 and at least one metric")
        self.patience = patience
        self.metrics = [name if name.startswith("eval_") else f"eval_{name}" for name in metrics]
        self.best = dict(best or {})
        self.count = count
        self.stopped = False  # set when this callback ended training

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        missing = [name for name in self.metrics if name not in (metrics or {})]
        if missing:
            raise ValueError(f"early_stopping_metrics: {', '.join(missing)} not among the evaluation metrics")
        gained = [name for name in self.metrics if name not in self.best or _better(name, metrics[name], self.best[name])]
        for name in gained:
            self.best[name] = metrics[name]
        warming_up = state.global_step <= args.get_warmup_steps(state.max_steps)
        self.count = 0 if gained or warming_up else self.count + 1
        if self.count >= self.patience:
            control.should_training_stop = True
            self.stopped = True

    def state(self) -> dict:
        return {"args": {"patience": self.patience, "metrics": self.metrics, "best": self.best, "count": self.count},
                "attributes": {}}


def training_outcome(state, early_stopping: AnyMetricEarlyStopping | None, max_epochs: float) -> dict:
    """How a finished training ended: `epochs_trained`, `best_epoch` (the epoch whose checkpoint was kept, when the
    best one was tracked) and `stop_reason`, in words for the log and the model card. A run that reaches its epoch cap
    with its best evaluation the last one says so: it had not converged, and more epochs may gain (on 16,000
    ICD-10-CM codes a cap of 6 instead of 3 gained 0.40 validation Macro-F1, docs/training.md#the-recipe)."""
    best_epoch = next((entry["epoch"] for entry in state.log_history
                       if state.best_global_step and entry.get("step") == state.best_global_step
                       and any(key.startswith("eval_") for key in entry)), None)
    if early_stopping is not None and early_stopping.stopped:
        names = " or ".join(name.removeprefix("eval_") for name in early_stopping.metrics)
        reason = f"early stopping: validation {names} did not improve for {early_stopping.patience} evaluations"
    elif state.max_steps and state.global_step >= state.max_steps:
        reason = f"the epoch cap ({max_epochs:g} epochs)"
        if best_epoch is not None and best_epoch >= (state.epoch or 0) - 1e-6:
            reason += ", validation still improving at the last epoch (a larger num_train_epochs may gain more)"
    else:
        reason = "training ended before its cap"
    return {"epochs_trained": round(state.epoch or 0, 2), "best_epoch": best_epoch, "stop_reason": reason}


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
