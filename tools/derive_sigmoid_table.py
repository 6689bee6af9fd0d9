#!/usr/bin/env python3
"""Derive the table of cpp/include/fastbce/sigmoid_table.hpp: sigmoid(-a) = 1 / (1 + exp(a)) for
0 <= a < 31.5, by the method of derive_softplus_table.py (32 polynomials of degree 7, one per
interval [k - 1/2, k + 1/2), in h = a - k), on the same intervals: the focal loss takes both from
one k and h.

It also derives the coefficients of kSigmoidBySoftplus: sigmoid(-a) = -expm1(-s) with
s = softplus(-a) in (0, ln 2], as s + s (s Q(s)), Q of degree 4 (the least-squares fit of the
relative error of 1 + s Q(s) = -expm1(-s) / s at 40 Chebyshev nodes of [0, ln 2], each
coefficient rounded to float in turn and those above it fitted again), for focal losses with
gamma <= 2 (sigmoid_table.hpp).

Usage:  python3 tools/derive_sigmoid_table.py      (needs mpmath only; ~10 s)
"""

from __future__ import annotations

import mpmath as mp

from derive_softplus_table import hex_float, print_table, to_float

Q_DEGREE = 4
Q_NODES = 40


def sigmoid_neg(a):
    return 1 / (1 + mp.exp(a))


def by_softplus() -> list[float]:
    """Q's coefficients, lowest first: -expm1(-s) / s = 1 + s Q(s) on [0, ln 2]."""
    half = mp.log(2) / 2
    nodes = [half + half * mp.cos(mp.pi * (2 * i + 1) / (2 * Q_NODES)) for i in range(Q_NODES)]
    points = [(s, -mp.expm1(-s) / s) for s in nodes]
    coeffs: list[float] = []
    for i in range(Q_DEGREE + 1):
        # 1 + s (c_0 + ... + c_{i-1} s^{i-1} + s^i (c_i + ...)): c_i.. fitted to what is left
        rows = [[s ** (1 + i + j) / v for j in range(Q_DEGREE + 1 - i)] for s, v in points]
        rest = [
            (v - 1 - sum(c * s ** (1 + j) for j, c in enumerate(coeffs))) / v for s, v in points
        ]
        solution, _ = mp.qr_solve(mp.matrix(rows), mp.matrix(rest))
        coeffs.append(to_float(solution[0]))
    worst = max(
        abs((1 + s * sum(c * s**j for j, c in enumerate(coeffs))) / (-mp.expm1(-s) / s) - 1)
        for s in (mp.log(2) * i / 2000 + mp.mpf("1e-9") for i in range(2001))
    )
    ulp = float(worst) / 2**-24
    print(f"// max relative error of 1 + s Q(s) {float(worst):.3g} ({ulp:.3f} ulp)")
    print(
        "inline constexpr float kSigmoidBySoftplus[5] = {"
        + ", ".join(hex_float(c) for c in coeffs)
        + "};"
    )
    return coeffs


if __name__ == "__main__":
    print_table(sigmoid_neg, "kSigmoidTable")
    by_softplus()
