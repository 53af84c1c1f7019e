"""benchmarks/run_recipe.py: a row stopped part-way resumes from its newest complete checkpoint, its wall time kept;
the epoch-cap diagnostic passes its cap and is listed after its row."""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report_recipe  # noqa: E402
import run_recipe  # noqa: E402


def checkpoint(output_dir: Path, step: int, saved_at: float | None) -> Path:
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    state = folder / "trainer_state.json"
    state.write_text(json.dumps({"global_step": step}))
    if saved_at is not None:
        os.utime(state, (saved_at, saved_at))
    return folder


def test_a_fresh_run_records_its_start_and_a_second_invocation_resumes_with_the_time_spent(tmp_path):
    output_dir = tmp_path / "recipe_x"
    assert run_recipe.resume_point(output_dir) == (None, 0.0)
    started = json.loads((output_dir / "recipe_started.json").read_text())["started"]
    checkpoint(output_dir, 637, started + 1500.0)
    newest = checkpoint(output_dir, 1274, started + 3000.0)
    (output_dir / "checkpoint-1911").mkdir()  # half-written by the killed run: no trainer_state.json
    found, earlier = run_recipe.resume_point(output_dir)
    assert found == str(newest)
    assert abs(earlier - 3000.0) < 1e-3


def test_a_checkpoint_without_a_recorded_start_resumes_untimed_and_the_table_says_so(tmp_path):
    output_dir = tmp_path / "recipe_y"
    newest = checkpoint(output_dir, 10, None)
    assert run_recipe.resume_point(output_dir) == (str(newest), None)

    results = {"predict_micro_f1": 0.8, "predict_macro_f1": 0.7, "eval_macro_f1": 0.7,
               "train_epochs_trained": 3.0, "train_best_epoch": 3.0}
    for seed, seconds in ((42, 600.0), (7, None)):
        run = {"dataset": "20newsgroups", "train_size": "full", "row": "readme", "seed": seed, "seconds": seconds,
               "results": results}
        (tmp_path / f"recipe_20newsgroups_full_readme_seed{seed}.json").write_text(json.dumps(run))
    row = report_recipe.table(report_recipe.load(tmp_path)).splitlines()[2]
    assert row.startswith("| 20newsgroups | full | readme | ")
    assert row.endswith("| n/a | 3 (3.0), 3 (3.0) |")


def test_the_cap_diagnostic_passes_its_epochs_and_the_table_puts_it_after_its_row(tmp_path):
    files = {"train_file": "t.jsonl", "taxonomy_file": "x.taxonomy"}
    argv = run_recipe.command("readme_flat", "20newsgroups", files, "out", 7, num_train_epochs=6)
    assert argv[argv.index("--num_train_epochs") + 1] == "6" and "--no_use_graph_encoder" in argv
    assert "--num_train_epochs" not in run_recipe.command("readme", "20newsgroups", files, "out", 7)

    results = {"predict_micro_f1": 0.8, "predict_macro_f1": 0.7, "eval_macro_f1": 0.7,
               "train_epochs_trained": 3.0, "train_best_epoch": 3.0}
    for row in ("readme_cap6", "readme_flat", "readme", "readme_flat_cap6"):
        run = {"dataset": "icd10cm", "train_size": "full", "row": row, "seed": 42, "seconds": 60.0,
               "results": results}
        (tmp_path / f"recipe_icd10cm_full_{row}_seed42.json").write_text(json.dumps(run))
    rows = [line.split(" | ")[2] for line in report_recipe.table(report_recipe.load(tmp_path)).splitlines()[2:]]
    assert rows == ["readme", "readme_cap6", "readme_flat", "readme_flat_cap6"]
