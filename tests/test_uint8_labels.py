"""uint8 labels of float32 logits: on AVX-512 a plain call reads them as they are, in one loop
with the softplus table, rather than converting them to float (cpp/include/fastbce/loss_loop.hpp,
plain_table_loop_u8). An element's loss must be the one the same labels as float32 give, bit for
bit, whatever its tile holds: logits beyond the table, NaN and inf, labels other than 0 and 1."""

from __future__ import annotations

import numpy as np
import pytest

import fastbce

pytestmark = pytest.mark.usefixtures("simd_target")


def bce_none(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _logits(rng, n: int) -> np.ndarray:
    x = rng.normal(0, 4, n).astype(np.float32)
    specials = [0.0, -0.0, 1e-40, np.nextafter(np.float32(31.5), np.float32(0))]
    for value in specials:
        x[rng.choice(n, min(n, 10), replace=False)] = np.float32(value)
    return x


@pytest.mark.parametrize("n", [1, 63, 64, 511, 512, 513, 5000, 70_001])
def test_uint8_labels_give_the_float32_labels_bits(rng, n):
    x = _logits(rng, n)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    want = fastbce.binary_crossentropy(y.astype(np.float32), x, from_logits=True, reduction="none")
    np.testing.assert_array_equal(_bits(got), _bits(want))
    y32 = y.astype(np.float32)
    for reduction in ("sum", "mean"):
        got_r = fastbce.binary_crossentropy(y, x, from_logits=True, reduction=reduction)
        assert got_r == fastbce.binary_crossentropy(y32, x, from_logits=True, reduction=reduction)


def test_tiles_beyond_the_table_give_each_elements_own_loss(rng):
    """Tiles with |x| >= 31.5, NaN or inf here and there (each such tile takes the usual loops,
    and the next ones too for a while): every element as in a call of its own."""
    n = 40 * 512 + 77
    x = _logits(rng, n)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    for tile in (3, 4, 5, 20, 38, 39):
        x[tile * 512 + 100] = np.float32(40.0) if tile % 2 else np.float32(-100.0)
    x[7 * 512 + 9] = np.inf
    x[9 * 512 + 1] = np.nan
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    alone = np.concatenate([bce_none(y[i : i + 1], x[i : i + 1]) for i in range(0, n, 97)])
    np.testing.assert_array_equal(_bits(got[::97]), _bits(alone))
    want = fastbce.binary_crossentropy(y.astype(np.float32), x, from_logits=True, reduction="none")
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("magnitude", [31.5, 36.0, 50.0, 87.33])
def test_runs_of_large_logits_give_each_elements_own_loss(rng, magnitude):
    """Runs of tiles whose |x| is beyond the table (31.5) but within the normal exp's range
    (87.33) take plain_exp_loop on the labels as they are, and the tile after one with no |x|
    within the table starts with it: tiles of small, large and mixed logits in turn, one with an
    |x| beyond 87.33 and one with a label 2 among them, give every element the float32 labels'
    bits, and the same sums."""
    n = 24 * 512 + 301
    x = rng.uniform(magnitude, 87.33, n).astype(np.float32) * np.where(rng.random(n) < 0.5, -1, 1)
    small = _logits(rng, n)
    for tile in (0, 5, 6, 11, 17, 23):  # tiles of small logits between the runs
        x[tile * 512 : (tile + 1) * 512] = small[tile * 512 : (tile + 1) * 512]
    x[8 * 512 + 3] = small[8 * 512 + 3]  # a tile of the run with one |x| within the table
    x[13 * 512 + 7] = np.float32(95.0)  # one beyond the normal exp's range
    x[-1] = np.float32(magnitude)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    y32 = y.astype(np.float32)
    got = bce_none(y, x)
    np.testing.assert_array_equal(_bits(got), _bits(bce_none(y32, x)))
    alone = np.concatenate([bce_none(y[i : i + 1], x[i : i + 1]) for i in range(0, n, 89)])
    np.testing.assert_array_equal(_bits(got[::89]), _bits(alone))
    for reduction in ("sum", "mean"):
        got_r = fastbce.binary_crossentropy(y, x, from_logits=True, reduction=reduction)
        assert got_r == fastbce.binary_crossentropy(y32, x, from_logits=True, reduction=reduction)
    y[19 * 512 + 11] = 2  # (in a run of large logits)
    with pytest.raises(ValueError, match=str(19 * 512 + 11)):
        fastbce.binary_crossentropy(y, x, from_logits=True)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, validate=False, reduction="none")
    want = fastbce.binary_crossentropy(
        y.astype(np.float32), x, from_logits=True, validate=False, reduction="none"
    )
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_label_out_of_range_is_found_in_any_tile(rng):
    n = 3000
    x = _logits(rng, n)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    y[1700] = 2
    with pytest.raises(ValueError, match="1700"):
        fastbce.binary_crossentropy(y, x, from_logits=True)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, validate=False, reduction="none")
    want = fastbce.binary_crossentropy(
        y.astype(np.float32), x, from_logits=True, validate=False, reduction="none"
    )
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("nan_policy", ["omit", "raise"])
def test_other_nan_policies(rng, nan_policy):
    n = 2000
    x = _logits(rng, n)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, nan_policy=nan_policy)
    want = fastbce.binary_crossentropy(
        y.astype(np.float32), x, from_logits=True, nan_policy=nan_policy
    )
    assert got == want
