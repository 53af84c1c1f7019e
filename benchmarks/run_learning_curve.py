"""Learning curve (issue 30): k documents per leaf, htla against flat, zero-shot from the names and SetFit.
Results saved to benchmarks/results/learning_curve_<dataset>_<row>_k<k>_seed<s>.json; a saved row is skipped, so a
stopped plan resumes where it was.

    python benchmarks/run_learning_curve.py --dataset 20newsgroups --k 2 8 --seeds 42 7 13 --rows zero_shot flat default
    python benchmarks/run_learning_curve.py --dataset 20newsgroups --k 8 32 --seeds 42 --rows setfit
    python benchmarks/run_learning_curve.py --dataset icd10cm --k 2 8 32 --seeds 42 7 13 --rows flat default tla
    python benchmarks/report_learning_curve.py          # the table for docs/results.md and learning_curve.png

Run with `OMP_NUM_THREADS=1`, one process at a time.

Data. `20newsgroups`: ../shared/data/20newsgroups (train, validation, test as given; the taxonomy file there).
`icd10cm`: the embedded data (`load_icd10cm(depth=2, seed=s)`, chapter > block, the split of seed s). Training set:
`sample_per_leaf(train, k, seed)`; validation: `sample_per_leaf(validation, k, seed)`; test: the full test split. The
sampled splits (and ICD-10-CM's test split, taxonomy and label names) are written as user files in
outputs/learning_curve/data/ and `run_htc.py` reads them as it reads a user's data.

Rows.
- `default`: the README command (at most `run_htc.SMALL_DATA_EXAMPLES_PER_LEAF` per leaf, the small-data rule
  starts its cosine scale at 1 and its classifier weights at the names: the same model as `names10`, which the
  report counts as the default there),
  `python run_htc.py --train_file … --validation_file … --test_file …
  --taxonomy_file … --output_dir … --do_train --do_eval --do_predict --seed s` (a subprocess of this interpreter
  running the `run_htc.py` of this repository), plus `--label_names_file` on ICD-10-CM, whose labels are codes named
  by their descriptions (20 Newsgroups' labels are their own names).
- `flat`: the same plus `--no_use_graph_encoder`.
- label-aware candidates (`CANDIDATES`), the same command plus their flags: `tla` (TLA, λ 1), `tla_small` (TLA, λ
  0.1), `scale50` (the graph's cosine started at scale 50 instead of 1/0.07 = 14.3: `--tla_temperature 0.02`),
  `scale1` (started at scale 1, `--tla_temperature 1`: the hybrid head starts near the flat classifier, its cosine
  term, noise before training, growing only as the data asks; with `--init_weights_from_names 0`, so that at small k
  it stays the small-data rule's first form, random weights, now that the rule also starts them at the names),
  `dot` (the cosine alone, `--fusion dot`), `names10` (the default with its free classifier weights started from the
  label names, `--init_weights_from_names 10`: each label's weight points at its name's text feature; at k ≤ 16 the
  small-data rule's model, what the default trains there now). The best is chosen on validation Macro-F1.
- `flat_no_early_stop`: a diagnostic, flat with `--early_stopping_patience 0` (trains to the epoch cap; the best
  epoch is still kept), to tell how much of flat's score at small k is the recipe's early stopping; and
  `default_no_early_stop`, the default the same way.
- `flat_cap30`, `default_cap30`: diagnostics of the recipe's epoch cap (`clamp(ceil(20,000 / N), 3, 30)`), which
  ends every ICD-10-CM run at k >= 8 (10 epochs at k = 8) while early stopping ends every 20 Newsgroups run: the same
  commands with `--num_train_epochs 30`, the cap of the smallest sets, so that early stopping ends them.
- `zero_shot`: no training: cosine of the mean-pooled all-MiniLM-L6-v2 embeddings of the text and of each label's
  name (as docs/new-labels.md), thresholded.
- `setfit`: SetFit 1.2 on the same encoder, its few-shot recipe (contrastive fine-tuning of the body on pairs of
  the training documents, then a logistic-regression head; batch 16, 1 epoch, body lr 2e-5) over the leaves as
  classes, with the contrastive phase capped to fit 2 CPU cores: `num_iterations` 5 (pairs per document; SetFit's
  examples use 20), at most 300 contrastive steps of 16 pairs (`max_steps`; binds on ICD-10-CM at k=8 and above, and
  on 20 Newsgroups at k=32) and 128 tokens (`max_length`). Its scores: a label's probability is the sum of its leaves'
  probabilities; SetFit's own prediction, the top leaf closed under its ancestors, is saved as `argmax_*`.

Every row is scored with the run's own metric (htc_f1 over every label, `htc_scores`) at 0.5 and at decision
thresholds learned on its validation split (`choose_thresholds`, as `run_htc.py` learns them), on validation and
test, with the wall time of the row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS_DIR, save_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run_new_labels import multi_hot, sentence_embedder, write_jsonl  # noqa: E402

from modeling_htla import Taxonomy, resolve_encoder  # noqa: E402
from modeling_htla.data import load_icd10cm, sample_per_leaf  # noqa: E402
from modeling_htla.metrics import htc_scores  # noqa: E402
from modeling_htla.thresholds import choose_thresholds  # noqa: E402

NEWSGROUPS = ROOT.parent / "shared" / "data" / "20newsgroups"
OUTPUTS = ROOT / "outputs" / "learning_curve"
KS = (2, 8, 32)
SEEDS = (42, 7, 13)
CANDIDATES = {
    "tla": ["--use_tla", "true"],
    "tla_small": ["--use_tla", "true", "--tla_weight", "0.1"],
    "scale50": ["--tla_temperature", "0.02"],
    "scale1": ["--tla_temperature", "1", "--init_weights_from_names", "0"],  # the small-data rule's first form
    "dot": ["--fusion", "dot"],
    "names10": ["--init_weights_from_names", "10"],
}
RUN_HTC_ROWS = {"default": [], "flat": ["--no_use_graph_encoder"], **CANDIDATES,
                # a diagnostic, not what the README command trains: flat without early stopping, to the epoch cap
                "flat_no_early_stop": ["--no_use_graph_encoder", "--early_stopping_patience", "0"],
                "default_no_early_stop": ["--early_stopping_patience", "0"],
                # diagnostics of the epoch cap, which ends every ICD-10-CM run at k >= 8 (20,000 / N epochs)
                "flat_cap30": ["--no_use_graph_encoder", "--num_train_epochs", "30"],
                "default_cap30": ["--num_train_epochs", "30"]}
SETFIT_CAP = {"num_iterations": 5, "max_steps": 300, "max_length": 128, "batch_size": 16, "num_epochs": 1}
MAX_LENGTH = 128  # run_htc.py's default --max_seq_length, for the zero-shot and SetFit rows too


def result_name(dataset: str, row: str, k: int, seed: int) -> str:
    return f"learning_curve_{dataset}_{row}_k{k}_seed{seed}"


# ---------------------------------------------------------------------------------------------------- data


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [{"text": row["text"], "labels": row["labels"]} for row in rows if row["text"].strip()]


def _rows(dataset) -> list[dict]:
    return [{"text": text, "labels": labels} for text, labels in zip(dataset["text"], dataset["labels"])]


def prepare(dataset: str, k: int, seed: int) -> dict:
    """Write the run's user files (sampled train and validation; ICD-10-CM's test, taxonomy and names) and return
    their paths, the taxonomy and the texts and gold label ids of validation and test."""
    from datasets import Dataset

    folder = OUTPUTS / "data" / f"{dataset}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if dataset == "20newsgroups":
        taxonomy = Taxonomy.from_file(NEWSGROUPS / "20newsgroups.taxonomy")
        splits = {split: Dataset.from_list(_read_jsonl(NEWSGROUPS / f"{split}.jsonl"))
                  for split in ("train", "validation")}
        test_rows = _read_jsonl(NEWSGROUPS / "test.jsonl")
        files = {"test_file": str(NEWSGROUPS / "test.jsonl"), "taxonomy_file": str(NEWSGROUPS / "20newsgroups.taxonomy")}
    else:
        raw, taxonomy = load_icd10cm(depth=2, seed=seed)
        splits = {split: raw[split] for split in ("train", "validation")}
        test_rows = _rows(raw["test"])
        files = {"test_file": write_jsonl(folder / "test.jsonl", test_rows),
                 "taxonomy_file": str(folder / "taxonomy.json"), "label_names_file": str(folder / "names.json")}
        (folder / "taxonomy.json").write_text(json.dumps(
            {label: taxonomy.labels[p] if p >= 0 else None for label, p in zip(taxonomy.labels, taxonomy.parent_ids)}))
        (folder / "names.json").write_text(json.dumps(dict(zip(taxonomy.labels, taxonomy.names)), ensure_ascii=False))
    sampled = {split: _rows(sample_per_leaf(data, k, seed)) for split, data in splits.items()}
    for split, rows in sampled.items():
        files[f"{split}_file"] = write_jsonl(folder / f"{split}_k{k}.jsonl", rows)
    evaluation = {"validation": sampled["validation"], "test": test_rows}
    return {
        "taxonomy": taxonomy, "files": files, "train": sampled["train"],
        "texts": {split: [row["text"] for row in rows] for split, rows in evaluation.items()},
        "gold": {split: multi_hot([taxonomy.label_set(row["labels"]) for row in rows], len(taxonomy))
                 for split, rows in evaluation.items()},
        "sizes": {"train": len(sampled["train"]), "validation": len(sampled["validation"]), "test": len(test_rows)},
    }


# ---------------------------------------------------------------------------------------------------- scoring


def closed_leaf_predictions(leaves: list[str], taxonomy: Taxonomy) -> np.ndarray:
    """`[N, L]` booleans: each predicted leaf with all its ancestors, as htla's predicted label sets are closed."""
    return multi_hot([taxonomy.label_set([leaf]) for leaf in leaves], len(taxonomy))


