"""New labels after training (issue 21): hold out a seeded fifth of the leaf labels, train without them, extend the
trained model with them by name (`HTLAModel.extend_taxonomy`, through `run_htc.py`) and score them on the test set.
One command per row; results saved to benchmarks/results/new_labels_<dataset>_<row>_seed<N>.json.

    python benchmarks/run_new_labels.py --dataset icd10cm --row extended --seed 42    # train without, then extend
    python benchmarks/run_new_labels.py --dataset icd10cm --row ceiling --seed 42     # trained with them present
    python benchmarks/run_new_labels.py --dataset icd10cm --row zero_shot --seed 42   # cosine of encoder embeddings
    python benchmarks/run_new_labels.py --dataset icd10cm --row extended --seed 7
    python benchmarks/run_new_labels.py --dataset icd10cm --row ceiling --seed 7
    python benchmarks/run_new_labels.py --dataset icd10cm --row zero_shot --seed 7
    python benchmarks/run_new_labels.py --dataset icd10cm --row extended --seed 13
    python benchmarks/run_new_labels.py --dataset icd10cm --row ceiling --seed 13
    python benchmarks/run_new_labels.py --dataset icd10cm --row zero_shot --seed 13
    python benchmarks/run_new_labels.py --dataset 20newsgroups --row extended --seed 42
    python benchmarks/run_new_labels.py --dataset 20newsgroups --row ceiling --seed 42
    python benchmarks/run_new_labels.py --dataset 20newsgroups --row zero_shot --seed 42
    (and the same three 20newsgroups rows with --seed 7 and --seed 13)

Run them with `OMP_NUM_THREADS=1`, one training at a time: an `icd10cm` training takes 10-15 minutes at one thread,
a `20newsgroups` one 30 minutes or more. `extended` and `ceiling` reuse a trained model of the same seed in
`outputs/new_labels/` when there is one.

Protocol. `--dataset icd10cm` is the embedded run (`python run_htc.py`: `run_htc.DEFAULT_RUN`, chapter > block),
`20newsgroups` the data of examples/20newsgroups.yaml; both with the recommended HTLA settings
(`run_quality.VARIANTS["recommended"]`: fusion hybrid, no TLA, graph learning rate 1e-3). A seeded fifth of the leaf
labels is held out, keeping at least one leaf under every parent; in the training and validation data a document of
a held-out leaf keeps only its ancestors. The test set keeps every label.

- Held-out leaves: Macro-F1 and mean average precision over the held-out leaves that have test documents. The
  decision threshold is the one that maximizes the seen labels' Macro-F1 on the validation split (no document of a
  new label is looked at to choose it).
- Seen labels: Micro/Macro-F1 (sigmoid > 0.5, the run's own metric) of the seen labels on the test set, before and
  after extending (their gold labels are what the trained model knew: a held-out leaf's document counts its
  ancestors only).
- `extended`: the checkpoint `run_htc.py --do_predict` writes, extended and its new labels' biases calibrated on
  the test texts (`calibrate_new_labels`; their labels are not read); its validation figures are calibrated on the
  validation texts. It also scores `extend_taxonomy` alone (biases from the label names) and other initializations
  of the new labels' parameters (`INITIALIZATIONS`) on the same trained model, on validation and test.
- `zero_shot`: no training; cosine between the mean-pooled embedding (the packaged all-MiniLM-L6-v2, the encoder the
  models start from) of the text and of the label's name (`name`), or of its path of names (`path`, ancestors
  first), thresholded the same way.
- `ceiling`: the same training with the held-out leaves present.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from common import save_result, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run_quality import VARIANTS, base_settings  # noqa: E402

import run_htc  # noqa: E402
from modeling_htla import HTLAModel, Taxonomy, resolve_encoder  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402
from modeling_htla.metrics import htc_scores  # noqa: E402

OUTPUTS = ROOT / "outputs" / "new_labels"
HELD_OUT_FRACTION = 0.2
SPLITS = ("train", "validation", "test")


def held_out_leaves(taxonomy: Taxonomy, seed: int) -> list[str]:
    """A seeded fifth of the leaves, never the last kept leaf under a parent."""
    leaves = [j for j in range(len(taxonomy)) if not taxonomy.children[j]]
    random.Random(seed).shuffle(leaves)
    kept_leaves = {}
    for j in leaves:
        kept_leaves[taxonomy.parent_ids[j]] = kept_leaves.get(taxonomy.parent_ids[j], 0) + 1
    held = []
    for j in leaves:
        if len(held) == round(HELD_OUT_FRACTION * len(leaves)):
            break
        parent = taxonomy.parent_ids[j]
        if parent >= 0 and kept_leaves[parent] > 1:
            kept_leaves[parent] -= 1
            held.append(taxonomy.labels[j])
    return sorted(held, key=taxonomy.label2id.get)


def raw_splits(dataset: str, settings: dict):
    """Raw splits (`text`, label paths) and the taxonomy of the dataset, cut to the run's sample limits."""
    if dataset == "icd10cm":
        from modeling_htla.data import load_icd10cm

        raw, taxonomy = load_icd10cm(depth=2, seed=settings["seed"])
        limits = {"train": settings.pop("max_train_samples"), "validation": settings.pop("max_eval_samples"),
                  "test": settings.pop("max_predict_samples")}
        splits = {}
        for split in SPLITS:
            rows = raw[split].select(range(min(limits[split], len(raw[split]))))
            splits[split] = [{"text": row["text"], "labels": row["labels"]} for row in rows]
        return splits, taxonomy
    taxonomy = Taxonomy.from_file(settings["taxonomy_file"])
    splits = {}
    for split in SPLITS:
        with open(settings[f"{split}_file"], encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        splits[split] = [{"text": row["text"], "labels": row["labels"]} for row in rows if row["text"].strip()]
    return splits, taxonomy


def prepare(dataset: str, seed: int) -> dict:
    """Write the data files of both trainings (all labels, and without the held-out leaves) and return the
    settings of each and what the evaluation needs."""
    settings = base_settings(dataset)
    settings.update(VARIANTS["recommended"], seed=seed)
    splits, taxonomy = raw_splits(dataset, settings)
    held = held_out_leaves(taxonomy, seed)
    seen = Taxonomy([label for label in taxonomy.labels if label not in held],
                    [taxonomy.labels[p] if p >= 0 else None for j, p in enumerate(taxonomy.parent_ids)
                     if taxonomy.labels[j] not in held],
                    {label: name for label, name in zip(taxonomy.labels, taxonomy.names) if label not in held})
    folder = OUTPUTS / f"{dataset}_seed{seed}" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"full": {}, "seen": {}}
    gold = {}
    for split, rows in splits.items():
        label_sets = [taxonomy.label_set(row["labels"]) for row in rows]
        gold[split] = label_sets
        files["full"][split] = write_jsonl(folder / f"{split}.jsonl", [
            {"text": row["text"], "labels": [taxonomy.labels[j] for j in ids]} for row, ids in zip(rows, label_sets)])
        files["seen"][split] = write_jsonl(folder / f"{split}_seen.jsonl", [
            {"text": row["text"], "labels": [taxonomy.labels[j] for j in ids if taxonomy.labels[j] not in held]}
            for row, ids in zip(rows, label_sets)])
    for name, tree in (("full", taxonomy), ("seen", seen)):
        (folder / f"taxonomy_{name}.json").write_text(json.dumps(
            {label: tree.labels[p] if p >= 0 else None for label, p in zip(tree.labels, tree.parent_ids)}))
        files[name]["taxonomy"] = str(folder / f"taxonomy_{name}.json")
    (folder / "names.json").write_text(json.dumps(dict(zip(taxonomy.labels, taxonomy.names)), ensure_ascii=False))
    names_file = str(folder / "names.json")
    runs = {}
    for name in ("full", "seen"):
        run = {key: value for key, value in settings.items() if value is not None}
        for key in DATA_KEYS:
            run.pop(key, None)
        run.update(train_file=files[name]["train"], validation_file=files[name]["validation"],
                   test_file=files[name]["test"], taxonomy_file=files[name]["taxonomy"],
                   label_names_file=names_file, report_to="none",
                   output_dir=str(OUTPUTS / f"{dataset}_seed{seed}" / ("ceiling" if name == "full" else "seen")))
        runs[name] = run
    texts = {split: [row["text"] for row in rows] for split, rows in splits.items()}
    return {"taxonomy": taxonomy, "seen": seen, "held_out": held, "gold": gold, "texts": texts, "runs": runs,
            "files": files, "names_file": names_file, "max_seq_length": settings["max_seq_length"],
            "settings": settings}


