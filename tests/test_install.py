"""A normal (non-editable) install can train: the wheel holds `run_htc.py` and the `run-htc` console entry point."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_trains_with_the_run_htc_entry_point(encoder_dir, data_dir, tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", "tests", "benchmarks", "outputs", "runs"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                          str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("htla-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {"run_htc.py", "configuration_htla.py", "modeling_htla/metrics/htc_f1/htc_f1.py"} <= names
    assert "run-htc = run_htc:main" in entry_points

    # A throw-away venv with only the wheel; the dependencies come from this environment's site-packages, which
    # holds no copy of the project (the editable install's finder is not activated through a plain path entry).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(pip + ["--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    dependencies = Path(sysconfig.get_paths()["purelib"])
    assert not (dependencies / "run_htc.py").exists() and not (dependencies / "modeling_htla").exists()
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(f"{dependencies}\n")

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(venv / "bin" / "run-htc"), "--model_name_or_path", encoder_dir,
         "--train_file", str(data_dir / "train.jsonl"), "--test_file", str(data_dir / "test.jsonl"),
         "--taxonomy_file", str(data_dir / "labels.taxonomy"), "--output_dir", str(out), "--do_train", "--do_predict",
         "--max_steps", "1", "--per_device_train_batch_size", "8", "--max_seq_length", "16", "--report_to", "none"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 8
    assert (out / "modeling_htla.py").is_file()  # the remote-code files are written from the installed package
