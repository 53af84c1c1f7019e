"""Quality runs on 20 Newsgroups: one command per table row, results saved to benchmarks/results/.

    python benchmarks/run_20newsgroups.py --variant htla --seed 42
    python benchmarks/run_20newsgroups.py --variant flat --seed 42      # the paper's "BERT" baseline
    python benchmarks/run_20newsgroups.py --variant bce --seed 42       # "BERT-GPTrans": graph, no TLA
    python benchmarks/run_20newsgroups.py --variant htla --negative_mining random     # ablations
    python benchmarks/run_20newsgroups.py --variant htla --tla_temperature 0.2
    python benchmarks/run_20newsgroups.py --variant htla --tla_weight 0.1
    python benchmarks/run_20newsgroups.py --variant htla --graph_learning_rate 1e-4
    python benchmarks/run_20newsgroups.py --variant htla --fusion dot --graph_learning_rate 1e-3

Arguments are those of examples/20newsgroups.yaml with the variant's overrides.
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
VARIANTS = {
    "htla": {},
    "bce": {"use_tla": False},
    "flat": {"use_tla": False, "use_graph_encoder": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="htla")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--negative_mining", default=None)
    parser.add_argument("--tla_temperature", type=float, default=None)
    parser.add_argument("--tla_weight", type=float, default=None)
    parser.add_argument("--graph_learning_rate", type=float, default=None)
    parser.add_argument("--fusion", choices=["add", "dot"], default=None)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "20newsgroups.yaml")
    args = parser.parse_args()
    settings = yaml.safe_load(args.config.read_text())
    settings.update(VARIANTS[args.variant], seed=args.seed)
    name = f"20newsgroups_{args.variant}_seed{args.seed}"
    for key in ("fusion", "negative_mining", "tla_temperature", "tla_weight", "graph_learning_rate"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
            name += f"_{key}{getattr(args, key)}"
    settings["output_dir"] = str(ROOT / "outputs" / name)
    for key in ("train_file", "validation_file", "test_file", "taxonomy_file"):
        settings[key] = str((ROOT / settings[key]).resolve())
    sys.path.insert(0, str(ROOT))
    import run_htc

    argv = []
    for key, value in settings.items():
        argv += [f"--{key}", str(value)]
    start = time.time()
    run_htc.main(argv)
    output = Path(settings["output_dir"])
    results = json.loads((output / "all_results.json").read_text())
    state = json.loads((output / "trainer_state.json").read_text())
    path = save_result(name, {
        "benchmark": "20newsgroups",
        "variant": args.variant,
        "settings": settings,
        "wall_time_s": time.time() - start,
        "results": results,
        "log_history": state["log_history"],
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
