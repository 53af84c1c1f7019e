"""The README's training command against the tuned example configs (issue 28), on user files of any size.

    python benchmarks/run_recipe.py --dataset 20newsgroups --train_size 200 --row readme --seed 42
    python benchmarks/run_recipe.py --dataset 20newsgroups --train_size 200 --row readme_flat --seed 42
    python benchmarks/run_recipe.py --dataset 20newsgroups --train_size 200 --row tuned --seed 42
    python benchmarks/run_recipe.py --dataset icd10cm --row readme --seed 42

Rows:
- `readme`: the README's "Train on your data" command exactly (files, `--output_dir`, `--do_*`, `--seed`), so it
  trains the recipe (`run_htc.RECIPE`: early stopping on validation Macro-F1, the epoch cap by data size);
- `readme_flat`: the same plus `--no_use_graph_encoder`;
- `readme_scale1`: the same plus `--cosine_scale_init 1`, the small-data rule's setting forced (to measure where the
  rule's boundary should lie);
- `tuned`: the tuned config of the data set with the same files: examples/20newsgroups_recommended.yaml (one epoch),
  or for ICD-10-CM the embedded run's settings (`run_htc.DEFAULT_RUN`, one epoch at 64 tokens, batch 32).

`--num_train_epochs N` (a diagnostic of the recipe's epoch cap, `readme*` rows only) adds that flag, so the run's
cap and its linear schedule span N epochs (early stopping stays on); it is saved as row `<row>_capN`.

Data, written as a user would give it (JSON Lines with `text` and `labels`, a HiAGM `.taxonomy` file):
- 20 Newsgroups (`../shared/data/20newsgroups`): `--train_size` posts drawn from train with the run's seed (all of it
  by default; empty texts dropped), the full validation split, and a fixed draw of 2,000 test posts (seed 0, the same
  for every row and seed: the full 7,532 take longer to predict than the smallest runs take to train);
- ICD-10-CM: the embedded run's own splits (`load_icd10cm(depth=2, seed)` cut to 16,000 / 2,000 / 4,000 codes), its
  labels written by their readable names, so the files carry what the embedded run knows.

Each run saves benchmarks/results/recipe_<dataset>_<size>_<row>_seed<N>.json: validation and test metrics at 0.5 and
at the learned thresholds, the wall time, the epochs trained, the epoch kept and why training stopped.

A run stopped part-way (a full 20 Newsgroups row takes longer than a working session here) resumes when the same
command is given again: its folder's newest complete checkpoint is passed as `--resume_from_checkpoint last`. The
wall time then adds the earlier invocation's time up to that checkpoint (the work after it is redone and counted once).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS_DIR, save_result, write_jsonl
from modeling_htla.trainer import last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NEWSGROUPS = ROOT.parent / "shared" / "data" / "20newsgroups"
TEST_SAMPLE = 2000
ICD_SIZES = {"train": 16000, "validation": 2000, "test": 4000}  # run_htc.DEFAULT_RUN's max_*_samples


def newsgroups_files(folder: Path, train_size: int | None, seed: int) -> dict[str, str]:
    def read(split: str) -> list[dict]:
        with open(NEWSGROUPS / f"{split}.jsonl", encoding="utf-8") as handle:
            return [row for row in map(json.loads, handle) if row["text"].strip()]

    train = read("train")
    if train_size is not None:
        train = random.Random(seed).sample(train, train_size)
    test = random.Random(0).sample(read("test"), TEST_SAMPLE)
    files = {"train_file": folder / "train.jsonl", "validation_file": folder / "validation.jsonl",
             "test_file": folder / "test.jsonl"}
    for key, rows in zip(files, (train, read("validation"), test)):
        write_jsonl(files[key], rows)
    return {**{key: str(path) for key, path in files.items()},
            "taxonomy_file": str(NEWSGROUPS / "20newsgroups.taxonomy")}


def icd10cm_files(folder: Path, seed: int) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from modeling_htla.data import load_icd10cm

    raw, taxonomy = load_icd10cm(depth=2, seed=seed)
    name = dict(zip(taxonomy.labels, taxonomy.names))
    files = {}
    for split, limit in ICD_SIZES.items():
        data = raw[split].select(range(min(limit, len(raw[split]))))
        files[f"{split}_file"] = folder / f"{split}.jsonl"
        write_jsonl(files[f"{split}_file"], ({"text": row["text"], "labels": [name[label] for label in row["labels"]]}
                                              for row in data))
    children: dict[str, list[str]] = {}
    for label, parent in zip(taxonomy.labels, taxonomy.parent_ids):
        children.setdefault(name[taxonomy.labels[parent]] if parent >= 0 else "Root", []).append(name[label])
    lines = ["\t".join(["Root", *children.pop("Root")])] + ["\t".join([p, *c]) for p, c in children.items()]
    (folder / "icd10cm.taxonomy").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {**{key: str(path) for key, path in files.items()}, "taxonomy_file": str(folder / "icd10cm.taxonomy")}


def command(row: str, dataset: str, files: dict[str, str], output_dir: str, seed: int,
            num_train_epochs: int | None = None) -> list[str]:
    data = [part for key, value in files.items() for part in (f"--{key}", value)]
    readme = [*data, "--output_dir", output_dir, "--do_train", "--do_eval", "--do_predict", "--seed", str(seed)]
    if num_train_epochs is not None:
        readme += ["--num_train_epochs", str(num_train_epochs)]
    if row == "readme":
        return readme
    if row == "readme_flat":
        return [*readme, "--no_use_graph_encoder"]
    if row == "readme_scale1":
        return [*readme, "--cosine_scale_init", "1"]
    if dataset == "20newsgroups":  # the tuned config, its data files swapped for these
        return [str(ROOT / "examples" / "20newsgroups_recommended.yaml"), *readme]
    import run_htc  # the embedded run's settings on the written files

    tuned = {key: value for key, value in run_htc.DEFAULT_RUN.items() if not key.startswith("max_")}
    return [*run_htc.settings_to_argv(tuned), *readme]


def resume_point(output_dir: Path) -> tuple[str | None, float | None]:
    """The newest complete checkpoint of an earlier invocation in `output_dir` (None: start afresh, and record when)
    and the seconds that invocation spent up to it (None when its start was not recorded)."""
    started = output_dir / "recipe_started.json"
    checkpoint = last_complete_checkpoint(str(output_dir))
    if checkpoint is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        started.write_text(json.dumps({"started": time.time()}))
        return None, 0.0
    if not started.exists():
        return checkpoint, None
    saved = (Path(checkpoint) / "trainer_state.json").stat().st_mtime
    return checkpoint, saved - json.loads(started.read_text())["started"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="20newsgroups")
    parser.add_argument("--train_size", type=int, default=None, help="20 Newsgroups: training posts (default all)")
    parser.add_argument("--row", choices=["readme", "readme_flat", "readme_scale1", "tuned"], required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num_train_epochs", type=int, default=None,
                        help="readme rows: the epoch cap instead of the recipe's (saved as row <row>_capN)")
    parser.add_argument("--work_dir", default="/tmp/htla-recipe")
    args = parser.parse_args()
    if args.num_train_epochs is not None and args.row == "tuned":
        parser.error("--num_train_epochs: the tuned row sets its own epochs; use it with a readme row")
    size = "full" if args.dataset == "icd10cm" or args.train_size is None else str(args.train_size)
    row = args.row if args.num_train_epochs is None else f"{args.row}_cap{args.num_train_epochs}"
    name = f"recipe_{args.dataset}_{size}_{row}_seed{args.seed}"
    if (RESULTS_DIR / f"{name}.json").exists():
        print(f"{name}: already saved")
        return
    folder = Path(args.work_dir) / f"data_{args.dataset}_{size}_seed{args.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    files = (newsgroups_files(folder, args.train_size, args.seed) if args.dataset == "20newsgroups"
             else icd10cm_files(folder, args.seed))
    output_dir = Path(args.work_dir) / name
    argv = command(args.row, args.dataset, files, str(output_dir), args.seed, args.num_train_epochs)
    checkpoint, earlier = resume_point(output_dir)
    if checkpoint is not None:
        argv += ["--resume_from_checkpoint", "last"]
        print(f"{name}: resuming from {checkpoint}")
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run_htc.py"), *argv], check=True, cwd=ROOT)
    seconds = time.perf_counter() - start + (earlier or 0.0)
    results = json.loads((output_dir / "all_results.json").read_text())
    timing = {"seconds": round(seconds, 1)} if earlier is not None else {
        "seconds": None, "seconds_after_resume": round(seconds, 1)}  # the first invocation's start was not recorded
    path = save_result(name, {"dataset": args.dataset, "train_size": size, "row": row, "seed": args.seed,
                              "argv": argv, **timing, "resumed": checkpoint is not None, "results": results})
    print(f"{path}: test Macro-F1 {results['predict_macro_f1']:.4f} (learned "
          f"{results.get('predict_learned_macro_f1', float('nan')):.4f}), {seconds / 60:.1f} min, "
          f"{results.get('train_epochs_trained')} epochs, kept {results.get('train_best_epoch')}: "
          f"{results.get('train_stop_reason')}")


if __name__ == "__main__":
    main()
