"""HTLATrainer: each part at its own learning rate; early stopping on any of several metrics, as in the paper."""

import json

import pytest
import torch
from transformers import TrainerState

from modeling_htla import HTLATrainer, HTLATrainingArguments
from modeling_htla.trainer import AnyMetricEarlyStopping, training_outcome

from conftest import make_model


def learning_rates_by_part(param_groups, model, key="lr"):
    """{part: set of learning rates its parameters got} for the text encoder, graph encoder and classifier."""
    parts = {"encoder": model.text_encoder, "graph": model.graph_encoder, "classifier": model.classifier}
    rates = {part: set() for part in parts}
    for group in param_groups:
        for param in group["params"]:
            for part, module in parts.items():
                if any(param is p for p in module.parameters()):
                    rates[part].add(group[key])
    return rates


def train_briefly(model, taxonomy, output_dir, **args):
    """Two optimizer steps of `HTLATrainer` on four tiny examples; returns the trainer."""
    rows = [
        {"input_ids": [2, 5 + i, 9 + i, 3], "attention_mask": [1, 1, 1, 1], "labels": taxonomy.encode([label])}
        for i, label in enumerate(["a11", "a2", "b1", "a12"])
    ]
    args = HTLATrainingArguments(
        output_dir=str(output_dir), max_steps=2, per_device_train_batch_size=2, save_strategy="no", report_to="none",
        use_cpu=True, **args,
    )
    trainer = HTLATrainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    return trainer


@pytest.mark.parametrize(
    "head, graph, expected",
    [
        (None, None, {"encoder": {1e-4}, "graph": {1e-4}, "classifier": {1e-4}}),
        (1e-2, None, {"encoder": {1e-4}, "graph": {1e-2}, "classifier": {1e-2}}),
        (1e-2, 1e-3, {"encoder": {1e-4}, "graph": {1e-3}, "classifier": {1e-2}}),
        (None, 1e-3, {"encoder": {1e-4}, "graph": {1e-3}, "classifier": {1e-4}}),
    ],
)
def test_each_part_trains_at_its_learning_rate(small_taxonomy, tmp_path, head, graph, expected):
    model = make_model(small_taxonomy)
    args = HTLATrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-4, head_learning_rate=head, graph_learning_rate=graph,
        report_to="none",
    )
    trainer = HTLATrainer(model=model, args=args)
    assert learning_rates_by_part(trainer.create_optimizer().param_groups, model) == expected
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters() if p.requires_grad}


def test_another_optimizer_trains_each_part_at_its_learning_rate(small_taxonomy, tmp_path):
    """`--optim adafactor`: the Trainer's Adafactor over HTLA's parameter groups, stepping every part."""
    model = make_model(small_taxonomy)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    trainer = train_briefly(
        model, small_taxonomy, tmp_path, optim="adafactor", learning_rate=1e-4, head_learning_rate=1e-2,
        graph_learning_rate=1e-3,
    )
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # the one accelerate wraps
    assert type(optimizer).__name__ == "Adafactor" and trainer.state.global_step == 2
    rates = learning_rates_by_part(optimizer.param_groups, model, key="initial_lr")  # before the schedule decays
    assert rates == {"encoder": {1e-4}, "graph": {1e-3}, "classifier": {1e-2}}
    for part in ("text_encoder.encoder.layer.0.attention.self.query.weight", "graph_encoder.label_embeddings.weight",
                 "classifier.weight"):
        assert not torch.equal(before[part], model.get_parameter(part)), part


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")  # since transformers 5.24: activation_checkpointing
def test_gradient_checkpointing_trains_the_same_model(small_taxonomy, tmp_path):
    """`--gradient_checkpointing` recomputes the text encoder's layers in the backward pass: same steps, less memory."""
    plain = make_model(small_taxonomy)
    train_briefly(plain, small_taxonomy, tmp_path / "plain", learning_rate=1e-3)
    checkpointed = make_model(small_taxonomy)
    assert checkpointed.supports_gradient_checkpointing
    train_briefly(checkpointed, small_taxonomy, tmp_path / "checkpointed", learning_rate=1e-3, gradient_checkpointing=True)
    assert checkpointed.text_encoder.encoder.layer[0].gradient_checkpointing
    for (name, expected), got in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(got, expected, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), make_model(small_taxonomy).parameters()))


