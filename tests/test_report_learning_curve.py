"""benchmarks/report_learning_curve.py: seeds grouped per (data set, row, k), SetFit's own prediction as a row, the
targets as paired differences, the plot written."""

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
