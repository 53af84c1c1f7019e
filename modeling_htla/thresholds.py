"""Decision thresholds learned on a validation split.

A fixed 0.5 leaves many rare labels never predicted, and Macro-F1 counts each of them. Macro-F1 is the mean of the
labels' own F1, and a label's F1 depends only on its own threshold, so the thresholds that maximize it can be searched
per group of labels independently: one threshold for every label (`"global"`) or one per taxonomy level (`"level"`,
each level's mean F1 maximized on its own). Per label (`"label"`) fits the validation split best and generalizes worst
on rare labels, so the strategy is chosen by cross-validation on the split itself: fitted on one half, scored on the
other, both ways. `"label"` is scored there too (`ThresholdChoice.cross_validated`) so that every run checks whether it
would have won, but it is never stored: `HTLAConfig.decision_thresholds` holds one threshold per level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidate thresholds: 0.02, 0.04, ..., 0.98.
CANDIDATES = np.round(np.arange(1, 50) * 0.02, 2)
STRATEGIES = ("fixed", "global", "level")  # what may be stored; "label" is only cross-validated
FIXED = 0.5


@dataclass
class ThresholdChoice:
    """The chosen strategy, its per-level thresholds (depth 1 first) fitted on the whole split, the split's Macro-F1
    at 0.5 and at them, and each strategy's Macro-F1 on held-out halves."""

    strategy: str
    levels: list[float]
    macro_f1_fixed: float
    macro_f1: float
    cross_validated: dict[str, float]


def _label_f1(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """F1 of every label `[L]` from boolean decisions and gold labels `[N, L]`; 0 when undefined (no gold and no
    prediction), as the htc_f1 metric counts it."""
    right, denominator = (predicted & gold).sum(0), predicted.sum(0) + gold.sum(0)
    return np.divide(2.0 * right, denominator, out=np.zeros(gold.shape[1]), where=denominator > 0)


def label_f1_table(scores: np.ndarray, gold: np.ndarray, candidates: np.ndarray = CANDIDATES) -> np.ndarray:
    """F1 of every label `[C, L]` when it is predicted at score > each candidate; `scores` `[N, L]` probabilities,
    `gold` `[N, L]` booleans."""
    return np.stack([_label_f1(scores > threshold, gold) for threshold in candidates])


def fit(table: np.ndarray, depths: np.ndarray, strategy: str, candidates: np.ndarray = CANDIDATES) -> np.ndarray:
    """Per-label thresholds `[L]` maximizing the mean of `table` (`label_f1_table`) under `strategy`."""
    if strategy == "fixed":
        return np.full(len(depths), FIXED)
    if strategy == "global":
        return np.full(len(depths), candidates[table.mean(1).argmax()])
    if strategy == "label":
        return candidates[table.argmax(0)]
    if strategy != "level":
        raise ValueError(f"strategy must be one of {(*STRATEGIES, 'label')}, got {strategy!r}")
    thresholds = np.empty(len(depths))
    for depth in np.unique(depths):
        level = depths == depth
        thresholds[level] = candidates[table[:, level].mean(1).argmax()]
    return thresholds


def macro_f1(scores: np.ndarray, gold: np.ndarray, thresholds: np.ndarray) -> float:
    """Mean F1 over all labels at per-label `thresholds` `[L]`."""
    return float(_label_f1(scores > thresholds, gold).mean())


def held_out_macro_f1(scores: np.ndarray, gold: np.ndarray, depths: np.ndarray, seed,
                      strategies) -> dict[str, list[float]]:
    """One seeded two-half cut of the documents: each strategy fitted on one half and scored (Macro-F1) on the
    other, both ways, so two held-out figures per strategy. `gold` booleans, `depths` an array; `seed` anything
    `np.random.default_rng` takes."""
    halves = np.array_split(np.random.default_rng(seed).permutation(len(scores)), 2)
    tables = [label_f1_table(scores[half], gold[half]) for half in halves]
    return {strategy: [macro_f1(scores[halves[1 - k]], gold[halves[1 - k]], fit(tables[k], depths, strategy))
                       for k in (0, 1)] for strategy in strategies}


def choose_thresholds(scores: np.ndarray, gold: np.ndarray, depths, seed: int = 0) -> ThresholdChoice:
    """Cross-validate the strategies on two seeded halves of the documents, keep the storable one with the best
    held-out Macro-F1 (ties go to the simpler: fixed, then global, then level) and fit it on every document.

    `scores` `[N, L]` validation probabilities, `gold` `[N, L]` booleans, `depths` the labels' depths (1 = top)."""
    gold, depths = gold.astype(bool), np.asarray(depths)
    cross_validated = {name: float(np.mean(folds))
                       for name, folds in held_out_macro_f1(scores, gold, depths, seed, (*STRATEGIES, "label")).items()}
    strategy = max(STRATEGIES, key=lambda name: (round(cross_validated[name], 10), -STRATEGIES.index(name)))
    thresholds = fit(label_f1_table(scores, gold), depths, strategy)
    levels = [float(thresholds[depths == depth][0]) for depth in range(1, int(depths.max()) + 1)]
    return ThresholdChoice(strategy, levels, macro_f1(scores, gold, np.full(len(depths), FIXED)),
                           macro_f1(scores, gold, thresholds), cross_validated)
