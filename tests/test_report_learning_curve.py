"""benchmarks/report_learning_curve.py: seeds grouped per (data set, row, k), SetFit's own prediction as a row, the
targets as paired differences, the full-data point from the recipe runs, the plot written."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

report = pytest.importorskip("report_learning_curve")


def write(folder, row, k, seed, macro, argmax=None, **fields):
    split = {"micro_f1": macro, "macro_f1": macro, "learned_micro_f1": macro, "learned_macro_f1": macro}
    if argmax is not None:
        split |= {"argmax_micro_f1": argmax, "argmax_macro_f1": argmax}
    run = {"benchmark": "learning_curve", "dataset": "20newsgroups", "row": row, "k": k, "seed": seed,
           "sizes": {"train": 20 * k}, "wall_time_s": 60.0, "validation": split, "test": split, **fields}
    (folder / f"learning_curve_20newsgroups_{row}_k{k}_seed{seed}.json").write_text(json.dumps(run))


def test_targets_are_paired_over_the_seeds_both_rows_have(tmp_path):
    rule = {"cosine_scale_init": 1.0, "init_weights_from_names": 10.0}  # trained under the small-data rule
    write(tmp_path, "default", 2, 42, 0.60, **rule)
    write(tmp_path, "default", 2, 7, 0.50, **rule)
    write(tmp_path, "flat", 2, 42, 0.50)
    write(tmp_path, "flat", 2, 7, 0.48)  # +2 at seed 7: below the +5 target
    write(tmp_path, "setfit", 2, 42, 0.40, argmax=0.65)
    groups = report.load(tmp_path)
    assert [run["test"]["learned_macro_f1"] for run in groups[("20newsgroups", "setfit_argmax", 2)]] == [0.65]
    (line,) = report.targets(groups, "20newsgroups")
    assert "default - flat 6.00 (2.00–10.00) (seeds 7, 42; target >= 5: met on the mean)" in line
    assert "default - setfit_argmax -5.00 (seeds 42; target >= 0: missed)" in line
    best = report.best_candidates(groups, "20newsgroups")
    assert best and "best on validation `default`" in best[0]
    table = report.table(groups, tmp_path, "20newsgroups")
    assert f"| {report.ROW_NAMES['default']} | 2 | 42, 7 | 40 | 55.00 (50.00–60.00) |" in table
    assert (report.plot(groups, tmp_path, tmp_path / "curve.png")).stat().st_size > 0


def test_the_default_at_small_k_is_the_small_data_rule(tmp_path):
    """At k up to the rule's boundary the `names10` runs (the rule's model) count as the default, and `default` runs
    made under an earlier form of the rule count as what they trained: `scale1` (cosine scale 1 recorded, no names'
    start) or their own row (neither); above the boundary `default` stays as run."""
    small, large = report.SMALL_DATA_EXAMPLES_PER_LEAF, report.SMALL_DATA_EXAMPLES_PER_LEAF * 2
    write(tmp_path, "default", small, 42, 0.50)  # nothing recorded: before the rule
    write(tmp_path, "default", small, 13, 0.55, cosine_scale_init=1.0)  # the rule's first form: the scale1 model
    write(tmp_path, "scale1", small, 7, 0.58)
    write(tmp_path, "names10", small, 42, 0.60, cosine_scale_init=1.0, init_weights_from_names=10.0)
    write(tmp_path, "names10", small, 7, 0.62, cosine_scale_init=1.0, init_weights_from_names=10.0)
    write(tmp_path, "default", large, 42, 0.70, cosine_scale_init=14.3)
    groups = report.load(tmp_path)
    assert [(run["row"], run["seed"]) for run in groups[("20newsgroups", "default", small)]] == [
        ("names10", 42), ("names10", 7)]
    assert [run["seed"] for run in groups[("20newsgroups", "scale1", small)]] == [13, 7]
    assert [run["test"]["macro_f1"] for run in groups[("20newsgroups", "default_before_rule", small)]] == [0.50]
    assert [run["test"]["macro_f1"] for run in groups[("20newsgroups", "default", large)]] == [0.70]
    assert ("20newsgroups", "default_before_rule", large) not in groups


def test_the_full_data_point_is_the_readme_command_and_its_flat_twin_from_the_recipe_runs(tmp_path):
    write(tmp_path, "flat", 8, 42, 0.50)
    for row, seed, macro in (("readme", 42, 0.86), ("readme", 7, 0.85), ("readme_flat", 42, 0.87),
                             ("readme_flat", 7, 0.83), ("tuned", 42, 0.99)):
        results = {f"{split}_{key}": macro for split in ("predict", "eval")
                   for key in ("micro_f1", "macro_f1", "learned_micro_f1", "learned_macro_f1")}
        run = {"dataset": "20newsgroups", "train_size": "full", "row": row, "seed": seed, "seconds": 600.0,
               "results": results}
        (tmp_path / f"recipe_20newsgroups_full_{row}_seed{seed}.json").write_text(json.dumps(run))
    full = report.full_data_points(tmp_path, "20newsgroups")
    assert full["default"]["seeds"] == [42, 7] and full["default"]["test"]["learned_macro_f1"] == [0.86, 0.85]
    assert full["flat"]["minutes"] == [10.0, 10.0]
    line = report.targets(report.load(tmp_path), "20newsgroups", full)[-1]
    assert line == "full data (README command): default - flat 0.50 (-1.00–2.00) (seeds 7, 42; target >= 0: met on the mean)"
    table = report.table(report.load(tmp_path), tmp_path, "20newsgroups")
    assert "| full | 42, 7 | all | 85.50 (85.00–86.00) |" in table
