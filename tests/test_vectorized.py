"""The loss loops must stay vectorised on every SIMD tier.

A change that stops GCC from vectorising a loss loop (a select on a loop-invariant bool did,
once) costs 5-10x in speed and no numeric test notices. This compiles cpp/src/kernel_tier.cpp with
each tier's flags from CMakeLists.txt and checks GCC's -fopt-info report for every loop marked
FASTBCE_VEC_LOOP in kernel.hpp and its parts: no instantiation may be reported missed, and each
loop must be vectorised at the tier's full width.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "cpp" / "include" / "fastbce"
# kernel.hpp and the headers it is split into, which hold the marked loops
KERNEL_PARTS = ["kernel.hpp", "loss_focal.hpp", "loss_loop.hpp"]
CMAKE = ROOT / "CMakeLists.txt"
COMPILER = os.environ.get("CXX", "g++")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "AMD64") or shutil.which(COMPILER) is None,
        reason="checks GCC's vectorisation report for the x86-64 tiers",
    ),
]


def tier_flags() -> dict[str, list[str]]:
    text = CMAKE.read_text()
    flags = dict(re.findall(r"set\(FASTBCE_TIER_FLAGS_(\w+)\s+([^)]*)\)", text))
    return {tier: value.replace('""', "").split() for tier, value in flags.items()}


def marked_loop_lines() -> list[tuple[str, int]]:
    lines = [
        (name, number)
        for name in KERNEL_PARTS
        for number, line in enumerate((INCLUDE / name).read_text().splitlines(), start=1)
        if "FASTBCE_VEC_LOOP" in line
    ]
    assert len(lines) >= 3, "the kernel's headers have lost their FASTBCE_VEC_LOOP markers"
    return lines


@pytest.mark.parametrize("tier", ["v2", "v3", "v4"])
def test_loss_loop_is_vectorised(tier, tmp_path):
    version = subprocess.run([COMPILER, "--version"], capture_output=True, text=True).stdout
    if "clang" in version.lower():
        pytest.skip("the report format checked here is GCC's")
    lines = marked_loop_lines()
    command = [
        COMPILER,
        "-std=c++20",
        "-O3",
        *tier_flags()[tier],
        "-ffp-contract=off",
        "-fno-math-errno",
        "-fno-trapping-math",
        f"-DFASTBCE_TIER=tier_{tier}",
        f"-I{ROOT / 'cpp' / 'include'}",
        "-c",
        str(ROOT / "cpp" / "src" / "kernel_tier.cpp"),
        "-o",
        str(tmp_path / "kernel.o"),
        "-fopt-info-vec-optimized",
        "-fopt-info-vec-missed",
    ]
    report = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    # every instantiation of every marked loop (the loss stages and the focal factor, for
    # float/double x logits/probabilities x focal x general options) must vectorise at the tier's
    # full width; an epilogue may add narrower reports
    full = {"v2": "16", "v3": "32", "v4": "64"}[tier]
    for name, line in lines:
        at_loop = rf"{re.escape(name)}:{line}:\d+: "
        missed = re.findall(at_loop + r"missed: couldn't vectorize loop", report)
        widths = re.findall(
            at_loop + r"optimized: loop vectorized using (\d+) byte vectors", report
        )
        assert not missed, f"the loop at {name}:{line} did not vectorise on {tier}:\n{report}"
        assert full in widths, f"the loop at {name}:{line} is not vectorised at {full} bytes"
