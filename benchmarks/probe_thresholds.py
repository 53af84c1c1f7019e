"""Probe: which rule for choosing decision thresholds holds up on documents it did not see?

`choose_thresholds` picks fixed 0.5, one global or one per-level threshold by a single two-half cross-validation on
the validation split. On 20 Newsgroups at 200 posts the learned thresholds gain 2.5-4.1 test Macro-F1; on ICD-10-CM
(about 300 labels, 2,000 validation codes) they lost on test in most runs after held-out gains of a few tenths.

The rules are compared on validation only: the split is cut into a choosing half and an evaluating half (20 seeded
cuts); each rule chooses and fits its thresholds on the choosing half and is scored by its Macro-F1 gain over 0.5 on
the evaluating half. Test figures (each rule on the whole validation split, scored on test) are printed beside them
for the report, not for the choice.

    python benchmarks/probe_thresholds.py cache RUN_FOLDER VALIDATION_FILE TEST_FILE  # saved model -> probabilities
    python benchmarks/probe_thresholds.py compare [RUN_NAME ...]                      # cached runs (default all)

Finding (15 runs, benchmarks/results/threshold_rules.jsonl): no rule beats the current one-cut choice on validation;
keeping 0.5 unless the gain is clear gives up validation gain, and repeated cuts are level
(docs/results.md#choosing-the-strategy-one-cut-repeated-cuts-or-05-unless-the-gain-is-clear).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from modeling_htla.thresholds import (  # noqa: E402
    FIXED, STRATEGIES, choose_thresholds, fit, held_out_macro_f1, label_f1_table, macro_f1)

CACHE = ROOT / "outputs" / "threshold_probe"
OUTER_CUTS = 20


def cache(run: Path, validation_file: Path, test_file: Path) -> None:
    """Validation and test probabilities of the model saved in `run`, with gold labels and label depths."""
    from transformers import AutoTokenizer

    from modeling_htla import HTLAModel
    from probe_path_decoding import gold_of, logits_of, read_jsonl

    model = HTLAModel.from_pretrained(run).eval()
    tokenizer = AutoTokenizer.from_pretrained(run)
    taxonomy = model.config.get_taxonomy()
    arrays = {"depths": np.asarray(taxonomy.depths, dtype=np.int64)}
    for split, file in (("validation", validation_file), ("test", test_file)):
        rows = read_jsonl(file)
        arrays[f"{split}_scores"] = 1 / (1 + np.exp(-logits_of(model, tokenizer, [row["text"] for row in rows])))
        arrays[f"{split}_gold"] = gold_of(rows, taxonomy).astype(np.uint8)
    CACHE.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(CACHE / f"{run.name}.safetensors"))
    print(f"{run.name}: {len(arrays['validation_gold'])} validation, {len(arrays['test_gold'])} test documents, "
          f"{len(arrays['depths'])} labels")


def held_out_gains(scores, gold, depths, seed: int, repeats: int) -> dict[str, np.ndarray]:
    """Each strategy's held-out Macro-F1 gain over 0.5 on `2 * repeats` folds (seeded two-half cuts, both ways)."""
    gains = {strategy: [] for strategy in STRATEGIES[1:]}
    for repeat in range(repeats):
        folds = held_out_macro_f1(scores, gold, depths, [seed, repeat], STRATEGIES)
        for strategy in gains:
            gains[strategy] += [value - fixed for value, fixed in zip(folds[strategy], folds["fixed"])]
    return {strategy: np.asarray(values) for strategy, values in gains.items()}


TESTS = {  # when a strategy other than 0.5 may be kept, from its held-out gains over 0.5 on repeated cuts
    "rep5_mean": lambda gains: gains.mean() > 0,
    "rep5_sd": lambda gains: gains.mean() > gains.std(),
    "rep5_all": lambda gains: (gains > 0).all(),
}


def rule_thresholds(scores, gold, depths, seed: int) -> dict[str, np.ndarray]:
    """Every rule's per-label thresholds `[L]` chosen and fitted on `scores`/`gold`."""
    fixed = np.full(len(depths), FIXED)
    table = label_f1_table(scores, gold)
    out = {"fixed": fixed, "one_cut": fit(table, depths, choose_thresholds(scores, gold, depths, seed=seed).strategy)}
    gains = held_out_gains(scores, gold, depths, seed, repeats=5)
    for name, test in TESTS.items():
        passing = [strategy for strategy, values in gains.items() if test(values)]
        best = max(passing, key=lambda strategy: gains[strategy].mean(), default=None)
        out[name] = fixed if best is None else fit(table, depths, best)
    return out


def compare(runs: list[str]) -> None:
    """Each rule's Macro-F1 gain over 0.5 on validation's evaluating halves (mean and spread over the cuts) and on
    test, one JSON line per cached run (`runs`, or all)."""
    for path in sorted(CACHE.glob("*.safetensors")):
        if runs and path.stem not in runs:
            continue
        arrays = load_file(str(path))
        depths = arrays["depths"]
        val_scores, val_gold = arrays["validation_scores"], arrays["validation_gold"].astype(bool)
        test_scores, test_gold = arrays["test_scores"], arrays["test_gold"].astype(bool)
        fixed = np.full(len(depths), FIXED)
        base_test = macro_f1(test_scores, test_gold, fixed)
        row = {"run": path.stem, "validation": len(val_gold), "labels": len(depths)}
        gains: dict[str, list[float]] = {}
        for cut in range(OUTER_CUTS):
            choose, evaluate = np.array_split(np.random.default_rng(1000 + cut).permutation(len(val_gold)), 2)
            base = macro_f1(val_scores[evaluate], val_gold[evaluate], fixed)
            for name, thresholds in rule_thresholds(val_scores[choose], val_gold[choose], depths, cut).items():
                gains.setdefault(name, []).append(macro_f1(val_scores[evaluate], val_gold[evaluate], thresholds) - base)
        for name, thresholds in rule_thresholds(val_scores, val_gold, depths, 0).items():
            row[name] = {"validation_gain": round(100 * float(np.mean(gains[name])), 2),
                         "validation_gain_sd": round(100 * float(np.std(gains[name])), 2),
                         "test_gain": round(100 * (macro_f1(test_scores, test_gold, thresholds) - base_test), 2)}
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cached = commands.add_parser("cache")
    for name in ("run", "validation_file", "test_file"):
        cached.add_argument(name, type=Path)
    commands.add_parser("compare").add_argument("runs", nargs="*", help="cached run names (default: all)")
    args = parser.parse_args()
    if args.command == "cache":
        cache(args.run, args.validation_file, args.test_file)
    else:
        compare(args.runs)


if __name__ == "__main__":
    main()
