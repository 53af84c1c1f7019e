"""benchmarks/run_learning_curve.py: SetFit's predicted leaves are scored closed under their ancestors, as htla's
label sets are; leaf probabilities become label scores; the htla rows are the README command."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports `common` and `run_new_labels` as the script does

lc = pytest.importorskip("run_learning_curve")

from modeling_htla import Taxonomy  # noqa: E402


@pytest.fixture
def taxonomy():
    # a > a.x > a.x.1, a > a.y, b
    return Taxonomy.from_parents({"a": None, "a.x": "a", "a.x.1": "a.x", "a.y": "a", "b": None})


def test_predicted_leaves_are_closed_under_their_ancestors(taxonomy):
    predicted = lc.closed_leaf_predictions(["a.x.1", "a.y", "b"], taxonomy)
    as_labels = [{taxonomy.labels[j] for j in np.flatnonzero(row)} for row in predicted]
    assert as_labels == [{"a", "a.x", "a.x.1"}, {"a", "a.y"}, {"b"}]


def test_closure_changes_the_scores_as_htla_counts_them(taxonomy):
    """A right leaf counts its ancestors as right too: without the closure Micro-F1 would fall."""
    gold = lc.closed_leaf_predictions(["a.x.1", "b"], taxonomy)
    closed = lc._metrics(lc.closed_leaf_predictions(["a.x.1", "b"], taxonomy).astype(float), gold, taxonomy, 0.5)
    bare = np.zeros_like(gold, dtype=float)
    bare[0, taxonomy.label2id["a.x.1"]] = bare[1, taxonomy.label2id["b"]] = 1
    assert closed["micro_f1"] == 1.0 and closed["consistency_rate"] == 1.0
    assert lc._metrics(bare, gold, taxonomy, 0.5)["micro_f1"] < 1.0


def test_a_label_scores_the_sum_of_its_leaves(taxonomy):
    leaves = ["a.x.1", "a.y", "b"]
    scores = lc.subtree_scores(np.array([[0.5, 0.3, 0.2]]), leaves, taxonomy)[0]
    expected = {"a": 0.8, "a.x": 0.5, "a.x.1": 0.5, "a.y": 0.3, "b": 0.2}
    assert scores == pytest.approx([expected[label] for label in taxonomy.labels])
    # at 0.5 nothing is predicted but what a leaf above 0.5 closes: a consistent label set
    assert set(np.flatnonzero(scores > 0.45)) == {taxonomy.label2id[label] for label in ("a", "a.x", "a.x.1")}


def test_learned_thresholds_come_from_validation_only(taxonomy):
    rng = np.random.default_rng(0)
    leaves = rng.choice(["a.x.1", "a.y", "b"], 60).tolist()
    gold = lc.closed_leaf_predictions(leaves, taxonomy)
    scores = np.where(gold, 0.3, 0.1) + rng.random(gold.shape) * 0.05  # right but below 0.5: 0.5 predicts nothing
    result = lc.score({"validation": scores, "test": scores[:10] * 0}, {"validation": gold, "test": gold[:10]},
                      taxonomy, seed=0)
    assert result["validation"]["macro_f1"] == 0.0
    assert result["validation"]["learned_macro_f1"] == 1.0
    assert result["test"]["learned_macro_f1"] == 0.0  # test scores of 0: the thresholds are not refitted on test


def test_htla_rows_are_the_readme_command_with_the_seed(tmp_path):
    files = {"train_file": "tr.jsonl", "validation_file": "va.jsonl", "test_file": "te.jsonl",
             "taxonomy_file": "t.taxonomy"}
    command = lc.run_htc_command({"files": files}, tmp_path / "out", 7, lc.RUN_HTC_ROWS["flat"])
    assert command[:2] == [sys.executable, str(ROOT / "run_htc.py")]
    assert command[2:] == ["--train_file", "tr.jsonl", "--validation_file", "va.jsonl", "--test_file", "te.jsonl",
                           "--taxonomy_file", "t.taxonomy", "--output_dir", str(tmp_path / "out"), "--do_train",
                           "--do_eval", "--do_predict", "--seed", "7", "--no_use_graph_encoder"]
    assert lc.RUN_HTC_ROWS["default"] == []
