"""How large calls fetch their input from memory (fastbce.build_info()["line_fetch"]): the default
by the CPU's vendor, the environment variable FASTBCE_LINE_FETCH, and its errors. That both ways
give the same bits is test_position.py's (the `line_fetch` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastbce
from fastbce import _core


def _vendor() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return None


def _info_in_fresh_process(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FASTBCE_LINE_FETCH"}
    if value is not None:
        env["FASTBCE_LINE_FETCH"] = value
    code = "import fastbce; print(fastbce.build_info()['line_fetch'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_default_follows_the_vendor():
    vendor = _vendor()
    if vendor is None:
        pytest.skip("no vendor_id in /proc/cpuinfo to compare with")
    done = _info_in_fresh_process(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("hardware" if vendor == "AuthenticAMD" else "touch")


@pytest.mark.parametrize("value", ["touch", "hardware"])
def test_environment_variable_names_it(value):
    done = _info_in_fresh_process(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == value


def test_unknown_value_fails_at_import_naming_the_variable_and_value():
    done = _info_in_fresh_process("prefetch")
    assert done.returncode != 0
    assert "FASTBCE_LINE_FETCH" in done.stderr
    assert "'prefetch'" in done.stderr and "touch, hardware" in done.stderr


def test_set_line_fetch_rejects_an_unknown_name_and_keeps_the_active_one():
    before = _core.line_fetch()
    with pytest.raises(ValueError, match="unknown line fetch 'fast'"):
        _core.set_line_fetch("fast")
    assert _core.line_fetch() == before == fastbce.build_info()["line_fetch"]


def test_benchmark_script_runs_both_ways_with_the_same_results():
    """benchmarks/line_fetch.py (the README's figures): a short run above 16 MiB of input."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "line_fetch.py"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "3e6", "--rounds", "2", "--variants", "logits,uint8"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["logits", "uint8"]
    assert all(row[-1] == "yes" for row in rows), done.stdout
    bad = subprocess.run(
        [sys.executable, str(script), "--n", "1e3", "--variants", "logits,fast"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--variants: unknown fast" in bad.stderr
