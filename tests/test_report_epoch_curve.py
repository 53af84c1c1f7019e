"""benchmarks/report_epoch_curve.py: a stopped run is read from its checkpoint with the most steps (by number, not by
name), a finished one from its own state."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

report = pytest.importorskip("report_epoch_curve")


def write_state(folder: Path, macros: list[float]) -> None:
    folder.mkdir(parents=True)
    history = [{"loss": 0.1, "epoch": 0.5}]
    history += [{"epoch": float(epoch), "eval_macro_f1": macro, "eval_micro_f1": macro + 0.1}
                for epoch, macro in enumerate(macros, start=1)]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history, "num_train_epochs": 30}))


def test_a_stopped_run_is_read_from_its_checkpoint_with_the_most_steps(tmp_path):
    run = tmp_path / "learning_curve_icd10cm_default_cap30_k8_seed42"
    write_state(run / "checkpoint-966", [0.5, 0.6, 0.7])
    write_state(run / "checkpoint-1104", [0.5, 0.6, 0.7, 0.65])  # after "checkpoint-966" by name, later by steps
    result = report.curve(run)
    assert result["finished"] is False
    assert result["epochs"] == [1.0, 2.0, 3.0, 4.0]
    assert result["eval_macro_f1"] == [0.5, 0.6, 0.7, 0.65]
    assert result["eval_micro_f1"] == pytest.approx([0.6, 0.7, 0.8, 0.75])
    assert result["best_epoch"] == 3.0


def test_a_finished_run_is_read_from_its_own_state_and_an_empty_folder_stops_in_one_line(tmp_path):
    run = tmp_path / "done"
    write_state(run, [0.4, 0.45])
    write_state(run / "checkpoint-10", [0.4])
    result = report.curve(run)
    assert result["finished"] is True and result["eval_macro_f1"] == [0.4, 0.45] and result["best_epoch"] == 2.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"empty: no trainer_state.json, in it or in a checkpoint$"):
        report.curve(tmp_path / "empty")
