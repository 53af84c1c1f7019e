"""Learning-curve report: the table of docs/results.md and benchmarks/results/learning_curve.png from the rows
`run_learning_curve.py` saved.

    python benchmarks/report_learning_curve.py

Groups the seeds of one (data set, row, k) into a line of the table (mean, and min–max over the seeds), adds the
full-data point of `default` and `flat` from `run_recipe.py`'s full-size runs of the README command and of the same
with `--no_use_graph_encoder` (recipe_<dataset>_full_{readme,readme_flat}_seed*.json: the same recipe as every k,
trained to its early stop or epoch cap; their test sets are a fixed draw of 2,000 of 20 Newsgroups' 7,532 test posts
and the first 4,000 codes of ICD-10-CM's test split), and names the label-aware setting with the best mean
validation Macro-F1 at each k.

The default is what `run_htc.py` trains now: at k up to the small-data rule's boundary
(`run_htc.SMALL_DATA_EXAMPLES_PER_LEAF`) the hybrid head's cosine starts at scale 1 and its classifier weights at
the label names, the model of the `names10` runs (`RULE_ROW`), which are counted as the default there. `default`
runs at those k made under an earlier form of the rule are counted as what they trained: with no
`init_weights_from_names` recorded but `cosine_scale_init` 1, the `scale1` model (`--tla_temperature 1` with TLA off
changes only that start); with neither, the row `default_before_rule`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from report_quality import spread_cell

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_htc import SMALL_DATA_EXAMPLES_PER_LEAF  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATASETS = {"20newsgroups": "20 Newsgroups", "icd10cm": "ICD-10-CM (chapter > block)"}
ROW_NAMES = {
    "flat": "flat (`--no_use_graph_encoder`)",
    "default": f"default (README command; k ≤ {SMALL_DATA_EXAMPLES_PER_LEAF}: the small-data rule, = the `names10` runs)",
    "default_before_rule": "default before the small-data rule (cosine scale 1/0.07)",
    "tla": "graph + TLA λ 1 (`--use_tla true`)",
    "tla_small": "graph + TLA λ 0.1",
    "scale50": "graph, cosine scale 50 (`--tla_temperature 0.02`)",
    "scale1": "graph, cosine scale 1 (`--tla_temperature 1`; the rule before names)",
    "dot": "graph, cosine only (`--fusion dot`)",
    "names10": "cosine scale 1, weights started from the names (`--init_weights_from_names 10`)",
    "flat_no_early_stop": "flat, no early stopping (diagnostic: `--early_stopping_patience 0`)",
    "default_no_early_stop": "default, no early stopping (`--early_stopping_patience 0`)",
    "flat_cap30": "flat, epoch cap 30 (diagnostic: `--num_train_epochs 30`)",
    "default_cap30": "default, epoch cap 30 (diagnostic: `--num_train_epochs 30`)",
    "zero_shot": "zero-shot from the names",
    "setfit": "SetFit 1.2 (capped), label scores = sums of leaf probabilities",
    "setfit_argmax": "SetFit 1.2 (capped), its predicted leaf + ancestors (no threshold: same in both columns)",
}
PLOT_NAMES = {"flat": "flat", "default": "default (README command)", "default_before_rule": "default before the rule",
              "tla": "graph + TLA", "tla_small": "graph + TLA 0.1",
              "scale50": "graph, cosine scale 50", "scale1": "graph, cosine scale 1", "dot": "graph, cosine only",
              "names10": "cosine scale 1, weights from names", "flat_no_early_stop": "flat, no early stopping", "default_no_early_stop": "default, no early stopping",
              "flat_cap30": "flat, epoch cap 30", "default_cap30": "default, epoch cap 30",
              "zero_shot": "zero-shot from names", "setfit": "SetFit, summed leaf probabilities",
              "setfit_argmax": "SetFit, predicted leaf"}
FULL_DATA = {"flat": "readme_flat", "default": "readme"}  # row: run_recipe.py row of the full-data point
RULE_ROW = "names10"  # the candidate row whose model the small-data rule trains
CANDIDATE_ROWS = ("default", "default_before_rule", "tla", "tla_small", "scale50", "scale1", "dot", "names10",
                  "default_no_early_stop")


def load(results_dir: Path) -> dict:
    """{(dataset, row, k): [saved runs]}."""
    groups = defaultdict(list)
    for path in sorted(results_dir.glob("learning_curve_*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("benchmark") != "learning_curve":
            continue
        row = run["row"]
        if row == "default" and run["k"] <= SMALL_DATA_EXAMPLES_PER_LEAF and run.get("init_weights_from_names") is None:
            # trained under an earlier form of the rule (cosine at scale 1, random weights) or before it
            row = "default_before_rule" if run.get("cosine_scale_init") is None else "scale1"
        group = groups[(run["dataset"], row, run["k"])]
        if run["seed"] in {other["seed"] for other in group}:
            continue  # the same model at the same seed, run twice under two names: the first counts
        group.append(run)
        if run["row"] == "setfit":  # SetFit's own prediction, the top leaf closed under its ancestors
            own = {split: {f"{infix}{key}": run[split][f"argmax_{key}"] for infix in ("", "learned_")
                           for key in ("micro_f1", "macro_f1")} for split in ("validation", "test")}
            groups[(run["dataset"], "setfit_argmax", run["k"])].append({**run, **own})
    for (dataset, row, k), runs in list(groups.items()):  # the rule's model, trained as its candidate row
        if row == RULE_ROW and k <= SMALL_DATA_EXAMPLES_PER_LEAF:
            have = {run["seed"] for run in groups.get((dataset, "default", k), [])}
            groups[(dataset, "default", k)].extend(run for run in runs if run["seed"] not in have)
    return groups


def full_data_points(results_dir: Path, dataset: str) -> dict:
    """{row: {"test": {"macro_f1": [...], "learned_macro_f1": [...], ...}, "validation": {...}, "seeds": [...],
    "minutes": [...]}} of the README command's full-size runs (and flat's), each list in seed order."""
    points = {}
    for name, recipe_row in FULL_DATA.items():
        runs = [json.loads(path.read_text(encoding="utf-8"))
                for path in sorted(results_dir.glob(f"recipe_{dataset}_full_{recipe_row}_seed*.json"))]
        if runs:
            points[name] = {
                "seeds": [run["seed"] for run in runs],
                "test": {key: [run["results"][f"predict_{key}"] for run in runs] for key in
                         ("micro_f1", "macro_f1", "learned_micro_f1", "learned_macro_f1")},
                "validation": {key: [run["results"][f"eval_{key}"] for run in runs]
                               for key in ("macro_f1", "learned_macro_f1")},
                "minutes": [run["seconds"] / 60 for run in runs if run.get("seconds") is not None],
            }
    return points


def values(runs: list[dict], split: str, key: str) -> list[float]:
    return [100 * run[split][key] for run in runs if key in run.get(split, {})]


def minutes(run: dict) -> float:
    """Wall minutes of a row; zero-shot's include the test embeddings it computed once and then read from a cache."""
    if "embedding_seconds" in run:
        return sum(run["embedding_seconds"].values()) / 60
    return run["wall_time_s"] / 60


