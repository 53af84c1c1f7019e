"""Validation figures per epoch of `run_htc.py` runs, finished or stopped, read from their newest `trainer_state.json`.

The epoch cap's diagnostics (the learning curve's `*_cap30` rows) train for up to 30 epochs; a run stopped before early
stopping ends it still tells, on validation, whether the epochs past the recipe's cap pay.

    python benchmarks/report_epoch_curve.py outputs/learning_curve/runs/learning_curve_icd10cm_default_cap30_k8_seed42

Saves benchmarks/results/epoch_curve_<run folder>.json and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import save_result
from transformers.trainer_utils import get_last_checkpoint

FIGURES = ("eval_macro_f1", "eval_micro_f1")


def newest_state(folder: Path) -> tuple[Path, bool]:
    """The run's own trainer_state.json when it finished, else that of its checkpoint with the most steps."""
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json", True
    checkpoint = get_last_checkpoint(folder)
    if checkpoint is None or not (Path(checkpoint) / "trainer_state.json").is_file():
        raise SystemExit(f"report_epoch_curve.py: error: {folder}: no trainer_state.json, in it or in a checkpoint")
    return Path(checkpoint) / "trainer_state.json", False


def curve(folder: Path) -> dict:
    """Per evaluated epoch: the validation figures at threshold 0.5; the best epoch; whether the run finished."""
    path, finished = newest_state(folder)
    state = json.loads(path.read_text(encoding="utf-8"))
    evaluations = [entry for entry in state["log_history"] if "eval_macro_f1" in entry]
    result = {"run": folder.name, "finished": finished, "num_train_epochs": state.get("num_train_epochs"),
              "epochs": [entry["epoch"] for entry in evaluations]}
    result |= {figure: [entry.get(figure) for entry in evaluations] for figure in FIGURES}
    best = max(range(len(evaluations)), key=lambda index: evaluations[index]["eval_macro_f1"], default=None)
    result["best_epoch"] = None if best is None else evaluations[best]["epoch"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run_htc.py output folders")
    args = parser.parse_args(argv)
    for folder in args.runs:
        result = curve(folder)
        path = save_result(f"epoch_curve_{folder.name}", result)
        figures = ", ".join(f"{epoch:g}: {100 * value:.2f}" for epoch, value in zip(result["epochs"],
                                                                                     result["eval_macro_f1"]))
        print(f"{folder.name} ({'finished' if result['finished'] else 'stopped'}; best epoch {result['best_epoch']}):"
              f" validation Macro-F1 by epoch {figures} -> {path}")


if __name__ == "__main__":
    main()
