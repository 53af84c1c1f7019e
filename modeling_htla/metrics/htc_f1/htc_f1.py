# Copyright 2024 The htla authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""HTC-F1: evaluation metrics for hierarchical multi-label text classification.

This file is an `evaluate` metric script. It is self-contained on purpose
(only numpy, datasets and evaluate are imported, one import per line) so that
`evaluate.load("<path to this folder>")` can copy and import it offline.
"""

import numpy as np

import datasets

import evaluate


_CITATION = """\
@inproceedings{kumar2024htla,
  title     = {Modeling Text-Label Alignment for Hierarchical Text Classification},
  author    = {Kumar, Ashish and Toshniwal, Durga},
  booktitle = {Machine Learning and Knowledge Discovery in Databases. Research Track
               (ECML PKDD 2024)},
  year      = {2024},
  publisher = {Springer},
  note      = {arXiv:2409.00788}
}
@inproceedings{kiritchenko2006hierarchical,
  title     = {Learning and Evaluation in the Presence of Class Hierarchies:
               Application to Text Categorization},
  author    = {Kiritchenko, Svetlana and Matwin, Stan and Nock, Richard and Famili, A. Fazel},
  booktitle = {Advances in Artificial Intelligence (Canadian AI 2006)},
  year      = {2006},
  publisher = {Springer}
}
"""

_DESCRIPTION = """\
Evaluation suite for hierarchical multi-label text classification (HTC), where
every document carries a set of labels from a label tree (taxonomy) and the
gold set of a document is closed upwards (every gold label's ancestors are gold
as well).

The model outputs one score per taxonomy label; a label is predicted when its
score is strictly greater than `threshold` (after a sigmoid when
`from_logits=True`). From these per-(document, label) decisions the metric
reports:

* Micro-F1 / Micro-precision / Micro-recall: true positives, predicted
  positives and gold positives are summed over every (document, label) pair
  before precision and recall are formed; F1 is their harmonic mean.
* Macro-F1: per-label F1 averaged over ALL labels of the taxonomy. A label that
  is never gold and never predicted has precision = recall = F1 = 0, and so
  lowers the average. Any ratio with a zero denominator is 0. This follows the
  evaluation code commonly used in the HTC literature (HiAGM, HGCLR, HTLA), so
  that numbers are comparable with published results.
* Per-level Micro-F1 / Macro-F1: the same two quantities restricted to the
  labels at depth d of the tree (depth 1 = top-level labels, derived from
  `parents`).
* P1..P5 Macro-F1: the frequency-group analysis of the HTLA paper (Kumar &
  Toshniwal, ECML-PKDD 2024). Labels are ordered by frequency, most frequent
  first (ties: lower label index first) and the order is cut into five
  contiguous groups of (near-)equal size (`numpy.array_split`); P1 holds the
  most frequent labels and P5 the rarest. Macro-F1 is computed inside each
  group. Frequencies are `label_frequencies` when given (for instance counts on
  the training split), otherwise the number of documents carrying each label
  in `references`. With fewer than five labels some groups are empty and
  are reported as 0.0.
* Hierarchical precision / recall / F1 (Kiritchenko et al., 2006): predicted
  and gold label sets are both closed upwards (every ancestor of a member is
  added), then hP = sum|P & T| / sum|P| and hR = sum|P & T| / sum|T| with the
  sums running over documents; hF is their harmonic mean (0 if undefined).
* Consistency rate: the share of documents whose raw predicted set (before any
  closure) contains no label whose parent is missing from it. A document with
  an empty prediction counts as consistent.

All values are fractions in [0, 1] returned as Python floats.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-label scores of shape
        [num_documents, num_labels]: probabilities, or logits when
        `from_logits=True`. Stored as float32 by `evaluate`; the comparison with
        `threshold` is therefore done in float32 precision.
    references (`list` of `list` of `int`): multi-hot gold labels of shape
        [num_documents, num_labels] with values in {0, 1}, ancestors included.
    parents (`list` of `int`): required. Length num_labels; parents[i] is the
        index of the parent of label i, or -1 if label i is a top-level label.
        The structure must be a forest (no cycles).
    threshold (`float` or `list` of `float`, defaults to 0.5): a label is
        predicted when its score is strictly greater than this value; a list of
        num_labels values gives every label its own threshold (e.g. thresholds
        learned per level on a validation split).
    from_logits (`bool`, defaults to `False`): apply a sigmoid to `predictions`
        before thresholding.
    label_frequencies (`list` of `float`, optional): length num_labels; label
        frequencies used to form the P1..P5 groups (e.g. training-set counts).
        Defaults to the label counts in `references`.

