#!/usr/bin/env python3
"""Derive the polynomial coefficients and constants of cpp/include/fastbce/vecmath.hpp.

Usage:  python3 tools/derive_vecmath_coefficients.py      (needs mpmath only; ~20 s)

Prints, in the C++ form used in the header, each coefficient array with its interval, degree and
error, and the other constants (ln2 split, log2(e), sqrt(2)/2, overflow threshold of exp).

Method: weighted minimax fit by the Remez exchange algorithm, in mpmath at 50 significant digits
(reference of deg+2 points, linear solve for the coefficients and the levelled error, exchange for
the alternating extrema of the error found on a 4000-point Chebyshev grid and refined by
golden-section search; stop when the extrema agree to 1e-6).  Each coefficient is then rounded
to nearest in the target precision.  (Re-fitting the higher coefficients after rounding each
lower one was tried; it gained < 0.001 ulp, so it is not done.)  The error printed is that of the
*rounded* polynomial, the maximum over the local extrema on an 8001-point grid: the approximation
error alone.  The rounding errors of the evaluation in float/double come on top; they are
measured by tests/cpp/test_vecmath.cpp (docs/vecmath.md has the table).
A relative error eps is at most eps / 2^-p ulp (p = 24 or 53), which is what "<= ... ulp" means.

exp(r) on |r| <= ln2/2, after exp(x) = 2^n exp(r), n = round(x/ln2):
    exp(r) ~= 1 + r + r^2 (1/2 + r Q(r)); the printed array is {1/2, Q's coefficients}.
    Q fits (exp(r) - 1 - r - r^2/2)/r^3 with weight
    |r|^3/exp(r), i.e. the relative error of exp(r) is minimised.  The first three Taylor
    coefficients stay exact (1, 1, 1/2): fitting the 1/2 too and rounding it to double tripled the
    error.  Interval [-0.3466, 0.3466]: ln2/2 = 0.346574 plus a margin for the rounding of x/ln2.
    float : Q degree 3 (polynomial degree 6),  max relative error 3.84e-9  (<= 0.064 ulp)
    double: Q degree 8 (polynomial degree 11), max relative error 5.76e-18 (<= 0.052 ulp)

log(1+f) on f = m - 1, m in [sqrt(2)/2, sqrt(2)), after x = 2^e m:
    with s = f/(2+f), log(1+f) = 2 atanh(s) = 2s + s^3 Q(s^2), |s| <= 3 - 2 sqrt(2) = 0.17157.
    Q fits (2 atanh(s) - 2s)/s^3 as a polynomial in z = s^2 on [0, 0.0295] (0.029437 plus a
    margin) with weight s^3/(2 atanh(s)): the relative error of log(1+f) is minimised.
    float : Q degree 2, max relative error 9.36e-10 (<= 0.016 ulp)
    double: Q degree 6, max relative error 1.32e-18 (<= 0.012 ulp)
(These numbers are what the script printed on its last run; the output is authoritative.)

The degrees are the smallest that bring the approximation error under ~1/16 ulp.

References (formulas and facts only; no code was taken from anywhere): W. J. Cody and W. Waite,
"Software Manual for the Elementary Functions" (1980), for the additive range reduction with a
split ln2; J.-M. Muller, "Elementary Functions: Algorithms and Implementation", 3rd ed. (2016),
for the Remez algorithm and the atanh form of the logarithm.
"""

from __future__ import annotations

import struct

import mpmath as mp

mp.mp.dps = 50

GRID = 8001


def round_to(x, kind: str) -> float:
    """Round an mpmath number to nearest float32 or float64, returned as a Python float."""
    d = float(mp.mpf(x))  # round to nearest double (mpmath rounds correctly)
    if kind == "double":
        return d
    # double -> float32 is a second rounding; redo it from the exact value to avoid double rounding
    f32 = struct.unpack("f", struct.pack("f", d))[0]
    # pick the float32 neighbour of f32 that is truly nearest to x
    best = f32
    for cand in (
        struct.unpack("f", struct.pack("I", struct.unpack("I", struct.pack("f", f32))[0] + k))[0]
        for k in (-1, 1)
    ):
        if abs(mp.mpf(cand) - x) < abs(mp.mpf(best) - x):
            best = cand
    return best


def cheb_grid(a, b, n):
    return [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * (i + mp.mpf(1) / 2) / n) for i in range(n)]


