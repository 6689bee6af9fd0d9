"""Shared fixtures: every numeric test runs once per SIMD tier this CPU supports."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from fastbce import _core

# Hypothesis: CI runs a fixed set of examples (reproducible); locally each run explores new ones,
# and `--hypothesis-profile=long` hunts with many more. Every failure found is kept as a test.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("default", max_examples=150, **_common)
settings.register_profile("ci", max_examples=150, derandomize=True, **_common)
settings.register_profile("long", max_examples=5000, **_common)
settings.load_profile("ci" if os.environ.get("CI") else "default")

SUPPORTED_TARGETS = list(_core.supported_targets())

ROOT = Path(__file__).resolve().parents[1]
# the flags of the tiers that standalone C++ tests (tests/cpp) are built for (CMakeLists.txt's)
TIER_FLAGS = {
    "x86-64-v4": ["-march=x86-64-v4", "-mprefer-vector-width=512", "-DFASTBCE_TIER=tier_v4"],
    "x86-64-v3": ["-march=x86-64-v3", "-DFASTBCE_TIER=tier_v3"],
}


def build_tier_program(source: str, target: str, tmp_path: Path) -> Path:
    """tests/cpp/<source> built for one tier of TIER_FLAGS (-O2, no FMA contraction, as the
    library) with $CXX or g++; skips the test where there is no compiler."""
    compiler = os.environ.get("CXX") or shutil.which("g++")
    if compiler is None:
        pytest.skip(f"no C++ compiler (g++ or $CXX) to build tests/cpp/{source}")
    program = tmp_path / Path(source).stem
    subprocess.run(
        [compiler, "-std=c++20", "-O2", "-ffp-contract=off", *TIER_FLAGS[target]]
        + ["-I", str(ROOT / "cpp/include"), str(ROOT / "tests/cpp" / source), "-o", str(program)],
        check=True,
    )
    return program


@pytest.fixture(params=SUPPORTED_TARGETS)
def simd_target(request: pytest.FixtureRequest):
    """Makes one SIMD tier active for the test, then restores the tier that was active."""
    previous = _core.active_target()
    _core.set_target(request.param)
    yield request.param
    _core.set_target(previous)


@pytest.fixture(params=["touch", "hardware"])
def line_fetch(request: pytest.FixtureRequest):
    """Makes one way of fetching a large call's cache lines active for the test (touches and
    prefetches, or the CPU's prefetchers alone), then restores the one that was active."""
    previous = _core.line_fetch()
    _core.set_line_fetch(request.param)
    yield request.param
    _core.set_line_fetch(previous)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture
def raises_underflow():
    """raises_underflow(fn): whether fn() raised this thread's floating-point underflow flag
    (glibc's feclearexcept/fetestexcept, x86 flag values). A subnormal intermediate raises it on
    every CPU, also where it costs no microcode assist."""
    import ctypes

    try:
        libm = ctypes.CDLL("libm.so.6")
    except OSError:
        pytest.skip("needs glibc's fetestexcept")
    fe_underflow, fe_all = 0x10, 0x3D

    def raised(fn) -> bool:
        libm.feclearexcept(fe_all)
        fn()
        return bool(libm.fetestexcept(fe_underflow))

    return raised
