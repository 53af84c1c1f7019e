"""Shared benchmark plumbing: timing medians, machine/version facts, and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def median_seconds(fn, repeats: int, warmup: int = 2) -> tuple[float, list[float]]:
    """Median wall time of `fn()` over `repeats` runs after `warmup` runs, and all the times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def cpu_model() -> str:
    """The processor's model name (Linux), so that minutes from different machines can be told apart: the same run
    took 4.5 s a step on one 2-core machine and 1.6 s on another (both named "AMD EPYC": see also `environment`'s
    `cpu_capability`, the vector instructions torch uses there, AVX2 or AVX512)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import torch
    import transformers

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }


def save_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"environment": environment(), **result}, indent=2) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> str:
    """Rows as a JSON Lines file, as a user would hand them to run_htc.py; returns the path."""
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return str(path)


# Above this 1-minute load average the machine is busy and the figures are not a result (issue 31).
IDLE_LOAD = 0.5


def machine_load() -> dict:
    """The load average before the benchmark runs, and `idle`: whether the 1-minute load is at most `IDLE_LOAD`.
    A busy machine gets a warning that the figures will not be a result."""
    one, five, fifteen = os.getloadavg()
    idle = one <= IDLE_LOAD
    if not idle:
        print(f"WARNING: the 1-minute load average is {one:.2f} (over {IDLE_LOAD}): the machine is busy, so these "
              "figures are not a result (saved with idle: false); measure again on an idle machine", file=sys.stderr)
    return {"load_average": {"1min": one, "5min": five, "15min": fifteen}, "idle": idle}