def polyval(c, x):
    acc = mp.mpf(0)
    for ck in reversed(c):
        acc = acc * x + ck
    return acc


def alternating_extrema(err, xs):
    """Split the grid into runs of constant sign of err; in each run keep the point of largest
    |err|, refined by golden-section search between its grid neighbours."""
    vals = [err(x) for x in xs]
    runs = []  # (sign, index of max)
    for i, v in enumerate(vals):
        if v == 0:
            continue
        s = 1 if v > 0 else -1
        if runs and runs[-1][0] == s:
            if abs(v) > abs(vals[runs[-1][1]]):
                runs[-1] = (s, i)
        else:
            runs.append((s, i))
    out = []
    for s, i in runs:
        lo = xs[max(i - 1, 0)]
        hi = xs[min(i + 1, len(xs) - 1)]
        x = golden_max(lambda t, s=s: s * err(t), lo, hi, xs[i])
        out.append((x, err(x)))
    return out


def golden_max(g, lo, hi, x0, iters=60):
    best_x, best_v = x0, g(x0)
    phi = (mp.sqrt(5) - 1) / 2
    a, b = lo, hi
    c = b - phi * (b - a)
    d = a + phi * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(iters):
        if gc > gd:
            b, d, gd = d, c, gc
            c = b - phi * (b - a)
            gc = g(c)
        else:
            a, c, gc = c, d, gd
            d = a + phi * (b - a)
            gd = g(d)
    for x, v in ((c, gc), (d, gd), (lo, g(lo)), (hi, g(hi))):
        if v > best_v:
            best_x, best_v = x, v
    return best_x


def remez(f, w, deg, a, b, iters=40, tol=None):
    """Polynomial P of degree deg minimising max_{[a,b]} |w(x) (f(x) - P(x))|."""
    tol = mp.mpf("1e-6") if tol is None else tol
    n = deg + 2
    ref = cheb_grid(a, b, n)
    # a reference point where the weight vanishes (0 for both fits) cannot be used: move it
    ref = [x if abs(w(x)) > 1e-20 else (x + ref[i + 1]) / 2 for i, x in enumerate(ref)]
    grid = cheb_grid(a, b, 4000)
    c = None
    for _ in range(iters):
        A = mp.matrix(n, n)
        rhs = mp.matrix(n, 1)
        for i, x in enumerate(ref):
            for j in range(deg + 1):
                A[i, j] = x**j
            A[i, deg + 1] = (-1) ** i / w(x)
            rhs[i] = f(x)
        sol = mp.lu_solve(A, rhs)
        c = [sol[j] for j in range(deg + 1)]

        def err(x, c=c):
            return w(x) * (f(x) - polyval(c, x))

        ext = alternating_extrema(err, grid)
        if len(ext) < n:
            raise RuntimeError(f"Remez: only {len(ext)} alternating extrema, need {n}")
        while len(ext) > n:  # drop the smaller end until n remain (keeps alternation)
            ext = ext[1:] if abs(ext[0][1]) < abs(ext[-1][1]) else ext[:-1]
        mags = [abs(v) for _, v in ext]
        ref = [x for x, _ in ext]
        if (max(mags) - min(mags)) / max(mags) < tol:
            break
    return c


def max_weighted_error(f, w, c, a, b):
    def err(x):
        return w(x) * (f(x) - polyval(c, x))

    return max(abs(v) for _, v in alternating_extrema(err, cheb_grid(a, b, GRID)))


# --- exp ------------------------------------------------------------------------------------------


EXP_Q_SERIES = [1 / mp.factorial(k + 3) for k in range(50)]
LOG_Q_SERIES = [mp.mpf(2) / (2 * k + 3) for k in range(50)]


def exp_q(r):
    # (exp(r) - 1 - r - r^2/2) / r^3 = sum_k r^k / (k+3)!  (series: no cancellation near 0)
    return polyval(EXP_Q_SERIES, r)


def exp_w(r):
    return abs(r) ** 3 / mp.exp(r)  # |error of exp(r)| / exp(r) = |r|^3 / exp(r) * |error of Q|


# --- log ------------------------------------------------------------------------------------------


def log_q(z):
    # (2 atanh(s) - 2 s) / s^3 with z = s^2: sum_k 2 z^k / (2k + 3)
    return polyval(LOG_Q_SERIES, z)


def log_w(z):
    s = mp.sqrt(z)
    return s**3 / (2 * mp.atanh(s)) if z > 0 else mp.mpf(0)


