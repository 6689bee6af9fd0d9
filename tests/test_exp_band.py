"""The AVX-512 plain loss's exp(-|x|) for float32 |x| in [31.5, 87.33] (softplus_table.hpp,
exp_neg_abs_band): tests/cpp/test_exp_band.cpp built for tier x86-64-v4 and run over every float
in that range (about 1.2e7 values), held to 1.1 ulp against long double, to normal results and
to no floating-point flag (underflow, overflow, invalid, divide by zero), inside the range and
for lanes outside it. `python -m pytest tests/test_exp_band.py` needs a C++20 compiler (g++, or
$CXX) and a CPU that runs x86-64-v4."""

from __future__ import annotations

import subprocess

import pytest

from conftest import SUPPORTED_TARGETS, build_tier_program


@pytest.mark.skipif("x86-64-v4" not in SUPPORTED_TARGETS, reason="the CPU does not run x86-64-v4")
def test_exp_band_accuracy(tmp_path):
    program = build_tier_program("test_exp_band.cpp", "x86-64-v4", tmp_path)
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worst error" in run.stdout
