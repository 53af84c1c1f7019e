"""Probe: where a new label's bias should come from. `extend_taxonomy` matches a new label's mean logit over the
label *names* to its family's; here the bias is instead matched on the unlabelled texts being predicted (their
labels are never read), by the mean logit or by an upper quantile, on the models `run_new_labels.py --row extended`
trained. The 95th percentile won and is `HTLAModel.calibrate_new_labels`. Results:
benchmarks/results/new_labels_bias_probe.json.

    python benchmarks/probe_new_label_bias.py --runs icd10cm:42 icd10cm:7 icd10cm:13 20newsgroups:42 20newsgroups:7

Each split is calibrated on its own texts (validation on validation texts, test on test texts), as `--do_predict`
would on the texts it is given; the decision threshold is still the one the seen labels choose on validation.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoTokenizer

from common import save_result
import run_new_labels as nl
from modeling_htla import HTLAModel

def match_mean_logit(model: HTLAModel, features: torch.Tensor, added: list[int], near: list[list[int]]) -> None:
    """Shift each new label's bias so that its mean logit over the texts equals its family's."""
    logits = model._logits(features, model.label_features())  # [N, L] in the model's order
    for j, rows in zip(added, near):
        model.classifier.bias[j] += logits[:, rows].mean() - logits[:, j].mean()


RULES = {  # (model, text features [N, H], new label ids, their families) -> the new labels' biases shifted
    "mean logit": match_mean_logit,
    "95th percentile": lambda model, features, added, near: model.calibrate_new_labels(text_features=features),
    "99th percentile": lambda model, features, added, near: model.calibrate_new_labels(text_features=features,
                                                                                        quantile=0.99),
}


@torch.no_grad()
def scores(data: dict, model: HTLAModel, features: dict, added: list[int], near: list[list[int]], rule) -> dict:
    """Held-out-leaf Macro-F1 and mAP on validation and test, each split's new biases shifted by `rule` on its
    own texts (no shift when `rule` is None)."""
    bias = model.classifier.bias.detach().clone()
    probabilities = {}
    for split in ("validation", "test"):
        model.classifier.bias.copy_(bias)
        if rule is not None:
            rule(model, features[split], added, near)
        probabilities[split] = nl.sigmoid(nl.full_order(model, features[split], data["taxonomy"]))
    model.classifier.bias.copy_(bias)
    test = nl.held_out_scores(probabilities, data["gold_matrix"], data["seen_ids"], data["held_ids"])
    validation = nl.held_out_scores({"validation": probabilities["validation"], "test": probabilities["validation"]},
                                    {"validation": data["gold_matrix"]["validation"],
                                     "test": data["gold_matrix"]["validation"]}, data["seen_ids"], data["held_ids"])
    return {"validation": {key: validation[key] for key in ("held_out_macro_f1", "held_out_map")},
            "test": {key: test[key] for key in ("held_out_macro_f1", "held_out_map")}}


def probe(dataset: str, seed: int) -> dict:
    data = nl.prepare_scoring(dataset, seed)
    seen_dir = nl.OUTPUTS / f"{dataset}_seed{seed}" / "seen"
    tokenizer = AutoTokenizer.from_pretrained(seen_dir)
    model = HTLAModel.from_pretrained(seen_dir).eval()
    features = nl.cached_text_features(model, tokenizer, seen_dir, data)
    model.extend_taxonomy(data["taxonomy"], tokenizer)  # the label-names biases, before any calibration
    added = list(range(len(data["seen"]), model.config.num_labels))
    near = nl.nearest_rows(model, added)
    rows = {"label names (extend_taxonomy)": scores(data, model, features, added, near, None)}
    rows.update({f"{name} over the texts": scores(data, model, features, added, near, rule)
                 for name, rule in RULES.items()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="dataset:seed pairs trained by run_new_labels.py --row extended")
    args = parser.parse_args()
    results = {}
    for run in args.runs:
        dataset, seed = run.split(":")
        results[run] = probe(dataset, int(seed))
        for name, row in results[run].items():
            print(f"{run:16} {name:32} validation {100 * row['validation']['held_out_macro_f1']:6.2f} "
                  f"{100 * row['validation']['held_out_map']:6.2f}  test {100 * row['test']['held_out_macro_f1']:6.2f} "
                  f"{100 * row['test']['held_out_map']:6.2f}")
    print(f"saved {save_result('new_labels_bias_probe', {'benchmark': 'new_labels_bias_probe', 'runs': results})}")


if __name__ == "__main__":
    main()