def prepare_scoring(dataset: str, seed: int) -> dict:
    """`prepare`, plus the gold multi-hot matrices and the seen and held-out label ids the scores need."""
    data = prepare(dataset, seed)
    taxonomy = data["taxonomy"]
    data["gold_matrix"] = {split: multi_hot(sets, len(taxonomy)) for split, sets in data["gold"].items()}
    data["seen_ids"] = [taxonomy.label2id[label] for label in data["seen"].labels]
    data["held_ids"] = [taxonomy.label2id[label] for label in data["held_out"]]
    return data


DATA_KEYS = ("train_file", "validation_file", "test_file", "taxonomy_file", "label_names_file", "skip_empty_texts")


def train(run: dict) -> Path:
    """Train with `run_htc.py` unless the output folder already holds the trained model."""
    output = Path(run["output_dir"])
    if not (output / "model.safetensors").is_file():
        run_htc.main(run_htc.settings_to_argv(run))
    return output


@torch.no_grad()
def text_features(model: HTLAModel, tokenizer, texts: list[str], max_length: int, batch: int = 128) -> torch.Tensor:
    """`[N, H]` text features of the model's encoder (eval mode: no dropout)."""
    model.eval()
    chunks = []
    for start in range(0, len(texts), batch):
        inputs = tokenizer(texts[start:start + batch], truncation=True, max_length=max_length, padding=True,
                           return_tensors="pt")
        chunks.append(model.encode_text(**inputs))
    return torch.cat(chunks)


