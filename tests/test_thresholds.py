"""Decision thresholds learned on validation: the search finds what an exhaustive search over the candidates finds, the
strategy is chosen on held-out halves, `run_htc.py` stores them in `config.json`, and every prediction path
(`run_htc.py --do_predict`, both pipelines, `handler.py`, the demo) decides labels with them unless told otherwise."""

import importlib.util
import itertools
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import chain_taxonomy
from transformers import AutoTokenizer, pipeline

from modeling_htla import HTLAModel
from modeling_htla.metrics import htc_scores
from modeling_htla.pipeline import check_threshold
from modeling_htla.thresholds import CANDIDATES, choose_thresholds, fit, label_f1_table
from test_run_htc import read_json, run_in_process

TEXTS = ["quantum particle energy photon", "goal match striker referee", "photon goal energy", "tennis racket serve"]


def exhaustive_macro_f1(scores, gold, thresholds) -> float:
    """Macro-F1 at per-label thresholds, label by label from the definitions."""
    values = []
    for j in range(gold.shape[1]):
        predicted = scores[:, j] > thresholds[j]
        tp = int((predicted & gold[:, j]).sum())
        fp, fn = int((predicted & ~gold[:, j]).sum()), int((~predicted & gold[:, j]).sum())
        values.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(values))


