"""The report's pass over the whole input without groups (docs/report.md, "Cost"): p = sigmoid(x)
from the float64 exp(-|x|) of float32 logits, the common tile (no sample weights, every row
counted, labels 0 or 1), on every SIMD tier."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import fastbce
from test_report import check_scope, reference

mpmath.mp.prec = 120

# float32 logits across the range of the float64 exp for p (|x| <= 700), its edges and beyond
# (a tile with any |x| > 700 or NaN takes the general exp)
MAGNITUDES = [0.0, 1e-45, 1e-30, 1e-8, 2.0**-24, 0.01, 0.0216, 0.0217, 0.25, 0.5, 1.0, 2.0, 3.0]
MAGNITUDES += [5.0, 10.0, 17.5, 30.0, 36.7, 50.0, 87.33, 88.0, 103.98, 104.0, 200.0, 500.0]
MAGNITUDES += [699.9, 700.0, 700.1, 745.0, 800.0, 1e30]


def _sigmoid(x: float) -> float:
    return float(1 / (1 + mpmath.exp(-mpmath.mpf(x))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_p_of_one_row_against_mpmath(simd_target, rng, dtype):
    """mean_prediction of a one-row input is p itself: within 1e-13 of the exact sigmoid (the
    reciprocal's 2^-46, 2^-52 on AVX-512, dominates; exp(-|x|) alone is within 3.1e-16 of exp
    over every float32 |x| <= 700 on AVX-512, 2.6e-16 on AVX2: tests/test_exp_wide.py)."""
    values = [s * m for m in MAGNITUDES for s in (1.0, -1.0)]
    values += list(rng.normal(scale=8.0, size=40)) + list(rng.uniform(-700, 700, size=40))
    for v in np.array(values, dtype=dtype):
        r = fastbce.evaluate(np.zeros(1, np.float32), np.array([v]), from_logits=True)
        want = _sigmoid(float(v))
        assert r["mean_prediction"] == pytest.approx(want, rel=1e-13, abs=0.0), float(v)


@pytest.mark.parametrize("threads", [1, 2])
def test_common_tiles_match_the_formulas(simd_target, rng, threads):
    """Unweighted rows, every one counted, labels 0 or 1 (the tiles that count the histogram in
    bytes and store only p), next to tiles of soft labels, a tile with |x| beyond the float64
    exp's range and a partial last tile: every key against NumPy, and the same report bit for
    bit as with sample weights of 1 (the other tiles' path)."""
    n = 512 * 9 + 100
    y = (rng.random(n) < 0.3).astype(np.float32)
    x = rng.normal(scale=3.0, size=n).astype(np.float32)
    y[512 * 2 : 512 * 3 : 5] = 0.5  # soft labels in tile 2
    x[512 * 4 + 7] = 750.0  # tile 4: the general exp
    x[512 * 5 : 512 * 6] = rng.uniform(-700, 700, size=512).astype(np.float32)
    r = fastbce.evaluate(y, x, from_logits=True, threads=threads)
    check_scope(r, reference(y, x, from_logits=True))
    ones = fastbce.evaluate(y, x, from_logits=True, threads=threads, sample_weight=np.ones(n))
    assert repr(r) == repr(ones)


def test_no_subnormal_intermediates(simd_target, raises_underflow):
    """The FP underflow flag (threads=1: this thread) stays clear for logits up to 700 whose
    losses are normal numbers (wrong predictions): the float64 exp of p never goes subnormal."""
    x = np.linspace(-700, 700, 20_001).astype(np.float32)
    y = (x < 0).astype(np.float32)  # every prediction wrong: loss about |x|
    assert not raises_underflow(lambda: fastbce.evaluate(y, x, from_logits=True, threads=1))


@pytest.mark.parametrize("threads", [1, 2])
def test_common_tiles_with_zero_and_infinite_losses(simd_target, rng, threads):
    """The common tile adds l to the positives' or the negatives' sum by the label and l * l to
    sum l^2 (no products with the weight): the same keys bit for bit as with sample weights of 1
    when losses are 0 (a saturated right prediction) or infinite (a wrong one at an infinite
    logit), and the finite case against NumPy."""
    n = 512 * 6 + 33
    y = (rng.random(n) < 0.4).astype(np.float32)
    x = rng.normal(scale=4.0, size=n).astype(np.float32)
    sat = slice(512, 1024)  # a tile of right predictions at logits where the loss is 0
    x[sat] = np.where(y[sat] == 1, 200.0, -200.0).astype(np.float32)
    r = fastbce.evaluate(y, x, from_logits=True, threads=threads)
    check_scope(r, reference(y, x, from_logits=True))
    ones = fastbce.evaluate(y, x, from_logits=True, threads=threads, sample_weight=np.ones(n))
    assert repr(r) == repr(ones)
    for label in (0.0, 1.0):  # one infinite loss among the positives, then the negatives
        x_inf = x.copy()
        x_inf[np.flatnonzero(y == label)[3]] = np.inf if label == 0.0 else -np.inf
        r = fastbce.evaluate(y, x_inf, from_logits=True, threads=threads)
        ones = fastbce.evaluate(
            y, x_inf, from_logits=True, threads=threads, sample_weight=np.ones(n)
        )
        assert repr(r) == repr(ones)
        key = "loss_positive" if label == 1.0 else "loss_negative"
        other = "loss_negative" if label == 1.0 else "loss_positive"
        assert r[key] == np.inf and np.isfinite(r[other])


def _logit_bins(x: np.ndarray, bits: int = 11) -> np.ndarray:
    """The AUC histogram's bin of each float32 logit (cpp/include/fastbce/report.hpp, bin_of)."""
    a = np.abs(x.astype(np.float32)).view(np.uint32)
    lo, hi = np.uint32((127 - 16) << 23), np.uint32(((127 + 16) << 23) - 1)
    idx = ((np.clip(a, lo, hi) - lo) >> np.uint32(23 - bits)).astype(np.int64)
    half = 32 << bits
    return np.where(x < 0, half - 1 - idx, half + idx)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_held_counted_adds_match_numpy(simd_target, rng, threads):
    """The common tiles' byte counts and ECE adds, held until the next tile's loop of the sums
    (and added first by a tile of another kind and at each chunk's end): the AUC histogram equals
    a NumPy count of each row's bin by label, and every ECE bin's weight, positives and mean p
    match NumPy, with logits next to the ECE edges (p = k/10) on both sides, several chunks, a
    partial last tile and tiles of another kind (soft labels, a NaN row) in between."""
    n = 1_000_003
    y = (rng.random(n) < 0.35).astype(np.float32)
    x = rng.normal(scale=2.0, size=n).astype(np.float32)
    edges = np.log(np.arange(1, 10) / (10 - np.arange(1, 10)))  # logit(k / 10)
    near = (edges[:, None] * (1 + np.array([-1e-5, -1e-6, 1e-6, 1e-5]))).ravel()
    x[: 512 * 40] = rng.choice(near, 512 * 40).astype(np.float32)  # rows at the ECE edges
    y[512 * 7 + 3] = 0.5  # a tile of soft labels
    x[512 * 901 + 9] = np.nan  # a tile with a NaN (propagated: still counted, not common)
    acc = fastbce.LossAccumulator(from_logits=True, threads=threads).update(y, x)
    hard = (y == 0) | (y == 1)
    want = np.zeros_like(acc._state.hist)
    np.add.at(want, (_logit_bins(x[hard]), (y[hard] == 0).astype(np.int64)), 1.0)
    want[_logit_bins(x[~hard])] += 0.5  # (y = 0.5: half a row in each class)
    np.testing.assert_array_equal(acc._state.hist, want)
    assert want.max() > 255  # (byte counts that wrapped)

    r = fastbce.evaluate(y, x, from_logits=True, threads=threads)
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    ece = np.minimum(np.floor(np.nan_to_num(p) * 10), 9).astype(int)  # (NaN p: bin 0)
    for k, b in enumerate(r["reliability"]):
        m = ece == k
        assert b["weight"] == m.sum()
        assert b["base_rate"] == pytest.approx(y[m].astype(np.float64).mean(), rel=1e-12)
        if not np.isnan(p[m]).any():
            assert b["mean_prediction"] == pytest.approx(p[m].mean(), rel=1e-12)
    assert repr(r) == repr(fastbce.evaluate(y, x, from_logits=True, threads=1))