Returns:
    micro_f1, micro_precision, micro_recall (`float`): micro-averaged scores.
    macro_f1 (`float`): mean per-label F1 over all labels.
    level_{d}_micro_f1, level_{d}_macro_f1 (`float`): the same restricted to the
        labels at depth d, for d = 1 .. maximum depth (1 = top level).
    p1_macro_f1 .. p5_macro_f1 (`float`): Macro-F1 in the five label-frequency
        groups, P1 = most frequent labels. An empty group (fewer than 5
        labels) scores 0.0.
    hierarchical_precision, hierarchical_recall, hierarchical_f1 (`float`):
        micro-averaged scores on ancestor-closed label sets.
    consistency_rate (`float`): share of documents whose predicted set respects
        the hierarchy.

Examples:
    >>> htc_f1 = evaluate.load("path/to/modeling_htla/metrics/htc_f1")
    >>> # labels: 0 = A, 1 = B, 2 = A/x, 3 = A/y, 4 = B/z
    >>> parents = [-1, -1, 0, 0, 1]
    >>> results = htc_f1.compute(
    ...     predictions=[[0.9, 0.1, 0.8, 0.2, 0.0], [0.1, 0.7, 0.0, 0.0, 0.6]],
    ...     references=[[1, 0, 1, 0, 0], [0, 1, 0, 0, 1]],
    ...     parents=parents,
    ... )
    >>> print(results["micro_f1"], results["macro_f1"], results["consistency_rate"])
    1.0 0.8 1.0
"""

def _safe_div(numerator, denominator):
    """Element-wise numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _prf(right, predicted, gold):
    """Precision, recall and F1 from counts, with the 0-for-undefined convention."""
    precision = _safe_div(right, predicted)
    recall = _safe_div(right, gold)
    f1 = _safe_div(2.0 * precision * recall, precision + recall)
    return precision, recall, f1


def _micro_f1(right, predicted, gold, index):
    if len(index) == 0:
        return 0.0
    _, _, f1 = _prf(right[index].sum(), predicted[index].sum(), gold[index].sum())
    return float(f1)


def _macro_f1(label_f1, index):
    if len(index) == 0:
        return 0.0
    return float(label_f1[index].mean())


def check_parents(parents):
    """Validate `parents`; return (parents array, depth array), the tree as `htc_counts` takes it."""
    if parents is None:
        raise ValueError(
            "`parents` is required: a list with the parent index of every label (-1 for a top-level label)."
        )
    try:
        raw = np.asarray(parents)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`parents` must be a flat list of integers: {err}") from None
    if raw.ndim != 1:
        raise ValueError(f"`parents` must be a flat list of integers, got an array of shape {raw.shape}.")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        integral_floats = np.issubdtype(raw.dtype, np.floating) and np.all(np.mod(raw, 1) == 0)
        if not integral_floats:
            raise ValueError("`parents` must contain integers.")
    par = raw.astype(np.int64)
    num_labels = par.shape[0]
    if num_labels == 0:
        raise ValueError("`parents` is empty: the taxonomy needs at least one label.")
    bad = (par < -1) | (par >= num_labels)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`parents[{i}]` = {int(par[i])} is not -1 or a label index in [0, {num_labels}).")
    labels = np.arange(num_labels)
    if (par == labels).any():
        i = int(np.flatnonzero(par == labels)[0])
        raise ValueError(f"label {i} is its own parent.")

    # Depth by repeated propagation from the roots (depth 1); unresolved labels after
    # no further progress lie on a cycle.
    depth = np.where(par < 0, 1, 0).astype(np.int64)
    while True:
        todo = np.flatnonzero(depth == 0)
        if todo.size == 0:
            break
        parent_depth = depth[par[todo]]
        ready = parent_depth > 0
        if not ready.any():
            raise ValueError(
                f"`parents` contains a cycle (e.g. through label {int(todo[0])}); it must describe a forest."
            )
        depth[todo[ready]] = parent_depth[ready] + 1

    return par, depth


