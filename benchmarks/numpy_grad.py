"""The derivatives of docs/gradients.md written in NumPy: what a user writes without fastbce.

The same stable formulas as the kernel (exp(-|x|), no 1 - p where it cancels), elementwise
NumPy in the input's dtype; shared by benchmarks/test_bench_grad.py and benchmarks/grad_speed.py.
"""

from __future__ import annotations

import numpy as np


def numpy_grad(y, x, *, gamma=0.0, alpha=None, sample_weight=None):
    """(grad, hess) of the loss from logits x with focal gamma and class balance alpha."""
    z = np.exp(-np.abs(x))
    d = 1 + z
    pos = x >= 0
    a = np.where(pos, 1, z)  # d * p
    b = np.where(pos, z, 1)  # d * (1 - p)
    g0 = ((1 - y) * a - y * b) / d
    s2 = z / (d * d)
    if gamma == 0:
        grad, hess = g0, s2
    else:
        nu = y * b + (1 - y) * a
        u = nu / d
        f = u**gamma
        r = (1 - 2 * y) * np.where(nu > 0, z / np.where(nu > 0, nu, 1), 1) / d
        soft = np.log1p(z)
        ce = y * (np.maximum(-x, 0) + soft) + (1 - y) * (np.maximum(x, 0) + soft)
        rce = r * ce
        grad = f * (gamma * rce + g0)
        hess = f * (gamma * (rce * ((gamma - 1) * r + (b - a) / d) + 2 * r * g0) + s2)
    if alpha is not None:
        balance = alpha * y + (1 - alpha) * (1 - y)
        grad, hess = grad * balance, hess * balance
    if sample_weight is not None:
        grad, hess = grad * sample_weight, hess * sample_weight
    return grad, hess
