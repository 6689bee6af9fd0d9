"""Importing and calling fastbce leaves the process' floating-point state alone (issue #3).

fastbce is built without -ffast-math: linking a library built with it runs code at load time that
turns on flush-to-zero and denormals-are-zero for the whole process, and NumPy, TensorFlow and
every other library in it would then lose subnormal numbers. Checked in a fresh interpreter, before
the import, after it, and after a call on every SIMD tier the CPU supports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np

    def subnormals_survive():
        # a subnormal product (flush-to-zero) and a subnormal operand (denormals-are-zero), in
        # float32 and float64, through NumPy's vector loops and its scalars
        a32 = np.full(64, 1e-40, dtype=np.float32)
        a64 = np.full(64, 1e-310)
        return (
            bool(np.all(a32 * np.float32(0.5) > 0))
            and bool(np.all(a64 * 0.5 > 0))
            and bool(np.all(a32 * np.float32(1.0) == a32))
            and float(np.float64(1e-310) * 0.5) > 0
        )

    assert subnormals_survive(), "subnormals flushed before fastbce was imported"
    import fastbce
    from fastbce import _core

    assert subnormals_survive(), "importing fastbce flushed subnormals"
    y = np.tile(np.array([0.0, 1.0], dtype=np.float32), 300_000)
    x = np.linspace(-120, 120, y.size, dtype=np.float32)
    for target in _core.supported_targets():
        _core.set_target(target)
        fastbce.binary_crossentropy(y, x, from_logits=True)
        fastbce.binary_focal_crossentropy(y, x, from_logits=True, reduction="none")
        fastbce.binary_crossentropy(y.astype(np.float64), 1 / (1 + np.exp(-x.astype(np.float64))))
        assert subnormals_survive(), f"a call on {target} flushed subnormals"
    # a subnormal loss comes out as such (exp(-100) in float32)
    one, hundred = np.float32(1), np.float32(100)
    loss = fastbce.binary_crossentropy(one, hundred, from_logits=True, reduction="none")
    assert 0 < float(loss) < 1e-38, float(loss)
    print("ok")
    """
)


def test_import_and_calls_keep_subnormals():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
