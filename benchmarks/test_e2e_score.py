"""The end-to-end benchmark (e2e_score.py) run small, as a test: every tool's answer is checked
against the float64 reference, the output files are read back, and the report is printed."""

from __future__ import annotations

from fastbce.cli.bench.e2e import run_e2e  # what benchmarks/e2e_score.py runs


def test_e2e_benchmark_small(tmp_path, capsys):
    tasks = run_e2e(30000, row_group_rows=7000, repeat=1, data_dir=str(tmp_path), quiet=True)
    failed = [f"{t.section} / {t.tool}: {t.error}" for t in tasks if t.error]
    assert not failed, failed
    tools = {t.tool for t in tasks}
    assert {"fastbce score", "fastbce score --output .parquet"} <= tools
    assert all(t.times for t in tasks)
    report = capsys.readouterr().out
    assert "x floor (<= 1.2)" in report and "CPU:" in report
    floors = {t.tool for t in tasks if t.section == "overall" and "start +" in t.tool}
    assert floors == {
        "start + imports only",
        "start + pyarrow read: table",
        "start + pyarrow read: stream",
        "start + pyarrow read: row groups",
    }
    assert "floor (fastest pyarrow read) = " in report
