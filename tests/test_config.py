import subprocess
import sys

import pytest

from conftest import tiny_text_config
from modeling_htla import HTLAConfig


def test_config_round_trip(small_taxonomy):
    config = HTLAConfig(text_config=tiny_text_config(), taxonomy=small_taxonomy.to_dict(), tla_temperature=0.2)
    again = HTLAConfig.from_dict(config.to_dict())
    assert again.get_taxonomy() == small_taxonomy
    assert again.text_config.hidden_size == 32
    assert again.tla_temperature == 0.2
    assert again.problem_type == "multi_label_classification"
    assert again.id2label[2] == "a1" and again.label2id["a11"] == 5
    assert again.num_labels == len(small_taxonomy)
    assert again.graph_num_heads == 4  # defaults to the encoder's heads


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tla_temperature": 0.0}, "tla_temperature must be > 0"),
        ({"tla_temperature": -1}, "tla_temperature must be > 0"),
        ({"cosine_scale_init": 0.0}, "cosine_scale_init must be > 0"),
        ({"edge_dim": 0}, "edge_dim must be > 0"),
        ({"graph_num_heads": 5}, "not divisible by graph_num_heads 5"),
        ({"negative_mining": "easy"}, "negative_mining must be one of"),
        ({"pooling": "max"}, "pooling must be one of"),
        ({"use_graph_encoder": False, "use_tla": True}, "use_tla=True needs use_graph_encoder=True"),
        ({"num_negatives": 0}, "num_negatives must be >= 1"),
    ],
)
def test_bad_hyper_parameters(small_taxonomy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        HTLAConfig(text_config=tiny_text_config(), taxonomy=small_taxonomy.to_dict(), **kwargs)


def test_tla_follows_the_graph_encoder_unless_set(small_taxonomy):
    """Turning the graph encoder off gives the flat classifier without also having to turn TLA off."""
    def config(**kwargs):
        return HTLAConfig(text_config=tiny_text_config(), taxonomy=small_taxonomy.to_dict(), **kwargs)

    assert config().use_tla is True
    assert config(use_graph_encoder=False).use_tla is False
    assert config(use_tla=False).use_tla is False and config(use_tla=False).use_graph_encoder is True


def test_encoder_with_smaller_word_embeddings_needs_the_flat_classifier(small_taxonomy):
    """ELECTRA-small projects 128-wide word embeddings to 256: label nodes cannot start from them."""
    from transformers import ElectraConfig

    electra = ElectraConfig(vocab_size=120, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=4, intermediate_size=64)
    with pytest.raises(ValueError, match="word embeddings of size 16 but hidden size 32"):
        HTLAConfig(text_config=electra, taxonomy=small_taxonomy.to_dict())
    assert HTLAConfig(text_config=electra, taxonomy=small_taxonomy.to_dict(), use_graph_encoder=False).use_tla is False


def test_malformed_taxonomy_in_config():
    with pytest.raises(ValueError, match="cycle"):
        HTLAConfig(taxonomy={"labels": ["a", "b"], "parents": ["b", "a"], "names": ["a", "b"]})
    with pytest.raises(ValueError, match="duplicate label"):
        HTLAConfig(taxonomy={"labels": ["a", "a"], "parents": [None, None], "names": ["a", "a"]})


def test_configuration_module_imports_first_in_a_fresh_interpreter(tmp_path):
    """`configuration_htla` is the top-level config file: importing it before the package must work."""
    script = (
        "from configuration_htla import HTLAConfig\n"
        "config = HTLAConfig(taxonomy={'labels': ['a', 'b'], 'parents': [None, 'a'], 'names': ['A', 'B']})\n"
        "import modeling_htla\n"
        "assert modeling_htla.HTLAConfig is HTLAConfig and config.get_taxonomy().names == ['A', 'B']\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
