"""What the XGBoost and LightGBM adapters share: the options they take, their checks, and the
calls an objective and a metric make."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._api import binary_crossentropy
from ._grad import binary_crossentropy_grad

# The options of binary_crossentropy_grad an objective takes, and of the loss a metric takes.
GRAD_OPTIONS = ("label_smoothing", "pos_weight", "gamma", "alpha", "hessian", "validate", "threads")
LOSS_OPTIONS = ("label_smoothing", "pos_weight", "gamma", "alpha", "validate", "threads")


def check_option_names(options: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """TypeError naming `where` (e.g. "fastbce.xgboost.objective") for an unknown option."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"{where}() got unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def _probe(options: dict[str, Any], where: str, multi_target: bool) -> Any:
    """The tiny input the options are checked on: one row of k margins for a per-target
    pos_weight of length k (a k-target XGBoost model's margins), else one margin. LightGBM's
    binary objective has one margin a row, so there pos_weight must be a scalar."""
    pos_weight = options.get("pos_weight")
    shape: tuple[int, ...] = np.shape(pos_weight) if pos_weight is not None else ()
    if shape == ():
        return np.zeros(1, np.float32)
    if len(shape) != 1 or not multi_target or shape[0] == 0:  # (a model has a target at least)
        one_per_target = " or 1-D, one per target" if multi_target else " (one margin a row)"
        raise ValueError(
            f"{where}(): pos_weight must be a scalar{one_per_target}; got shape {shape}"
        )
    return np.zeros((1, shape[0]), np.float32)


def checked_objective_options(
    options: dict[str, Any], where: str, library: str, multi_target: bool
) -> dict[str, Any]:
    """The objective's options, checked now on a tiny input: ``hessian`` defaults to "clipped"
    (both libraries need Hessians that are not negative, see docs/gradients.md) and may not be
    "none" (the library needs a Hessian)."""
    check_option_names(options, GRAD_OPTIONS, where)
    options = {"hessian": "clipped", **options}
    if options["hessian"] == "none":
        raise ValueError(f"hessian='none' gives {library} no Hessian; use 'clipped' or 'exact'")
    margins = _probe(options, where, multi_target)
    binary_crossentropy_grad(np.zeros(margins.shape), margins, **options)
    return _one_target(options)


def checked_metric_options(
    options: dict[str, Any], where: str, multi_target: bool
) -> dict[str, Any]:
    """The metric's options, checked now on a tiny input."""
    check_option_names(options, LOSS_OPTIONS, where)
    margins = _probe(options, where, multi_target)
    binary_crossentropy(np.zeros(margins.shape), margins, from_logits=True, **options)
    return _one_target(options)


def _one_target(options: dict[str, Any]) -> dict[str, Any]:
    """A pos_weight of one target ([q]) as the scalar q: XGBoost gives a one-target model's
    margins as one per row (n,), where [q] would be read as one per class of n classes."""
    pos_weight = options.get("pos_weight")
    if pos_weight is not None and np.shape(pos_weight) == (1,):
        return {**options, "pos_weight": np.asarray(pos_weight).reshape(())}
    return options


def weighted_mean_loss(y: Any, margins: Any, weight: Any, options: dict[str, Any]) -> float:
    """The metric's value: the weighted mean loss of raw margins."""
    return float(
        binary_crossentropy(
            y, margins, from_logits=True, sample_weight=weight, reduction="weighted_mean", **options
        )
    )


class ReusedOutputs:
    """The (grad, hess) arrays an objective returned last, written again by its next call when
    nothing else references them: the boosting library copies the derivatives into its own
    storage and drops the arrays during its round, so each round would otherwise allocate (and,
    where the allocator has returned the memory to the system, fault in and zero) two new
    arrays; at 10^6 rows that cost more CPU than the derivatives themselves. An array still
    referenced anywhere else (kept by the caller, a view of it, a memoryview) is never
    written: the call then gets new arrays. Without reference counts (not CPython) it always
    does."""

    def __init__(self) -> None:
        self._last: list[tuple[Any, Any]] = []

    def take(self, margins: Any) -> tuple[Any, Any] | None:
        """The previous pair, if only this object holds it and it fits `margins` (same shape;
        float32 or float64 margins, the arrays' dtype); else None (new arrays). The pair is
        taken off the list, so that two concurrent calls never share it."""
        try:
            grad, hess = self._last.pop()
        except IndexError:
            return None
        if not hasattr(sys, "getrefcount"):
            return None
        # as many references as a new object held by a local name alone (the interpreter may
        # count a local's and the argument's reference or borrow them: the same for both)
        alone = object()
        count = sys.getrefcount(alone)
        unused = sys.getrefcount(grad) == count and sys.getrefcount(hess) == count
        dtype = getattr(margins, "dtype", None)
        fits = grad.shape == np.shape(margins) and grad.dtype == dtype and dtype in _REUSED_DTYPES
        return (grad, hess) if unused and fits else None

    def keep(self, grad: Any, hess: Any) -> None:
        """Remembers the pair a call returns (the last call's only)."""
        self._last = [(grad, hess)]


_REUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def objective_call(
    y: Any, margins: Any, weight: Any, options: dict[str, Any], outputs: ReusedOutputs
) -> tuple[Any, Any]:
    """An objective's derivatives, into the previous call's arrays where ReusedOutputs allows."""
    grad, hess = binary_crossentropy_grad(
        y, margins, sample_weight=weight, out=outputs.take(margins), **options
    )
    outputs.keep(grad, hess)
    return grad, hess
