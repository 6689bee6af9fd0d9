"""Gradient and Hessian (issue 14): fastbce.binary_crossentropy_grad against the same formulas in
NumPy, plain and focal, float32 logits. Every benchmark asserts its value against the same
formulas in float64, so under ``--benchmark-disable`` (1e3 and 1e6 elements) they are tests.

    python -m pytest benchmarks/test_bench_grad.py --benchmark-only --benchmark-columns=median

``fastbce bench --grad`` (and ``benchmarks/grad_speed.py``, 1e8 elements) adds the memory floor
and an XGBoost run; the NumPy formulas and the data are ``fastbce.cli.bench.grad``'s.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastbce
from fastbce.cli.bench import grad
from fastbce.cli.bench.grad import GRAD_VARIANTS, grad_data, numpy_grad

CHECK_SIZES = (10**3, 10**6)
TIMING_SIZES = (10**4, 10**6, 10**7)
VARIANTS = {name: v.options for name, v in GRAD_VARIANTS.items()}


def pytest_generate_tests(metafunc):
    if "n" in metafunc.fixturenames:
        disabled = metafunc.config.getoption("benchmark_disable", False)
        metafunc.parametrize("n", CHECK_SIZES if disabled else TIMING_SIZES, scope="module")


@pytest.fixture(scope="module")
def data(n):
    return grad_data(n, seed=14)


def _check(data, got, variant, implementation):
    """The criterion of ``fastbce bench --grad``: the tolerance relative to the float64
    reference, plus 4 eps times its slope near a zero crossing (tests/test_grad.py's)."""
    v = GRAD_VARIANTS[variant]
    (errors,) = grad.check(*data, v, [(*got, grad.tolerance(v, implementation))])
    assert errors["excess"] <= 1.0, errors


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fastbce_grad(benchmark, data, variant, n):
    y, x = data
    benchmark.group = f"grad {variant} n={n}"
    out = (np.empty_like(x), np.empty_like(x))
    got = benchmark(fastbce.binary_crossentropy_grad, y, x, out=out, **VARIANTS[variant])
    _check(data, got, variant, "fastbce")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_numpy_grad(benchmark, data, variant, n):
    y, x = data
    benchmark.group = f"grad {variant} n={n}"
    with np.errstate(all="ignore"):
        got = benchmark(numpy_grad, y, x, **VARIANTS[variant])
    assert got[0].dtype == np.float32
    _check(data, got, variant, "numpy")
