"""No subnormal intermediates where the results are normal numbers.

An operation that produces a tiny (subnormal, or underflowing to zero) value raises the
floating-point underflow flag, and on Intel cores it takes a microcode assist of ~100 cycles:
a kernel that computes, say, s^8 of a small s or exp into the subnormal range and then discards it
runs 10-35x slower on such inputs. The flag catches those intermediates on any CPU, including
those where they cost nothing. Inputs: constant magnitudes from 0 to 1e30 (logits) and
probabilities from the smallest subnormal to 1 - eps, every label kind; the elements whose loss is
not a normal number (a correct confident prediction's loss can be subnormal or 0, a wrong one's
infinite) are left out, since computing such a result legitimately underflows.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbce import _core

LOGIT_MAGNITUDES = (
    [0.0, 1e-20, 1e-6, 0.1, 0.5, *range(1, 13)]
    + [
        float(m)
        for m in "16 22 26 30 36 44 50 64 80 86 87 88 90 100 104 120 141 145 190 196 200 230 236 "
        "240 248 300 360 500 700 707.5 708 709 710 730 745 746 800 1e3 1e4 1e10 1e30".split()
    ]
    + [
        # float32: the ends of the fast exp's range (87.33) and of exp's nonzero results
        # (103.975), where sample weights are multiplied in double (80), and just below the focal
        # bands of FocalBand (loss_elements.hpp) for the modes below (where a correct
        # prediction's loss is still normal)
        *(80.5, 83.3, 87.2, 87.3, 87.33, 87.34, 103.97, 103.98),
        # the end of the float32 softplus table (31.5), beyond which the table loop takes exp
        *(31.4999, 31.5, 31.500002, 31.6),
        *(17.4, 23.5, 28.6, 28.63, 29.09, 57.2, 83.3),
    ]
)
LABELS = [0.0, 1.0, 0.3, 0.9, 1e-3]
MODES = {
    # name: Call fields, per-element weights
    "plain": ({}, False),
    "weighted": ({}, True),
    "pos_weight": ({"pos_weight_scalar": 2.5}, False),
    "smoothing": ({"label_smoothing": 0.1}, True),
    "focal2": ({"gamma": 2.0, "has_alpha": True, "alpha": 0.25}, False),
    "focal2_weighted": ({"gamma": 2.0}, True),
    "focal2.7": ({"gamma": 2.7}, False),
    "focal0.5": ({"gamma": 0.5, "has_alpha": True, "alpha": 0.25}, False),
    "focal2_general": ({"gamma": 2.0, "pos_weight_scalar": 2.0}, False),
    # (float64: the deep and scaled bands of loss_elements.hpp, with weights and a gamma whose
    # loss in the deep band can be a nonzero subnormal)
    "pos_weight_weighted": ({"pos_weight_scalar": 2.5}, True),
    "focal4_weighted": ({"gamma": 4.0, "has_alpha": True, "alpha": 0.25}, True),
    "focal0.03": ({"gamma": 0.03, "has_alpha": True, "alpha": 0.25}, False),
    # (gamma log(1 - p_t) is tiny but not 0 here, down to 1e-46: exp's guard of a tiny reduced
    # argument, whose powers would underflow; on baseline float64 it is a compare of its own)
    "focal1e-30": ({"gamma": 1e-30}, False),
}


def _call(fields: dict, from_logits: bool, epsilon: float) -> _core.Call:
    call = _core.Call()
    call.from_logits = from_logits
    call.epsilon = epsilon
    for name, value in fields.items():
        setattr(call, name, value)
    return call


def _normal(loss: np.ndarray) -> np.ndarray:
    return np.isfinite(loss) & (loss >= np.finfo(loss.dtype).tiny)


def _check(call, y, pred, w, what):
    _, loss = _core._underflow_raised(call, y, pred, w)
    keep = _normal(loss)
    if not keep.any():
        return
    y, pred = np.ascontiguousarray(y[keep]), np.ascontiguousarray(pred[keep])
    w = None if w is None else np.ascontiguousarray(w[keep])
    raised, _ = _core._underflow_raised(call, y, pred, w)
    if raised:  # find one element that raises it, for the message
        for j in range(y.size):
            one, _ = _core._underflow_raised(
                call, y[j : j + 1], pred[j : j + 1], None if w is None else w[j : j + 1]
            )
            if one:
                pytest.fail(f"{what}: underflow at y={y[j]!r}, pred={pred[j]!r}")
        pytest.fail(f"{what}: underflow (no single element raises it)")


def _labelled(values: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every (label, value) pair, each repeated to fill vectors and a padded tile."""
    y, v = np.meshgrid(np.array(LABELS), values, indexing="ij")
    y, v = np.repeat(y.ravel(), 3), np.repeat(v.ravel(), 3)
    return y.astype(dtype), v.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", list(MODES))
