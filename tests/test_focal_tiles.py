"""A focal loss of logits has the same bits whichever loop its tile takes.

Tiles whose every |x| is small (below the AVX-512 float tables' end, 31.5, and the focal band)
take one fused loop; a tile with one larger logit, or a label outside [0, 1] (validate=False),
takes the general sequence of loops. test_position.py mixes magnitudes in every tile, so its
tiles rarely take the fused loop: here the same small logits are computed once alone and once
with such an element planted in every tile, on every tier.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastbce

pytestmark = pytest.mark.usefixtures("simd_target")

N = 2000  # three full tiles of 512 and a partial one
TILE = 512


def _inputs(dtype: type, seed: int):
    rng = np.random.default_rng(seed)
    # |x| < 15: within the focal band of every option below (gamma 4, alpha 1/4: 17.2)
    x = np.clip(rng.normal(0.0, 4.0, N), -15.0, 15.0)
    x[:8] = [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 15.0, -15.0]
    soft = rng.uniform(0.0, 1.0, N)
    hard = rng.integers(0, 2, N).astype(np.float64)
    y = np.where(rng.random(N) < 0.5, soft, hard)
    w = rng.uniform(0.0, 3.0, N)
    return y.astype(dtype), x.astype(dtype), w.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.5, 2.0, 2.7, 4.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_small_logit_tiles_match_the_general_loops(dtype, gamma, alpha, weighted):
    y, x, w = _inputs(dtype, seed=int(gamma * 10) + (alpha is None))
    options = {"from_logits": True, "gamma": gamma, "alpha": alpha, "reduction": "none"}
    weights = w if weighted else None
    alone = fastbce.binary_focal_crossentropy(y, x, sample_weight=weights, **options)
    planted = np.arange(N) % TILE == 100  # one element in every tile
    kept = ~planted
    for value in (40.0, 20.0, 100.0, -1e30):  # beyond the tables, the band, the fast exp
        x2 = x.copy()
        x2[planted] = dtype(value)
        got = fastbce.binary_focal_crossentropy(y, x2, sample_weight=weights, **options)
        np.testing.assert_array_equal(got[kept], alone[kept], err_msg=f"planted x = {value}")
    y2 = y.copy()
    y2[planted] = dtype(1.5)  # not clean: the tile takes the general loops again
    got = fastbce.binary_focal_crossentropy(y2, x, sample_weight=weights, validate=False, **options)
    np.testing.assert_array_equal(got[kept], alone[kept], err_msg="planted y = 1.5")


@pytest.mark.parametrize("gamma", [0.5, 1.5, 2.0, 2.5, 3.0, 4.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.01])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_focal_band_elements_in_small_logit_tiles(gamma, alpha, weighted):
    """A few elements in the focal band (|x| from 15 to 31.4, where the general loops form the
    loss in double) among small logits: the fused loop's tile forms them again by the general
    step; their bits must be those of the same elements in a tile that takes the general loops
    throughout (a logit of 40 first in it), and in one whose first vector holds many of them."""
    y, x, w = _inputs(np.float32, seed=int(gamma * 10) + 7)
    rng = np.random.default_rng(int(gamma * 100))
    probes = [20, 37, 100, 101, 255, 300, 511]  # places in a tile: two in one vector, the last one
    places = (np.arange(N // TILE)[:, None] * TILE + np.array(probes)[None, :]).ravel()
    magnitude = np.concatenate(
        [[15.0, 17.25, 28.6, 28.7, 29.1, 31.4, 31.49], rng.uniform(15.0, 31.49, places.size - 7)]
    )
    x_band = (magnitude * rng.choice([-1.0, 1.0], places.size)).astype(np.float32)
    y_band = np.where(
        rng.random(places.size) < 0.7,
        rng.integers(0, 2, places.size),
        rng.uniform(0, 1, places.size),
    )
    y_band = y_band.astype(np.float32)
    options = {"from_logits": True, "gamma": gamma, "alpha": alpha, "reduction": "none"}

    def loss(ys, xs, ws):
        return fastbce.binary_focal_crossentropy(
            ys, xs, sample_weight=ws if weighted else None, **options
        )

    y1, x1 = y.copy(), x.copy()
    y1[places], x1[places] = y_band, x_band
    fused = loss(y1, x1, w)
    x2 = x1.copy()
    x2[::TILE] = 40.0  # beyond the tables: every tile takes the general loops
    general = loss(y1, x2, w)
    kept = np.ones(N, dtype=bool)
    kept[::TILE] = False
    np.testing.assert_array_equal(fused[kept], general[kept])
    # the same elements packed 16 to a vector from the start of each tile (many band lanes first)
    y3, x3, w3 = y.copy(), x.copy(), w.copy()
    packed = (np.arange(N // TILE)[:, None] * TILE + np.arange(len(probes))[None, :]).ravel()
    y3[packed], x3[packed], w3[packed] = y_band, x_band, w[places]
    np.testing.assert_array_equal(loss(y3, x3, w3)[packed], fused[places])


@pytest.mark.parametrize("gamma", [2.0, 3.0, 4.0])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.6])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_many_focal_band_elements_in_a_tile(gamma, density, weighted):
    """Tiles with many elements in the focal band (packed 16 to a vector before they are formed
    again: tens of them, over several packed vectors, the last one partial), and with up to 7 in
    their first 16 (more send the tile to the general loops at once): the bits of the general
    loops, weights and soft labels included."""
    y, x, w = _inputs(np.float32, seed=int(gamma * 10) + int(density * 100))
    rng = np.random.default_rng(int(gamma * 1000 + density * 100))
    band = rng.random(N) < density
    head = np.arange(N) % TILE < 16
    band[head] = False
    band[head & (rng.random(N) < 0.4)] = True  # (at most 7 of a tile's first 16: capped below)
    starts = np.arange(0, N, TILE)
    for s in starts:
        extra = np.flatnonzero(band[s : s + 16])[7:]
        band[s + extra] = False
    x1 = x.copy()
    x1[band] = (rng.uniform(17.3, 31.49, band.sum()) * rng.choice([-1.0, 1.0], band.sum())).astype(
        np.float32
    )
    options = {"from_logits": True, "gamma": gamma, "alpha": 0.25, "reduction": "none"}
    weights = w if weighted else None
    fused = fastbce.binary_focal_crossentropy(y, x1, sample_weight=weights, **options)
    x2 = x1.copy()
    x2[starts] = 40.0  # beyond the tables: every tile takes the general loops
    general = fastbce.binary_focal_crossentropy(y, x2, sample_weight=weights, **options)
    kept = np.ones(N, dtype=bool)
    kept[starts] = False
    assert band[kept].sum() >= density * N / 2  # (tens of band elements a tile)
    np.testing.assert_array_equal(fused[kept], general[kept])
