"""HTLATrainer's optimizer: the pretrained encoder, the label graph encoder and the classifier each at their own rate."""

import pytest

from modeling_htla import HTLATrainer, HTLATrainingArguments

from conftest import make_model


def learning_rates_by_part(trainer, model):
    """{part: set of learning rates its parameters got} for the text encoder, graph encoder and classifier."""
    parts = {"encoder": model.text_encoder, "graph": model.graph_encoder, "classifier": model.classifier}
    rates = {part: set() for part in parts}
    for group in trainer.create_optimizer().param_groups:
        for param in group["params"]:
            for part, module in parts.items():
                if any(param is p for p in module.parameters()):
                    rates[part].add(group["lr"])
    return rates


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
    assert learning_rates_by_part(trainer, model) == expected
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters() if p.requires_grad}