def _to_matrix(values, name, dtype, num_labels):
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a rectangular [num_documents, num_labels] array: {err}") from None
    if array.size == 0:
        array = array.reshape(0, num_labels)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D [num_documents, num_labels], got shape {array.shape}.")
    if array.shape[1] != num_labels:
        raise ValueError(
            f"`{name}` has {array.shape[1]} columns but `parents` describes {num_labels} labels."
        )
    return array


def _check_options(num_labels, threshold, label_frequencies):
    """Validate the scalar / per-label keyword arguments; return them normalised."""
    try:
        values = np.asarray(threshold, dtype=np.float32)
    except (TypeError, ValueError):
        values = np.asarray(np.nan)
    if not np.isfinite(values).all():
        raise ValueError(f"`threshold` must be a number or a list of numbers, got {threshold!r}.")
    threshold = values
    if threshold.shape not in ((), (num_labels,)):
        raise ValueError(
            f"`threshold` must be a number or have length {num_labels} (one per label), got shape {threshold.shape}."
        )
    freq = None
    if label_frequencies is not None:
        try:
            freq = np.asarray(label_frequencies, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"`label_frequencies` must be a list of numbers: {err}") from None
        if freq.shape != (num_labels,):
            raise ValueError(
                f"`label_frequencies` must have length {num_labels} (one per label), got shape {freq.shape}."
            )
        if not np.isfinite(freq).all():
            raise ValueError("`label_frequencies` must be finite numbers.")
    return threshold, freq


def _first_row_width(values):
    """Width of the first row of a [N, L] input, or None when it cannot be told cheaply."""
    try:
        if len(values) == 0:
            return None
        return len(values[0])
    except TypeError:
        return None


def _close_upwards(members, par, depth):
    """Ancestor closure of boolean label sets [N, L]: a label is in the closure when it
    or one of its descendants is in the set.

    Level by level from the deepest, each level's columns are OR-ed into their parents'
    columns, so memory stays that of the [N, L] sets (an [L, L] ancestor matrix takes
    9.7 GB at the 98,493 labels of the full ICD-10-CM tree).
    """
    closed = members.copy()
    if closed.shape[0] == 0:
        return closed
    for d in range(int(depth.max()), 1, -1):
        idx = np.flatnonzero(depth == d)
        idx = idx[np.argsort(par[idx], kind="stable")]  # children grouped by parent
        parents, starts = np.unique(par[idx], return_index=True)
        closed[:, parents] |= np.logical_or.reduceat(closed[:, idx], starts, axis=1)
    return closed


def htc_scores(
    predictions,
    references,
    parents=None,
    threshold=0.5,
    from_logits=False,
    label_frequencies=None,
):
    """The scores of `HtcF1.compute` on in-memory arrays (`[N, L]` `predictions`, `[N, L]` multi-hot
    `references`), without `evaluate`'s storage, which holds them as Python lists: 9 GB for 1,000 documents and
    98,000 labels. Same arguments and results as `compute`."""
    par, depth = check_parents(parents)
    num_labels = par.shape[0]

    scores = _to_matrix(predictions, "predictions", np.float32, num_labels)
    refs = _to_matrix(references, "references", np.int64, num_labels)
    if scores.shape[0] != refs.shape[0]:
        raise ValueError(
            f"`predictions` has {scores.shape[0]} rows but `references` has {refs.shape[0]}."
        )
    if refs.size and (refs.min() < 0 or refs.max() > 1):
        raise ValueError("`references` must be multi-hot: every value must be 0 or 1.")
    threshold, freq = _check_options(num_labels, threshold, label_frequencies)
    counts = htc_counts(htc_decisions(scores, threshold, from_logits), refs == 1, par, depth)
    return scores_from_counts(counts, par, depth, freq)


def htc_decisions(predictions, threshold=0.5, from_logits=False):
    """Boolean `[N, L]` decisions as every score counts them: float32 scores (after a sigmoid when `from_logits`)
    strictly above a float32 `threshold` (one number, or one per label)."""
    scores = np.asarray(predictions, dtype=np.float32)
    if from_logits:
        with np.errstate(over="ignore"):
            scores = (1.0 / (1.0 + np.exp(-scores.astype(np.float64)))).astype(np.float32)
    return scores > np.asarray(threshold, dtype=np.float32)


