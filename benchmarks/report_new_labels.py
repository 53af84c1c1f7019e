"""New-labels report: the held-out-leaf tables of docs/new-labels.md from the rows saved by run_new_labels.py.

    python benchmarks/report_new_labels.py                  # both data sets
    python benchmarks/report_new_labels.py --dataset icd10cm

Reads every `new_labels_<dataset>_<row>_seed<N>.json` in benchmarks/results/, groups the seeds of one row (mean, and
min–max when there are several) and prints a Markdown table per data set, then, for each seed that has both rows,
the extended model's margin over the zero-shot baseline and what extending cost the seen labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from report_quality import RESULTS_DIR, spread_cell

DATASETS = {"icd10cm": "ICD-10-CM", "20newsgroups": "20 Newsgroups"}
COLUMNS = ("held_out_macro_f1", "held_out_map", "seen_micro_f1", "seen_macro_f1")
# (table line, saved row, where its figures are in the saved result)
LINES = (
    ("zero-shot: cosine of all-MiniLM-L6-v2 embeddings of text and name", "zero_shot", ("after",)),
    ("zero-shot with the ancestors' names (`path`)", "zero_shot", ("label_queries", "path")),
    ("trained without the held-out leaves, before extending", "extended", ("before",)),
    ("… extended, biases from the label names (`extend_taxonomy` alone)", "extended",
     ("initializations", "extend_taxonomy")),
    ("… extended and calibrated on the texts to predict (`run_htc.py`)", "extended", ("after",)),
    ("ceiling: trained with them", "ceiling", ("after",)),
)


def load_runs(results_dir: Path, dataset: str) -> dict[str, dict[int, dict]]:
    """`{row: {seed: saved result}}` of one data set."""
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(results_dir.glob(f"new_labels_{dataset}_*_seed*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        runs.setdefault(run["row"], {})[run["seed"]] = run
    return runs


def figures(run: dict, where: tuple[str, ...]) -> dict:
    """The figures at `where` in a saved result (empty when an older run did not save them)."""
    for key in where:
        run = run.get(key, {})
    return run


def markdown_table(runs: dict[str, dict[int, dict]], dataset: str) -> str:
    header = [DATASETS[dataset], "seeds", "held-out Macro-F1", "held-out mAP", "seen Micro-F1", "seen Macro-F1"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for title, row, where in LINES:
        seeds = sorted(runs.get(row, {}))
        if not seeds:
            continue
        found = {seed: figures(runs[row][seed], where) for seed in seeds}
        seeds = [seed for seed in seeds if found[seed]]
        if not seeds:
            continue
        found = [found[seed] for seed in seeds]
        cells = [spread_cell([100 * f[key] for f in found if key in f]) for key in COLUMNS]
        lines.append("| " + " | ".join([title, ", ".join(map(str, seeds)), *cells]) + " |")
    return "\n".join(lines)


def per_seed(runs: dict[str, dict[int, dict]]) -> list[str]:
    """Per seed: extended minus zero-shot held-out Macro-F1, and the seen labels' Macro-F1 change."""
    lines = []
    for seed in sorted(set(runs.get("extended", {})) & set(runs.get("zero_shot", {}))):
        extended, zero_shot = runs["extended"][seed], runs["zero_shot"][seed]
        margin = 100 * (extended["after"]["held_out_macro_f1"] - zero_shot["after"]["held_out_macro_f1"])
        lines.append(f"seed {seed}: extended − zero-shot held-out Macro-F1 {margin:+.2f}, "
                     f"seen Macro-F1 change {100 * extended['seen_macro_f1_change']:+.2f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), help="one data set (default: both)")
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    printed = False
    for dataset in [args.dataset] if args.dataset else list(DATASETS):
        runs = load_runs(args.results_dir, dataset)
        if not runs:
            continue
        print(markdown_table(runs, dataset), *per_seed(runs), "", sep="\n")
        printed = True
    if not printed:
        sys.exit(f"{args.results_dir}: no new_labels_*.json results (run benchmarks/run_new_labels.py first)")


if __name__ == "__main__":
    main()
