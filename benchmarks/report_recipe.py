"""The table of benchmarks/run_recipe.py's runs for docs/training.md#the-recipe: per data set, training size and row,
mean (min–max) over the seeds saved, test Micro/Macro-F1 at 0.5 and at the learned thresholds, validation Macro-F1,
minutes and epochs.

    python benchmarks/report_recipe.py
"""

from __future__ import annotations

import json
from collections import defaultdict

from common import RESULTS_DIR

ROWS = ("readme", "readme_scale1", "readme_flat", "tuned")
FIGURES = (("predict_micro_f1", "test Micro"), ("predict_macro_f1", "test Macro"),
           ("predict_learned_micro_f1", "test Micro, learned"), ("predict_learned_macro_f1", "test Macro, learned"),
           ("eval_macro_f1", "validation Macro"))


def spread(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    values = [scale * value for value in values]
    mean = sum(values) / len(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else \
        f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table() -> str:
    runs = defaultdict(list)
    for path in sorted(RESULTS_DIR.glob("recipe_*.json")):
        saved = json.loads(path.read_text())
        runs[(saved["dataset"], saved["train_size"], saved["row"])].append(saved)
    lines = ["| data | training docs | row | seeds | " + " | ".join(name for _, name in FIGURES) + " | minutes | epochs (kept) |",
             "| --- " * (len(FIGURES) + 6) + "|"]
    for (dataset, size, row), saved in sorted(runs.items(), key=lambda item: (item[0][0], item[0][1] != "full",
                                                                                 item[0][1], ROWS.index(item[0][2]))):
        seeds = ", ".join(str(run["seed"]) for run in saved)
        figures = [spread([run["results"][key] for run in saved]) if all(key in run["results"] for run in saved)
                   else "n/a" for key, _ in FIGURES]
        minutes = spread([run["seconds"] / 60 for run in saved], scale=1, digits=1)
        epochs = ", ".join(f"{run['results'].get('train_epochs_trained', 0):g} ({run['results'].get('train_best_epoch')})"
                           for run in saved)
        lines.append(f"| {dataset} | {size} | {row} | {seeds} | " + " | ".join(figures) + f" | {minutes} | {epochs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
