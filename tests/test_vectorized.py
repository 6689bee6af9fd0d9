"""The loss loop must stay vectorised on every SIMD tier.

A change that stops GCC from vectorising the fused loop (a select on a loop-invariant bool did,
once) costs 5-10x in speed and no numeric test notices. This compiles cpp/src/kernel_tier.cpp with
each tier's flags from CMakeLists.txt and checks GCC's -fopt-info report for the loop marked
FASTBCE_LOSS_LOOP in kernel.hpp: every instantiation (float/double x logits/probabilities x
focal) must be reported vectorised.
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
KERNEL = ROOT / "cpp" / "include" / "fastbce" / "kernel.hpp"
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


def loss_loop_line() -> int:
    for number, line in enumerate(KERNEL.read_text().splitlines(), start=1):
        if "FASTBCE_LOSS_LOOP" in line:
            return number
    raise AssertionError("kernel.hpp has lost its FASTBCE_LOSS_LOOP marker")


@pytest.mark.parametrize("tier", ["v2", "v3", "v4"])
def test_loss_loop_is_vectorised(tier, tmp_path):
    version = subprocess.run([COMPILER, "--version"], capture_output=True, text=True).stdout
    if "clang" in version.lower():
        pytest.skip("the report format checked here is GCC's")
    line = loss_loop_line()
    command = [
        COMPILER,
        "-std=c++20",
        "-O3",
        *tier_flags()[tier],
        "-ffp-contract=fast",
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
    at_loop = rf"kernel\.hpp:{line}:\d+: "
    missed = re.findall(at_loop + r"missed: couldn't vectorize loop", report)
    widths = re.findall(at_loop + r"optimized: loop vectorized using (\d+) byte vectors", report)
    # each of the 8 instantiations (float/double x logits/probabilities x focal) must vectorise
    # at the tier's full width (an epilogue may add narrower reports)
    full = {"v2": "16", "v3": "32", "v4": "64"}[tier]
    assert not missed, f"the loss loop did not vectorise on {tier}:\n{report}"
    assert widths.count(full) >= 8, f"loss loop at {full}-byte width {widths.count(full)} times"
