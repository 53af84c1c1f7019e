"""Quality report: the tables and plots of docs/results.md from the rows saved in benchmarks/results/.

    python benchmarks/report_quality.py

    python benchmarks/report_quality.py --dataset icd10cm   # the embedded ICD-10-CM runs, tables only

Reads every `<dataset>_*.json` written by `run_quality.py` (and the TF-IDF row), groups the seeds of one
setting into one row (mean, and the spread min–max when there are several seeds), prints Markdown tables of the
test-set figures and writes three PNGs next to the results: learning curves, per-level F1 and per-frequency-group F1.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VARIANT_NAMES = {
    "tfidf": "TF-IDF + LR, one classifier per parent",
    "flat": "Flat (MiniLM, mean pooling, linear head)",
    "bce": "BERT-GPTrans (graph, BCE only)",
    "htla": "HTLA (graph, BCE + TLA)",
    "dot": "HTLA, dot fusion (λ 0.1)",
    "recommended": "Default: graph, hybrid head, BCE only",
}
ABLATIONS = {
    "use_tla": "TLA", "fusion": "fusion", "negative_mining": "mining", "tla_temperature": "τ", "tla_weight": "λ",
    "graph_learning_rate": "graph lr", "tla_projection_dim": "TLA projection", "graph_hidden_size": "graph width",
    "graph_num_heads": "graph heads", "graph_labels_per_step": "labels per step", "graph_refresh_steps": "refresh steps",
}
COLUMNS = {  # header: results key without the split prefix; all are fractions, shown in percent
    "Micro-F1": "micro_f1",
    "Macro-F1": "macro_f1",
    **{f"L{level} Macro": f"level_{level}_macro_f1" for level in (1, 2, 3)},
    **{f"P{group}": f"p{group}_macro_f1" for group in range(1, 6)},
    "Hier. F1": "hierarchical_f1",
    "Consistent %": "consistency_rate",
}


@dataclass
class Row:
    """All seeds of one setting: a variant plus the ablation values it overrides, at one training budget."""

    variant: str
    ablation: tuple[tuple[str, str], ...]
    budget: str = "1 epoch"
    runs: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        overrides = ", ".join(f"{ABLATIONS[key]}={value}" for key, value in self.ablation)
        return VARIANT_NAMES.get(self.variant, self.variant) + (f" [{overrides}]" if overrides else "")

    @property
    def is_ablation(self) -> bool:
        """A variant run with changed settings."""
        return bool(self.ablation)

    @property
    def seeds(self) -> list:
        return [run["settings"].get("seed", "-") for run in self.runs]

    def values(self, key: str) -> list[float]:
        """The value of one results key (e.g. `predict_macro_f1`) in every seed that has it."""
        return [run["results"][key] for run in self.runs if key in run["results"]]


def spread_cell(values: list[float]) -> str:
    """`mean` for one seed, `mean (min–max)` for several."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def load_rows(results_dir: Path, dataset: str = "20newsgroups") -> list[Row]:
    """One `Row` per setting, in the order TF-IDF, flat, BCE-only, HTLA, dot, recommended, then the ablations."""
    rows: dict[tuple, Row] = {}
    for path in sorted(results_dir.glob(f"{dataset}_*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("benchmark") != dataset or "results" not in run:
            continue
        settings = run.get("settings", {})
        # The flags on top of a variant are its ablation; runs saved before `overrides` was recorded tell them by
        # their settings (none of which set use_tla as a flag).
        changed = run["overrides"] if run.get("overrides") is not None else \
            {key: value for key, value in settings.items() if key != "use_tla"}
        ablation = tuple((key, str(changed[key])) for key in ABLATIONS if key in changed)
        key = (run["variant"], ablation, budget(settings))
        rows.setdefault(key, Row(*key)).runs.append(run)
    order = list(VARIANT_NAMES)
    return sorted(rows.values(), key=lambda row: (
        row.budget.startswith("≤"), row.is_ablation, order.index(row.variant) if row.variant in order else 99,
        row.ablation
    ))


def budget(settings: dict) -> str:
    """How long a run trained: one epoch, or to convergence under early stopping with an epoch cap."""
    if settings.get("early_stopping_patience"):
        return f"≤{settings['num_train_epochs']} epochs, early stopping"
    if "num_train_epochs" not in settings:
        return "–"  # not trained by epochs (TF-IDF)
    epochs = settings["num_train_epochs"]
    return f"{epochs:g} epoch" + ("s" if epochs != 1 else "")


def markdown_table(rows: list[Row], split: str = "predict") -> str:
    """Test (or validation, `split="eval"`) figures, one line per setting, plus seeds and training minutes."""
    header = ["Setting", "Budget", "Seeds", *COLUMNS, "Train min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.name, row.budget, ", ".join(map(str, row.seeds))]
        cells += [spread_cell([value * 100 for value in row.values(f"{split}_{key}")]) for key in COLUMNS.values()]
        cells.append(spread_cell([seconds / 60 for seconds in row.values("train_runtime")]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


THRESHOLD_COLUMNS = {"Micro-F1": "micro_f1", "Macro-F1": "macro_f1", "P5": "p5_macro_f1"}


def threshold_table(rows: list[Row]) -> str:
    """Test figures at 0.5 and at the decision thresholds learned on validation, for the rows that have both."""
    header = ["Setting", "Budget", "Seeds", *(f"{name} at 0.5" for name in THRESHOLD_COLUMNS),
              *(f"{name} learned" for name in THRESHOLD_COLUMNS), "Strategy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if not row.values("predict_learned_macro_f1"):
            continue
        runs = [run for run in row.runs if "predict_learned_macro_f1" in run["results"]]
        picked = Row(row.variant, row.ablation, row.budget, runs)
        cells = [row.name, row.budget, ", ".join(map(str, picked.seeds))]
        for infix in ("", "learned_"):
            cells += [spread_cell([100 * value for value in picked.values(f"predict_{infix}{key}")])
                      for key in THRESHOLD_COLUMNS.values()]
        cells.append(", ".join(run["results"].get("eval_threshold_strategy", "–") for run in runs))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bars(ax, rows: list[Row], keys: list[str], labels: list[str], title: str) -> None:
    width = 0.8 / max(len(rows), 1)
    for index, row in enumerate(rows):
        means, low, high = [], [], []
        for key in keys:
            values = [value * 100 for value in row.values(f"predict_{key}")] or [float("nan")]
            mean = statistics.mean(values)
            means.append(mean)
            low.append(mean - min(values))
            high.append(max(values) - mean)
        positions = [i + (index - (len(rows) - 1) / 2) * width for i in range(len(keys))]
        ax.bar(positions, means, width, yerr=[low, high], capsize=3, label=VARIANT_NAMES.get(row.variant, row.variant))
    ax.set_xticks(range(len(keys)), labels)
    ax.set_ylabel("test F1 (%)")
    ax.set_title(title)
    finite = [v * 100 for row in rows for key in keys for v in row.values(f"predict_{key}")]
    if finite:
        ax.set_ylim(max(0, min(finite) - 10), min(100, max(finite) + 5))
    ax.legend(fontsize=8, loc="lower left")


def plot(rows: list[Row], output_dir: Path) -> list[Path]:
    """Write the learning-curve, per-level and per-frequency-group PNGs; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    main = [row for row in rows if not row.is_ablation and not row.budget.startswith("≤")]  # one epoch
    neural = [row for row in main if any(run.get("log_history") for run in row.runs)]
    paths = []

    figure, (bce_ax, tla_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for index, row in enumerate(neural + [row for row in rows if row.is_ablation and not row.budget.startswith("≤")]):
        history = [entry for entry in row.runs[0].get("log_history", []) if "loss_bce" in entry]
        steps = [entry["step"] for entry in history]
        style = {"linestyle": ":" if row.is_ablation else "-", "color": f"C{index % 10}", "label": row.name}
        bce_ax.plot(steps, [entry["loss_bce"] for entry in history], **style)
        if any(entry.get("loss_tla") for entry in history):
            tla_ax.plot(steps, [entry["loss_tla"] for entry in history], **style)
    bce_ax.set(title="BCE part of the training loss (1 epoch)", xlabel="step", ylabel="loss", yscale="log")
    tla_ax.set(title="TLA part (not comparable across τ or mining)", xlabel="step", ylabel="loss")
    for ax in (bce_ax, tla_ax):
        ax.legend(fontsize=7)
    paths.append(_save(figure, output_dir / "20newsgroups_learning_curves.png"))

    compared = [row for row in main if row.variant in ("tfidf", "flat", "htla", "recommended")
                and not row.budget.startswith("≤")]  # the one-epoch rows, as the titles say
    figure, ax = plt.subplots(figsize=(8, 4))
    _bars(ax, compared, ["macro_f1", "level_1_macro_f1", "level_2_macro_f1", "level_3_macro_f1"],
          ["all 34", "level 1", "level 2", "level 3"], "Macro-F1 per level (test, 1 epoch)")
    paths.append(_save(figure, output_dir / "20newsgroups_levels.png"))

    figure, ax = plt.subplots(figsize=(8, 4))
    _bars(ax, compared, [f"p{group}_macro_f1" for group in range(1, 6)],
          ["P1 (frequent)", "P2", "P3", "P4", "P5 (rare)"], "Macro-F1 per label-frequency group (test, 1 epoch)")
    paths.append(_save(figure, output_dir / "20newsgroups_frequency.png"))
    plt.close("all")
    return paths


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="20newsgroups")
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--output_dir", type=Path, default=None, help="Where the PNGs go (default: results_dir).")
    args = parser.parse_args(argv)
    rows = load_rows(args.results_dir, args.dataset)
    if not rows:
        raise SystemExit(f"report_quality.py: error: no {args.dataset}_*.json results in {args.results_dir}")
    print("Test set:\n")
    print(markdown_table(rows))
    print("\nValidation set:\n")
    print(markdown_table(rows, split="eval"))
    print("\nTest set, at 0.5 and at the thresholds learned on validation:\n")
    print(threshold_table(rows))
    if args.dataset == "20newsgroups":
        for path in plot(rows, args.output_dir or args.results_dir):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
