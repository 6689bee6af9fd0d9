"""Shared fixtures: every numeric test runs once per SIMD tier this CPU supports."""

from __future__ import annotations

import numpy as np
import pytest

from fastbce import _core

SUPPORTED_TARGETS = list(_core.supported_targets())


@pytest.fixture(params=SUPPORTED_TARGETS)
def simd_target(request: pytest.FixtureRequest):
    """Makes one SIMD tier active for the test, then restores the tier that was active."""
    previous = _core.active_target()
    _core.set_target(request.param)
    yield request.param
    _core.set_target(previous)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
