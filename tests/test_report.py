"""benchmarks/report_quality.py: seeds grouped into rows, Markdown tables, the three PNGs, a clear error."""

import json

import pytest

from conftest import load_benchmark


def load_report():
    return load_benchmark("report_quality")


def write_run(folder, name, variant, seed, macro, extra_settings=None, dataset="20newsgroups", overrides=None,
              learned=None):
    metrics = {"micro_f1": macro + 0.03, "macro_f1": macro, "level_1_macro_f1": macro + 0.05,
               "level_2_macro_f1": macro, "level_3_macro_f1": macro - 0.05, "hierarchical_f1": macro,
               "consistency_rate": 0.97, **{f"p{g}_macro_f1": macro - g / 100 for g in range(1, 6)}}
    results = {f"{split}_{key}": value for split in ("eval", "predict") for key, value in metrics.items()}
    results["train_runtime"] = 600.0 * (1 + seed % 2)
    if learned is not None:  # test figures at thresholds learned on validation
        results.update({"predict_learned_micro_f1": learned + 0.03, "predict_learned_macro_f1": learned,
                        "predict_learned_p5_macro_f1": learned - 0.05, "eval_threshold_strategy": "level"})
    history = [{"step": step, "loss_bce": 0.3 / step, "loss_tla": 0.0 if variant != "htla" else 2 - step / 100}
               for step in (10, 20, 30)]
    run = {"benchmark": dataset, "variant": variant,
           "settings": {"seed": seed, "num_train_epochs": 1, **(extra_settings or {})},
           "results": results, "log_history": history, "overrides": overrides or {}}
    (folder / f"{dataset}_{name}.json").write_text(json.dumps(run))


