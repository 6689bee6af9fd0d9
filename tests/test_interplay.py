"""fastbce, TensorFlow and PyTorch in one process: all three used, also from threads at once.

Each library brings its own thread pools (and the latter two their OpenMP or Eigen runtimes);
fastbce's short-lived std::threads must not clash with them, whatever the import order. Runs
in a fresh interpreter (a subprocess), so the libraries' global state stays out of the suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("torch") is None,
        reason="needs tensorflow and torch (the peers extra)",
    ),
]

SCRIPT = textwrap.dedent(
    """
    import concurrent.futures
    import importlib
    import math
    import sys

    for name in sys.argv[1].split(","):
        importlib.import_module(name)

    import numpy as np
    import tensorflow as tf
    import torch

    import fastbce

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    n = 1 << 20  # large enough for two fastbce threads
    y = (rng.random(n) < 0.3).astype(np.float32)
    x = rng.normal(0, 3, n).astype(np.float32)
    want = fastbce.binary_crossentropy(y, x, from_logits=True, threads=1)

    def with_tensorflow():
        return float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)))

    def with_torch():
        return float(torch.nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(x), torch.from_numpy(y)))

    def with_fastbce():
        return fastbce.binary_crossentropy(y, x, from_logits=True, threads=2)

    def with_tensors():  # fastbce reading the other libraries' tensors
        a = fastbce.binary_crossentropy(torch.from_numpy(y), torch.from_numpy(x), from_logits=True)
        b = fastbce.binary_crossentropy(tf.constant(y), tf.constant(x), from_logits=True)
        assert a == want and b == want, (a, b, want)
        return a

    tasks = [with_tensorflow, with_torch, with_fastbce, with_tensors]
    for task in tasks:  # each alone, then all at once from eight threads
        got = task()
        assert math.isclose(got, want, rel_tol=1e-5), (task.__name__, got, want)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [(t.__name__, pool.submit(t)) for _ in range(12) for t in tasks]
        for name, future in futures:
            got = future.result(timeout=300)
            if name in ("with_fastbce", "with_tensors"):
                assert got == want, (name, got, want)
            else:
                assert math.isclose(got, want, rel_tol=1e-5), (name, got, want)
    print("OK", want)
    """
)


@pytest.mark.parametrize("order", ["fastbce,tensorflow,torch", "torch,tensorflow,fastbce"])
def test_fastbce_tensorflow_and_torch_in_one_process(order):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, order],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    assert proc.stdout.startswith("OK")