def subtree_scores(leaf_probabilities: np.ndarray, leaves: list[str], taxonomy: Taxonomy) -> np.ndarray:
    """`[N, L]` scores of every label from `[N, C]` probabilities of the `leaves` (the classes, in column order): a
    label's score is the sum of the probabilities of the leaves under it (itself included)."""
    scores = np.zeros((len(leaf_probabilities), len(taxonomy)), dtype=np.float64)
    for column, leaf in enumerate(leaves):
        scores[:, taxonomy.ancestors(taxonomy.label2id[leaf])] += leaf_probabilities[:, [column]]
    return scores


def _metrics(scores: np.ndarray, gold: np.ndarray, taxonomy: Taxonomy, threshold) -> dict:
    result = htc_scores(predictions=scores, references=gold.astype(np.int64), parents=taxonomy.parent_ids,
                        threshold=threshold)
    return {key: result[key] for key in ("micro_f1", "macro_f1", "hierarchical_f1", "consistency_rate")}


def score(scores: dict, gold: dict, taxonomy: Taxonomy, seed: int) -> dict:
    """Validation and test figures at 0.5 and at thresholds learned on the validation scores (`[N, L]`, in [0, 1]),
    as `run_htc.py` learns them."""
    choice = choose_thresholds(scores["validation"], gold["validation"], taxonomy.depths, seed=seed)
    learned = np.asarray(taxonomy.per_label(choice.levels))
    out = {"threshold_strategy": choice.strategy, "thresholds": choice.levels}
    for split in ("validation", "test"):
        out[split] = _metrics(scores[split], gold[split], taxonomy, 0.5) | {
            f"learned_{key}": value for key, value in _metrics(scores[split], gold[split], taxonomy, learned).items()}
    return out


