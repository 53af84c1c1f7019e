"""HTLA's two pipelines given a list of texts: they run it in batches of similar length, each padded to its own
longest text, and answer exactly as one call per text would, in the list's order."""

import pytest
from transformers import AutoTokenizer

from modeling_htla import HTLAModel
from modeling_htla.pipeline import HierarchicalTextClassificationPipeline, HTLATextClassificationPipeline

# Lengths out of order, one text longer than the encoder's 128 positions.
TEXTS = ["goal", "quantum particle energy photon " * 6, "", "cell gene protein enzyme", "serve racket " * 20,
         "photon " * 300, "referee"]


def scores_of(answer) -> list[tuple[str, float]]:
    return [(a["label"], a["score"]) for a in answer]


@pytest.mark.parametrize("pipeline_class, kwargs, max_length", [
    (HTLATextClassificationPipeline, {"top_k": None}, None),  # the model cuts what the tokenizer keeps
    (HierarchicalTextClassificationPipeline, {"threshold": 0.0}, 128),  # the pipeline truncates to the positions
], ids=["text-classification", "hierarchical-text-classification"])
def test_list_is_length_batched_and_answered_in_input_order(trained, pipeline_class, kwargs, max_length):
    out, _ = trained
    model = HTLAModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    pipe = pipeline_class(model=model, tokenizer=tokenizer)
    one_by_one = [pipe(text, **kwargs) for text in TEXTS]
    shapes = []
    model.register_forward_pre_hook(lambda module, args, inputs: shapes.append(tuple(inputs["input_ids"].shape)),
                                    with_kwargs=True)
    batched = pipe(TEXTS, batch_size=3, **kwargs)

    lengths = [len(ids) for ids in tokenizer(TEXTS, truncation=max_length is not None, max_length=max_length)["input_ids"]]
    longest_first = sorted(lengths, reverse=True)
    assert shapes == [(len(longest_first[i:i + 3]), longest_first[i]) for i in range(0, len(TEXTS), 3)]
    default = pipe(TEXTS, **kwargs)  # one batch of 7 texts, more than the 6 labels
    assert len(shapes) == 4 and len(batched) == len(default) == len(TEXTS)
    for got, expected in zip(batched + default, one_by_one * 2):
        assert [label for label, _ in scores_of(got)] == [label for label, _ in scores_of(expected)]
        assert [score for _, score in scores_of(got)] == pytest.approx([s for _, s in scores_of(expected)], abs=1e-5)
