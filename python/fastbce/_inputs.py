"""Any array-like argument of the API as an ndarray, with the errors that name it."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "as_array",
    "as_arrays",
    "check_numeric",
    "check_pos_weight",
    "check_pos_weight_values",
    "is_bfloat16",
    "overflows_in",
    "same_pos_weight",
]

# The arguments that must hold floating-point values (an integer is a TypeError).
PREDICTIONS = ("y_pred",)


def as_array(obj: Any, name: str) -> np.ndarray:
    """An ndarray view of obj without copying when it is one already or exposes its memory
    (``__array__``, the buffer protocol, or ``__dlpack__`` on the CPU)."""
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack__") and not hasattr(obj, "__array__"):
        try:
            return np.from_dlpack(obj)
        except (TypeError, ValueError, BufferError, RuntimeError) as e:
            raise TypeError(
                f"{name}: cannot read it through __dlpack__ (is it on the CPU?): {e}"
            ) from None
    if type(obj) is int and not -(1 << 63) <= obj < 1 << 64:
        # (NumPy makes an object array of an int past 64 bits: a float, as a float would be;
        # but predictions must be floats, as for an int of 64 bits)
        if name in PREDICTIONS:
            raise TypeError(
                f"{name} must be float16, float32 or float64 (or ml_dtypes.bfloat16); "
                f"got an integer of {obj.bit_length()} bits"
            )
        try:
            return np.asarray(float(obj))
        except OverflowError:
            raise ValueError(
                f"{name} must be finite; got an integer of {obj.bit_length()} bits"
            ) from None
    kinds = _column_kinds(obj)
    if kinds is not None and name in PREDICTIONS and set(kinds) & set("biu"):
        raise TypeError(
            f"{name} must be float16, float32 or float64 (or ml_dtypes.bfloat16); "
            f"got {_declared(obj)}"
        )
    try:
        arr = np.asarray(obj)
    except (TypeError, ValueError) as e:
        bfloat16 = _torch_bfloat16(obj)
        if bfloat16 is not None:
            return bfloat16
        raise type(e)(f"{name} is not array-like: {e}") from None
    except RuntimeError as e:  # (e.g. a torch tensor that requires grad: .detach() it)
        raise TypeError(f"{name}: cannot read it as an array: {e}") from None
    if arr.dtype == object and kinds is not None:
        return _missing_as_nan(obj, kinds, arr)
    return arr


def as_arrays(y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """as_array of a call's three inputs (the weight may be None), for code that reads their
    shapes before the kernel call does (a tensor's np.size is its method, a __dlpack__
    object's 1)."""
    y_true, y_pred = as_array(y_true, "y_true"), as_array(y_pred, "y_pred")
    if sample_weight is not None:
        sample_weight = as_array(sample_weight, "sample_weight")
    return y_true, y_pred, sample_weight


def _column_kinds(obj: Any) -> str | None:
    """The kinds ('b', 'i', 'u', 'f', or 'O' for any other) that a pandas, pyarrow or polars
    column (or pandas frame) declares, one a column; None for any other object. Their own
    conversions turn a nullable integer column with missing values into float64 with NaN, so
    its declared type is what says whether it is an integer."""
    module = type(obj).__module__.partition(".")[0]
    if module == "pandas":
        dtypes = list(obj.dtypes) if hasattr(obj, "columns") else [getattr(obj, "dtype", None)]
        return "".join(getattr(d, "kind", "O") for d in dtypes)
    if module == "pyarrow" and hasattr(obj, "type"):
        import pyarrow as pa

        t = obj.type
        if pa.types.is_boolean(t):
            return "b"
        return "i" if pa.types.is_integer(t) else "f" if pa.types.is_floating(t) else "O"
    if module == "polars" and hasattr(obj, "dtype"):
        d = obj.dtype
        if str(d) == "Boolean":
            return "b"
        return "i" if d.is_integer() else "f" if d.is_float() else "O"
    return None


def _declared(obj: Any) -> str:
    """A column's declared type, for messages."""
    if hasattr(obj, "columns") and hasattr(obj, "dtypes"):  # (a pandas frame)
        return "dtypes " + ", ".join(sorted({str(d) for d in obj.dtypes}))
    return f"dtype {getattr(obj, 'type', None) or getattr(obj, 'dtype', '?')}"


def _missing_as_nan(obj: Any, kinds: str, arr: np.ndarray) -> np.ndarray:
    """A pandas (nullable boolean, Int, Float), pyarrow or polars column of numbers with missing
    values (pd.NA, null), which NumPy makes an object array, as float64 with NaN there (as
    fastbce.dask reads them): nan_policy decides, as for a NaN. Anything else is returned as
    NumPy made it (check_numeric's TypeError)."""
    if not set(kinds) <= set("biuf"):
        return arr
    module = type(obj).__module__.partition(".")[0]
    if module == "pandas":
        return np.asarray(obj.to_numpy(dtype=np.float64, na_value=np.nan))
    if module == "pyarrow":
        from ._arrow import to_numpy

        return to_numpy(obj, null=np.nan)
    import polars as pl

    return np.asarray(obj.cast(pl.Float64).to_numpy())


def _torch_bfloat16(obj: Any) -> np.ndarray | None:
    """A PyTorch bfloat16 CPU tensor as an ml_dtypes.bfloat16 view of its memory (NumPy has no
    bfloat16, so the tensor's own conversion refuses it), or None for anything else."""
    if type(obj).__module__ != "torch" or str(getattr(obj, "dtype", "")) != "torch.bfloat16":
        return None
    try:
        import ml_dtypes
    except ImportError:
        return None  # (the caller's TypeError: bfloat16 needs ml_dtypes, as for other inputs)
    import torch

    try:  # (a meta or sparse tensor has no memory to view)
        return np.asarray(obj.view(torch.int16)).view(ml_dtypes.bfloat16)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None


def is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.name == "bfloat16"


def check_numeric(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind in "biu" or (arr.dtype.kind == "f" and arr.itemsize <= 8):
        return
    if is_bfloat16(arr.dtype):
        return
    raise TypeError(f"{name} must hold bool, integer or float values; got dtype {arr.dtype}")


def check_pos_weight(given: Any) -> None:
    """An accumulator's check at construction: a pos_weight that no input could take (not
    numbers, 2-D, negative, NaN, infinite). Its length, and the working precision's range, are
    checked against each batch (``_api._pos_weight``)."""
    q = as_array(given, "pos_weight")
    check_numeric(q, "pos_weight")
    if q.ndim > 1:
        raise ValueError(f"pos_weight must be a scalar or 1-D (one per class); got shape {q.shape}")
    check_pos_weight_values(q)


def overflows_in(values: Any, working: np.dtype | None) -> Any:
    """Whether float64 values round to infinity in the working precision, where the kernel
    multiplies by a weight: the rule a weight array meets as the kernel converts it, so a
    scalar weight meets the same one (3.40282356e38 rounds to float32's largest, 3.5e38 to
    inf). Elementwise for an array; None: no value overflows. (NaN does not: other rules
    decide about it.)"""
    if working is None:
        return np.zeros(np.shape(values), bool)
    with np.errstate(over="ignore"):  # (the cast's overflow is the answer, not a warning)
        return np.isinf(np.asarray(values, np.float64).astype(working))


def check_pos_weight_values(q: np.ndarray, working: np.dtype | None = None) -> np.ndarray:
    """pos_weight's values as float64 (flat), or a ValueError naming the first one that is
    negative, NaN or infinite, or (with `working`) not finite once rounded to that precision
    (overflows_in), where the kernel multiplies by it."""
    q64 = q.astype(np.float64).reshape(-1)
    bad = ~(np.isfinite(q64) & (q64 >= 0)) | overflows_in(q64, working)
    if bad.any():
        i = int(np.argmax(bad))
        rule = "finite and non-negative"
        if np.isfinite(q64[i]) and q64[i] >= 0:
            rule = f"finite in the working precision ({working})"
        where = f" at index {i}" if q.ndim else ""
        raise ValueError(f"pos_weight must be {rule}; got {float(q64[i])!r}{where}")
    return q64


def same_pos_weight(a: Any, b: Any) -> bool:
    """Whether two accumulators' pos_weight options are the same values (either as given: a
    scalar, a list, an array or any array-like)."""
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(as_array(a, "pos_weight"), as_array(b, "pos_weight")))
