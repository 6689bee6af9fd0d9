"""The report's float64 exp(-|x|) of float32 logits (report_lanes.hpp, exp_neg_wide) on the
AVX-512 and AVX2 tiers this CPU runs: tests/cpp/test_exp_wide.cpp built for the tier and run
over every 61st float32 |x| in [0, 700] (about 1.9e7 values), held to 4e-16 relative against
long double and to normal results. `python -m pytest tests/test_exp_wide.py` needs a C++20
compiler (g++, or $CXX)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SUPPORTED_TARGETS

ROOT = Path(__file__).resolve().parents[1]
FLAGS = {
    "x86-64-v4": ["-march=x86-64-v4", "-mprefer-vector-width=512", "-DFASTBCE_TIER=tier_v4"],
    "x86-64-v3": ["-march=x86-64-v3", "-DFASTBCE_TIER=tier_v3"],
}


@pytest.mark.parametrize("target", [t for t in FLAGS if t in SUPPORTED_TARGETS])
def test_exp_wide_accuracy(target, tmp_path):
    compiler = os.environ.get("CXX") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++ or $CXX) to build tests/cpp/test_exp_wide.cpp")
    program = tmp_path / "test_exp_wide"
    subprocess.run(
        [
            compiler,
            "-std=c++20",
            "-O2",
            "-ffp-contract=off",
            *FLAGS[target],
            "-I",
            str(ROOT / "cpp/include"),
        ]
        + [str(ROOT / "tests/cpp/test_exp_wide.cpp"), "-o", str(program)],
        check=True,
    )
    run = subprocess.run([str(program), "61"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worst relative error" in run.stdout
