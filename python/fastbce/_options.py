"""The loss options, checked once: shared by the loss functions, ``LossAccumulator``,
``fastbce.dask`` and ``fastbce score`` (each option's rule and message is written here only).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

__all__ = ["NAN_POLICIES", "REDUCTIONS", "LossOptions", "check_reduction", "plain_options_key"]

REDUCTIONS = ("none", "sum", "mean", "weighted_mean")
NAN_POLICIES = {
    "propagate": _core.NanPolicy.propagate,
    "omit": _core.NanPolicy.omit,
    "raise": _core.NanPolicy.raise_,
}


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class LossOptions:
    """The loss options (docs/reference.md), checked; shared by the functions and accumulators."""

    from_logits: bool = False
    epsilon: float = 1e-7
    label_smoothing: float = 0.0
    pos_weight: Any = None
    gamma: float = 0.0
    alpha: float | None = None
    nan_policy: str = "propagate"
    validate: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_bool(self.from_logits, "from_logits")
        _check_bool(self.validate, "validate")
        eps = real_number(self.epsilon, "epsilon")
        if not 0.0 < eps < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5); got {self.epsilon!r}")
        smoothing = real_number(self.label_smoothing, "label_smoothing")
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1]; got {self.label_smoothing!r}")
        gamma = real_number(self.gamma, "gamma")
        if not (math.isfinite(gamma) and gamma >= 0.0):
            raise ValueError(f"gamma must be finite and >= 0; got {self.gamma!r}")
        if self.alpha is not None:
            alpha = real_number(self.alpha, "alpha")
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"alpha must be None or in [0, 1]; got {self.alpha!r}")
        if not isinstance(self.nan_policy, str) or self.nan_policy not in NAN_POLICIES:
            raise ValueError(
                f"nan_policy must be one of {', '.join(map(repr, NAN_POLICIES))}; "
                f"got {self.nan_policy!r}"
            )
        if self.threads is not None:
            whole_number(self.threads, "threads", 1, "None or an int >= 1")


# Types whose equal values are the same option, valid or not: a key of such values may stand for
# options checked before. (Not bool for a number, nor Fraction or Decimal: they compare and hash
# equal to a float that LossOptions accepts, yet LossOptions rejects them.)
_PLAIN_REALS = frozenset((float, int))


def plain_options_key(
    from_logits: Any,
    epsilon: Any,
    label_smoothing: Any,
    gamma: Any,
    alpha: Any,
    nan_policy: Any,
    validate: Any,
    threads: Any,
    reduction: Any,
) -> tuple[Any, ...] | None:
    """The options as a hashable key when each is a plain Python value (bool, float or int, str,
    None), so that equal keys are the same checked options; None for anything else (NumPy
    scalars, say), which takes the general path. Checks nothing itself."""
    if (
        type(from_logits) is bool
        and type(validate) is bool
        and type(epsilon) in _PLAIN_REALS
        and type(label_smoothing) in _PLAIN_REALS
        and type(gamma) in _PLAIN_REALS
        and (alpha is None or type(alpha) in _PLAIN_REALS)
        and type(nan_policy) is str
        and (threads is None or type(threads) is int)
        and type(reduction) is str
    ):
        return (
            from_logits,
            epsilon,
            label_smoothing,
            gamma,
            alpha,
            nan_policy,
            validate,
            threads,
            reduction,
        )
    return None


def _check_bool(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")


def whole_number(value: Any, name: str, lowest: int, rule: str) -> int:
    """value as an int (any integer type, not a bool) if it is >= lowest; else TypeError or
    ValueError "{name} must be {rule}; got {value!r}"."""
    message = f"{name} must be {rule}; got {value!r}"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(message)
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(message) from None
    if number < lowest:
        raise ValueError(message)
    return number


def real_number(value: Any, name: str) -> float:
    """value as a float if it is a real number (an int or float of Python or NumPy, not a
    bool); else TypeError, or ValueError for an int beyond the float range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range is outside every option's range
        raise ValueError(
            f"{name} is out of range; got an int of {int(value).bit_length()} bits"
        ) from None


def check_reduction(reduction: Any) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}"
        )
