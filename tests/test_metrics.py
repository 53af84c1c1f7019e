"""Tests for the `htc_f1` evaluate metric (modeling_htla/metrics/htc_f1).

Expected values are worked out by hand in the comments on a 6-label tree:

    0 A              depth 1
    1 B              depth 1
    2 A.x  (of A)    depth 2
    3 A.y  (of A)    depth 2   <- never gold, never predicted
    4 B.z  (of B)    depth 2
    5 A.x.i (of A.x) depth 3
"""

import math
import os
import re
import socket

import numpy as np
import pytest

from modeling_htla.metrics import HTC_METRIC_PATH, htc_scores, load_htc_metric

PARENTS = [-1, -1, 0, 0, 1, 2]

# Gold sets (ancestor-closed):  d0 {0,2,5}  d1 {1,4}  d2 {0,2}  d3 {1}
REFERENCES = [
    [1, 0, 1, 0, 0, 1],
    [0, 1, 0, 0, 1, 0],
    [1, 0, 1, 0, 0, 0],
    [0, 1, 0, 0, 0, 0],
]

# Decisions at threshold 0.5 (strict ">"):  d0 {0,2}  d1 {4}  d2 {0,2,5}  d3 {1}
# (d0 label 5 scores exactly 0.5 and is therefore NOT predicted.)
PREDICTIONS = [
    [0.90, 0.20, 0.80, 0.10, 0.30, 0.50],
    [0.40, 0.45, 0.10, 0.00, 0.70, 0.20],
    [0.60, 0.10, 0.55, 0.30, 0.05, 0.65],
    [0.30, 0.95, 0.20, 0.10, 0.35, 0.00],
]

# Per-label counts at threshold 0.5 (right / predicted / gold) and F1:
#   0 A     2/2/2  P=1   R=1    F=1
#   1 B     1/1/2  P=1   R=1/2  F=2/3
#   2 A.x   2/2/2  F=1
#   3 A.y   0/0/0  F=0   (never gold nor predicted: still counts in Macro)
#   4 B.z   1/1/1  F=1
#   5 A.x.i 0/1/1  F=0
EXPECTED_BASE = {
    # micro: right 6, predicted 7, gold 8
    "micro_precision": 6 / 7,
    "micro_recall": 6 / 8,
    "micro_f1": 2 * 6 / (7 + 8),  # = 0.8
    "macro_f1": (1 + 2 / 3 + 1 + 0 + 1 + 0) / 6,  # = 11/18
    # depth 1 = {A, B}: right 3, predicted 3, gold 4
    "level_1_micro_f1": 2 * 3 / (3 + 4),
    "level_1_macro_f1": (1 + 2 / 3) / 2,
    # depth 2 = {A.x, A.y, B.z}: right 3, predicted 3, gold 3; A.y scores 0 in Macro
    "level_2_micro_f1": 1.0,
    "level_2_macro_f1": (1 + 0 + 1) / 3,
    # depth 3 = {A.x.i}: right 0, predicted 1, gold 1
    "level_3_micro_f1": 0.0,
    "level_3_macro_f1": 0.0,
    # default frequencies = gold counts [2, 2, 2, 0, 1, 1]
    # order (desc, ties by index) [0, 1, 2, 4, 5, 3] -> groups [0,1] [2] [4] [5] [3]
    "p1_macro_f1": (1 + 2 / 3) / 2,
    "p2_macro_f1": 1.0,
    "p3_macro_f1": 1.0,
    "p4_macro_f1": 0.0,
    "p5_macro_f1": 0.0,
    # closed predictions: d0 {0,2}  d1 {1,4} (B added)  d2 {0,2,5}  d3 {1} -> 8 labels
    # closed gold: 8 labels; intersections 2 + 2 + 2 + 1 = 7
    "hierarchical_precision": 7 / 8,
    "hierarchical_recall": 7 / 8,
    "hierarchical_f1": 7 / 8,
    # d1 predicts B.z without B -> 3 of 4 documents consistent
    "consistency_rate": 3 / 4,
}


