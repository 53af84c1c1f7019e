"""Shared fixtures: tiny random BERT encoders and small taxonomies, all built in memory (no network)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import json  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel  # noqa: E402

from modeling_htla import HTLAConfig, HTLAModel, Taxonomy, resolve_encoder  # noqa: E402


def tiny_text_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )
    values.update(overrides)
    return BertConfig(**values)


def chain_taxonomy(depth: int, branching: int = 2) -> Taxonomy:
    """A full tree of the given depth: labels 'n', 'n.0', 'n.0.1', …"""
    parents = {}
    frontier = [(f"t{i}", None) for i in range(branching)]
    for level in range(depth):
        next_frontier = []
        for label, parent in frontier:
            parents[label] = parent
            if level + 1 < depth:
                next_frontier += [(f"{label}.{k}", label) for k in range(branching)]
        frontier = next_frontier
    return Taxonomy.from_parents(parents)


def make_model(taxonomy: Taxonomy, seed: int = 0, **config_kwargs) -> HTLAModel:
    torch.manual_seed(seed)
    name_ids = [[(5 + 7 * i + k) % 120 for k in range(1 + i % 3)] for i in range(len(taxonomy))]
    config = HTLAConfig(
        text_config=tiny_text_config(), taxonomy=taxonomy.to_dict(), label_name_ids=name_ids, **config_kwargs
    )
    return HTLAModel(config)


# The 20 Newsgroups label tree (HiAGM format): 34 labels, 3 levels, fan-out <= 7.
NEWSGROUPS_TAXONOMY = """Root\talt\tcomp\tmisc\trec\tsci\tsoc\ttalk
alt\talt.atheism
comp\tcomp.graphics\tcomp.os\tcomp.sys\tcomp.windows
comp.os\tcomp.os.ms-windows.misc
comp.sys\tcomp.sys.ibm.pc.hardware\tcomp.sys.mac.hardware
comp.windows\tcomp.windows.x
misc\tmisc.forsale
rec\trec.autos\trec.motorcycles\trec.sport
rec.sport\trec.sport.baseball\trec.sport.hockey
sci\tsci.crypt\tsci.electronics\tsci.med\tsci.space
soc\tsoc.religion
soc.religion\tsoc.religion.christian
talk\ttalk.politics\ttalk.religion
talk.politics\ttalk.politics.guns\ttalk.politics.mideast\ttalk.politics.misc
talk.religion\ttalk.religion.misc
"""


@pytest.fixture
def small_taxonomy() -> Taxonomy:
    return Taxonomy.from_parents(
        {"a": None, "b": None, "a1": "a", "a2": "a", "b1": "b", "a11": "a1", "a12": "a1"},
        names={"a": "Alpha topics", "a1": "Alpha one"},
    )


TOPICS = {
    "sport": {"football": "goal match striker referee", "tennis": "serve racket wimbledon volley"},
    "science": {"physics": "quantum particle energy photon", "biology": "cell gene protein enzyme"},
}


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    """A tiny random BERT saved like a Hub model, with the real uncased BERT tokenizer."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    torch.manual_seed(0)
    BertModel(tiny_text_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    rows = []
    for i in range(48):
        top = sorted(TOPICS)[i % 2]
        leaf = sorted(TOPICS[top])[(i // 2) % 2]
        rows.append({"text": f"{TOPICS[top][leaf]} example {i}", "labels": f"{top} > {leaf}"})
    write_jsonl(path / "train.jsonl", rows[:32])
    write_jsonl(path / "validation.jsonl", rows[32:40])
    write_jsonl(path / "test.jsonl", rows[40:])
    (path / "labels.taxonomy").write_text(
        "Root\tscience\tsport\nscience\tbiology\tphysics\nsport\tfootball\ttennis\n", encoding="utf-8"
    )
    return path
