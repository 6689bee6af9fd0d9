#!/usr/bin/env python3
"""Derive the tables of cpp/include/fastbce/softplus_table.hpp: softplus(-a) = log1p(exp(-a)) for
0 <= a < 31.5 as 32 polynomials of degree 7 (kSoftplusTable), one per interval [k - 1/2, k + 1/2)
(k = 0..31), in h = a - k, and of degree 6 (kSoftplusTable6, focal losses with gamma <= 2).

Usage:  python3 tools/derive_softplus_table.py      (needs mpmath only; ~20 s)

Method, per interval, in mpmath at 40 digits: c0 is f(k) rounded to float; the other
coefficients are a least-squares fit of the relative error at 40 Chebyshev nodes of the interval
(close enough to the minimax fit: the error is far below an ulp), each rounded to float in turn
with those above it fitted again to what is left. k = 0 is fitted on [0, 1/2] only (a >= 0).
Prints the table in the header's form and the largest relative error of the rounded polynomials
on a 2001-point grid per interval (the approximation error alone; with the rounding of the
evaluation, docs/vecmath.md gives the error measured over every float input).
"""

from __future__ import annotations

import struct

import mpmath as mp

mp.mp.dps = 40
DEGREE = 7
INTERVALS = 32
NODES = 40  # Chebyshev nodes per interval for the least-squares fits (even: no h = 0)


def to_float(x) -> float:
    """x rounded to nearest float32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", float(mp.mpf(x))))[0]


def hex_float(x: float) -> str:
    """C++ hex literal of a float32 value, without float.hex's trailing zeros."""
    mantissa, exponent = float.hex(x).split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"


def f(a):
    return mp.log1p(mp.exp(-a))


def fit(k: int, func=f, degree: int = DEGREE) -> list[float]:
    lo, hi = (mp.mpf(0), mp.mpf("0.5")) if k == 0 else (mp.mpf("-0.5"), mp.mpf("0.5"))
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    nodes = [mid + half * mp.cos(mp.pi * (2 * i + 1) / (2 * NODES)) for i in range(NODES)]
    values = [func(k + h) for h in nodes]
    points = list(zip(nodes, values, strict=True))
    coeffs = [to_float(func(k))]
    # After c0..c_{i-1} are rounded: c_i..c_7 fitted (least relative squares) to what is left.
    for i in range(1, degree + 1):
        rows = [[h ** (i + j) / v for j in range(degree + 1 - i)] for h, v in points]
        rest = [(v - sum(c * h**j for j, c in enumerate(coeffs))) / v for h, v in points]
        solution, _ = mp.qr_solve(mp.matrix(rows), mp.matrix(rest))
        coeffs.append(to_float(solution[0]))
    return coeffs


def max_rel_error(k: int, coeffs: list[float], func=f) -> float:
    lo, hi = (0.0, 0.5) if k == 0 else (-0.5, 0.5)
    worst = mp.mpf(0)
    for i in range(2001):
        h = mp.mpf(lo + (hi - lo) * i / 2000)
        if h == 0:
            h = mp.mpf("1e-9")
        p = mp.polyval(list(reversed([mp.mpf(c) for c in coeffs])), h)
        worst = max(worst, abs(p / func(k + h) - 1))
    return float(worst)


def print_table(func, name: str, degree: int = DEGREE) -> None:
    """Fits func on every interval and prints the table as the C++ array `name`."""
    table = [fit(k, func, degree) for k in range(INTERVALS)]
    worst = max(max_rel_error(k, c, func) for k, c in enumerate(table))
    print(
        f"// max relative error of the rounded polynomials {worst:.3g} ({worst / 2**-24:.3f} ulp)"
    )
    print(f"alignas(64) inline constexpr float {name}[{degree + 1}][32] = {{")
    for j in range(degree + 1):
        row = [hex_float(table[k][j]) for k in range(INTERVALS)]
        print(
            "    {"
            + ",\n     ".join(", ".join(row[i : i + 4]) for i in range(0, INTERVALS, 4))
            + "},"
        )
    print("};")


def main() -> None:
    print_table(f, "kSoftplusTable")
    print_table(f, "kSoftplusTable6", 6)


if __name__ == "__main__":
    main()
