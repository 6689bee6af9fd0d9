"""The report's float64 exp(-|x|) of float32 logits (report_lanes.hpp, exp_neg_wide) on the
AVX-512 and AVX2 tiers this CPU runs: tests/cpp/test_exp_wide.cpp built for the tier and run
over every 61st float32 |x| in [0, 700] (about 1.9e7 values), held to 4e-16 relative against
long double and to normal results. `python -m pytest tests/test_exp_wide.py` needs a C++20
compiler (g++, or $CXX)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import SUPPORTED_TARGETS, TIER_FLAGS, build_tier_program


@pytest.mark.parametrize("target", [t for t in TIER_FLAGS if t in SUPPORTED_TARGETS])
def test_exp_wide_accuracy(target, tmp_path):
    program = build_tier_program("test_exp_wide.cpp", target, tmp_path)
    run = subprocess.run([str(program), "61"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worst relative error" in run.stdout