def test_rows_tables_and_plots(tmp_path, capsys):
    write_run(tmp_path, "flat_seed1", "flat", 1, 0.84)
    write_run(tmp_path, "flat_seed2", "flat", 2, 0.86)
    write_run(tmp_path, "htla_seed1", "htla", 1, 0.80)
    write_run(tmp_path, "htla_seed1_tla_temperature0.2", "htla", 1, 0.82, {"tla_temperature": 0.2},
              overrides={"tla_temperature": 0.2})
    write_run(tmp_path, "dot_seed1", "dot", 1, 0.86, {"fusion": "dot", "tla_weight": 0.1})
    write_run(tmp_path, "recommended_seed1", "recommended", 1, 0.87, {"fusion": "hybrid", "use_tla": False})
    write_run(tmp_path, "recommended_seed1_tla_projection_dim8", "recommended", 1, 0.88,
              {"fusion": "hybrid", "tla_projection_dim": 8}, overrides={"tla_projection_dim": 8})
    write_run(tmp_path, "flat_seed1", "flat", 1, 0.5, dataset="icd10cm")  # another data set: not a row here
    (tmp_path / "scaling.json").write_text("{}")  # other benchmarks' files are not rows
    report = load_report()

    rows = report.load_rows(tmp_path)
    assert [(row.variant, row.ablation, row.seeds) for row in rows] == [
        ("flat", (), [1, 2]), ("htla", (), [1]), ("dot", (), [1]), ("recommended", (), [1]),
        ("htla", (("tla_temperature", "0.2"),), [1]), ("recommended", (("tla_projection_dim", "8"),), [1]),
    ]

    report.main(["--results_dir", str(tmp_path), "--output_dir", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    flat_line = next(line for line in out.splitlines() if line.startswith("| Flat"))
    assert "| 1, 2 | 88.00 (87.00–89.00) | 85.00 (84.00–86.00) |" in flat_line
    assert flat_line.endswith("| 15.00 (10.00–20.00) |")  # train minutes: 20 and 10
    assert any(line.startswith("| HTLA") and "[τ=0.2]" in line and "| 82.00 |" in line for line in out.splitlines())
    # Variants defined by an example file: their own settings are not ablations, the flags on top of them are.
    assert any(line.startswith("| HTLA, dot fusion (λ 0.1) | 1 epoch | 1 |") for line in out.splitlines())
    assert any(line.startswith("| Default: graph, hybrid head, BCE only | 1 epoch | 1 |") for line in out.splitlines())
    assert any(line.startswith("| Default: graph, hybrid head, BCE only [TLA projection=8] |")
               for line in out.splitlines())
    for name in ("learning_curves", "levels", "frequency"):
        png = tmp_path / "plots" / f"20newsgroups_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_for_the_icd10cm_runs(tmp_path, capsys):
    write_run(tmp_path, "flat_seed1", "flat", 1, 0.5, dataset="icd10cm")
    write_run(tmp_path, "recommended_seed1", "recommended", 1, 0.6, {"fusion": "hybrid"}, dataset="icd10cm",
              learned=0.62)
    write_run(tmp_path, "recommended_converged_seed1", "recommended", 1, 0.64,
              {"fusion": "hybrid", "num_train_epochs": 3, "early_stopping_patience": 1}, dataset="icd10cm")
    write_run(tmp_path, "recommended_converged_seed2_use_tlaTrue", "recommended", 2, 0.63,
              {"fusion": "hybrid", "num_train_epochs": 3, "early_stopping_patience": 1}, dataset="icd10cm",
              overrides={"use_tla": True, "tla_weight": 0.1})
    load_report().main(["--dataset", "icd10cm", "--results_dir", str(tmp_path), "--output_dir", str(tmp_path / "p")])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "| Flat" in out and "| Default: graph, hybrid head, BCE only | 1 epoch | 1 | 63.00 | 60.00 |" in out
    # Runs trained to convergence are rows of their own, after the one-epoch rows; TLA on top of the default is
    # named as the flag it is.
    assert "| Default: graph, hybrid head, BCE only | ≤3 epochs, early stopping | 1 | 67.00 | 64.00 |" in out
    assert "| Default: graph, hybrid head, BCE only [TLA=True, λ=0.1] | ≤3 epochs, early stopping | 2 |" in out
    # The threshold table: the run that has figures at learned thresholds, at 0.5 and at them.
    assert "| Default: graph, hybrid head, BCE only | 1 epoch | 1 | 63.00 | 60.00 | 55.00 | 65.00 | 62.00 | 57.00 | " \
           "level |" in lines
    assert not (tmp_path / "p").exists()  # plots are drawn for 20 Newsgroups only


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no 20newsgroups_.*json results in"):
        load_report().main(["--results_dir", str(tmp_path)])


def load_new_labels_report():
    return load_benchmark("report_new_labels")


def write_new_labels(folder, row, seed, **result):
    run = {"benchmark": "new_labels_icd10cm", "row": row, "seed": seed, **result}
    (folder / f"new_labels_icd10cm_{row}_seed{seed}.json").write_text(json.dumps(run))


def test_new_labels_report_groups_seeds_and_compares_with_zero_shot(tmp_path, capsys):
    for seed, (zero_shot, extended, change) in {7: (0.30, 0.36, -0.001), 13: (0.32, 0.31, -0.006)}.items():
        write_new_labels(tmp_path, "zero_shot", seed, after={"held_out_macro_f1": zero_shot, "held_out_map": 0.4},
                         label_queries={"path": {"held_out_macro_f1": 0.2, "held_out_map": 0.3}})
        write_new_labels(tmp_path, "extended", seed, seen_macro_f1_change=change,
                         before={"seen_micro_f1": 0.94, "seen_macro_f1": 0.57},
                         after={"held_out_macro_f1": extended, "held_out_map": 0.5, "seen_micro_f1": 0.94,
                                "seen_macro_f1": 0.57 + change},
                         initializations={} if seed == 13 else {"extend_taxonomy": {"held_out_macro_f1": 0.25}})
    load_new_labels_report().main(["--dataset", "icd10cm", "--results_dir", str(tmp_path)])
    out = capsys.readouterr().out
    zero_shot_line = next(line for line in out.splitlines() if line.startswith("| zero-shot: cosine"))
    assert "| 7, 13 | 31.00 (30.00–32.00) | 40.00 (40.00–40.00) | – | – |" in zero_shot_line
    assert "| … extended and calibrated on the texts to predict (`run_htc.py`) | 7, 13 | 33.50 (31.00–36.00) |" in out
    assert "| … extended, biases from the label names (`extend_taxonomy` alone) | 7 | 25.00 | – |" in out
    assert "ceiling" not in out  # no ceiling run saved: no line
    assert "seed 7: extended − zero-shot held-out Macro-F1 +6.00, seen Macro-F1 change -0.10" in out
    assert "seed 13: extended − zero-shot held-out Macro-F1 -1.00, seen Macro-F1 change -0.60" in out


def test_new_labels_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no new_labels_.*run benchmarks/run_new_labels.py first"):
        load_new_labels_report().main(["--results_dir", str(tmp_path)])