def assert_results(results, expected):
    assert set(results) == set(expected)
    for key, value in expected.items():
        assert isinstance(results[key], float), key
        assert results[key] == pytest.approx(value, abs=1e-12), key


@pytest.fixture(scope="module")
def metric():
    # Prove that loading never touches the network.
    original_connect = socket.socket.connect

    def no_network(*args, **kwargs):
        raise AssertionError("loading the metric tried to open a network connection")

    socket.socket.connect = no_network
    try:
        loaded = load_htc_metric()
    finally:
        socket.socket.connect = original_connect
    return loaded


def test_metric_path_and_loading(metric):
    assert os.path.isabs(HTC_METRIC_PATH)
    assert os.path.isfile(os.path.join(HTC_METRIC_PATH, "htc_f1.py"))
    assert metric.name == "htc_f1"
    assert "Kumar" in metric.citation
    assert "parents" in metric.inputs_description


def test_hand_computed_example(metric):
    results = metric.compute(predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS)
    assert_results(results, EXPECTED_BASE)
    assert list(results)[:4] == ["micro_f1", "micro_precision", "micro_recall", "macro_f1"]


def test_numpy_inputs(metric):
    results = metric.compute(
        predictions=np.asarray(PREDICTIONS, dtype=np.float32),
        references=np.asarray(REFERENCES, dtype=np.int32),
        parents=np.asarray(PARENTS),
    )
    assert_results(results, EXPECTED_BASE)


def test_zero_label_counts_in_macro(metric):
    # Everything perfect except label 3 (A.y), which is never gold nor predicted:
    # Micro-F1 is 1 but Macro-F1 is 5/6 because A.y contributes an F1 of 0.
    results = metric.compute(predictions=REFERENCES, references=REFERENCES, parents=PARENTS)
    assert results["micro_f1"] == 1.0
    assert results["micro_precision"] == 1.0
    assert results["micro_recall"] == 1.0
    assert results["macro_f1"] == pytest.approx(5 / 6)
    assert results["level_2_micro_f1"] == 1.0
    assert results["level_2_macro_f1"] == pytest.approx(2 / 3)
    assert results["hierarchical_f1"] == 1.0
    assert results["consistency_rate"] == 1.0


def test_explicit_label_frequencies(metric):
    # frequencies [0, 1, 2, 9, 3, 3]: order 3(9), 4(3), 5(3), 2(2), 1(1), 0(0);
    # the tie between labels 4 and 5 goes to the lower index, so 4 lands in P1.
    # groups [3,4] [5] [2] [1] [0]
    results = metric.compute(
        predictions=PREDICTIONS,
        references=REFERENCES,
        parents=PARENTS,
        label_frequencies=[0, 1, 2, 9, 3, 3],
    )
    assert results["p1_macro_f1"] == pytest.approx((0 + 1) / 2)
    assert results["p2_macro_f1"] == pytest.approx(0.0)
    assert results["p3_macro_f1"] == pytest.approx(1.0)
    assert results["p4_macro_f1"] == pytest.approx(2 / 3)
    assert results["p5_macro_f1"] == pytest.approx(1.0)
    # frequencies only affect the groups
    assert results["macro_f1"] == pytest.approx(EXPECTED_BASE["macro_f1"])


def test_frequency_groups_with_fewer_than_five_labels(metric):
    # 3 labels (A, A.x, B): groups of sizes 1,1,1,0,0 -> P4 and P5 are empty -> 0.0
    # default frequencies = gold counts [2, 1, 1] -> order [0, 1, 2]
    results = metric.compute(
        predictions=[[0.9, 0.9, 0.1], [0.9, 0.1, 0.9]],
        references=[[1, 1, 0], [1, 0, 0]],
        parents=[-1, 0, -1],
    )
    # A: 2/2/2 F=1 ; A.x: 1/1/1 F=1 ; B: 0/1/0 F=0
    assert results["p1_macro_f1"] == 1.0
    assert results["p2_macro_f1"] == 1.0
    assert results["p3_macro_f1"] == 0.0
    assert results["p4_macro_f1"] == 0.0
    assert results["p5_macro_f1"] == 0.0
    assert results["macro_f1"] == pytest.approx(2 / 3)