def run_evaluations(callback, evaluations, warmup_steps: int = 0, steps_per_evaluation: int = 10):
    """Feed eval metrics to the callback, one evaluation every `steps_per_evaluation` steps; the 1-based index of the
    evaluation that stopped training, or None."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    control = TrainerControl()
    args = TrainingArguments(output_dir="unused", warmup_steps=warmup_steps, report_to="none")
    state = TrainerState(max_steps=steps_per_evaluation * len(evaluations))
    for index, metrics in enumerate(evaluations, start=1):
        state.global_step = index * steps_per_evaluation
        callback.on_evaluate(args, state, control, metrics={f"eval_{k}": v for k, v in metrics.items()})
        if control.should_training_stop:
            return index
    return None


def test_a_gain_in_any_metric_restarts_the_early_stopping_count():
    evaluations = [
        {"macro_f1": 0.5, "micro_f1": 0.6},
        {"macro_f1": 0.4, "micro_f1": 0.7},  # micro gains: count restarts
        {"macro_f1": 0.4, "micro_f1": 0.7},  # 1
        {"macro_f1": 0.5, "micro_f1": 0.6},  # 2 (equal is no gain)
        {"macro_f1": 0.45, "micro_f1": 0.65},  # 3: stop
    ]
    assert run_evaluations(AnyMetricEarlyStopping(3, ["macro_f1", "micro_f1"]), evaluations) == 5
    assert run_evaluations(AnyMetricEarlyStopping(3, ["macro_f1"]), evaluations) == 4  # macro alone: 0.5 at eval 1
    assert run_evaluations(AnyMetricEarlyStopping(1, ["loss"]), [{"loss": 2.0}, {"loss": 1.0}, {"loss": 1.5}]) == 3


def test_evaluations_during_the_warm_up_do_not_count():
    """No label above 0.5 yet (Macro-F1 0) while the learning rate rises: patience 2 would stop at evaluation 3, but
    the count starts after the 50 warm-up steps (evaluation 5), so the gain at evaluation 6 keeps training going."""
    evaluations = [{"macro_f1": 0.0}] * 5 + [{"macro_f1": 0.3}] + [{"macro_f1": 0.2}] * 3
    assert run_evaluations(AnyMetricEarlyStopping(2, ["macro_f1"]), evaluations) == 3
    assert run_evaluations(AnyMetricEarlyStopping(2, ["macro_f1"]), evaluations, warmup_steps=50) == 8


def test_early_stopping_state_survives_a_checkpoint_and_names_missing_metrics():
    callback = AnyMetricEarlyStopping(2, ["macro_f1"])
    run_evaluations(callback, [{"macro_f1": 0.8}, {"macro_f1": 0.7}])
    restored = AnyMetricEarlyStopping.from_state(json.loads(json.dumps(callback.state())))
    assert run_evaluations(restored, [{"macro_f1": 0.75}]) == 1  # second evaluation without a gain
    with pytest.raises(ValueError, match="eval_micro_f1 not among the evaluation metrics"):
        run_evaluations(AnyMetricEarlyStopping(2, ["micro_f1"]), [{"macro_f1": 0.8}])


def test_a_run_ended_by_its_cap_while_still_improving_says_so():
    def finished(best_step: int) -> TrainerState:
        state = TrainerState(epoch=3.0, global_step=30, max_steps=30, best_global_step=best_step)
        state.log_history = [{"epoch": float(epoch), "step": 10 * epoch, "eval_macro_f1": 0.5} for epoch in (1, 2, 3)]
        return state

    climbing = training_outcome(finished(30), None, 3)
    assert climbing["best_epoch"] == 3.0
    assert climbing["stop_reason"] == ("the epoch cap (3 epochs), validation still improving at the last epoch "
                                       "(a larger num_train_epochs may gain more)")
    settled = training_outcome(finished(20), None, 3)
    assert settled == {"epochs_trained": 3.0, "best_epoch": 2.0, "stop_reason": "the epoch cap (3 epochs)"}
