"""Gradient and Hessian (issue 14): fastbce.binary_crossentropy_grad against the same formulas in
NumPy, plain and focal, float32 logits. Every benchmark asserts its value against NumPy in
float64, so under ``--benchmark-disable`` (1e3 and 1e6 elements) they are tests.

    python -m pytest benchmarks/test_bench_grad.py --benchmark-only --benchmark-columns=median

``benchmarks/grad_speed.py`` measures 1e8 elements against the memory floor and an XGBoost run.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastbce
from numpy_grad import numpy_grad

CHECK_SIZES = (10**3, 10**6)
TIMING_SIZES = (10**4, 10**6, 10**7)
VARIANTS = {"plain": {}, "focal": {"gamma": 2.0, "alpha": 0.25}}


def pytest_generate_tests(metafunc):
    if "n" in metafunc.fixturenames:
        disabled = metafunc.config.getoption("benchmark_disable", False)
        metafunc.parametrize("n", CHECK_SIZES if disabled else TIMING_SIZES, scope="module")


@pytest.fixture(scope="module")
def data(n):
    rng = np.random.default_rng(14)
    x = rng.normal(0, 4, n).astype(np.float32)
    y = (rng.random(n) < 0.3).astype(np.float32)
    return y, x


@pytest.fixture(scope="module")
def expected(data):
    y, x = data
    return {
        name: numpy_grad(y.astype(np.float64), x.astype(np.float64), **opts)
        for name, opts in VARIANTS.items()
    }


def _check(got, want):
    # float32 logits: near a root of the focal Hessian the rounding of exp(-|x|) in float32 is
    # what is left (tests/test_grad.py bounds it exactly); elsewhere 2e-5 relative
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fastbce_grad(benchmark, data, expected, variant, n):
    y, x = data
    benchmark.group = f"grad {variant} n={n}"
    out = (np.empty_like(x), np.empty_like(x))
    got = benchmark(fastbce.binary_crossentropy_grad, y, x, out=out, **VARIANTS[variant])
    _check(got, expected[variant])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_numpy_grad(benchmark, data, expected, variant, n):
    y, x = data
    benchmark.group = f"grad {variant} n={n}"
    with np.errstate(all="ignore"):
        got = benchmark(numpy_grad, y, x, **VARIANTS[variant])
    assert got[0].dtype == np.float32
    for g, w in zip(got, expected[variant], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-6)
