"""The public loss functions.

Every argument is checked and normalised here, once; then one call into the compiled kernel
(``fastbce._core``) computes the loss for all options in a single pass over the data. The formulas,
shapes and errors are those of docs/reference.md; choices it leaves open are in docs/semantics.md.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._groups import GROUP_CODE_FAULT, code_error
from ._inputs import as_array, check_numeric, check_pos_weight_values, is_bfloat16, overflows_in
from ._options import NAN_POLICIES, LossOptions, check_reduction, plain_options_key

__all__ = ["binary_crossentropy", "binary_focal_crossentropy"]

_FAULT_LABEL, _FAULT_PRED, _FAULT_WEIGHT, _FAULT_NAN = 1, 2, 3, 4


# --------------------------------------------------------------------------- arrays


def _check_prediction_dtype(arr: np.ndarray) -> None:
    if (arr.dtype.kind == "f" and arr.itemsize in (2, 4, 8)) or is_bfloat16(arr.dtype):
        return
    raise TypeError(
        f"y_pred must be float16, float32 or float64 (or ml_dtypes.bfloat16); got dtype {arr.dtype}"
    )


def _element_stride(arr: np.ndarray) -> int | None:
    """The distance in elements between consecutive elements of arr in C order, if it is the
    same everywhere (any contiguous array, a[::k], a[:, j], a[::-1]); else None."""
    step = expected = None
    for size, stride in zip(reversed(arr.shape), reversed(arr.strides), strict=True):
        if size == 1:
            continue
        if step is None:
            step = stride
        elif stride != expected:
            return None
        expected = stride * size
    if step is None:
        return 1
    if step % arr.itemsize:
        return None
    return step // arr.itemsize


def _flat(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """(array, element stride) for the kernel. Most layouts are read in place; a layout with no
    single stride, or unaligned or byte-swapped memory, is read through a contiguous copy."""
    flags = arr.flags  # (one flags object: this runs twice in every call, a 4-element one too)
    if flags.aligned and arr.dtype.isnative:
        if flags.c_contiguous:
            return arr, 1
        stride = _element_stride(arr)
        if stride is not None:
            return arr, stride
    # np.array copies into fresh (aligned) memory; ascontiguousarray would return an unaligned
    # but contiguous array as it is, and the kernel's typed loads of it are undefined behaviour
    return np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C"), 1


def _index_text(arr_shape: tuple[int, ...], flat_index: int) -> str:
    text = f"flat index {flat_index}"
    if len(arr_shape) > 1:
        text += f" (index {tuple(int(i) for i in np.unravel_index(flat_index, arr_shape))})"
    return text


def _value_at(arr: np.ndarray, flat_index: int) -> Any:
    return arr[np.unravel_index(flat_index, arr.shape)].item() if arr.ndim else arr.item()


# --------------------------------------------------------------------------- the call


@dataclass
class Sums:
    """What one kernel pass returns: float64 sums over the counted elements."""

    loss: float  # sum of w * ce
    weight: float  # sum of w (the element count without sample_weight)
    count: float  # elements counted (the non-NaN ones under nan_policy="omit")


def _compute(
    opts: LossOptions,
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    *,
    out: Any = None,
    want_elementwise: bool = False,
    groups: np.ndarray | None = None,
    group_sums: np.ndarray | None = None,
    report: Any = None,
) -> tuple[Sums, np.ndarray | None]:
    """Checks the arrays and runs the kernel once. Returns the sums and, when asked for, the
    elementwise loss (in `out` or a new array). `groups` (int64 or int32 codes, one per row) with
    `group_sums` (float64, shape (n_groups, 3)) collect per-group sums in the same pass.
    `report` (a ``_report.ReportPass``) runs the evaluation report's pass instead, with the
    same checked arrays; it keeps its outputs, and the elementwise loss is not available."""
    yt, yp, weight_arr, call, working, arrays = _check_inputs(opts, y_true, y_pred, sample_weight)
    result, out_arr, out_stride = _output(
        out, want_elementwise, yp.shape, working, (yt, yp, weight_arr)
    )
    if groups is not None:
        assert group_sums is not None
        call.n_groups = group_sums.shape[0]
    run = _core.compute if report is None else report.run
    loss, wsum, count, fault, index = run(call, *arrays, out_arr, out_stride, groups, group_sums)
    if fault == GROUP_CODE_FAULT:  # (an untrusted code: an Arrow dictionary's index)
        assert groups is not None
        row = index // call.row_size
        raise code_error(int(groups[row]), row, call.n_groups)
    if fault:
        raise _fault_error(fault, index, yt, yp, weight_arr, call, opts)
    _copy_back(result, out_arr)
    return Sums(loss, wsum, count), result


# The kernel's arguments after the call: y_true, y_pred and sample_weight, each with its element
# stride, and pos_weight (one per class; a scalar one is set on the call).
_KernelInputs = tuple[np.ndarray, int, np.ndarray, int, np.ndarray | None, int, np.ndarray | None]


def _check_inputs(
    opts: LossOptions, y_true: Any, y_pred: Any, sample_weight: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Any, np.dtype, _KernelInputs]:
    """(y_true, y_pred, sample_weight as arrays, the kernel's call description, the working
    dtype, the kernel's inputs) after the checks, in the order of the messages: y_true and
    y_pred, then sample_weight, then pos_weight. The first three are what an out= must not
    overlap and what ``_fault_error`` names."""
    yt, yp = _labels_and_predictions(y_true, y_pred)
    call = _new_call(opts, yp)
    working = _working_dtype(yp)
    weight_arr, weight, weight_stride = _sample_weight(call, sample_weight, yp, working)
    pos_weight = _pos_weight(call, opts.pos_weight, yp, working)
    arrays = (*_flat(yt), *_flat(yp), weight, weight_stride, pos_weight)
    return yt, yp, weight_arr, call, working, arrays


def _copy_back(returned: np.ndarray | None, written: np.ndarray | None) -> None:
    """Copies what the kernel wrote into a fresh array (``_output``) to the out= it stood for."""
    if returned is not None and written is not None and written is not returned:
        np.copyto(returned, written)


def _labels_and_predictions(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = as_array(y_true, "y_true")
    yp = as_array(y_pred, "y_pred")
    check_numeric(yt, "y_true")
    _check_prediction_dtype(yp)
    if yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got y_true {yt.shape} "
            f"and y_pred {yp.shape}"
        )
    return yt, yp


def _working_dtype(yp: np.ndarray) -> np.dtype:
    """float64 for float64 predictions, else float32: the dtype the kernel computes in."""
    return np.dtype(np.float64 if yp.dtype.kind == "f" and yp.itemsize == 8 else np.float32)


def _new_call(opts: LossOptions, yp: np.ndarray) -> Any:
    """The kernel's call description: the sizes of y_pred and the (checked) loss options."""
    shape = yp.shape
    call = _core.Call()
    call.n = yp.size
    if yp.size:  # (an empty input has no rows or classes to index)
        call.row_size = yp.size // shape[0] if yp.ndim else 1
        call.n_classes = shape[-1] if yp.ndim else 1
    call.from_logits = bool(opts.from_logits)
    call.epsilon = float(opts.epsilon)
    call.label_smoothing = float(opts.label_smoothing)
    call.gamma = float(opts.gamma)
    call.has_alpha = opts.alpha is not None
    if opts.alpha is not None:
        call.alpha = float(opts.alpha)
    call.nan_policy = NAN_POLICIES[opts.nan_policy]
    call.validate = bool(opts.validate)
    # (a cap beyond the C int range caps nothing: the kernel never uses more threads than blocks)
    call.threads = 0 if opts.threads is None else min(operator.index(opts.threads), 2**31 - 1)
    return call


def _sample_weight(
    call: Any, sample_weight: Any, yp: np.ndarray, working: np.dtype
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """(the weights as given, the array the kernel reads, its stride); sets the call's weight
    kind. sample_weight: a scalar, y_pred's shape, or one per row (shape[0]) as Keras."""
    shape = yp.shape
    if sample_weight is None:
        call.weight_kind = _core.WeightKind.none
        return None, None, 1
    weight_arr = as_array(sample_weight, "sample_weight")
    check_numeric(weight_arr, "sample_weight")
    if weight_arr.dtype == np.bool_ and weight_arr.ndim:
        # (the kernel reads a bool as its byte: a copy of 0s and 1s, so that any byte but 0,
        # e.g. of an array made by .view(bool), is the weight 1, as NumPy reads it)
        weight_arr = weight_arr.view(np.uint8) != 0
    if weight_arr.ndim == 0:
        w = float(weight_arr)
        if w < 0.0 or math.isinf(w):
            raise ValueError(f"sample_weight must be finite and non-negative; got {w!r}")
        if overflows_in(w, working):  # the kernel multiplies in the working precision
            raise ValueError(
                f"sample_weight must be finite in the working precision ({working}); got {w!r}"
            )
        call.weight_kind = _core.WeightKind.scalar
        call.weight_scalar = w
        return weight_arr, None, 1
    if weight_arr.shape == shape:
        call.weight_kind = _core.WeightKind.per_element
        return (weight_arr, *_flat(weight_arr))
    if weight_arr.ndim == 1 and yp.ndim >= 1 and weight_arr.shape[0] == shape[0]:
        call.weight_kind = (
            _core.WeightKind.per_element if call.row_size == 1 else _core.WeightKind.per_row
        )
        if yp.size == 0:  # (the kernel checks a weight where it reads it: rows of no elements)
            _check_unread_weights(weight_arr)
        return (weight_arr, *_flat(weight_arr))
    allowed = f"a scalar, {shape} (like y_pred)"
    if yp.ndim >= 2:  # (for 1-D input the two are one shape)
        allowed += f" or ({shape[0]},) (one weight per row)"
    raise ValueError(f"sample_weight must be {allowed}; got shape {weight_arr.shape}")


def _check_unread_weights(weights: np.ndarray) -> None:
    """The kernel's range check of per-row weights, for rows with no elements to weigh."""
    w = weights.astype(np.float64)
    bad = (w < 0) | np.isinf(w)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"sample_weight must be finite and non-negative; got {float(w[i])!r} at flat index {i}"
        )


def _pos_weight(call: Any, given: Any, yp: np.ndarray, working: np.dtype) -> np.ndarray | None:
    """The per-class weights for the kernel, or None (a scalar one is set on the call).
    pos_weight: a scalar or one per class (the last axis), as PyTorch."""
    if given is None:
        return None
    shape = yp.shape
    q = as_array(given, "pos_weight")
    check_numeric(q, "pos_weight")
    if q.ndim == 0:
        value = float(q)
        if not value >= 0.0 or overflows_in(value, working):  # (NaN fails too)
            check_pos_weight_values(q, working)  # (raises, naming the rule)
        call.pos_weight_scalar = value
        return None
    if q.ndim == 1 and yp.ndim >= 1 and q.shape[0] == shape[-1]:
        pos_weight = check_pos_weight_values(q, working).astype(working)
        return pos_weight if yp.size else None
    raise pos_weight_shape_error(shape, q.shape)


def pos_weight_shape_error(shape: tuple[int, ...], given: tuple[int, ...]) -> ValueError:
    """The error for a pos_weight of shape `given` with y_pred of `shape` (also fastbce.dask's,
    which checks the length when the graph is built)."""
    allowed = "a scalar" + (f" or ({shape[-1]},) (one per class)" if shape else "")
    return ValueError(
        f"pos_weight must be {allowed} for y_pred of shape {shape}; got shape {given}"
    )


def _output(
    out: Any,
    want_elementwise: bool,
    shape: tuple[int, ...],
    working: np.dtype,
    inputs: tuple[np.ndarray | None, ...],
    name: str = "out",
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """(the array returned, the array the kernel writes, its stride): the elementwise loss in the
    working precision, written in place into `out` when its layout allows. `name`: the
    argument's name in errors (out[0] and out[1] for the derivatives' pair)."""
    if out is None:
        if want_elementwise:
            result = np.empty(shape, working)
            return result, result, 1
        return None, None, 1
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != shape or out.dtype.newbyteorder("=") != working:  # (either byte order)
        raise ValueError(
            f"{name} must have y_pred's shape {shape} and dtype {working}; "
            f"got shape {out.shape} and dtype {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    stride = _element_stride(out) if out.flags.aligned and out.dtype.isnative else None
    overlaps = any(a is not None and np.may_share_memory(out, a) for a in inputs)
    if stride and not overlaps:  # (stride 0: every element in one place, as NumPy copies)
        return out, out, stride
    return out, np.empty(shape, working), 1  # as NumPy does: compute into a fresh array, copy


def _fault_error(
    fault: int,
    index: int,
    yt: np.ndarray,
    yp: np.ndarray,
    weight: np.ndarray | None,
    call: Any,
    opts: LossOptions,
) -> ValueError:
    where = _index_text(yp.shape, index)
    if fault == _FAULT_LABEL:
        value = _value_at(yt, index)
        if yt.dtype == np.bool_:  # (a bool of another byte than 0 or 1, e.g. from .view(bool))
            value = f"a bool stored as byte {_value_at(yt.view(np.uint8), index)}"
        return ValueError(
            f"y_true must be in [0, 1]; got {value!s} at {where} (validate=False skips this check)"
        )
    if fault == _FAULT_PRED:
        return ValueError(
            f"y_pred must be a probability in [0, 1] (from_logits=False); got "
            f"{_value_at(yp, index)!r} at {where} (pass from_logits=True for logits)"
        )
    assert weight is not None or fault == _FAULT_NAN
    if fault == _FAULT_WEIGHT:
        assert weight is not None
        w_index = index if weight.shape == yp.shape else index // call.row_size
        value = _value_at(weight, w_index)
        rule = "finite and non-negative"
        if math.isfinite(float(value)) and float(value) >= 0:  # overflowed the working precision
            rule = "finite in the working precision (float32)"
        return ValueError(
            f"sample_weight must be {rule}; got {value!r} at {_index_text(weight.shape, w_index)}"
        )
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        if math.isnan(float(_value_at(arr, index))):
            return ValueError(f"nan_policy='raise': {name} is NaN at {where}")
    return ValueError(f"nan_policy='raise': sample_weight is NaN for the element at {where}")


# --------------------------------------------------------------------------- the fast path

# Calls whose checks passed, by (dtypes, shapes, options, weights): a call of ndarrays with no out=
# finds its kernel call description here and skips the checks, which would pass again (they
# depend on nothing else: values are checked by the kernel). A few µs of a small call.
_CHECKED_CALLS: dict[tuple[Any, ...], tuple[Any, np.dtype]] = {}
_CHECKED_CALLS_MAX = 256  # entries kept; past that the cache starts over
_NOT_PLAIN = object()  # a weight the fast path does not take


def _weight_key(weight: Any, arrays: bool) -> Any:
    """What the checks of sample_weight (arrays=True) or pos_weight depend on, as a hashable
    key: None; a Python float or int (its value: the checks compare it); an ndarray of 1 or more
    dimensions (its dtype and shape: its values are checked by the kernel). _NOT_PLAIN for
    anything else (a list, a NumPy scalar, a pos_weight array), which takes the general path."""
    if weight is None:
        return None
    kind = type(weight)
    if kind is float:  # (by its bits: -0.0 == 0.0, and each NaN is another key)
        return (kind, weight.hex())
    if kind is int:
        return (kind, weight)
    # (not bool arrays: _sample_weight copies those to 0s and 1s)
    if arrays and kind is np.ndarray and weight.ndim and weight.dtype != np.bool_:
        return (weight.dtype, weight.shape)
    return _NOT_PLAIN


def _fast_weighted_loss(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    key: tuple[Any, ...],
    sample_weight: Any,
    pos_weight: Any,
) -> Any:
    """_fast_loss with weights; None (the general path) for weights it does not take."""
    weight_keys = (_weight_key(sample_weight, True), _weight_key(pos_weight, False))
    if _NOT_PLAIN in weight_keys:  # (the keys are tuples or None)
        return None
    if not y_pred.size and type(sample_weight) is np.ndarray:
        return None  # (the kernel reads no weight to check: the general path checks them)
    return _fast_loss(y_true, y_pred, key, (sample_weight, pos_weight, weight_keys))


def _fast_loss(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    key: tuple[Any, ...],
    weights: tuple[Any, Any, tuple[Any, Any]] | None = None,
) -> Any:
    """The loss of two ndarrays with no out=, options given as a plain_options_key, and weights:
    None, or (sample_weight, pos_weight, their _weight_key). None when the kernel reported a bad
    value: the general path then runs the call again and raises the error it describes."""
    cache_key: tuple[Any, ...] = (y_true.dtype, y_pred.dtype, y_true.shape, y_pred.shape, key)
    sample_weight = pos_weight = None
    if weights is not None:
        sample_weight, pos_weight, weight_keys = weights
        cache_key += (weight_keys,)
    entry = _CHECKED_CALLS.get(cache_key)
    if entry is None:
        # raises what the general path raises
        entry = _checked_call(y_true, y_pred, sample_weight, pos_weight, key)
        if len(_CHECKED_CALLS) >= _CHECKED_CALLS_MAX:
            _CHECKED_CALLS.clear()
        _CHECKED_CALLS[cache_key] = entry
    call, working = entry
    reduction = key[-1]
    y_true_arr, y_true_stride = _flat(y_true)
    y_pred_arr, y_pred_stride = _flat(y_pred)
    weight, weight_stride = None, 1
    if sample_weight is not None and type(sample_weight) is np.ndarray:  # (a scalar: on the call)
        weight, weight_stride = _flat(sample_weight)
    result = np.empty(y_pred.shape, working) if reduction == "none" else None
    loss, weight_sum, count, fault, _ = _core.compute(
        call, y_true_arr, y_true_stride, y_pred_arr, y_pred_stride,
        weight, weight_stride, None, result, 1, None, None,
    )  # fmt: skip
    if fault:
        return None
    return result if result is not None else _reduce(reduction, loss, weight_sum, count)


def _checked_call(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sample_weight: Any,
    pos_weight: Any,
    key: tuple[Any, ...],
) -> tuple[Any, np.dtype]:
    """(the kernel's call description, the working dtype) after the general path's checks, in
    its order: options, reduction, arrays."""
    from_logits, epsilon, label_smoothing, gamma, alpha, nan_policy, validate, threads = key[:-1]
    opts = LossOptions(
        from_logits=from_logits,
        epsilon=epsilon,
        label_smoothing=label_smoothing,
        pos_weight=pos_weight,
        gamma=gamma,
        alpha=alpha,
        nan_policy=nan_policy,
        validate=validate,
        threads=threads,
    )
    check_reduction(key[-1])
    _, _, _, call, working, _ = _check_inputs(opts, y_true, y_pred, sample_weight)
    return call, working


# --------------------------------------------------------------------------- public API


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    *,
    from_logits: bool = False,
    epsilon: float = 1e-7,
    label_smoothing: float = 0.0,
    sample_weight: Any = None,
    pos_weight: Any = None,
    gamma: float = 0.0,
    alpha: float | None = None,
    reduction: str = "mean",
    nan_policy: str = "propagate",
    validate: bool = True,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    """Binary cross-entropy of labels ``y_true`` and predictions ``y_pred``.

    The loss of every element, then a reduction. The formulas are in docs/reference.md; the
    choices it leaves open in docs/semantics.md.

    Parameters
    ----------
    y_true : array_like
        Labels in [0, 1] (soft labels too), any bool, integer or float dtype, shaped as ``y_pred``.
    y_pred : array_like
        Probabilities in [0, 1], or logits with ``from_logits=True``: float16, float32, float64
        (or bfloat16 with ml_dtypes), any shape (0-d too).
    from_logits : bool, default False
        ``y_pred`` holds logits.
    epsilon : float, default 1e-7
        Probabilities are clipped to ``[epsilon, 1 - epsilon]``; in (0, 0.5).
    label_smoothing : float, default 0.0
        ``s`` in [0, 1]: the labels become ``y * (1 - s) + s / 2``.
    sample_weight : array_like or float, optional
        Finite weights >= 0: a scalar, ``y_pred``'s shape, or one per row (``y_pred.shape[0]``).
    pos_weight : array_like or float, optional
        Finite weight >= 0 of the positive term: a scalar or one per class (``y_pred.shape[-1]``).
    gamma : float, default 0.0
        Focal exponent >= 0: the loss is multiplied by ``(1 - p_t) ** gamma``.
    alpha : float, optional
        Class balancing in [0, 1]: the loss is multiplied by
        ``alpha * y' + (1 - alpha) * (1 - y')``, with ``y'`` the smoothed label.
    reduction : {"mean", "sum", "weighted_mean", "none"}, default "mean"
        "mean" divides the sum by the number of elements, "weighted_mean" by the sum of the
        weights; "none" returns the loss of every element.
    nan_policy : {"propagate", "omit", "raise"}, default "propagate"
        A NaN in an input gives NaN, is left out of the reductions (NaN with "none"), or raises.
    validate : bool, default True
        Check that labels, and probabilities, are in [0, 1].
    threads : int, optional
        Caps the threads of this call; by default large inputs use every core.
    out : numpy.ndarray, optional
        With ``reduction="none"``: where to write the loss (``y_pred``'s shape, working precision).

    Returns
    -------
    float or numpy.ndarray
        A Python float summed in float64 (NaN for the mean of nothing); with "none" an array of
        ``y_pred``'s shape in the working precision (float64 for float64 input, else float32).

    Raises
    ------
    TypeError
        A non-numeric input, a ``y_pred`` that is not float, an option of the wrong type.
    ValueError
        Shapes that differ, a label or probability outside [0, 1], a negative or infinite weight,
        an option out of range, a NaN under ``nan_policy="raise"``; naming the first offender.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce
    >>> y_true = np.array([0, 1, 1, 0], dtype=np.uint8)
    >>> y_prob = np.array([0.1, 0.8, 0.6, 0.3], dtype=np.float32)
    >>> round(fastbce.binary_crossentropy(y_true, y_prob), 4)
    0.299
    >>> fastbce.binary_crossentropy(y_true, y_prob, reduction="none").round(4)
    array([0.1054, 0.2231, 0.5108, 0.3567], dtype=float32)
    >>> logits = np.array([-2.2, 1.4, 0.4, -0.8], dtype=np.float32)
    >>> round(fastbce.binary_crossentropy(y_true, logits, from_logits=True, pos_weight=3.0), 4)
    0.6691
    """
    # The common case (ndarrays, no out=, plain options and weights) skips checks already passed:
    # a small call costs a few µs less. Anything else, or a bad value, takes the general path.
    if type(y_true) is np.ndarray and type(y_pred) is np.ndarray and out is None:
        key = plain_options_key(
            from_logits, epsilon, label_smoothing, gamma, alpha, nan_policy, validate, threads,
            reduction,
        )  # fmt: skip
        if key is not None:
            if sample_weight is None and pos_weight is None:
                result = _fast_loss(y_true, y_pred, key)
            else:
                result = _fast_weighted_loss(y_true, y_pred, key, sample_weight, pos_weight)
            if result is not None:
                return result
    opts = LossOptions(
        from_logits=from_logits,
        epsilon=epsilon,
        label_smoothing=label_smoothing,
        pos_weight=pos_weight,
        gamma=gamma,
        alpha=alpha,
        nan_policy=nan_policy,
        validate=validate,
        threads=threads,
    )
    check_reduction(reduction)
    if out is not None and reduction != "none":
        raise ValueError(f"out is only allowed with reduction='none'; got reduction={reduction!r}")
    sums, elementwise = _compute(
        opts, y_true, y_pred, sample_weight, out=out, want_elementwise=reduction == "none"
    )
    if reduction == "none":
        return elementwise
    return reduce_sums(sums, reduction)


def reduce_sums(sums: Sums, reduction: str) -> float:
    """The value of a reduction from the kernel's sums."""
    return _reduce(reduction, sums.loss, sums.weight, sums.count)


def _reduce(reduction: str, loss: float, weight: float, count: float) -> float:
    """The value of a reduction from the kernel's sums (the one place that divides)."""
    if reduction == "sum":
        return float(loss)
    if reduction == "mean":
        return loss / count if count else math.nan
    return loss / weight if weight else math.nan


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    from_logits: bool = False,
    epsilon: float = 1e-7,
    label_smoothing: float = 0.0,
    sample_weight: Any = None,
    pos_weight: Any = None,
    reduction: str = "mean",
    nan_policy: str = "propagate",
    validate: bool = True,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    """Binary focal cross-entropy: ``binary_crossentropy`` with ``gamma=2.0`` by default.

    The cross-entropy of each element is multiplied by ``(1 - p_t) ** gamma``, where ``p_t`` is
    the probability the prediction gives the true class, and, when ``alpha`` is given, by
    ``alpha * y' + (1 - alpha) * (1 - y')`` with ``y'`` the smoothed label (Keras'
    ``apply_class_balancing=True``). The factor is
    formed without cancellation, so it is accurate when tiny and finite for every ``gamma > 0``.
    The other options (``from_logits``, ``epsilon``, ``label_smoothing``, ``sample_weight``,
    ``pos_weight``, ``reduction``, ``nan_policy``, ``validate``, ``threads``, ``out``) are those
    of ``binary_crossentropy``, with its defaults.

    Parameters
    ----------
    y_true, y_pred : array_like
        Labels and predictions, as in ``binary_crossentropy``.
    gamma : float, default 2.0
        Focal exponent >= 0 (0 gives the plain cross-entropy).
    alpha : float, optional
        Class balancing in [0, 1]; None (the default) balances nothing.

    Returns
    -------
    float or numpy.ndarray
        As ``binary_crossentropy``: a Python float, or the loss of every element.

    Raises
    ------
    TypeError
        As ``binary_crossentropy``.
    ValueError
        As ``binary_crossentropy``.

    See Also
    --------
    binary_crossentropy

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce
    >>> y_true = np.array([0, 1, 1, 0], dtype=np.uint8)
    >>> logits = np.array([-2.2, 1.4, 0.4, -0.8], dtype=np.float32)
    >>> round(fastbce.binary_focal_crossentropy(y_true, logits, from_logits=True), 4)
    0.032
    >>> y_prob = np.array([0.1, 0.8, 0.6, 0.3], dtype=np.float32)
    >>> round(fastbce.binary_focal_crossentropy(y_true, y_prob, gamma=2.0, alpha=0.25), 4)
    0.0119
    """
    return binary_crossentropy(
        y_true,
        y_pred,
        from_logits=from_logits,
        epsilon=epsilon,
        label_smoothing=label_smoothing,
        sample_weight=sample_weight,
        pos_weight=pos_weight,
        gamma=gamma,
        alpha=alpha,
        reduction=reduction,
        nan_policy=nan_policy,
        validate=validate,
        threads=threads,
        out=out,
    )
