"""The first and second derivatives of the loss with respect to the logits, for training.

The arguments are checked by the loss functions' own checks (``_options`` and ``_api``), then one
call into the compiled kernel computes the gradient and the Hessian together in a single pass.
Formulas, their derivation and the Hessian options are in docs/gradients.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import _core
from ._api import _check_inputs, _copy_back, _fault_error, _output
from ._options import LossOptions

__all__ = ["HESSIANS", "binary_crossentropy_grad"]

# "exact": d2/dx2 of the loss. "none": no Hessian (None). "clipped": the exact Hessian where it
# is at least W (1 - p_t)^gamma (1 + (q - 1) y') sigma(x) sigma(-x) (the Hessian with the focal
# factor held fixed), that lower bound elsewhere: positive, for boosting libraries (equal to the
# exact Hessian without focal terms, whose Hessian is never negative).
HESSIANS = {
    "exact": _core.HessianMode.exact,
    "none": _core.HessianMode.none,
    "clipped": _core.HessianMode.clipped,
}


@contextmanager
def _naming_logits() -> Iterator[None]:
    """The loss functions' checks call the second argument y_pred; here it is `logits`."""
    try:
        yield
    except (TypeError, ValueError) as e:
        text = str(e).replace("y_pred's", "logits'").replace("y_pred", "logits")
        raise type(e)(text) from None


def _output_pair(
    out: Any, shape: tuple[int, ...], working: np.dtype, want_hess: bool, inputs: tuple
) -> tuple[tuple[np.ndarray, np.ndarray, int], tuple[Any, Any, int]]:
    """((grad returned, grad written, stride), (hess returned, hess written, stride))."""
    if out is None:
        pair: tuple[Any, Any] = (None, None)
    elif isinstance(out, tuple) and len(out) == 2:
        pair = out
    else:
        raise TypeError(
            f"out must be None or a pair (grad, hess) of numpy arrays; got {type(out).__name__}"
        )
    if not want_hess and pair[1] is not None:
        raise ValueError("out[1] must be None with hessian='none'")
    g_out, h_out = pair
    if g_out is not None and h_out is not None and _overlap(g_out, h_out):
        raise ValueError("out: the grad and hess arrays must not overlap")
    grad = _output(g_out, True, shape, working, inputs, "out[0]")
    hess = _output(h_out, True, shape, working, inputs, "out[1]") if want_hess else (None, None, 1)
    return grad, hess  # type: ignore[return-value]


def binary_crossentropy_grad(
    y_true: Any,
    logits: Any,
    *,
    label_smoothing: float = 0.0,
    sample_weight: Any = None,
    pos_weight: Any = None,
    gamma: float = 0.0,
    alpha: float | None = None,
    hessian: str = "exact",
    nan_policy: str = "propagate",
    validate: bool = True,
    threads: int | None = None,
    out: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradient and Hessian of the elementwise loss with respect to the logits.

    The loss is ``binary_crossentropy(y_true, logits, from_logits=True, reduction="none", ...)``
    with the same options; the derivatives are exact and computed stably, finite for every finite
    logit and every ``gamma > 0``. Plain cross-entropy gives ``grad = sigmoid(x) - y`` and
    ``hess = sigmoid(x) * sigmoid(-x)``. Formulas and the Hessian options: docs/gradients.md.
    ``label_smoothing``, ``sample_weight``, ``pos_weight``, ``gamma``, ``alpha``, ``validate``
    and ``threads`` are those of ``binary_crossentropy``.

    Parameters
    ----------
    y_true : array_like
        Labels in [0, 1], shaped as ``logits``.
    logits : array_like
        float16, float32, float64 (or bfloat16) logits.
    hessian : {"exact", "none", "clipped"}, default "exact"
        "none" returns no Hessian; "clipped" bounds the exact Hessian below by a positive term,
        for boosting libraries (the exact focal Hessian can be negative).
    nan_policy : {"propagate", "omit", "raise"}, default "propagate"
        "propagate" and "omit" give NaN derivatives where ``y_true``, ``logits`` or
        ``sample_weight`` is NaN (there is no reduction to leave them out of); "raise" raises.
    out : tuple of numpy.ndarray, optional
        A pair ``(grad, hess)`` of arrays to write into (``hess`` None with ``hessian="none"``).

    Returns
    -------
    grad : numpy.ndarray
        The first derivative, of the logits' shape in the working precision (float64 for
        float64 logits, else float32).
    hess : numpy.ndarray or None
        The second derivative, likewise; None with ``hessian="none"``.

    Raises
    ------
    TypeError
        As ``binary_crossentropy``, the messages naming ``logits``.
    ValueError
        As ``binary_crossentropy``; also an unknown ``hessian``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce
    >>> y_true = np.array([0, 1, 1, 0], dtype=np.uint8)
    >>> logits = np.array([-2.2, 1.4, 0.4, -0.8], dtype=np.float32)
    >>> grad, hess = fastbce.binary_crossentropy_grad(y_true, logits)
    >>> bool(np.allclose(grad, 1 / (1 + np.exp(-logits)) - y_true, atol=1e-6))
    True
    >>> hess.round(4)
    array([0.0898, 0.1587, 0.2403, 0.2139], dtype=float32)
    """
    if not isinstance(hessian, str) or hessian not in HESSIANS:
        raise ValueError(
            f"hessian must be one of {', '.join(map(repr, HESSIANS))}; got {hessian!r}"
        )
    with _naming_logits():
        opts = LossOptions(
            from_logits=True,
            label_smoothing=label_smoothing,
            pos_weight=pos_weight,
            gamma=gamma,
            alpha=alpha,
            nan_policy=nan_policy,
            validate=validate,
            threads=threads,
        )
        yt, yx, weight_arr, call, working, arrays = _check_inputs(
            opts, y_true, logits, sample_weight
        )
        want_hess = hessian != "none"
        (grad, g_arr, g_stride), (hess, h_arr, h_stride) = _output_pair(
            out, yx.shape, working, want_hess, (yt, yx, weight_arr)
        )
        fault, index = _core.compute_grad(
            call, *arrays, g_arr, g_stride, h_arr, h_stride, HESSIANS[hessian]
        )
        if fault:
            raise _fault_error(fault, index, yt, yx, weight_arr, call, opts)
    _copy_back(grad, g_arr)
    _copy_back(hess, h_arr)
    return grad, hess


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share an element (the columns of one (n, 2) array do not); taken as
    overlapping where telling would take NumPy too long."""
    if not np.may_share_memory(a, b):  # (their bounds alone)
        return False
    try:  # (NumPy's stubs name only -1 and 0 as max_work; a bound on the work is documented)
        return bool(np.shares_memory(a, b, max_work=1 << 20))  # type: ignore[arg-type]
    except getattr(np, "exceptions", np).TooHardError:  # (np.exceptions from NumPy 1.25)
        return True
