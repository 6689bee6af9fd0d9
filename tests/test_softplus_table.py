"""softplus(-|x|) of float32 logits, on every SIMD tier: on AVX-512 the kernel takes it from a
table of 32 polynomials for |x| < 31.5 (cpp/include/fastbce/softplus_table.hpp) and from exp
beyond. A correct prediction with a hard label (y = 1, x > 0 or y = 0, x < 0) has exactly that
as its loss, so the loss shows the function's own error: checked against mpmath at every
interval's ends, at the switch to exp and at random points, and an element's loss must not
depend on the others in its tile (here: tiles mixing both sides of 31.5, NaN and inf)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import fastbce
from reference import ulp_error

pytestmark = pytest.mark.usefixtures("simd_target")

MATH_ULP_BUDGET = 2.0  # as each vector math function (tests/test_accuracy.py)


def _magnitudes(rng) -> np.ndarray:
    ends = [k + 0.5 for k in range(33)]
    around = [np.nextafter(np.float32(e), np.float32(d)) for e in ends for d in (0, 100)]
    return np.concatenate(
        [
            np.float32(ends),
            np.float32(around),
            np.float32(range(33)),
            np.float32([0.0, 1e-45, 1e-38, 2.0**-30, 2.0**-29, 1e-7, 0.25, 87.0, 100.0]),
            rng.uniform(0, 40, 3000).astype(np.float32),
        ]
    )


def test_correct_predictions_within_2_ulp(rng):
    a = _magnitudes(rng)
    sign = np.where(rng.random(a.size) < 0.5, 1.0, -1.0).astype(np.float32)
    x = sign * a
    y = (x > 0).astype(np.float32)  # the label the logit predicts: the loss is softplus(-|x|)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    mpmath.mp.prec = 80
    exact = np.array([float(mpmath.log1p(mpmath.exp(-mpmath.mpf(float(v))))) for v in a])
    err = ulp_error(got, exact, np.float32)
    worst = int(np.argmax(err))
    assert err[worst] <= MATH_ULP_BUDGET, (
        f"{err[worst]:.2f} ulp at x={x[worst]!r}: got {got[worst]!r}, exact {exact[worst]!r}"
    )


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_an_element_does_not_depend_on_its_tile(rng, weighted):
    n = 1500
    x = rng.uniform(-40, 40, n).astype(np.float32)
    x[rng.choice(n, 50, replace=False)] = np.float32(31.5)
    x[rng.choice(n, 5, replace=False)] = np.inf
    x[rng.choice(n, 5, replace=False)] = np.nan
    y = rng.random(n).astype(np.float32)
    w = rng.uniform(0.5, 2, n).astype(np.float32) if weighted else None

    def loss(part: slice) -> np.ndarray:
        weight = None if w is None else w[part]
        return fastbce.binary_crossentropy(
            y[part], x[part], sample_weight=weight, from_logits=True, reduction="none"
        )

    whole = loss(slice(None))
    for k in (1, 7, 16, 33):
        np.testing.assert_array_equal(loss(slice(k, None)), whole[k:])
        j = 40 * k  # one element alone: a tile of its own, padded
        np.testing.assert_array_equal(loss(slice(j, j + 1)), whole[j : j + 1])


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_runs_of_large_logits_give_each_elements_own_loss(rng, weighted):
    """Tiles after one with no |x| below 31.5 start with exp (and skip it beyond 104): each
    element's loss is still the one it has alone."""
    parts = [
        rng.uniform(32, 80, 1100),
        10.0 ** rng.uniform(2.02, 30, 1100),
        rng.uniform(80, 110, 1100),
        rng.uniform(-40, 40, 1100),
    ]
    x = np.concatenate(parts).astype(np.float32) * np.where(rng.random(4400) < 0.5, 1, -1)
    x[1500:1510] = np.inf
    x[1600:1610] = np.nan
    x[2000] = np.float32(104.0)
    x[2001] = np.nextafter(np.float32(104.0), np.float32(200))
    y = rng.random(x.size).astype(np.float32)
    y[::3] = (x[::3] > 0).astype(np.float32)  # correct predictions: loss = softplus(-|x|)
    w = rng.uniform(0.5, 2, x.size).astype(np.float32) if weighted else None
    kw = {"from_logits": True, "reduction": "none"}
    whole = fastbce.binary_crossentropy(y, x, sample_weight=w, **kw)
    for j in range(0, x.size, 7):
        alone = fastbce.binary_crossentropy(
            y[j : j + 1], x[j : j + 1], sample_weight=None if w is None else w[j : j + 1], **kw
        )
        np.testing.assert_array_equal(alone, whole[j : j + 1], err_msg=f"element {j}")


@pytest.mark.parametrize("labels", ["float32", "uint8"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_few_logits_beyond_the_table_among_small_ones(rng, weighted, labels):
    """A tile of |x| below 31.5 with a few in [31.5, 87.33] has only the vectors holding those
    formed again (AVX-512: plain_beyond_vectors, after the table's loop): each element's loss is
    the one it has in a tile that takes the general loops (an inf first in it) and alone."""
    n = 2048  # four tiles of 512
    x = rng.uniform(-20, 20, n)
    far = rng.choice(np.arange(1, n), 80, replace=False)
    x[far] = rng.uniform(31.5, 87.33, far.size) * np.where(rng.random(far.size) < 0.5, 1, -1)
    x[far[:6]] = [31.5, -31.5, 87.33, -87.33, np.nextafter(np.float32(31.5), np.float32(0)), 40.0]
    x = x.astype(np.float32)
    y = rng.random(n).astype(np.float32)
    y[::3] = (x[::3] > 0).astype(np.float32)  # correct predictions: loss = softplus(-|x|)
    if labels == "uint8":  # (read as bytes by their own table loop)
        y = (y > 0.5).astype(np.uint8)
    w = rng.uniform(0.5, 2, n).astype(np.float32) if weighted else None
    kw = {"from_logits": True, "reduction": "none"}
    mixed = fastbce.binary_crossentropy(y, x, sample_weight=w, **kw)
    x2 = x.copy()
    x2[::512] = np.inf  # every tile beyond the normal exp's range: the general loops
    general = fastbce.binary_crossentropy(y, x2, sample_weight=w, **kw)
    kept = np.ones(n, dtype=bool)
    kept[::512] = False
    np.testing.assert_array_equal(mixed[kept], general[kept])
    for j in far[:20]:
        alone = fastbce.binary_crossentropy(
            y[j : j + 1], x[j : j + 1], sample_weight=None if w is None else w[j : j + 1], **kw
        )
        np.testing.assert_array_equal(alone, mixed[j : j + 1], err_msg=f"element {j}")
