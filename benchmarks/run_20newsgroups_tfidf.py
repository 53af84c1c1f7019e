"""Non-neural baseline on 20 Newsgroups: TF-IDF + logistic regression, one classifier per parent node.

    python benchmarks/run_20newsgroups_tfidf.py

Trains on train only, picks C by validation Macro-F1, predicts top-down (argmax child from the root down to a
leaf) and saves the row to benchmarks/results/20newsgroups_tfidf.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import datasets
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from common import save_result

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "20newsgroups"
VECTORIZER = {"sublinear_tf": True, "ngram_range": (1, 2), "min_df": 2, "max_df": 0.5, "strip_accents": "unicode"}
MAX_ITER = 1000

sys.path.insert(0, str(ROOT))
from modeling_htla.collator import multi_hot  # noqa: E402
from modeling_htla.data import build_taxonomy, encode_labels, load_raw_datasets  # noqa: E402
from modeling_htla.metrics import load_htc_metric  # noqa: E402


def fit_local_classifiers(features, vectors: np.ndarray, taxonomy, c: float) -> dict:
    """One multinomial LogisticRegression per parent (-1 = the virtual root) over its children.

    Each is trained on the documents whose gold path passes through that parent; a parent with one child
    gets that child's id instead of a classifier.
    """
    models = {}
    for parent in [-1] + [i for i in taxonomy.topological_order() if taxonomy.children[i]]:
        children = np.asarray(taxonomy.roots if parent < 0 else taxonomy.children[parent])
        if len(children) == 1:
            models[parent] = int(children[0])
            continue
        rows = np.flatnonzero(vectors[:, children].any(axis=1))
        targets = children[vectors[rows][:, children].argmax(axis=1)]
        models[parent] = LogisticRegression(C=c, max_iter=MAX_ITER).fit(features[rows], targets)
    return models


def predict_top_down(models: dict, features, taxonomy) -> np.ndarray:
    """Greedy descent from the root, the argmax child at each parent; the path as a multi-hot matrix."""
    node = np.full(features.shape[0], -1)
    for parent, model in models.items():  # parents in topological order, the root first
        rows = np.flatnonzero(node == parent)
        if len(rows):
            node[rows] = model if isinstance(model, int) else model.predict(features[rows])
    return np.asarray([taxonomy.encode([taxonomy.labels[leaf]]) for leaf in node])


def evaluate_split(metric, predicted: np.ndarray, gold: np.ndarray, taxonomy, frequencies, prefix: str) -> dict:
    """The package's HTC metrics plus leaf accuracy, keys prefixed like `run_htc.py` (`eval_`, `predict_`)."""
    scores = metric.compute(
        predictions=predicted,
        references=gold.astype(np.int32),
        parents=taxonomy.parent_ids,
        label_frequencies=frequencies,
    )
    scores["leaf_accuracy"] = float(np.mean((predicted == gold).all(axis=1)))  # single-path labels end in leaves
    scores["samples"] = len(gold)
    return {f"{prefix}_{key}": value for key, value in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c_grid", type=float, nargs="+", default=[10.0, 30.0, 100.0, 300.0])
    args = parser.parse_args()
    datasets.disable_progress_bars()
    start = time.time()
    files = {f"{split}_file": str(DATA / f"{split}.jsonl") for split in ("train", "validation", "test")}
    raw = load_raw_datasets(**files, skip_empty_texts=True)
    taxonomy = build_taxonomy(raw, str(DATA / "20newsgroups.taxonomy"))
    texts, vectors = {}, {}
    for split in raw:
        encoded = encode_labels(raw[split], taxonomy, source=split)
        texts[split] = encoded["text"]
        vectors[split] = multi_hot(encoded["label_ids"][:], len(taxonomy))
    frequencies = vectors["train"].sum(axis=0).astype(int).tolist()
    metric = load_htc_metric(keep_in_memory=True)

    with threadpool_limits(limits=1):
        fit_start = time.time()
        vectorizer = TfidfVectorizer(**VECTORIZER)
        features = {"train": vectorizer.fit_transform(texts["train"])}
        vectorizer_time = time.time() - fit_start
        features.update({split: vectorizer.transform(texts[split]) for split in ("validation", "test")})
        candidates = []
        for c in args.c_grid:
            fit_start = time.time()
            models = fit_local_classifiers(features["train"], vectors["train"], taxonomy, c)
            fit_time = vectorizer_time + time.time() - fit_start
            predicted = predict_top_down(models, features["validation"], taxonomy)
            scores = evaluate_split(metric, predicted, vectors["validation"], taxonomy, frequencies, "eval")
            print(f"C={c:g}: validation Micro-F1 {scores['eval_micro_f1']:.4f}  Macro-F1 {scores['eval_macro_f1']:.4f}")
            candidates.append((scores["eval_macro_f1"], c, models, scores, fit_time))
        _, best_c, models, results, fit_time = max(candidates, key=lambda candidate: candidate[0])
        results.update(evaluate_split(
            metric, predict_top_down(models, features["test"], taxonomy), vectors["test"], taxonomy, frequencies,
            "predict",
        ))
    results.update(train_runtime=fit_time, train_samples=len(texts["train"]))

    settings = {
        "C": best_c,
        "c_grid": args.c_grid,
        "classifier": f"LogisticRegression(lbfgs, multinomial, max_iter={MAX_ITER}) per parent node",
        "vectorizer": {**VECTORIZER, "ngram_range": list(VECTORIZER["ngram_range"])},
        "num_features": len(vectorizer.vocabulary_),
        **files,
        "taxonomy_file": str(DATA / "20newsgroups.taxonomy"),
        "skip_empty_texts": True,
    }
    path = save_result("20newsgroups_tfidf", {
        "benchmark": "20newsgroups",
        "variant": "tfidf",
        "settings": settings,
        "wall_time_s": time.time() - start,
        "results": results,
    })
    print(f"\nC={best_c:g}, {settings['num_features']} features, fitting {fit_time:.1f} s")
    print(f"{'split':<12}{'Micro-F1':>10}{'Macro-F1':>10}{'Hier. F1':>10}{'Leaf acc.':>11}")
    for split, prefix in (("validation", "eval"), ("test", "predict")):
        row = [results[f"{prefix}_{key}"] * 100 for key in ("micro_f1", "macro_f1", "hierarchical_f1", "leaf_accuracy")]
        print(f"{split:<12}{row[0]:>10.2f}{row[1]:>10.2f}{row[2]:>10.2f}{row[3]:>11.2f}")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
