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