FITS = [
    # name in the header, type, function to fit, weight, degree, interval
    ("exp_coeffs", "float", exp_q, exp_w, 3, (-mp.mpf("0.3466"), mp.mpf("0.3466"))),
    ("exp_coeffs", "double", exp_q, exp_w, 8, (-mp.mpf("0.3466"), mp.mpf("0.3466"))),
    ("log_coeffs", "float", log_q, log_w, 2, (mp.mpf(0), mp.mpf("0.0295"))),
    ("log_coeffs", "double", log_q, log_w, 6, (mp.mpf(0), mp.mpf("0.0295"))),
    # log1p_small: the same series on all of |s| <= 1/3 (x in [-1/2, 1]), z <= 1/9 plus a margin
    # for the rounding of s = x / (2 + x); degree 4 (float) and 9 (double) are the smallest whose
    # error is far below the rounding of the coefficients.
    ("log1p_small_coeffs", "float", log_q, log_w, 4, (mp.mpf(0), mp.mpf("0.1112"))),
    ("log1p_small_coeffs", "double", log_q, log_w, 9, (mp.mpf(0), mp.mpf("0.1112"))),
]


def hexfloat(v: float, kind: str) -> str:
    h = v.hex()  # 0x1.5555555555555p-3
    mant, exp = h.split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    if kind == "float":
        return f"{mant}p{exp}f"
    return f"{mant}p{exp}"


def main() -> None:
    for name, kind, f, w, deg, (a, b) in FITS:
        c = remez(f, w, deg, a, b)
        exact_err = max_weighted_error(f, w, c, a, b)
        cr = [round_to(ck, kind) for ck in c]
        err = max_weighted_error(f, w, [mp.mpf(v) for v in cr], a, b)
        # a relative error eps is at most eps / 2^-p ulp (ulp(v)/v lies in (2^-p, 2^(1-p)])
        ulp = mp.mpf(2) ** (-24 if kind == "float" else -53)
        print(
            f"// {name} ({kind}): degree {deg} on [{mp.nstr(a, 6)}, {mp.nstr(b, 6)}]; "
            f"max relative error {mp.nstr(err, 3)} "
            f"(<= {mp.nstr(err / ulp, 2)} ulp; unrounded coefficients {mp.nstr(exact_err, 3)})"
        )
        if name == "exp_coeffs":
            cr = [0.5] + cr  # the header evaluates 1/2 + r Q(r) as one polynomial
        body = ", ".join(hexfloat(v, kind) for v in cr)
        print(f"static constexpr {kind} {name}[] = {{{body}}};")
        print()

    # Cody-Waite split of ln2: hi has few enough bits that n * hi is exact for every n that occurs
    # (|n| <= 151 -> 8 bits for float, |n| <= 1076 -> 11 bits for double).
    ln2 = mp.log(2)
    for kind, bits in (("float", 24 - 9), ("double", 53 - 12)):
        hi = mp.floor(ln2 * 2**bits) / 2**bits
        lo = round_to(ln2 - hi, kind)
        print(
            f"// ln2 split ({kind}): ln2_hi has {bits} significant bits\n"
            f"ln2_hi = {hexfloat(float(hi), kind)}, ln2_lo = {hexfloat(lo, kind)}"
        )
    for kind, p, emax, fmt in (("float", 24, 127, "I"), ("double", 53, 1023, "Q")):
        pack = "f" if kind == "float" else "d"
        half = round_to(mp.sqrt(2) / 2, kind)
        bits = struct.unpack(fmt, struct.pack(pack, half))[0]
        # exp(x) rounds to +inf from (2 - 2^-p) 2^emax on: exp_max is the largest x below that
        threshold = mp.log((2 - mp.mpf(2) ** -p) * mp.mpf(2) ** emax)
        xmax = round_to(threshold, kind)
        if mp.mpf(xmax) >= threshold:
            xmax = round_to(mp.mpf(xmax) * (1 - mp.mpf(2) ** -p), kind)  # next one down
        assert mp.mpf(xmax) < threshold
        print(
            f"// ({kind}) log2e = {hexfloat(round_to(1 / ln2, kind), kind)}, "
            f"sqrt_half_bits = {bits:#x} ({hexfloat(half, kind)}), "
            f"exp_max = {hexfloat(xmax, kind)}"
        )


if __name__ == "__main__":
    main()
