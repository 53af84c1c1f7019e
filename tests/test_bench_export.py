"""The benchmarks (bench_export.py, bench_predict.py: `common.machine_load`) read the load average before they run: a busy machine's result is marked `idle: false`
with a warning that its figures are not a result; an idle one's is marked `idle: true`, without the warning."""

import sys

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_export")


@pytest.mark.parametrize("one_minute, idle", [(2.37, False), (0.51, False), (0.5, True), (0.08, True)])
def test_load_average_marks_a_busy_machine(bench, monkeypatch, capsys, one_minute, idle):
    common = sys.modules[bench.machine_load.__module__]
    monkeypatch.setattr(common.os, "getloadavg", lambda: (one_minute, 1.5, 0.75))
    load = bench.machine_load()
    assert load == {"load_average": {"1min": one_minute, "5min": 1.5, "15min": 0.75}, "idle": idle}
    warning = capsys.readouterr().err
    if idle:
        assert warning == ""
    else:
        assert f"load average is {one_minute:.2f} (over 0.5)" in warning and "not a result" in warning
