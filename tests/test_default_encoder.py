"""The packaged all-MiniLM-L6-v2 as default encoder: real weights, real tokenizer, offline."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from modeling_htla import HTLAModel, resolve_encoder


@pytest.fixture(scope="module")
def minilm_path():
    return resolve_encoder(None)


def test_default_encoder_resolves_to_packaged_folder(minilm_path):
    assert minilm_path.endswith("model")
    assert resolve_encoder("sentence-transformers/all-MiniLM-L6-v2") == minilm_path
    assert resolve_encoder("some/hub-id") == "some/hub-id"


def test_from_encoder_loads_pretrained_weights_and_label_names(minilm_path, small_taxonomy, tmp_path):
    model = HTLAModel.from_encoder(None, taxonomy=small_taxonomy, tla_temperature=0.05).eval()
    reference = AutoModel.from_pretrained(minilm_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    assert model.config.tla_temperature == 0.05
    assert model.config.text_config.hidden_size == 384 and model.config.graph_num_heads == 12
    # Label nodes start from the tokens of the readable names.
    assert model.config.label_name_ids[0] == tokenizer("Alpha topics", add_special_tokens=False)["input_ids"]
    inputs = tokenizer(["a sentence about computers", "another about sports"], return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = model.encode_text(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
        hidden, mask = reference(**inputs).last_hidden_state, inputs["attention_mask"].unsqueeze(-1)
        theirs = (hidden * mask).sum(1) / mask.sum(1)  # the default's mean pooling over real tokens
        logits = model(**inputs).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert logits.shape == (2, len(small_taxonomy))
    model.save_pretrained(tmp_path)
    loaded = HTLAModel.from_pretrained(tmp_path).eval()
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), loaded.state_dict().values()))
    with torch.no_grad():
        again = loaded(**inputs).logits
    # Same weights in other memory: matrix products may round in another order (~1e-8).
    assert torch.allclose(logits, again, atol=1e-6)