def cached_text_features(model: HTLAModel, tokenizer, seen_dir: Path, data: dict) -> dict:
    """Validation and test text features of the model trained without the held-out leaves, computed once (the
    encoder does not change when the model is extended)."""
    cache = seen_dir / "text_features.safetensors"
    if not cache.is_file():
        save_file({split: text_features(model, tokenizer, data["texts"][split], data["max_seq_length"])
                   for split in ("validation", "test")}, str(cache))
    return load_file(str(cache))


@torch.no_grad()
def full_order(model: HTLAModel, features: torch.Tensor, taxonomy: Taxonomy) -> np.ndarray:
    """`[N, L]` logits of the model from text features, columns in `taxonomy`'s order (NaN for labels it lacks)."""
    model._label_cache = None  # the benchmark edits parameters in place between calls
    logits = model._logits(features, model.label_features()).numpy()
    out = np.full((len(features), len(taxonomy)), np.nan, dtype=np.float32)
    own = model.config.label2id
    columns = [(taxonomy.label2id[label], j) for label, j in own.items()]
    out[:, [c for c, _ in columns]] = logits[:, [j for _, j in columns]]
    return out


def multi_hot(label_sets: list[list[int]], num_labels: int) -> np.ndarray:
    gold = np.zeros((len(label_sets), num_labels), dtype=bool)
    for row, ids in enumerate(label_sets):
        gold[row, ids] = True
    return gold