def htc_counts(pred, gold, par, depth):
    """The counts every score is formed from, for boolean decisions `pred` and gold sets `gold` (`[N, L]`): per label
    `right`, `predicted` and `gold` (`[L]`), the ancestor-closed totals, the consistent documents and `documents`.

    Counts of disjoint sets of documents add up (`scores_from_counts` of their sum is the score of their union), so
    a corpus can be scored chunk by chunk without ever holding its `[N, L]` arrays."""
    closed_pred = _close_upwards(pred, par, depth)
    closed_gold = _close_upwards(gold, par, depth)
    # The parent-present check of htla's consistent decoding (`decoding.decode_scores`), written again here
    # because `evaluate` loads this file as a standalone script that can import nothing from htla.
    children = np.flatnonzero(par >= 0)
    orphan = pred[:, children] & ~pred[:, par[children]]
    return {
        "right": np.count_nonzero(pred & gold, axis=0).astype(np.int64),
        "predicted": np.count_nonzero(pred, axis=0).astype(np.int64),
        "gold": np.count_nonzero(gold, axis=0).astype(np.int64),
        "closed_right": np.int64(np.count_nonzero(closed_pred & closed_gold)),
        "closed_predicted": np.int64(np.count_nonzero(closed_pred)),
        "closed_gold": np.int64(np.count_nonzero(closed_gold)),
        "consistent": np.int64(np.count_nonzero(~orphan.any(axis=1))),
        "documents": np.int64(pred.shape[0]),
    }


def scores_from_counts(counts, par, depth, label_frequencies=None):
    """Every score of `htc_scores` from `htc_counts` (summed over any number of chunks of documents);
    `label_frequencies` (`[L]` or `None`: the gold counts) forms the P1..P5 groups."""
    right, predicted, golden = counts["right"], counts["predicted"], counts["gold"]
    _, _, label_f1 = _prf(right, predicted, golden)

    everything = np.arange(par.shape[0])
    micro_p, micro_r, micro_f = _prf(right.sum(), predicted.sum(), golden.sum())
    results = {
        "micro_f1": float(micro_f),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "macro_f1": _macro_f1(label_f1, everything),
    }

    # ---- per level -------------------------------------------------------------
    for d in range(1, int(depth.max()) + 1):
        idx = np.flatnonzero(depth == d)
        results[f"level_{d}_micro_f1"] = _micro_f1(right, predicted, golden, idx)
        results[f"level_{d}_macro_f1"] = _macro_f1(label_f1, idx)

    # ---- frequency groups P1..P5 -------------------------------------------------
    freq = golden.astype(np.float64) if label_frequencies is None else np.asarray(label_frequencies, np.float64)
    # stable sort on -freq: most frequent first, ties by ascending label index
    order = np.argsort(-freq, kind="stable")
    for g, group in enumerate(np.array_split(order, 5), start=1):
        results[f"p{g}_macro_f1"] = _macro_f1(label_f1, group)

    # ---- hierarchical P/R/F on ancestor-closed sets ----------------------------
    h_p, h_r, h_f = _prf(counts["closed_right"], counts["closed_predicted"], counts["closed_gold"])
    results["hierarchical_precision"] = float(h_p)
    results["hierarchical_recall"] = float(h_r)
    results["hierarchical_f1"] = float(h_f)

    # ---- consistency of the raw predictions ------------------------------------
    documents = int(counts["documents"])
    results["consistency_rate"] = float(counts["consistent"] / documents) if documents else 0.0
    return results


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HtcF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2409.00788"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the HTC scores (see the arguments below); `parents` is required.
        """
        # Fail fast on bad keyword arguments, before `evaluate` stores the inputs: an
        # exception raised from `_compute` would leave evaluate's cache file locked.
        # `_compute` validates everything again (including what cannot be seen here).
        par, _ = check_parents(kwargs.get("parents"))
        num_labels = par.shape[0]
        _check_options(num_labels, kwargs.get("threshold", 0.5), kwargs.get("label_frequencies"))
        for name, values in (("predictions", predictions), ("references", references)):
            width = _first_row_width(values) if values is not None else None
            if width is not None and width != num_labels:
                raise ValueError(f"`{name}` has {width} columns but `parents` describes {num_labels} labels.")
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, **kwargs):
        return htc_scores(predictions, references, **kwargs)