def table(groups: dict, results_dir: Path, dataset: str) -> str:
    header = ["Row", "k", "Seeds", "Train docs", "Val Macro-F1 learned", "Test Micro-F1 at 0.5", "Test Macro-F1 at 0.5",
              "Test Micro-F1 learned", "Test Macro-F1 learned", "Minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ks = sorted({k for (data, _, k) in groups if data == dataset})
    full_points = full_data_points(results_dir, dataset)
    for row in ROW_NAMES:
        for k in ks:
            runs = groups.get((dataset, row, k))
            if not runs:
                continue
            cells = [ROW_NAMES[row], str(k), ", ".join(str(run["seed"]) for run in runs),
                     "/".join(sorted({str(run["sizes"]["train"]) for run in runs})),
                     spread_cell(values(runs, "validation", "learned_macro_f1"))]
            cells += [spread_cell(values(runs, "test", key)) for key in
                      ("micro_f1", "macro_f1", "learned_micro_f1", "learned_macro_f1")]
            cells.append(spread_cell([minutes(run) for run in runs]))
            lines.append("| " + " | ".join(cells) + " |")
        full = full_points.get(row)
        if full:
            test = full["test"]
            cells = [ROW_NAMES[row], "full", ", ".join(map(str, full["seeds"])), "all",
                     spread_cell([100 * v for v in full["validation"]["learned_macro_f1"]])]
            cells += [spread_cell([100 * v for v in test[key]]) for key in
                      ("micro_f1", "macro_f1", "learned_micro_f1", "learned_macro_f1")]
            cells.append(spread_cell(full["minutes"]) if len(full["minutes"]) == len(full["seeds"]) else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_candidates(groups: dict, dataset: str) -> list[str]:
    """Per k: the label-aware row with the best mean validation Macro-F1 (learned thresholds), over the seeds every
    compared row has, and its margin over the default and over flat."""
    lines = []
    for k in sorted({k for (data, _, k) in groups if data == dataset}):
        runs = {row: {run["seed"]: run for run in groups.get((dataset, row, k), [])} for row in (*CANDIDATE_ROWS, "flat")}
        present = {row: seeds for row, seeds in runs.items() if seeds}
        if len(present) < 2 or "default" not in present:
            continue
        common = set.intersection(*(set(seeds) for seeds in present.values()))
        if not common:
            continue

        def mean(row: str, split: str = "validation", key: str = "learned_macro_f1") -> float:
            return statistics.mean(100 * present[row][seed][split][key] for seed in common)

        rows = [row for row in CANDIDATE_ROWS if row in present]
        best = max(rows, key=mean)
        text = (f"k={k} (seeds {', '.join(map(str, sorted(common)))}): best on validation `{best}` "
                f"{mean(best):.2f} (default {mean('default'):.2f}"
                + (f", flat {mean('flat'):.2f}" if "flat" in present else "") + "); on test "
                f"{mean(best, 'test'):.2f} (default {mean('default', 'test'):.2f}"
                + (f", flat {mean('flat', 'test'):.2f}" if "flat" in present else "") + ")")
        lines.append(text)
    return lines


def verdict(diffs: list[float], goal: float) -> str:
    return "met" if min(diffs) >= goal else ("met on the mean" if statistics.mean(diffs) >= goal else "missed")


def targets(groups: dict, dataset: str, full: dict | None = None) -> list[str]:
    """Per k, test Macro-F1 at learned thresholds (what `run_htc.py` predicts with): default - flat (target: >= 5 at
    k <= 8, >= 0 above) and default - SetFit's better reading (target: >= 0 at k <= 8), over the seeds both have;
    then default - flat on the full-data points `full` (`full_data_points`; target >= 0)."""
    lines = []

    def paired(row: str, other: str, k: int) -> tuple[list[float], list[int]]:
        mine = {run["seed"]: run for run in groups.get((dataset, row, k), [])}
        theirs = {run["seed"]: run for run in groups.get((dataset, other, k), [])}
        seeds = sorted(set(mine) & set(theirs))
        return [100 * (mine[s]["test"]["learned_macro_f1"] - theirs[s]["test"]["learned_macro_f1"]) for s in seeds], seeds

    for k in sorted({k for (data, _, k) in groups if data == dataset}):
        parts = []
        for other, goal in (("flat", 5.0 if k <= 8 else 0.0), ("setfit_argmax", 0.0), ("setfit", 0.0)):
            diffs, seeds = paired("default", other, k)
            if diffs:
                parts.append(f"default - {other} {spread_cell(diffs)} (seeds {', '.join(map(str, seeds))}; target "
                             f">= {goal:g}: {verdict(diffs, goal)})")
        if parts:
            lines.append(f"k={k}: " + "; ".join(parts))
    if full and {"default", "flat"} <= set(full):
        scores = {row: dict(zip(full[row]["seeds"], full[row]["test"]["learned_macro_f1"])) for row in ("default", "flat")}
        seeds = sorted(set(scores["default"]) & set(scores["flat"]))
        if seeds:
            diffs = [100 * (scores["default"][s] - scores["flat"][s]) for s in seeds]
            lines.append(f"full data (README command): default - flat {spread_cell(diffs)} (seeds "
                         f"{', '.join(map(str, seeds))}; target >= 0: {verdict(diffs, 0.0)})")
    return lines


def plot(groups: dict, results_dir: Path, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    full_x = 128  # where "full" sits on the log axis
    for ax, (dataset, title) in zip(axes, DATASETS.items()):
        full = full_data_points(results_dir, dataset)
        for index, row in enumerate(ROW_NAMES):
            ks = sorted(k for (data, name, k) in groups if data == dataset and name == row)
            xs, means, low, high = [], [], [], []
            points = [(k, values(groups[(dataset, row, k)], "test", "learned_macro_f1")) for k in ks]
            if row in full:
                points.append((full_x, [100 * v for v in full[row]["test"]["learned_macro_f1"]]))
            for x, vals in points:
                if vals:
                    mean = statistics.mean(vals)
                    xs.append(x), means.append(mean), low.append(mean - min(vals)), high.append(max(vals) - mean)
            if xs:
                ax.errorbar(xs, means, yerr=[low, high], marker="o", capsize=3, color=plt.get_cmap("tab10" if index < 10 else "Dark2")(index % 10),
                            label=PLOT_NAMES.get(row, row), linestyle="--" if row.startswith(("zero_shot", "setfit")) else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks([2, 8, 16, 32, full_x], ["2", "8", "16", "32", "full data"])
        ax.set(title=title, xlabel="training documents per leaf (k)", ylabel="test Macro-F1 (%), learned thresholds")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    groups = load(args.results_dir)
    if not groups:
        raise SystemExit(f"report_learning_curve.py: error: no learning_curve_*.json in {args.results_dir}")
    for dataset, title in DATASETS.items():
        if any(data == dataset for data, _, _ in groups):
            print(f"\n{title}:\n")
            print(table(groups, args.results_dir, dataset))
            full = full_data_points(args.results_dir, dataset)
            for line in best_candidates(groups, dataset) + targets(groups, dataset, full):
                print(f"- {line}")
    print(f"\nwrote {plot(groups, args.results_dir, args.results_dir / 'learning_curve.png')}")


if __name__ == "__main__":
    main()
