"""Quality runs, one command per table row; results saved to benchmarks/results/<dataset>_<variant>_seed<N>[…].json.

    python benchmarks/run_quality.py --variant flat --seed 42          # the paper's "BERT" baseline
    python benchmarks/run_quality.py --variant htla --seed 42          # the paper's HTLA (add fusion, λ 1, τ 0.07)
    python benchmarks/run_quality.py --variant recommended --seed 42   # examples/20newsgroups_recommended.yaml
    python benchmarks/run_quality.py --variant dot --seed 42           # examples/20newsgroups_dot.yaml
    python benchmarks/run_quality.py --variant bce --seed 42           # "BERT-GPTrans": graph, no TLA
    python benchmarks/run_quality.py --variant htla --fusion dot --graph_learning_rate 1e-3      # ablations
    python benchmarks/run_quality.py --variant htla --negative_mining random
    python benchmarks/run_quality.py --dataset icd10cm --variant flat --seed 7    # the embedded default run
    python benchmarks/run_quality.py --dataset icd10cm --variant recommended --converge --seed 42  # to convergence

`--dataset 20newsgroups` (default) takes the arguments of examples/20newsgroups.yaml; `icd10cm` those of
`python run_htc.py` with no arguments (the embedded ICD-10-CM run). The variant and the ablation flags override them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from common import RESULTS_DIR, save_result

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_overrides(name: str) -> dict:
    """What examples/<name>.yaml changes in examples/20newsgroups.yaml (the paper's HTLA)."""
    paper = yaml.safe_load((EXAMPLES / "20newsgroups.yaml").read_text())
    example = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return {key: value for key, value in example.items() if key != "output_dir" and paper.get(key) != value}


# Each variant sets every HTLA option it depends on, so a row does not change when the defaults of `run_htc.py`
# change (the defaults follow these rows: `recommended` is what `python run_htc.py` trains).
PAPER = {"fusion": "add", "use_graph_encoder": True, "use_tla": True, "tla_weight": 1.0, "tla_temperature": 0.07,
         "negative_mining": "hard", "graph_learning_rate": None}
VARIANTS = {
    "htla": PAPER,
    "recommended": {**PAPER, **example_overrides("20newsgroups_recommended")},
    "dot": {**PAPER, **example_overrides("20newsgroups_dot")},
    "bce": {**PAPER, "use_tla": False},
    "flat": {**PAPER, "use_tla": False, "use_graph_encoder": False},
}
# `--converge`: the paper's early stopping (any gain in validation Macro- or Micro-F1 resets the count) under an
# epoch cap this 2-core machine can afford; the same for every row.
CONVERGE = {"num_train_epochs": 3, "early_stopping_patience": 1, "early_stopping_metrics": ["macro_f1", "micro_f1"],
            "save_total_limit": 2}
ABLATIONS = {"use_tla": lambda text: {"true": True, "false": False}[text.lower()], "fusion": str, "negative_mining": str, "tla_temperature": float, "tla_weight": float,
             "graph_learning_rate": float, "tla_projection_dim": int, "graph_hidden_size": int, "graph_num_heads": int,
             "graph_labels_per_step": str, "graph_refresh_steps": int}
DATA_FILES = ("train_file", "validation_file", "test_file", "taxonomy_file")


def base_settings(dataset: str) -> dict:
    if dataset == "icd10cm":
        import run_htc

        return dict(run_htc.DEFAULT_RUN)
    settings = yaml.safe_load((EXAMPLES / "20newsgroups.yaml").read_text())
    return {key: str((ROOT / value).resolve()) if key in DATA_FILES else value for key, value in settings.items()}


def add_learned_thresholds(run_htc, name: str, settings: dict) -> None:
    """Evaluate the checkpoint of a finished run again, learning thresholds on its validation split, and merge the
    threshold keys and the `*_learned_*` figures into `benchmarks/results/<name>.json`."""
    checkpoint = Path(settings["output_dir"])
    output = checkpoint / "learned-thresholds"
    run_htc.main(run_htc.settings_to_argv(dict(settings, model_name_or_path=str(checkpoint), do_train=False,
                                               learn_thresholds=True, output_dir=str(output))))
    results = json.loads((output / "all_results.json").read_text())
    path = RESULTS_DIR / f"{name}.json"
    saved = json.loads(path.read_text())
    saved["results"].update({key: value for key, value in results.items() if "_learned_" in key or "_threshold" in key})
    saved["thresholds_learned_after"] = " ".join(["python", *sys.argv])
    path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    print(f"updated {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="20newsgroups")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="htla")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--converge", action="store_true", help="train to convergence (CONVERGE) instead of 1 epoch")
    parser.add_argument("--learn_thresholds_only", action="store_true",
                        help="do not train: learn decision thresholds on the validation split for the checkpoint a "
                        "finished run left in outputs/<name> and add the figures at them (*_learned_*) to its result "
                        "file (for runs made before run_htc.py learned thresholds)")
    for key, kind in ABLATIONS.items():
        parser.add_argument(f"--{key}", type=kind, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import run_htc

    settings = base_settings(args.dataset)
    settings.update(VARIANTS[args.variant], seed=args.seed)
    name = f"{args.dataset}_{args.variant}{'_converged' if args.converge else ''}_seed{args.seed}"
    if args.converge:
        settings.update(CONVERGE)
    overrides = {key: getattr(args, key) for key in ABLATIONS if getattr(args, key) is not None}
    settings.update(overrides)
    name += "".join(f"_{key}{value}" for key, value in overrides.items())
    settings = {key: value for key, value in settings.items() if value is not None}
    settings["output_dir"] = str(ROOT / "outputs" / name)
    if args.learn_thresholds_only:
        add_learned_thresholds(run_htc, name, settings)
        return
    start = time.time()
    run_htc.main(run_htc.settings_to_argv(settings))
    output = Path(settings["output_dir"])
    results = json.loads((output / "all_results.json").read_text())
    state = json.loads((output / "trainer_state.json").read_text())
    path = save_result(name, {
        "benchmark": args.dataset,
        "variant": args.variant,
        "overrides": overrides,
        "settings": settings,
        "wall_time_s": time.time() - start,
        "results": results,
        "log_history": state["log_history"],
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