def test_threshold(metric):
    # threshold 0.42 -> d0 {0,2,5}  d1 {1,4}  d2 {0,2,5}  d3 {1}
    # right 8, predicted 9, gold 8; label 5: right 1 / predicted 2 / gold 1 -> F=2/3
    results = metric.compute(predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS, threshold=0.42)
    assert results["micro_precision"] == pytest.approx(8 / 9)
    assert results["micro_recall"] == pytest.approx(1.0)
    assert results["micro_f1"] == pytest.approx(16 / 17)
    assert results["macro_f1"] == pytest.approx((1 + 1 + 1 + 0 + 1 + 2 / 3) / 6)
    assert results["consistency_rate"] == 1.0
    # the decision is strict: 0.9 is not > 0.9, only d3/B (0.95) is predicted
    results = metric.compute(predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS, threshold=0.9)
    assert results["micro_precision"] == 1.0
    assert results["micro_recall"] == pytest.approx(1 / 8)
    assert results["micro_f1"] == pytest.approx(2 / 9)


def test_from_logits(metric):
    # Same decisions as PREDICTIONS at 0.5 after a sigmoid; 0.0 -> sigmoid 0.5 -> not predicted,
    # 0.3 -> 0.574 -> predicted (but 0.3 would NOT pass 0.5 without the sigmoid).
    logits = [
        [2.0, -1.0, 0.3, -3.0, -2.0, 0.0],
        [-0.5, -0.1, -2.0, -4.0, 1.5, -1.0],
        [0.3, -2.0, 1.0, -1.0, -3.0, 0.6],
        [-1.0, 3.0, -1.0, -2.0, -0.7, -5.0],
    ]
    results = metric.compute(predictions=logits, references=REFERENCES, parents=PARENTS, from_logits=True)
    assert_results(results, EXPECTED_BASE)

    # without the sigmoid: d0 {0}, d1 {4}, d2 {1.0, 0.6 -> 2, 5}, d3 {1}
    raw = metric.compute(predictions=logits, references=REFERENCES, parents=PARENTS)
    assert raw["micro_f1"] != pytest.approx(EXPECTED_BASE["micro_f1"])

    # threshold applies to sigmoid(logit): sigmoid(1.0)=0.731 > 0.7, sigmoid(0.6)=0.646 is not
    high = metric.compute(
        predictions=logits, references=REFERENCES, parents=PARENTS, from_logits=True, threshold=0.7
    )
    # decisions: d0 {0}, d1 {4}, d2 {2}, d3 {1}: right 4, predicted 4, gold 8
    assert high["micro_precision"] == 1.0
    assert high["micro_recall"] == pytest.approx(4 / 8)
    assert high["consistency_rate"] == pytest.approx(2 / 4)


