"""Quality runs, one command per table row; results saved to benchmarks/results/<dataset>_<variant>_seed<N>[…].json.

    python benchmarks/run_quality.py --variant flat --seed 42          # the paper's "BERT" baseline
    python benchmarks/run_quality.py --variant htla --seed 42          # the paper's HTLA (add fusion, λ 1, τ 0.07)
    python benchmarks/run_quality.py --variant recommended --seed 42   # examples/20newsgroups_recommended.yaml
    python benchmarks/run_quality.py --variant dot --seed 42           # examples/20newsgroups_dot.yaml
    python benchmarks/run_quality.py --variant bce --seed 42           # "BERT-GPTrans": graph, no TLA
    python benchmarks/run_quality.py --variant htla --fusion dot --graph_learning_rate 1e-3      # ablations
    python benchmarks/run_quality.py --variant htla --negative_mining random
    python benchmarks/run_quality.py --dataset icd10cm --variant flat --seed 7    # the embedded default run

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

from common import save_result

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_overrides(name: str) -> dict:
    """What examples/<name>.yaml changes in examples/20newsgroups.yaml (the paper's HTLA)."""
    paper = yaml.safe_load((EXAMPLES / "20newsgroups.yaml").read_text())
    example = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return {key: value for key, value in example.items() if key != "output_dir" and paper.get(key) != value}


VARIANTS = {
    "htla": {},
    "recommended": example_overrides("20newsgroups_recommended"),
    "dot": example_overrides("20newsgroups_dot"),
    "bce": {"use_tla": False},
    "flat": {"use_tla": False, "use_graph_encoder": False},
}
ABLATIONS = {"fusion": str, "negative_mining": str, "tla_temperature": float, "tla_weight": float,
             "graph_learning_rate": float, "tla_projection_dim": int, "graph_hidden_size": int, "graph_num_heads": int,
             "graph_labels_per_step": str, "graph_refresh_steps": int}
DATA_FILES = ("train_file", "validation_file", "test_file", "taxonomy_file")


def base_settings(dataset: str) -> dict:
    if dataset == "icd10cm":
        import run_htc

        return dict(run_htc.DEFAULT_RUN)
    settings = yaml.safe_load((EXAMPLES / "20newsgroups.yaml").read_text())
    return {key: str((ROOT / value).resolve()) if key in DATA_FILES else value for key, value in settings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="20newsgroups")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="htla")
    parser.add_argument("--seed", type=int, default=42)
    for key, kind in ABLATIONS.items():
        parser.add_argument(f"--{key}", type=kind, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import run_htc

    settings = base_settings(args.dataset)
    settings.update(VARIANTS[args.variant], seed=args.seed)
    name = f"{args.dataset}_{args.variant}_seed{args.seed}"
    overrides = {key: getattr(args, key) for key in ABLATIONS if getattr(args, key) is not None}
    settings.update(overrides)
    name += "".join(f"_{key}{value}" for key, value in overrides.items())
    settings["output_dir"] = str(ROOT / "outputs" / name)
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