# ---------------------------------------------------------------------------------------------------- rows


def run_htc_command(data: dict, output_dir: Path, seed: int, extra: list[str]) -> list[str]:
    """The README command on the run's files, with `--seed` and the row's flags."""
    files = data["files"]
    command = [sys.executable, str(ROOT / "run_htc.py"), "--train_file", files["train_file"],
               "--validation_file", files["validation_file"], "--test_file", files["test_file"],
               "--taxonomy_file", files["taxonomy_file"]]
    if "label_names_file" in files:
        command += ["--label_names_file", files["label_names_file"]]
    return command + ["--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict",
                      "--seed", str(seed), *extra]


def run_htc_row(row: str, data: dict, dataset: str, k: int, seed: int) -> dict:
    output = OUTPUTS / "runs" / result_name(dataset, row, k, seed)
    if output.exists():
        shutil.rmtree(output)  # an unfinished run: start it again
    command = run_htc_command(data, output, seed, RUN_HTC_ROWS[row])
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    results = json.loads((output / "all_results.json").read_text())
    state = json.loads((output / "trainer_state.json").read_text())
    config = json.loads((output / "config.json").read_text())
    for checkpoint in output.glob("checkpoint-*"):  # keep the best model and the results, not every checkpoint
        shutil.rmtree(checkpoint)
    figures = {}
    for split, prefix in (("validation", "eval"), ("test", "predict")):
        figures[split] = {f"{infix}{key}": results[f"{prefix}_{infix}{key}"]
                          for infix in ("", "learned_") for key in ("micro_f1", "macro_f1", "hierarchical_f1")
                          if f"{prefix}_{infix}{key}" in results}
    return {"command": " ".join(["python", "run_htc.py", *command[2:]]), **figures,
            "threshold_strategy": results.get("eval_threshold_strategy"),
            "epochs": state.get("epoch"), "global_step": state.get("global_step"),
            "best_metric": state.get("best_metric"), "train_runtime_s": results.get("train_runtime"),
            "cosine_scale_init": config.get("cosine_scale_init"),  # set by the small-data rule or a flag
            "init_weights_from_names": results.get("train_init_weights_from_names"),  # likewise
            "results": results}