def test_hierarchical_scores_and_consistency(metric):
    # doc0: gold {A.x.i} (not closed on purpose) -> {A, A.x, A.x.i}; prediction {A.y} -> {A, A.y}
    # doc1: gold {B, B.z};                       prediction {A.x, B.z} -> {A, A.x, B, B.z}
    # sum |P & T| = 1 + 2 = 3, sum |P| = 2 + 4 = 6, sum |T| = 3 + 2 = 5
    results = metric.compute(
        predictions=[[0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 1, 0]],
        references=[[0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0]],
        parents=PARENTS,
    )
    assert results["hierarchical_precision"] == pytest.approx(3 / 6)
    assert results["hierarchical_recall"] == pytest.approx(3 / 5)
    assert results["hierarchical_f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    # both raw predictions contain a label without its parent
    assert results["consistency_rate"] == 0.0
    # flat micro: right 1 (B.z), predicted 3, gold 3
    assert results["micro_f1"] == pytest.approx(1 / 3)


def test_empty_predictions_are_consistent_and_score_zero(metric):
    results = metric.compute(
        predictions=[[0.0] * 6, [0.0] * 6], references=REFERENCES[:2], parents=PARENTS
    )
    assert results["consistency_rate"] == 1.0
    assert results["micro_precision"] == 0.0
    assert results["micro_recall"] == 0.0
    assert results["micro_f1"] == 0.0
    assert results["macro_f1"] == 0.0
    assert results["hierarchical_f1"] == 0.0


@pytest.mark.parametrize(
    "parents, message",
    [
        (None, "`parents` is required"),  # missing
        ([-1, -1, 0, 0, 1], "`predictions` has 6 columns but `parents` describes 5 labels"),  # too short
        ([-1, -1, 0, 0, 1, 2, 2], "`predictions` has 6 columns but `parents` describes 7 labels"),  # too long
        ([-1, -1, 0, 0, 1, 9], re.escape("`parents[5]` = 9 is not -1 or a label index in [0, 6)")),  # out of range
        ([3, -1, 0, 0, 1, 2], "`parents` contains a cycle"),  # cycle 0 -> 3 -> 0
    ],
)
def test_bad_parents_raise(metric, parents, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(predictions=PREDICTIONS, references=REFERENCES, parents=parents)


def test_other_bad_inputs_raise(metric):
    with pytest.raises(ValueError, match=re.escape("`label_frequencies` must have length 6 (one per label), got shape (3,)")):
        metric.compute(
            predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS, label_frequencies=[1, 2, 3]
        )
    # the instance stays usable after a failed call
    results = metric.compute(predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS)
    assert_results(results, EXPECTED_BASE)


def test_non_multi_hot_references_raise():
    # This error can only be seen inside `_compute`, after evaluate stored the inputs;
    # an in-memory instance (kwargs are forwarded to evaluate.load) leaves no cache file behind.
    in_memory = load_htc_metric(keep_in_memory=True)
    with pytest.raises(ValueError, match="`references` must be multi-hot: every value must be 0 or 1"):
        in_memory.compute(predictions=PREDICTIONS, references=[[0, 2, 0, 0, 0, 0]] * 4, parents=PARENTS)
    results = in_memory.compute(predictions=PREDICTIONS, references=REFERENCES, parents=PARENTS)
    assert_results(results, EXPECTED_BASE)


# ---------------------------------------------------------------------------------------
# Cross-check against straightforward loops (the HiAGM/HGCLR style evaluation code).
# ---------------------------------------------------------------------------------------


def _reference_scores(scores, gold, parents, threshold):
    num_docs, num_labels = len(scores), len(parents)
    right = [0] * num_labels
    predicted = [0] * num_labels
    golden = [0] * num_labels
    pred_sets = []
    for i in range(num_docs):
        pred_set = set()
        for j in range(num_labels):
            is_pred = scores[i][j] > threshold
            is_gold = gold[i][j] == 1
            if is_pred:
                pred_set.add(j)
                predicted[j] += 1
            if is_gold:
                golden[j] += 1
            if is_pred and is_gold:
                right[j] += 1
        pred_sets.append(pred_set)

    def prf(r, p, g):
        prec = r / p if p > 0 else 0.0
        rec = r / g if g > 0 else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        return prec, rec, f1

    label_f1 = [prf(right[j], predicted[j], golden[j])[2] for j in range(num_labels)]
    micro = prf(sum(right), sum(predicted), sum(golden))

    def close(label_set):
        out = set()
        for j in label_set:
            while j != -1:
                out.add(j)
                j = parents[j]
        return out

    inter = total_pred = total_gold = 0
    consistent = 0
    for i in range(num_docs):
        closed_pred = close(pred_sets[i])
        closed_gold = close({j for j in range(num_labels) if gold[i][j] == 1})
        inter += len(closed_pred & closed_gold)
        total_pred += len(closed_pred)
        total_gold += len(closed_gold)
        consistent += all(parents[j] == -1 or parents[j] in pred_sets[i] for j in pred_sets[i])
    hier = prf(inter, total_pred, total_gold)
    return {
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "macro_f1": sum(label_f1) / num_labels,
        "hierarchical_precision": hier[0],
        "hierarchical_recall": hier[1],
        "hierarchical_f1": hier[2],
        "consistency_rate": consistent / num_docs,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cross_check(metric, seed):
    rng = np.random.default_rng(seed)
    num_docs, num_labels = 60, 40
    parents = [-1] * 5 + [int(rng.integers(0, j)) for j in range(5, num_labels)]
    # gold: pick a few random labels per document and close them upwards
    gold = np.zeros((num_docs, num_labels), dtype=np.int32)
    for i in range(num_docs):
        for j in rng.choice(num_labels, size=int(rng.integers(1, 4)), replace=False):
            while j != -1:
                gold[i, j] = 1
                j = parents[j]
    # noisy scores correlated with gold; a few labels never occur at all
    scores = np.clip(0.6 * gold + 0.5 * rng.random((num_docs, num_labels)), 0, 1).astype(np.float32)
    scores[:, -3:] = 0.0
    gold[:, -3:] = 0
    threshold = 0.45
    expected = _reference_scores(scores.tolist(), gold.tolist(), parents, threshold)
    results = metric.compute(predictions=scores, references=gold, parents=parents, threshold=threshold)
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, abs=1e-9), key
    assert 0.0 < results["micro_f1"] < 1.0
    assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in results.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_htc_scores_on_arrays_equal_the_metric(metric, seed):
    """run_htc calls `htc_scores` on the Trainer's arrays, skipping evaluate's storage: same scores and errors."""
    rng = np.random.default_rng(seed)
    parents = [-1] * 3 + [int(rng.integers(0, j)) for j in range(3, 30)]
    logits = rng.standard_normal((25, 30)).astype(np.float32)
    gold = (rng.random((25, 30)) < 0.2).astype(np.float32)  # the collator's float multi-hot
    kwargs = {"parents": parents, "threshold": 0.4, "from_logits": True, "label_frequencies": list(range(30))}
    assert htc_scores(logits, gold, **kwargs) == metric.compute(predictions=logits, references=gold, **kwargs)
    with pytest.raises(ValueError, match="`references` has 29 columns but `parents` describes 30 labels"):
        htc_scores(logits, gold[:, :29], **kwargs)


def test_hierarchical_scores_at_100000_labels(metric):
    """The full ICD-10-CM tree has 98,493 labels: an [L, L] ancestor matrix would take 10 GB, so the closure runs
    level by level; checked against set closure per document on a random tree of that size."""
    rng = np.random.default_rng(0)
    num_labels, num_docs = 100_000, 20
    parents = np.array([-1] * 10 + [int(rng.integers(max(0, j - 50), j)) for j in range(10, num_labels)])
    gold = np.zeros((num_docs, num_labels), dtype=np.int8)
    scores = np.zeros((num_docs, num_labels), dtype=np.float32)
    expected_inter = expected_pred = expected_gold = 0
    for i in range(num_docs):
        sets = []
        for matrix, count in ((gold, 3), (scores, 4)):
            closed = set()
            for j in rng.choice(num_labels, size=count, replace=False):
                matrix[i, j] = 1  # only the chosen labels: the metric must close them upwards itself
                while j != -1:
                    closed.add(int(j))
                    j = parents[j]
            sets.append(closed)
        expected_inter += len(sets[0] & sets[1])
        expected_gold += len(sets[0])
        expected_pred += len(sets[1])
    results = metric.compute(predictions=scores, references=gold, parents=parents.tolist())
    precision, recall = expected_inter / expected_pred, expected_inter / expected_gold
    assert results["hierarchical_precision"] == pytest.approx(precision)
    assert results["hierarchical_recall"] == pytest.approx(recall)
    assert expected_pred > 4 * num_docs  # the closure added ancestors
