"""The AVX-512 plain loss's exp(-|x|) for float32 |x| in [31.5, 87.33] (softplus_table.hpp,
exp_neg_abs_band): tests/cpp/test_exp_band.cpp built for tier x86-64-v4 and run over every float
in that range (about 1.2e7 values), held to 1.1 ulp against long double, to normal results and
to no floating-point flag (underflow, overflow, invalid, divide by zero), inside the range and
for lanes outside it. `python -m pytest tests/test_exp_band.py` needs a C++20 compiler (g++, or
$CXX) and a CPU that runs x86-64-v4."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SUPPORTED_TARGETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif("x86-64-v4" not in SUPPORTED_TARGETS, reason="the CPU does not run x86-64-v4")
def test_exp_band_accuracy(tmp_path):
    compiler = os.environ.get("CXX") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++ or $CXX) to build tests/cpp/test_exp_band.cpp")
    program = tmp_path / "test_exp_band"
    subprocess.run(
        [compiler, "-std=c++20", "-O2", "-ffp-contract=off", "-march=x86-64-v4"]
        + ["-mprefer-vector-width=512", "-DFASTBCE_TIER=tier_v4", "-I", str(ROOT / "cpp/include")]
        + [str(ROOT / "tests/cpp/test_exp_band.cpp"), "-o", str(program)],
        check=True,
    )
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worst error" in run.stdout
