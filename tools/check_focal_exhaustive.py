"""Worst ulp error of the float32 focal loss from logits over every float32 logit in a range.

Checks the installed fastbce's ``binary_focal_crossentropy(y, x, from_logits=True,
reduction="none")`` on float32 logits against the float64 reference of the tests
(``tests/reference.py``: ``bce_reference``'s focal formula on log p and log(1 - p) shared by the
cases, spot-checked bit for bit against ``bce_reference`` itself, and ``ulp_error``), for labels
0, 1 and 0.3, gamma 2, 1.5 and 0.5, with alpha = 0.25 and without alpha. The logits are every
float32 in [-R, R] (bit patterns of both signs; R = 31.5 by default, the range of the kernel's
softplus table, where for gamma <= 2 the sigmoid comes from the softplus), or every k-th of them
with ``--stride k`` (take k odd, so the samples do not align with the mantissa's low bits).
Chunks of ``--chunk`` logits keep the memory bounded. Prints the worst error per case, the logit
where it occurs and the budget of ``tests/test_accuracy.py`` (FOCAL_ULP_BUDGET; its
gamma-dependent addition is for float64 only); exits with status 1 if a case exceeds it.

Run from the repository root, after installing fastbce. All 18 cases take about 1 µs per logit
on one core (chunks of 1e6 ran 1.7x faster than of 1e7), so every float, 2.2e9 logits, takes
about 35 minutes; ``--stride 7`` about 5:

    python tools/check_focal_exhaustive.py --target x86-64-v4 --stride 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fastbce  # noqa: E402
from fastbce import _core  # noqa: E402
from reference import (  # noqa: E402
    bce_reference,
    log_one_minus_pt,
    log_probabilities,
    ulp_error,
)
from test_accuracy import FOCAL_ULP_BUDGET  # noqa: E402

LABELS = (0.0, 1.0, 0.3)
GAMMAS = (2.0, 1.5, 0.5)
ALPHAS = (0.25, None)


def _logits(start: int, stop: int, stride: int) -> np.ndarray:
    """The float32 logits whose bit-pattern index i in [start, stop) is a multiple of stride:
    index i >= 0 is the float with bits i, index -i - 1 its negation (so -0.0 is index -1)."""
    first = start + (-start) % stride
    idx = np.arange(first, stop, stride, dtype=np.int64)
    bits = np.where(idx >= 0, idx, (-idx - 1) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def _cases():
    return [(y, g, a) for y in LABELS for g in GAMMAS for a in ALPHAS]


def _case_name(case) -> str:
    y, g, a = case
    return f"y={y:g} gamma={g:g} alpha={'none' if a is None else f'{a:g}'}"


def _exact(y: float, gamma: float, alpha, log_p, log_1mp) -> np.ndarray:
    """bce_reference's focal loss for a constant label, from log p and log(1 - p) shared by all
    cases (the same float64 operations; `check` compares samples with bce_reference itself)."""
    ys, ys_c = np.float64(y), 1.0 - np.float64(y)
    ce = (ys * -log_p if ys else 0.0) + (ys_c * -log_1mp if ys_c else 0.0)
    ce = ce * np.exp(gamma * log_one_minus_pt(ys, ys_c, log_p, log_1mp))
    return ce if alpha is None else (alpha * ys + (1 - alpha) * ys_c) * ce


def _worst(got: np.ndarray, exact: np.ndarray) -> int:
    """Index of the largest ulp_error. Where the exact value is a normal float32, that error is
    within a factor 2 of 2^24 times the relative error, so ulp_error runs only on those within a
    factor 2.1 of the largest relative error and on the subnormal values."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(got / exact - 1.0)
    normal = exact >= 2.0**-125
    bound = np.max(rel[normal], initial=0.0) / 2.1
    cand = np.flatnonzero(~normal | (rel >= bound))
    return int(cand[np.argmax(ulp_error(got[cand], exact[cand], np.float32))])


def check(bound: float, stride: int, chunk: int, threads: int) -> dict:
    """{case: (worst ulp, its logit, got, exact)} over the logits of [-bound, bound]."""
    top = int(np.float32(bound).view(np.uint32)) + 1  # indices [-top, top)
    worst = {case: (-1.0, np.nan, np.nan, np.nan) for case in _cases()}
    span = chunk * stride
    n_done, t0 = 0, time.monotonic()
    for start in range(-top, top, span):
        x = _logits(start, min(start + span, top), stride)
        log_p, log_1mp = log_probabilities(x, from_logits=True)
        probe = slice(None, None, 997)  # spot check of the shared formula against the tests'
        for case in worst:
            y_value, gamma, alpha = case
            y = np.full(x.shape, y_value, dtype=np.float32)
            got = fastbce.binary_focal_crossentropy(
                y, x, from_logits=True, gamma=gamma, alpha=alpha, reduction="none", threads=threads
            ).astype(np.float64)
            exact = _exact(float(y[0]), gamma, alpha, log_p, log_1mp)
            ref = bce_reference(y[probe], x[probe], from_logits=True, gamma=gamma, alpha=alpha)
            np.testing.assert_array_equal(exact[probe], ref)
            i = _worst(got, exact)
            err = float(ulp_error(got[i : i + 1], exact[i : i + 1], np.float32)[0])
            if err > worst[case][0]:
                worst[case] = (err, float(x[i]), float(got[i]), float(exact[i]))
        n_done += x.size
        rate = n_done / (time.monotonic() - t0)
        print(f"  {n_done:,} logits, {rate:,.0f}/s, up to x = {x[-1]!r}", file=sys.stderr)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=None, help="SIMD tier, e.g. x86-64-v4 (default: best)")
    parser.add_argument("--bound", type=float, default=31.5, help="largest |x| (default 31.5)")
    parser.add_argument("--stride", type=int, default=1, help="every k-th float (default 1: all)")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="logits per chunk")
    parser.add_argument("--threads", type=int, default=1, help="fastbce threads (default 1)")
    args = parser.parse_args(argv)
    if args.target:
        _core.set_target(args.target)
    t0 = time.monotonic()
    worst = check(args.bound, args.stride, args.chunk, args.threads)
    print(
        f"tier {_core.active_target()}, float32 logits in [-{args.bound}, {args.bound}], "
        f"every {args.stride} float(s), {time.monotonic() - t0:.0f} s; "
        f"budget {FOCAL_ULP_BUDGET} ulp"
    )
    failed = False
    for case, (err, x, got, exact) in worst.items():
        over = err > FOCAL_ULP_BUDGET
        failed |= over
        print(
            f"{_case_name(case):<32} worst {err:6.3f} ulp at x={np.float32(x)!r} "
            f"(got {got!r}, exact {exact!r}){'  OVER BUDGET' if over else ''}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