def test_no_underflow_for_normal_logit_losses(simd_target, dtype, mode):
    fields, weighted = MODES[mode]
    call = _call(fields, from_logits=True, epsilon=1e-7)
    big = float(np.finfo(dtype).max)
    for magnitude in LOGIT_MAGNITUDES:
        if magnitude > big:
            continue
        y, x = _labelled(np.array([magnitude, -magnitude]), dtype)
        w = np.linspace(0.5, 2.0, y.size).astype(dtype) if weighted else None
        _check(call, y, x, w, f"{mode} {dtype.__name__} |x| = {magnitude}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("top", [87.33, np.inf], ids=["normal_exp", "all"])
def test_no_underflow_for_mixed_logit_magnitudes(simd_target, dtype, mode, top):
    # The magnitudes above shuffled into one call, so that vectors mix lanes of every path: the
    # float32 softplus table's, its loop's exp beyond the table (|x| up to 87.33, "normal_exp":
    # tiles that stay in that loop), and the general loops' ("all")
    fields, weighted = MODES[mode]
    call = _call(fields, from_logits=True, epsilon=1e-7)
    big = float(np.finfo(dtype).max)
    magnitudes = np.array([m for m in LOGIT_MAGNITUDES if m <= min(top, big)])
    y, x = _labelled(np.concatenate([magnitudes, -magnitudes]), dtype)
    order = np.random.default_rng(11).permutation(y.size)
    y, x = y[order], x[order]
    w = np.linspace(0.5, 2.0, y.size).astype(dtype) if weighted else None
    _check(call, y, x, w, f"{mode} {dtype.__name__} mixed |x| <= {top}")


@pytest.mark.parametrize("top", [87.33, np.inf], ids=["normal_exp", "all"])
def test_no_underflow_for_uint8_labels(simd_target, top):
    # Float32 logits with uint8 labels read as they are (AVX-512: plain_table_loop_u8, and
    # plain_exp_loop for |x| in [31.5, 87.33]): each magnitude in tiles of its own (so that runs
    # of large logits start with the exp loop), then all of them shuffled into one call
    call = _call({}, from_logits=True, epsilon=1e-7)
    magnitudes = np.array([m for m in LOGIT_MAGNITUDES if m <= min(top, 1e30)])
    for magnitude in magnitudes:
        x = np.tile(np.array([magnitude, -magnitude], np.float32), 1100)
        y = np.tile(np.array([0, 0, 1, 1], np.uint8), 550)
        _check(call, y, x, None, f"uint8 labels |x| = {magnitude}")
    x = np.repeat(np.concatenate([magnitudes, -magnitudes]).astype(np.float32), 6)
    y = np.tile(np.array([0, 1], np.uint8), x.size // 2)
    order = np.random.default_rng(12).permutation(x.size)
    _check(call, y[order], x[order], None, f"uint8 labels mixed |x| <= {top}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("epsilon", [1e-7, 0.0])
def test_no_underflow_for_normal_probability_losses(simd_target, dtype, mode, epsilon):
    fields, weighted = MODES[mode]
    call = _call(fields, from_logits=False, epsilon=epsilon)
    info = np.finfo(dtype)
    small = [float(info.smallest_subnormal), float(info.tiny), 1e-30, 1e-20, 1e-10, 1e-7, 1e-4]
    near_one = [*(1.0 - p for p in small), 1.0 - info.eps, 1.0 - info.epsneg, 1.0]
    probabilities = [*small, 0.1, 0.3, 0.5, 0.7, 0.9, *near_one]
    for p in probabilities:
        y, pred = _labelled(np.array([p]), dtype)
        w = np.linspace(0.5, 2.0, y.size).astype(dtype) if weighted else None
        _check(call, y, pred, w, f"{mode} {dtype.__name__} eps={epsilon} p = {p!r}")


def _band_bound(exponent: int, gamma: float, alpha: float | None) -> float:
    """FocalBand's bounds (loss_elements.hpp): exponent 126 gives `bound` (below it float32
    focal losses use float formulas), 1022 gives `scaled` (below it float64 ones take the plain
    products)."""
    b = 1.0 if alpha is None else min(alpha, 1.0 - alpha)
    return (exponent * np.log(2.0) - 0.05 + np.log(b)) / (1.0 + gamma)


def _check_normal_just_below(mode: str, dtype: type, exponent: int) -> None:
    """Just below the bound every hard label's loss is normal and no operation underflows."""
    fields, weighted = MODES[mode]
    call = _call(fields, from_logits=True, epsilon=1e-7)
    alpha = fields["alpha"] if fields.get("has_alpha") else None
    band = _band_bound(exponent, fields["gamma"], alpha)
    for magnitude in (band * (1 - 1e-5), band * 0.999, band * 0.99):
        x = np.tile(dtype([magnitude, -magnitude]), 64)
        y = np.tile(dtype([1.0, 0.0, 0.0, 1.0]), 32)  # correct and wrong predictions
        w = np.linspace(1.0, 2.0, y.size).astype(dtype) if weighted else None
        raised, loss = _core._underflow_raised(call, y, x, w)
        assert _normal(loss).all(), f"{mode} |x| = {magnitude}: {loss.min()!r}"
        assert not raised, f"{mode} |x| = {magnitude}: underflow"


@pytest.mark.parametrize("mode", ["focal2", "focal2.7", "focal0.5", "focal2_weighted",
                                  "focal4_weighted", "focal0.03"])  # fmt: skip
def test_float32_focal_losses_below_the_band_are_normal(simd_target, mode):
    # The float focal formulas run below the band, the double ones (at up to 2.5x the time) above
    # it: just below it every hard label's loss must still be normal and no operation underflow,
    # so that no magnitude with normal losses pays for the band (and none in it is missed).
    _check_normal_just_below(mode, np.float32, 126)


@pytest.mark.parametrize("mode", ["focal2", "focal2.7", "focal0.5", "focal2_weighted",
                                  "focal4_weighted", "focal0.03"])  # fmt: skip
def test_float64_focal_losses_below_the_scaled_band_are_normal(simd_target, mode):
    # The plain float64 focal products run below the bound, the scaled ones (at up to 2x the
    # time) above it: just below it every hard label's loss must still be normal and no
    # operation underflow (the bound was 660 / (1 + gamma), far below this for such alphas)
    _check_normal_just_below(mode, np.float64, 1022)


# Tiles whose every |x| lies in one band, so that loss_tile (kernel.hpp) decides from the tile's
# smallest or first |x| without a pass of its own: where exp(-|x|) needs the general exp
# (in_exp_gap: float32 87.34-103.97, float64 700-745.13), also with a first |x| beyond that
# (a tile that scans first), and, for float64 focal calls, the scaled band (smallest |x| >= 746:
# nothing in it; smallest |x| inside it: one; below it: the scan).
BAND_TILES = {
    np.float32: [(87.34, 103.97), (87.34, 120.0), (88.0, 1e4), (30.0, 103.9)],
    np.float64: [(700.01, 745.13), (700.01, 800.0), (240.0, 2000.0), (746.0, 1e10), (100.0, 800.0)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", list(MODES))
def test_tiles_within_one_band(simd_target, dtype, mode):
    fields, weighted = MODES[mode]
    call = _call(fields, from_logits=True, epsilon=1e-7)
    rng = np.random.default_rng(5)
    n = 4 * 512  # whole tiles: no padding with |x| = 0
    uint = np.uint32 if dtype == np.float32 else np.uint64
    for lo, hi in BAND_TILES[dtype]:
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) * rng.choice([-1.0, 1.0], n)
        x[512] = hi  # (a tile whose first |x| is the largest)
        x = x.astype(dtype)
        y = rng.choice([0.0, 1.0, 0.3], n).astype(dtype)
        w = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
        what = f"{mode} {dtype.__name__} |x| in [{lo}, {hi}]"
        _check(call, y, x, w, what)
        # each element's loss is the one it has alone (a padded tile, other paths)
        _, loss = _core._underflow_raised(call, y, x, w)
        for j in [*range(0, n, 37), 512]:
            one = slice(j, j + 1)
            _, alone = _core._underflow_raised(call, y[one], x[one], None if w is None else w[one])
            assert alone.view(uint)[0] == loss.view(uint)[j], f"{what}: x = {x[j]!r}, y = {y[j]!r}"
