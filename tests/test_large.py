"""More than 2^31 elements: no 32-bit index anywhere (reading, writing `out`, fault indices).

The cheapest honest way to get there: one float16 buffer of n = 2^31 + 2^16 + 3 predictions
(4.3 GB) whose bit patterns are chosen so that the low byte of each is 0 or 1; the labels are
those low bytes, read through a strided bool view of the same memory (so the label view has
byte offsets up to 2^32 too). Then a fault beyond 2^31, the sum, and the elementwise
loss (a float32 `out` of 8.6 GB, allocated last) spot-checked at indices beyond 2^31, where an
index that wrapped at 2^31 or 2^32 would have read or written a different value.
Peak memory 12.6 GB; 40-60 s on two busy cores."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

import fastbce

N = 2**31 + 2**16 + 3
# float16 bit patterns 0xHHLL with LL in {0, 1} (the label) and a probability in [0, 1]
PATTERN = np.array(
    [0x3800, 0x3801, 0x3000, 0x2E01], np.uint16
)  # (0.5, 0) (0.5005, 1) (0.125, 0) (0.0938, 1)
SPECIAL = {  # distinct values where a wrapped index would land on the pattern instead
    2**31 - 1: 0x3401,
    2**31: 0x2001,
    2**31 + 5: 0x3A01,
    2**31 + 2**15 + 11: 0x1C00,
    N - 1: 0x3B00,
}
BAD_AT = 2**31 + 7  # a probability of 2.0 (0x4000; label byte 0) for the fault test


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: try


def _losses(bits: np.ndarray) -> np.ndarray:
    """The loss of each bit pattern, computed by fastbce on a small contiguous array."""
    bits = np.ascontiguousarray(bits, np.uint16)
    return fastbce.binary_crossentropy(
        (bits & 1).astype(bool), bits.view(np.float16), reduction="none"
    )


@pytest.mark.slow
@pytest.mark.skipif(sys.byteorder != "little", reason="labels are the low bytes of float16 values")
@pytest.mark.skipif(_available_bytes() < 14 * 2**30, reason="needs ~13 GB of free memory")
def test_more_than_two_to_the_31_elements():
    start = time.monotonic()
    bits = np.empty(N, np.uint16)
    m = N // 4
    bits[: 4 * m].reshape(m, 4)[:] = PATTERN
    bits[4 * m :] = PATTERN[: N - 4 * m]
    for i, b in SPECIAL.items():
        bits[i] = b
    y_pred = bits.view(np.float16)
    y_true = bits.view(np.uint8)[0::2].view(np.bool_)
    assert y_true.shape == y_pred.shape == (N,) and y_true.strides == (2,)
    assert not y_true[2**31 + 2] and y_true[2**31 + 5]  # 0x3000 and 0x3A01

    # a fault beyond 2^31 is reported at its 64-bit index
    bits[BAD_AT] = 0x4000
    with pytest.raises(
        ValueError, match=rf"y_pred must be a probability .* got 2.0 at flat index {BAD_AT}\b"
    ):
        fastbce.binary_crossentropy(y_true, y_pred)
    bits[BAD_AT] = PATTERN[BAD_AT % 4]

    # reductions: the pattern counts times each pattern's loss, plus the special values
    counts = np.array([(N - k + 3) // 4 for k in range(4)], np.int64)  # elements with i % 4 == k
    special_bits = np.array(list(SPECIAL.values()), np.uint16)
    for i in SPECIAL:
        counts[i % 4] -= 1
    want_sum = float(np.dot(counts, _losses(PATTERN).astype(np.float64)))
    want_sum += float(np.sum(_losses(special_bits).astype(np.float64)))
    got_sum = fastbce.binary_crossentropy(y_true, y_pred, reduction="sum")
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-7)

    # elementwise, into an out of N float32: spot checks around and beyond 2^31
    out = np.empty(N, np.float32)
    assert fastbce.binary_crossentropy(y_true, y_pred, reduction="none", out=out) is out
    idx = np.array(
        sorted(
            {0, 1, 2, 3, 2**31 - 2, 2**31 + 1, 2**31 + 2, 2**31 + 2**15, N - 4, N - 2}
            | set(SPECIAL)
        ),
        np.int64,
    )
    np.testing.assert_allclose(out[idx], _losses(bits[idx]), rtol=1e-6)
    np.testing.assert_allclose(np.sum(out, dtype=np.float64), want_sum, rtol=1e-6)
    print(f"{N} elements: {time.monotonic() - start:.1f} s", file=sys.stderr)