def zero_shot_row(row: str, data: dict, dataset: str, k: int, seed: int) -> dict:
    """Cosine of text and label-name embeddings; the test embeddings are computed once per test split."""
    import torch
    from safetensors.torch import load_file, save_file

    embed = sentence_embedder()
    taxonomy = data["taxonomy"]
    cache = OUTPUTS / "cache" / f"zero_shot_{dataset}_test{'' if dataset == '20newsgroups' else f'_seed{seed}'}.safetensors"
    start = time.time()
    if cache.is_file():
        test = load_file(str(cache))["test"]
    else:
        test = embed(data["texts"]["test"], MAX_LENGTH)
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"test": test.contiguous()}, str(cache), metadata={"seconds": f"{time.time() - start:.1f}"})
    test_seconds = float(_metadata(cache)["seconds"])  # the time the test embeddings took when computed
    start = time.time()
    features = {"validation": embed(data["texts"]["validation"], MAX_LENGTH), "test": test}
    names = embed(taxonomy.names, 64)
    scores = {split: torch.clamp(value @ names.T, 0, 1).numpy() for split, value in features.items()}
    return {"label_queries": "name", "embedding_seconds": {"test": test_seconds, "rest": time.time() - start},
            **score(scores, data["gold"], taxonomy, seed)}


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata() or {}


def setfit_row(row: str, data: dict, dataset: str, k: int, seed: int) -> dict:
    """SetFit's few-shot recipe over the leaves, contrastive phase capped (`SETFIT_CAP`)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    taxonomy = data["taxonomy"]
    leaves = sorted({row["labels"][-1] for row in data["train"]}, key=taxonomy.label2id.get)
    column = {leaf: c for c, leaf in enumerate(leaves)}
    train = Dataset.from_dict({"text": [row["text"] for row in data["train"]],
                               "label": [column[row["labels"][-1]] for row in data["train"]]})
    model = SetFitModel.from_pretrained(resolve_encoder(None))
    model.model_body.max_seq_length = SETFIT_CAP["max_length"]
    args = TrainingArguments(seed=seed, output_dir=str(OUTPUTS / "setfit" / result_name(dataset, row, k, seed)),
                             **SETFIT_CAP)  # SetFit's default output folder is ./checkpoints
    start = time.time()
    Trainer(model=model, args=args, train_dataset=train).train()
    train_seconds = time.time() - start
    probabilities, argmax = {}, {}
    for split, texts in data["texts"].items():
        probabilities[split] = np.asarray(model.predict_proba(texts, batch_size=64, as_numpy=True), dtype=np.float64)
        argmax[split] = [leaves[c] for c in probabilities[split].argmax(1)]
    scores = {split: subtree_scores(value, leaves, taxonomy) for split, value in probabilities.items()}
    result = score(scores, data["gold"], taxonomy, seed)
    for split in ("validation", "test"):
        predicted = closed_leaf_predictions(argmax[split], taxonomy).astype(np.float32)
        result[split] |= {f"argmax_{key}": value for key, value in
                          _metrics(predicted, data["gold"][split], taxonomy, 0.5).items()}
    return {"setfit_cap": SETFIT_CAP, "classes": len(leaves), "train_seconds": train_seconds, **result}


ROWS = {**{row: run_htc_row for row in RUN_HTC_ROWS}, "zero_shot": zero_shot_row, "setfit": setfit_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="20newsgroups")
    parser.add_argument("--k", type=int, nargs="+", default=list(KS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=["zero_shot", "flat", "default"])
    args = parser.parse_args()
    for k in args.k:
        for seed in args.seeds:
            data = None
            for row in args.rows:
                name = result_name(args.dataset, row, k, seed)
                if (RESULTS_DIR / f"{name}.json").is_file():
                    print(f"skip {name}: saved", flush=True)
                    continue
                data = data or prepare(args.dataset, k, seed)
                start = time.time()
                result = ROWS[row](row, data, args.dataset, k, seed)
                path = save_result(name, {"benchmark": "learning_curve", "dataset": args.dataset, "row": row,
                                          "k": k, "seed": seed, "sizes": data["sizes"],
                                          "wall_time_s": time.time() - start, **result})
                print(f"saved {path}: validation Macro-F1 {result['validation']['macro_f1']:.4f}"
                      f" (learned {result['validation'].get('learned_macro_f1', float('nan')):.4f}), test"
                      f" {result['test']['macro_f1']:.4f} (learned {result['test'].get('learned_macro_f1', float('nan')):.4f})",
                      flush=True)


if __name__ == "__main__":
    main()