def label_f1(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """`[L]` F1 of each column (0 where undefined, as the htc_f1 metric)."""
    right = (predicted & gold).sum(0)
    total = predicted.sum(0) + gold.sum(0)
    return np.divide(2 * right, total, out=np.zeros(len(right)), where=total > 0)


def average_precision(scores: np.ndarray, gold: np.ndarray) -> float:
    """Mean over the positives of the precision at their rank, scores descending."""
    order = np.argsort(-scores, kind="stable")
    hits = gold[order]
    ranks = np.flatnonzero(hits) + 1
    return float((np.arange(1, len(ranks) + 1) / ranks).mean())


def seen_threshold(scores: np.ndarray, gold: np.ndarray, candidates: int = 201) -> float:
    """The threshold on `scores` (`[N, L]` of the seen labels, validation) that maximizes their Macro-F1."""
    grid = np.unique(np.quantile(scores, np.linspace(0.5, 1, candidates)))
    return float(max(grid, key=lambda t: label_f1(scores > t, gold).mean()))


def held_out_scores(scores: dict, gold: dict, seen: list[int], held: list[int]) -> dict:
    """Macro-F1 and mAP over the held-out leaves with test documents, at the threshold chosen on the seen labels'
    validation scores; `scores` and `gold` per split, columns in the full taxonomy's order."""
    threshold = seen_threshold(scores["validation"][:, seen], gold["validation"][:, seen])
    present = [j for j in held if gold["test"][:, j].any()]
    test, truth = scores["test"][:, present], gold["test"][:, present]
    return {"held_out_macro_f1": float(label_f1(test > threshold, truth).mean()),
            "held_out_map": float(np.mean([average_precision(test[:, k], truth[:, k]) for k in range(len(present))])),
            "threshold": threshold, "held_out_labels_scored": len(present)}


def seen_scores(logits: np.ndarray, gold: np.ndarray, seen: list[int], taxonomy: Taxonomy) -> dict:
    """Micro/Macro-F1 of the seen labels (sigmoid > 0.5), as the run's own metric computes them."""
    result = htc_scores(predictions=logits[:, seen], references=gold[:, seen].astype(np.int64),
                        parents=taxonomy.parent_ids, threshold=0.5, from_logits=True)
    return {"seen_micro_f1": result["micro_f1"], "seen_macro_f1": result["macro_f1"]}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def model_rows(data: dict, model: HTLAModel, features: dict, seen: list[int], held: list[int]) -> dict:
    """Held-out and seen metrics of a model on the validation and test features."""
    logits = {split: full_order(model, features[split], data["taxonomy"]) for split in features}
    result = held_out_scores({split: sigmoid(value) for split, value in logits.items()}, data["gold_matrix"],
                             seen, held)
    return result | seen_scores(logits["test"], data["gold_matrix"]["test"], seen, data["seen"])


def nearest_rows(model: HTLAModel, added: list[int]) -> list[list[int]]:
    count = len(model.taxonomy) - len(added)
    return [model.taxonomy.nearest_known(j, range(count)) for j in added]


def _set_rows(table: torch.Tensor, rows: list[int], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        table[rows] = torch.stack(values)


def _ridge(x: torch.Tensor, y: torch.Tensor, at: torch.Tensor) -> list[torch.Tensor]:
    """Rows of `at @ R`, R the ridge regression of `y` on `x` (`[L, H]` each, fitted on the old labels)."""
    ridge = 0.1 * x.pow(2).sum() / x.shape[1]
    mapping = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ y)  # [H, H]
    return list(at @ mapping)


def _family_bias(m: HTLAModel, added: list[int], near: list[list[int]]) -> None:
    _set_rows(m.classifier.bias, added, [m.classifier.bias[rows].mean() for rows in near])


def _weights_and_family_bias(weights):
    """An initialization that sets the new free weights to `weights(m, added, near, names)` and each new bias to
    its family's mean bias."""

    def initialize(m, added, near, names):
        _set_rows(m.classifier.weight, added, weights(m, added, near, names))
        _family_bias(m, added, near)

    return initialize


# Other initializations of the new labels' parameters, each applied to what `extend_taxonomy` gives (an imprinted
# free weight, a bias matched to the family over the labels' names); `names` holds the text features of every
# label's name as the trained encoder reads it.
INITIALIZATIONS = {
    "zero_weight_family_bias": _weights_and_family_bias(  # the graph's cosine alone scores the label
        lambda m, added, near, names: [torch.zeros_like(m.classifier.weight[0])] * len(added)),
    "family_weight_family_bias": _weights_and_family_bias(
        lambda m, added, near, names: [m.classifier.weight[rows].mean(0) for rows in near]),
    "weight_regressed_from_features_family_bias": _weights_and_family_bias(
        lambda m, added, near, names: _ridge(m.label_features()[: added[0]], m.classifier.weight[: added[0]],
                                             m.label_features()[added])),
    "weight_regressed_from_name_family_bias": _weights_and_family_bias(
        lambda m, added, near, names: _ridge(names[: added[0]], m.classifier.weight[: added[0]], names[added])),
    "imprinted_weight_family_bias": lambda m, added, near, names: _family_bias(m, added, near),
    "imprinted_weight_parent_bias": lambda m, added, near, names: _set_rows(
        m.classifier.bias, added, [m.classifier.bias[m.taxonomy.parent_ids[j]] for j in added]),
    "label_embedding_of_family": lambda m, added, near, names: _set_rows(
        m.graph_encoder.label_embeddings.weight, added,
        [m.graph_encoder.label_embeddings.weight[rows].mean(0) for rows in near]),
    "path_embedding_zero": lambda m, added, near, names: _set_rows(
        m.graph_encoder.edge_features.path_embeddings.weight, added,
        [torch.zeros_like(m.graph_encoder.edge_features.path_embeddings.weight[0])] * len(added)),
}


def extended_row(data: dict, args) -> dict:
    """`after`: the checkpoint `run_htc.py --do_predict` extends and calibrates on the test texts (validation figures:
    calibrated on the validation texts); `initializations`: `extend_taxonomy` alone (the label-names bias) and the
    other initializations, applied to it."""
    seen_dir = train(data["runs"]["seen"])
    extended_dir = seen_dir.parent / "extended"
    tokenizer = AutoTokenizer.from_pretrained(seen_dir)
    seen_model = HTLAModel.from_pretrained(seen_dir)
    features = cached_text_features(seen_model, tokenizer, seen_dir, data)
    seen, held = data["seen_ids"], data["held_ids"]
    before = seen_scores(full_order(seen_model, features["test"], data["taxonomy"]), data["gold_matrix"]["test"],
                         seen, data["seen"])
    run_htc.main(run_htc.settings_to_argv({
        "model_name_or_path": str(seen_dir), "taxonomy_file": data["files"]["full"]["taxonomy"],
        "label_names_file": data["names_file"], "test_file": data["files"]["full"]["test"], "do_predict": True,
        "output_dir": str(extended_dir), "max_seq_length": data["max_seq_length"], "per_device_eval_batch_size": 128,
        "report_to": "none"}))
    calibrated = HTLAModel.from_pretrained(extended_dir).eval()
    after = model_rows(data, calibrated, features, seen, held)
    calibrated.calibrate_new_labels(text_features=features["validation"])  # as a run on the validation texts would
    after["validation"] = _validation_held_out(data, calibrated, features, seen, held)

    model = seen_model.eval()
    model.extend_taxonomy(data["taxonomy"], tokenizer)
    count = len(data["seen"])
    added = list(range(count, model.config.num_labels))
    near = nearest_rows(model, added)
    names = text_features(model, tokenizer, model.taxonomy.names, data["max_seq_length"])  # [L, H]
    variants = {"extend_taxonomy": model_rows(data, model, features, seen, held)}
    variants["extend_taxonomy"]["validation"] = _validation_held_out(data, model, features, seen, held)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    for name, initialize in INITIALIZATIONS.items():
        with torch.no_grad():
            initialize(model, added, near, names)
        variants[name] = model_rows(data, model, features, seen, held)
        variants[name]["validation"] = _validation_held_out(data, model, features, seen, held)
        model.load_state_dict(state)
    return {"before": before, "after": after, "initializations": variants,
            "seen_macro_f1_change": after["seen_macro_f1"] - before["seen_macro_f1"]}


def _validation_held_out(data: dict, model: HTLAModel, features: dict, seen: list[int], held: list[int]) -> dict:
    """Held-out-leaf Macro-F1 and mAP on the validation split (to compare initializations without the test set)."""
    scores = sigmoid(full_order(model, features["validation"], data["taxonomy"]))
    gold = data["gold_matrix"]["validation"]
    threshold = seen_threshold(scores[:, seen], gold[:, seen])
    present = [j for j in held if gold[:, j].any()]
    return {"held_out_macro_f1": float(label_f1(scores[:, present] > threshold, gold[:, present]).mean()),
            "held_out_map": float(np.mean([average_precision(scores[:, j], gold[:, j]) for j in present]))}


def ceiling_row(data: dict, args) -> dict:
    folder = train(data["runs"]["full"])
    model = HTLAModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    features = {split: text_features(model, tokenizer, data["texts"][split], data["max_seq_length"])
                for split in ("validation", "test")}
    return {"after": model_rows(data, model, features, data["seen_ids"], data["held_ids"])}


def sentence_embedder():
    """`embed(texts, max_length) -> [N, H]`: unit-length mean-pooled embeddings by the packaged all-MiniLM-L6-v2 (the
    encoder the models start from), for zero-shot scoring from label names."""
    path = resolve_encoder(None)
    encoder, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)

    @torch.no_grad()
    def embed(texts: list[str], max_length: int) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), 128):
            inputs = tokenizer(texts[start:start + 128], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt")
            hidden = encoder(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            chunks.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(chunks)

    return embed


@torch.no_grad()
def zero_shot_row(data: dict, args) -> dict:
    """Cosine between mean-pooled sentence embeddings of texts and of label names (or name paths)."""
    embed = sentence_embedder()
    taxonomy = data["taxonomy"]
    texts = {split: embed(data["texts"][split], data["max_seq_length"]) for split in ("validation", "test")}
    queries = {"name": taxonomy.names,
               "path": [" > ".join(taxonomy.names[a] for a in taxonomy.ancestors(j)) for j in range(len(taxonomy))]}
    rows = {}
    for name, labels in queries.items():
        labels = embed(labels, 64)
        scores = {split: (value @ labels.T).numpy() for split, value in texts.items()}
        rows[name] = held_out_scores(scores, data["gold_matrix"], data["seen_ids"], data["held_ids"])
    return {"after": rows["name"], "label_queries": rows}


ROWS = {"extended": extended_row, "ceiling": ceiling_row, "zero_shot": zero_shot_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["20newsgroups", "icd10cm"], default="icd10cm")
    parser.add_argument("--row", choices=sorted(ROWS), required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.time()
    data = prepare_scoring(args.dataset, args.seed)
    result = ROWS[args.row](data, args)
    name = f"new_labels_{args.dataset}_{args.row}_seed{args.seed}"
    path = save_result(name, {
        "benchmark": f"new_labels_{args.dataset}", "row": args.row, "seed": args.seed,
        "held_out": data["held_out"], "settings": data["runs"]["seen"], "wall_time_s": time.time() - start,
        **result,
    })
    print(json.dumps(result.get("after"), indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