def two_level_scores(seed: int = 0, docs: int = 240):
    """Scores of a 2-level tree (2 parents, 4 children) whose deep labels are scored low: their positives sit around
    0.3, their negatives below 0.15, so 0.5 misses them and a lower level-2 threshold finds them."""
    rng = np.random.default_rng(seed)
    depths = np.array([1, 1, 2, 2, 2, 2])
    leaf = rng.integers(2, 6, docs)
    gold = np.zeros((docs, 6), dtype=bool)
    gold[np.arange(docs), leaf] = True
    gold[np.arange(docs), (leaf - 2) // 2] = True  # children 2, 3 under 0; 4, 5 under 1
    scores = np.where(gold, rng.uniform(0.55, 0.95, gold.shape), rng.uniform(0.0, 0.45, gold.shape))
    scores[:, 2:] = np.where(gold[:, 2:], rng.uniform(0.2, 0.4, (docs, 4)), rng.uniform(0.0, 0.15, (docs, 4)))
    return scores, gold, depths


def test_fitted_thresholds_match_an_exhaustive_search():
    scores, gold, depths = two_level_scores()
    table = label_f1_table(scores, gold)
    best_global = max(CANDIDATES, key=lambda t: exhaustive_macro_f1(scores, gold, np.full(6, t)))
    assert fit(table, depths, "global")[0] == pytest.approx(best_global)
    pairs = {(a, b): exhaustive_macro_f1(scores, gold, np.where(depths == 1, a, b))
             for a, b in itertools.product(CANDIDATES, CANDIDATES)}
    best = max(pairs.values())
    level = fit(table, depths, "level")
    assert exhaustive_macro_f1(scores, gold, level) == pytest.approx(best)
    assert level[2] < 0.2 < 0.5 and best > exhaustive_macro_f1(scores, gold, np.full(6, 0.5)) + 0.3


def test_strategy_is_chosen_on_held_out_halves_and_stored_per_level():
    scores, gold, depths = two_level_scores()
    choice = choose_thresholds(scores, gold, depths)
    assert choice.strategy == "level" and choice.cross_validated["level"] > choice.cross_validated["global"]
    assert choice.levels[0] > choice.levels[1] and len(choice.levels) == 2
    assert choice.macro_f1 == pytest.approx(exhaustive_macro_f1(scores, gold, np.where(depths == 1, *choice.levels)))
    assert choice.macro_f1_fixed == pytest.approx(exhaustive_macro_f1(scores, gold, np.full(6, 0.5)))
    # Scores already right at 0.5 keep 0.5: the simpler strategy wins ties on held-out halves.
    exact = np.where(gold, 0.9, 0.1)
    assert choose_thresholds(exact, gold, depths).strategy == "fixed"


def test_metric_takes_one_threshold_per_label():
    scores, gold, depths = two_level_scores()
    thresholds = np.where(depths == 1, 0.5, 0.17)
    parents = [-1, -1, 0, 0, 1, 1]
    result = htc_scores(predictions=scores, references=gold.astype(int), parents=parents, threshold=thresholds.tolist())
    assert result["macro_f1"] == pytest.approx(exhaustive_macro_f1(scores, gold, thresholds), abs=1e-6)
    with pytest.raises(ValueError, match="must be a number or have length 6"):
        htc_scores(predictions=scores, references=gold.astype(int), parents=parents, threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match="must be a number or a list of numbers, got None"):
        htc_scores(predictions=scores, references=gold.astype(int), parents=parents, threshold=None)


def test_config_maps_levels_to_labels_and_checks_them():
    config = HTLAModel.config_class(taxonomy=chain_taxonomy(3).to_dict(), decision_thresholds=[0.4, 0.3])
    depths = config.get_taxonomy().depths
    assert config.label_thresholds() == [0.4 if depth == 1 else 0.3 for depth in depths]  # level 3 takes level 2's
    plain = HTLAModel.config_class(taxonomy=chain_taxonomy(2).to_dict())
    assert plain.label_thresholds() == [0.5] * len(plain.get_taxonomy())
    with pytest.raises(ValueError, match="decision_thresholds: expected a list of numbers in"):
        HTLAModel.config_class(taxonomy=chain_taxonomy(2).to_dict(), decision_thresholds=[1.5])
    with pytest.raises(ValueError, match=r"threshold: expected a number between 0 and 1, or 2 of them"):
        check_threshold([0.5], 2)


def test_training_learns_thresholds_on_validation_and_saves_them(trained):
    out, _ = trained
    config = read_json(out / "config.json")
    levels = HTLAModel.from_pretrained(out).config.get_taxonomy().num_levels
    assert len(config["decision_thresholds"]) == levels
    results = read_json(out / "eval_results.json")
    assert results["eval_threshold_strategy"] in ("fixed", "global", "level")
    # Fitted on the whole validation split, with 0.5 among the candidates: never below the fixed 0.5.
    assert results["eval_learned_macro_f1"] >= results["eval_macro_f1"] - 1e-9
    assert "predict_learned_macro_f1" in read_json(out / "predict_results.json")


@pytest.fixture(scope="module")
def with_thresholds(trained, tmp_path_factory):
    """The trained checkpoint with thresholds set from its own scores so that they decide differently from 0.5: a
    level's threshold just under the lowest score that level gets on the texts (every label of it predicted), or just
    above its highest when that is under 0.5 (none predicted)."""
    out, _ = trained
    folder = tmp_path_factory.mktemp("thresholds") / "htla-thresholds"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    model = HTLAModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        scores = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.sigmoid().numpy()
    depths = np.asarray(model.config.get_taxonomy().depths)
    levels = []
    for depth in range(1, depths.max() + 1):
        level = scores[:, depths == depth]
        low, high = float(level.min()), float(level.max())
        levels.append(round(low - 0.001, 4) if high > 0.5 or low > 0.5 else round(min(high + 0.001, 0.999), 4))
    model.config.decision_thresholds = levels
    model.config.save_pretrained(folder)
    learned = scores > np.asarray(model.config.label_thresholds())
    assert (learned != (scores > 0.5)).any()  # the two decide differently on these texts
    return folder, model, scores, learned


def expected_paths(model, chosen_row) -> list[str]:
    tax = model.config.get_taxonomy()
    kept = [j for j in range(len(tax)) if chosen_row[j] and all(chosen_row[a] for a in tax.ancestors(j))]
    return sorted(tax.path(j) for j in kept if not any(c in kept for c in tax.children[j]))


def test_run_htc_predicts_at_the_learned_thresholds_unless_given_one(with_thresholds, data_dir, tmp_path):
    folder, model, _, _ = with_thresholds
    rows = [{"id": i, "text": text, "labels": ["science"]} for i, text in enumerate(TEXTS)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():  # at the script's max_seq_length
        scores = model(**tokenizer(TEXTS, padding=True, truncation=True, max_length=16,
                                   return_tensors="pt")).logits.sigmoid().numpy()
    tax = model.config.get_taxonomy()
    predicted = {}
    for name, extra in (("learned", []), ("fixed", ["--threshold", "0.5"])):
        run_in_process(["--model_name_or_path", str(folder), "--test_file", str(tmp_path / "test.jsonl"), "--do_predict",
                        "--output_dir", str(tmp_path / name), "--max_seq_length", "16", *extra])
        lines = (tmp_path / name / "predictions.jsonl").read_text().splitlines()
        predicted[name] = [sorted(json.loads(line)["labels"]) for line in lines]
    for name, thresholds in (("learned", np.asarray(model.config.label_thresholds())), ("fixed", 0.5)):
        assert predicted[name] == [sorted(tax.labels[j] for j in np.flatnonzero(row > thresholds)) for row in scores]
    assert predicted["learned"] != predicted["fixed"]


def test_pipelines_and_handler_decide_at_the_learned_thresholds(with_thresholds):
    folder, model, scores, learned = with_thresholds
    paths = pipeline("hierarchical-text-classification", model=str(folder), trust_remote_code=True)
    labels = pipeline("text-classification", model=str(folder), trust_remote_code=True)
    spec = importlib.util.spec_from_file_location("handler", folder / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.EndpointHandler(str(folder))
    label2id = model.config.label2id
    differs = False
    for text, row, chosen in zip(TEXTS, scores, learned):
        for answer, threshold in ((paths(text), None), (paths(text, threshold=0.5), 0.5)):
            decided = chosen if threshold is None else row > threshold
            assert sorted(item["label"] for item in answer) == expected_paths(model, decided)
        for answer, decided in ((labels(text, top_k=None), chosen), (labels(text, top_k=None, threshold=0.5), row > 0.5)):
            assert {item["label"]: item["predicted"] for item in answer} == \
                {label: bool(decided[j]) for label, j in label2id.items()}
        served = handler({"inputs": text, "parameters": {"output": "paths"}})
        assert sorted(item["label"] for item in served) == expected_paths(model, chosen)
        at_half = handler({"inputs": text, "parameters": {"output": "paths", "threshold": 0.5}})
        assert sorted(item["label"] for item in at_half) == expected_paths(model, row > 0.5)
        flags = handler({"inputs": text, "parameters": {"threshold": 0.5}})
        assert {item["label"]: item["predicted"] for item in flags} == {l: bool(row[j] > 0.5) for l, j in label2id.items()}
        differs |= sorted(map(str, served)) != sorted(map(str, at_half))
    assert differs


def test_demo_sliders_start_at_the_learned_thresholds(with_thresholds):
    from modeling_htla.demo import build_demo

    folder, model, _, _ = with_thresholds
    demo = build_demo(str(folder))
    sliders = {block.elem_id: block.value for block in demo.blocks.values() if (block.elem_id or "").startswith("htla-threshold")}
    assert sliders == {f"htla-threshold-{d}": t for d, t in enumerate(model.config.decision_thresholds, start=1)}
    fixed = build_demo(str(folder), threshold=0.5)
    assert {block.value for block in fixed.blocks.values() if (block.elem_id or "").startswith("htla-threshold")} == {0.5}
