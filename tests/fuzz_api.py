"""A fuzzer for fastbce's public API: random shapes, dtypes, layouts, special values and options.

Each case is made from one integer seed, so any failure is replayed by its seed alone. The oracle
follows shared/SPEC.md sections 2-3 (and docs/semantics.md where the spec is silent):

- every call returns, or raises TypeError or ValueError whose message names an argument;
  when the case is known to be invalid, the error must name one of the arguments at fault,
  and when it is known to be valid, there must be no error at all;
- inputs are never modified;
- the result has the documented type, shape and dtype; with ``out=`` it is ``out``;
- valid input (labels and probabilities in [0, 1], no NaN, valid weights) never gives NaN
  (except the documented empty means), and on moderate values it matches the float64 reference
  of tests/reference.py.

The test suite runs a few thousand cases (tests/test_fuzz.py); a long campaign runs in worker
processes, so that a crash or a hang is caught and its seed reported:

    nice python tests/fuzz_api.py --calls 1000000 --seed 1
    python tests/fuzz_api.py --replay SEED        # one case, verbosely
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastbce
from reference import bce_reference

try:
    import ml_dtypes

    BFLOAT16: Any = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a test dependency
    BFLOAT16 = None

ARG_NAMES = (
    "y_true",
    "y_pred",
    "sample_weight",
    "pos_weight",
    "from_logits",
    "epsilon",
    "label_smoothing",
    "gamma",
    "alpha",
    "reduction",
    "nan_policy",
    "validate",
    "threads",
    "out",
)
PRED_DTYPES = [np.dtype(t) for t in ("float16", "float32", "float64")] + (
    [BFLOAT16] if BFLOAT16 else []
)
LABEL_DTYPES = [
    np.dtype(t)
    for t in (
        "bool",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float16",
        "float32",
        "float64",
    )
] + ([BFLOAT16] if BFLOAT16 else [])
BAD_DTYPES = [
    np.dtype(t)
    for t in (
        "complex64",
        "complex128",
        "object",
        "U3",
        "S2",
        "longdouble",
        "datetime64[s]",
        "timedelta64[ms]",
        "V4",
    )
] + [np.dtype([("a", "f4")])]


class Invalid(Exception):
    """Raised by the generator's model: the case is invalid because of these arguments."""


@dataclass
class Case:
    seed: int
    func: Any
    y_true: Any
    y_pred: Any
    kwargs: dict[str, Any]
    # arguments the generator made invalid on purpose (an error must name one of them)
    bad: set[str] = field(default_factory=set)
    # arguments whose data may be invalid, so that an error naming them is allowed
    maybe_bad: set[str] = field(default_factory=set)
    note: list[str] = field(default_factory=list)

    def describe(self) -> str:
        def show(v: Any) -> str:
            if isinstance(v, np.ndarray):
                text = np.array2string(v.ravel()[:12], threshold=12, precision=9)
                return (
                    f"ndarray(shape={v.shape}, dtype={v.dtype}, strides={v.strides}, "
                    f"aligned={v.flags.aligned}, writeable={v.flags.writeable}, values={text})"
                )
            text = repr(v)
            return text if len(text) < 200 else text[:200] + "..."

        lines = [
            f"seed {self.seed}: fastbce.{self.func.__name__}(",
            f"  y_true={show(self.y_true)},",
            f"  y_pred={show(self.y_pred)},",
        ]
        lines += [f"  {k}={show(v)}," for k, v in self.kwargs.items()]
        lines.append(
            f")  bad={sorted(self.bad)} maybe_bad={sorted(self.maybe_bad)} {' '.join(self.note)}"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- values


def _special_floats(rng: np.random.Generator, size: int, *, allow_nan: bool) -> np.ndarray:
    pool = [
        0.0,
        -0.0,
        1.0,
        0.5,
        1e-7,
        1 - 1e-7,
        5e-324,
        1e-40,
        6e-8,
        1e-45,
        2.0,
        -1.0,
        np.inf,
        -np.inf,
        1e300,
        -1e300,
        3.5e38,
        65520.0,
        1e-310,
        255.0,
    ]
    if allow_nan:
        pool.append(np.nan)
    return rng.choice(np.array(pool), size)


def _labels(rng, size, dtype, valid) -> np.ndarray:
    if valid:
        if dtype.kind in "biu" or rng.random() < 0.5:
            values = rng.integers(0, 2, size).astype(np.float64)
        else:
            values = rng.random(size)
            values[rng.random(size) < 0.2] = rng.choice([0.0, 1.0, 1e-40, 1 - 1e-9, 5e-324])
    else:
        values = rng.random(size)
        mask = rng.random(size) < 0.3
        values[mask] = _special_floats(rng, int(mask.sum()), allow_nan=True)
    return _cast(values, dtype)


def _preds(rng, size, dtype, from_logits, valid) -> np.ndarray:
    if valid and from_logits:
        values = rng.normal(0, rng.choice([1.0, 10.0, 100.0, 1e4]), size)
        mask = rng.random(size) < 0.2
        values[mask] = rng.choice(
            [np.inf, -np.inf, 0.0, 88.7, -103.0, 750.0, -750.0, 1e30, -1e30], int(mask.sum())
        )
    elif valid:
        values = rng.random(size)
        mask = rng.random(size) < 0.3
        values[mask] = rng.choice(
            [0.0, 1.0, 1e-7, 1 - 1e-7, 1e-45, 5e-324, 1e-310, 0.5, 1 - 1e-16], int(mask.sum())
        )
    else:
        values = rng.random(size) * 3 - 1
        mask = rng.random(size) < 0.4
        values[mask] = _special_floats(rng, int(mask.sum()), allow_nan=True)
    return _cast(values, dtype)


def _weights(rng, size, dtype, valid) -> np.ndarray:
    values = rng.random(size) * rng.choice([1.0, 10.0, 1e-3])
    mask = rng.random(size) < 0.2
    if valid:
        values[mask] = rng.choice([0.0, 1.0, 1e-45, 1e30, 5e-324, 2.0], int(mask.sum()))
    else:
        values[mask] = _special_floats(rng, int(mask.sum()), allow_nan=True)
    return _cast(values, dtype)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """values as dtype: floats overflow to inf, integers saturate (NaN becomes 0)."""
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            v = np.nan_to_num(values, nan=0.0, posinf=info.max, neginf=info.min)
            v = np.clip(v, info.min, info.max)
            out = v.astype(dtype)
            out[v >= float(info.max)] = info.max  # float(max) may round past max
            return out
        if dtype.kind == "b":
            return values.astype(bool)
        return values.astype(dtype)


# --------------------------------------------------------------------------- layouts


def _weights_valid_in_float32(w: np.ndarray, valid_w: bool) -> bool:
    """Whether per-row or per-element weights are valid in float32, the working precision."""
    with np.errstate(all="ignore"):  # (a valid value may overflow a small dtype)
        as_float32 = w.astype(np.float32)
        return valid_w and bool((as_float32 >= 0).all()) and not np.isinf(as_float32).any()


def _layout(rng: np.random.Generator, arr: np.ndarray, note: list[str], name: str) -> Any:
    """The same values through a random memory layout (or container)."""
    kind = rng.choice(
        ["plain"] * 6
        + [
            "reversed",
            "step",
            "transposed",
            "fortran",
            "unaligned",
            "byteswapped",
            "readonly",
            "broadcast",
            "list",
            "memoryview",
        ]
    )
    if kind != "plain":
        note.append(f"{name}:{kind}")
    if kind == "reversed" and arr.ndim:
        axis = int(rng.integers(arr.ndim))
        base = np.flip(arr, axis).copy()
        return np.flip(base, axis)
    if kind == "step" and arr.ndim:
        k = int(rng.integers(2, 4))
        base = np.zeros((arr.shape[0] * k,) + arr.shape[1:], arr.dtype)
        view = base[::k] if rng.random() < 0.5 else base[::-k][::-1]
        view[...] = arr
        return view
    if kind == "transposed" and arr.ndim >= 2:
        return arr.T.copy().T
    if kind == "fortran" and arr.ndim:  # (asfortranarray makes a 0-d array 1-d)
        return np.asfortranarray(arr)
    if kind == "unaligned" and arr.dtype.itemsize > 1 and arr.dtype.kind in "biuf":
        raw = np.zeros(arr.nbytes + 1, np.uint8)
        view = raw[1:].view(arr.dtype).reshape(arr.shape)
        view[...] = arr
        return view
    if kind == "byteswapped" and arr.dtype.itemsize > 1 and arr.dtype.kind in "iuf":
        return arr.astype(arr.dtype.newbyteorder("S"))
    if kind == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if kind == "broadcast" and arr.size:  # zero strides: every element is the first one
        return np.broadcast_to(arr.reshape(-1)[:1].reshape((1,) * arr.ndim), arr.shape)
    if kind == "list" and arr.dtype.kind in "biuf" and arr.dtype != BFLOAT16 and 0 < arr.size < 50:
        return arr.tolist()
    if kind == "memoryview" and arr.dtype.kind in "biuf" and arr.dtype != BFLOAT16 and arr.ndim:
        return memoryview(np.ascontiguousarray(arr))
    return arr


def _as_values(obj: Any, like: np.ndarray) -> np.ndarray:
    """The values the API sees for obj (a layout of `like`)."""
    if isinstance(obj, (list, memoryview)):
        return np.asarray(obj)
    return np.asarray(obj)


# --------------------------------------------------------------------------- one case


def _bad_object(rng: np.random.Generator, allow_none: bool = True) -> Any:
    choices = [
        None if allow_none else "",
        "abc",
        b"\x00\x01",
        {"a": 1},
        {1, 2},
        1 + 2j,
        [[0.5], [0.5, 0.5]],
        [None, 0.5],
        object(),
        [1, "a"],
        np.array(["0.5"]),
        np.zeros(2, np.complex64),
    ]
    return choices[int(rng.integers(len(choices)))]


def make_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    func = fastbce.binary_crossentropy if rng.random() < 0.6 else fastbce.binary_focal_crossentropy
    case = Case(seed, func, None, None, {})
    kw = case.kwargs

    # shape: 0-d, empty, small, or with one longer axis (tiles of 512, blocks of 65536)
    ndim = int(rng.choice([0, 1, 1, 2, 2, 3]))
    shape = [int(rng.integers(0, 7)) for _ in range(ndim)]
    if ndim and rng.random() < 0.15:
        shape[int(rng.integers(ndim))] = int(rng.choice([511, 512, 513, 1025, 4099]))
    if ndim and rng.random() < 0.003:
        shape = [int(rng.choice([65535, 65537, 131073]))] + [1] * (ndim - 1)
    shape_t = tuple(shape)
    size = math.prod(shape_t)

    # options
    from_logits = bool(rng.random() < 0.5)
    valid_values = rng.random() < 0.7
    pdt = PRED_DTYPES[int(rng.integers(len(PRED_DTYPES)))]
    ldt = LABEL_DTYPES[int(rng.integers(len(LABEL_DTYPES)))]
    y = _labels(rng, size, ldt, valid_values).reshape(shape_t)
    p = _preds(rng, size, pdt, from_logits, valid_values).reshape(shape_t)
    if not valid_values:
        case.maybe_bad |= {"y_true", "y_pred"}

    if rng.random() < 0.04:  # a dtype the API refuses
        which = "y_pred" if rng.random() < 0.5 else "y_true"
        dt = BAD_DTYPES[int(rng.integers(len(BAD_DTYPES)))]
        if which == "y_pred" and rng.random() < 0.5:
            dt = np.dtype(rng.choice(["int32", "uint8", "bool", "int64"]))
        bad = np.zeros(shape_t, dt)
        if which == "y_pred":
            p = bad
        else:
            y = bad
        case.bad.add(which)
    if rng.random() < 0.02:
        case.bad.add("y_true" if rng.random() < 0.5 else "y_pred")
        obj = _bad_object(rng)
        if "y_true" in case.bad:
            y = obj
        else:
            p = obj
    if rng.random() < 0.04 and isinstance(y, np.ndarray):  # shapes differ
        other = tuple(s + 1 for s in shape_t) if shape_t else (2,)
        y = np.zeros(other, y.dtype)
        case.bad |= {"y_true", "y_pred"}

    case.y_true = _layout(rng, y, case.note, "y_true") if isinstance(y, np.ndarray) else y
    case.y_pred = _layout(rng, p, case.note, "y_pred") if isinstance(p, np.ndarray) else p

    def option(name, valid_pool, invalid_pool, p_set=0.5, p_bad=0.015):
        if rng.random() < p_bad:
            kw[name] = invalid_pool[int(rng.integers(len(invalid_pool)))]
            case.bad.add(name)
        elif rng.random() < p_set:
            kw[name] = valid_pool[int(rng.integers(len(valid_pool)))]

    kw["from_logits"] = from_logits
    if rng.random() < 0.03:
        kw["from_logits"] = [None, "yes", 1, 0.0, np.array([True])][int(rng.integers(5))]
        case.bad.add("from_logits")
    option(
        "epsilon",
        [1e-7, 1e-3, 0.49, 1e-300, 5e-324, np.float32(1e-7), np.finfo(np.float64).eps],
        [0.0, 0.5, -1e-7, np.nan, np.inf, "1e-7", None, 10**400, True, [1e-7], 1],
    )
    option(
        "label_smoothing",
        [0.0, 0.1, 1.0, 0.5, 1e-300, np.float16(0.2), 0, 1],
        [-0.1, 1.01, np.nan, np.inf, "0.1", None, 10**400, [0.1]],
    )
    option(
        "gamma",
        [0.0, 2.0, 0.5, 1e-46, 1e-300, 5.0, 1e39, 1e300, 50.0, 1, np.float64(3.0)],
        [-1.0, np.nan, np.inf, "2", None, 10**400, False, [2.0]],
    )
    option(
        "alpha",
        [None, 0.25, 0.0, 1.0, 1e-5, 1 - 1e-9, 0.75, 1],
        [-0.1, 1.5, np.nan, "0.25", 10**400, [0.25]],
    )
    option(
        "reduction",
        ["none", "sum", "mean", "weighted_mean"],
        ["avg", "", None, 1, ["sum"], np.array(["sum", "mean"]), "SUM"],
        p_set=0.8,
    )
    option(
        "nan_policy",
        ["propagate", "omit", "raise"],
        ["ignore", None, 0, ["omit"], np.array(["omit", "raise"]), "Raise"],
        p_set=0.6,
    )
    option("validate", [True, False, np.True_], [1, "yes", None, [True]], p_set=0.3)
    option(
        "threads",
        [None, 1, 2, 3, 4, 16, np.int64(2), 2**40],
        [0, -1, 2.0, "2", True, -(2**70), [2]],
        p_set=0.4,
    )
    if not case.bad and rng.random() < 0.01:  # an unknown keyword
        kw[str(rng.choice(["from_logit", "smoothing", "weights", "axis"]))] = 1
        case.bad.add("<keyword>")

    # sample_weight
    valid_w = rng.random() < 0.8
    r = rng.random()
    if r < 0.15:
        if valid_w:
            value: Any = float(
                rng.choice([0.0, 1.0, 2.5, 1e-45, 1e30, 1e39, np.nan, 5e-324, 1e300])
            )
        else:
            value = float(rng.choice([-1.0, np.inf, -np.inf]))
            case.bad.add("sample_weight")
        if valid_w and rng.random() < 0.1:
            value = int(rng.integers(0, 5))
        elif rng.random() < 0.3:
            with np.errstate(over="ignore"):
                value = np.array(value).astype(rng.choice(["float16", "float32", "float64"]))
        kw["sample_weight"] = value
        with np.errstate(all="ignore"):
            as_float32 = np.float32(np.asarray(value))
        if np.isinf(as_float32) or as_float32 < 0:  # invalid in the working precision
            case.maybe_bad.add("sample_weight")
    elif r < 0.35:
        wdt = LABEL_DTYPES[int(rng.integers(1, len(LABEL_DTYPES)))]
        w = _weights(rng, size, wdt, valid_w).reshape(shape_t)
        kw["sample_weight"] = _layout(rng, w, case.note, "sample_weight")
        if not _weights_valid_in_float32(w, valid_w):
            case.maybe_bad.add("sample_weight")
    elif r < 0.5 and ndim:
        wdt = LABEL_DTYPES[int(rng.integers(1, len(LABEL_DTYPES)))]
        w = _weights(rng, shape_t[0], wdt, valid_w)
        kw["sample_weight"] = _layout(rng, w, case.note, "sample_weight")
        if not _weights_valid_in_float32(w, valid_w):
            case.maybe_bad.add("sample_weight")
    elif r < 0.53:
        kw["sample_weight"] = [
            np.zeros(tuple(s + 1 for s in shape_t) or (3,)),
            _bad_object(rng, allow_none=False),
            np.ones(shape_t, np.complex64),
            np.ones((2, 2, 2, 2)),
        ][int(rng.integers(4))]
        case.bad.add("sample_weight")

    # pos_weight
    r = rng.random()
    if r < 0.15:
        kw["pos_weight"] = float(rng.choice([0.0, 1.0, 3.0, 0.5, 1e30, 1e39, 1e300, 5e-324]))
        if kw["pos_weight"] > 1e38:  # too large for float32
            case.maybe_bad.add("pos_weight")
    elif r < 0.3 and ndim:
        q = rng.random(shape_t[-1]) * 5
        q[rng.random(shape_t[-1]) < 0.2] = rng.choice([0.0, 1e39, 1e-45, 1e300])
        kw["pos_weight"] = _cast(
            q, np.dtype(rng.choice(["float16", "float32", "float64", "int32", "uint8"]))
        )
        if not (kw["pos_weight"].astype(np.float64) <= 3.4e38).all():
            case.maybe_bad.add("pos_weight")
    elif r < 0.34:
        kw["pos_weight"] = [
            -1.0,
            np.nan,
            np.inf,
            np.array([1.0, -1.0]),
            np.ones((2, 2)),
            "1",
            np.ones(3, np.complex128),
            np.array([np.nan]),
        ][int(rng.integers(8))]
        case.bad.add("pos_weight")

    # out
    with_out = rng.random() < 0.25
    if with_out and "reduction" not in case.bad and rng.random() < 0.85:
        kw["reduction"] = "none"
    reduction = kw.get("reduction", "mean")
    reducing = not (isinstance(reduction, str) and reduction == "none")
    if with_out:
        try:
            working = _working(np.asarray(case.y_pred))
        except Exception:  # noqa: BLE001 - a bad object: any dtype will do
            working = np.dtype(np.float32)
        r = rng.random()
        if r < 0.7:
            o = np.full(shape_t, np.nan, working)
            kind = rng.choice(["plain", "plain", "reversed", "step", "fortran", "zero-stride"])
            if kind == "reversed" and o.ndim:
                o = o[::-1]
            elif kind == "step" and o.ndim:
                o = np.full((shape_t[0] * 2,) + shape_t[1:], np.nan, working)[::2]
            elif kind == "fortran" and o.ndim:
                o = np.asfortranarray(o)
            elif kind == "zero-stride" and size:
                o = np.lib.stride_tricks.as_strided(
                    np.full(1, np.nan, working), shape_t, (0,) * len(shape_t)
                )
            case.note.append(f"out:{kind}")
            kw["out"] = o
            if reducing:
                case.bad |= {"out", "reduction"}
        elif (
            r < 0.8
            and isinstance(case.y_pred, np.ndarray)
            and case.y_pred.dtype == working
            and case.y_pred.flags.writeable
        ):
            kw["out"] = case.y_pred  # out aliases y_pred, as np.add(a, b, out=a): legal
            case.note.append("out:aliases-y_pred")
            if reducing:
                case.bad |= {"out", "reduction"}
        else:
            kw["out"] = [
                np.zeros(shape_t + (1,), working),
                np.zeros(shape_t, np.float16),
                [0.0],
                np.zeros(shape_t, working).copy(),
            ][int(rng.integers(4))]
            if (
                isinstance(kw["out"], np.ndarray)
                and kw["out"].shape == shape_t
                and kw["out"].dtype == working
            ):
                kw["out"].flags.writeable = False
            case.bad.add("out")
            if reducing:
                case.bad.add("reduction")
    return case


# --------------------------------------------------------------------------- the oracle


def _snapshot(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy(), obj.shape, obj.strides, obj.dtype)
    if isinstance(obj, memoryview):
        return ("bytes", obj.tobytes())
    if isinstance(obj, list):
        return ("list", repr(obj))
    return None


def _same(before: Any, obj: Any) -> bool:
    if before is None:
        return True
    if before[0] == "array":
        _, data, shape, strides, dtype = before
        if obj.shape != shape or obj.strides != strides or obj.dtype != dtype:
            return False
        return data.tobytes() == np.ascontiguousarray(obj).tobytes()
    if before[0] == "bytes":
        return before[1] == obj.tobytes()
    return before[1] == repr(obj)


def _working(y_pred: np.ndarray) -> np.dtype:
    return np.dtype(
        np.float64 if y_pred.dtype.kind == "f" and y_pred.dtype.itemsize == 8 else np.float32
    )


def _data_problems(case: Case, yt: np.ndarray, yp: np.ndarray) -> tuple[set[str], bool]:
    """For a case with valid argument types and shapes: the arguments whose *values* make the
    call fail (under validate / nan_policy), and whether all values are valid (no NaN).
    yt and yp are the values of y_true and y_pred before the call."""
    kw = case.kwargs
    work = _working(yp)
    with np.errstate(all="ignore"):
        y = yt.astype(work)
        p = yp.astype(work)
        w_raw = kw.get("sample_weight")
        w = None if w_raw is None else np.asarray(w_raw).astype(np.float64)
        w_work = None if w is None else w.astype(work)
    validate = bool(kw.get("validate", True))
    from_logits = bool(kw["from_logits"])
    policy = kw.get("nan_policy", "propagate")
    bad = set()
    y_out = ~np.isnan(y) & ((y < 0) | (y > 1))
    p_out = ~np.isnan(p) & ((p < 0) | (p > 1)) if not from_logits else np.zeros(p.shape, bool)
    if validate and y_out.any():
        bad.add("y_true")
    if validate and p_out.any():
        bad.add("y_pred")
    if w is not None:
        if w.ndim == 0:
            if w < 0 or np.isinf(w) or (np.isfinite(w) and np.isinf(w_work)):
                bad.add("sample_weight")
        elif ((w_work < 0) | np.isinf(w_work)).any():
            bad.add("sample_weight")
    nan_y, nan_p = np.isnan(y).any(), np.isnan(p).any()
    nan_w = w is not None and np.isnan(w).any()
    if policy == "raise":
        if nan_y:
            bad.add("y_true")
        if nan_p:
            bad.add("y_pred")
        if nan_w:
            bad.add("sample_weight")
    q = kw.get("pos_weight")
    if q is not None:
        q64 = np.asarray(q).astype(np.float64)
        if not (np.isfinite(q64) & (q64 >= 0) & (q64 <= np.finfo(work).max)).all():
            bad.add("pos_weight")
    all_valid = not (y_out.any() or p_out.any() or nan_y or nan_p or nan_w)
    return bad, all_valid


def _moderate(case: Case) -> bool:
    """Options and values for which float32 arithmetic should track the float64 reference."""
    kw = case.kwargs
    gamma = float(kw.get("gamma", 2.0 if case.func is fastbce.binary_focal_crossentropy else 0.0))
    if gamma > 10 or 0 < gamma < 1e-6:
        # (a tiny gamma makes (1 - p_t)^gamma jump from 1 to 0 at p_t = 1, and where the float64
        # reference rounds 1 - y' to 0 the kernel may keep it: 5e-301 ** 1e-300 is 1, 0 ** 1e-300 0)
        return False
    for name in ("sample_weight", "pos_weight"):
        if name in kw and kw[name] is not None:
            v = np.asarray(kw[name]).astype(np.float64)
            if v.size and (v.max() > 1e6 or (v[v > 0].size and v[v > 0].min() < 1e-30)):
                return False
            if name == "pos_weight" and (v == 0).any():
                # (the negative term alone, tiny where p is: docs/semantics.md's cancellations,
                # float64 logits beyond about -315, probabilities below 1e-137 or 1e-26)
                return False
    return True


def check(case: Case) -> None:
    """Runs one case and raises AssertionError (with the case) if an invariant fails."""
    snaps = {"y_true": _snapshot(case.y_true), "y_pred": _snapshot(case.y_pred)}
    for name in ("sample_weight", "pos_weight"):
        snaps[name] = _snapshot(case.kwargs.get(name))
    out = case.kwargs.get("out")
    out_is_input = out is not None and any(out is v for v in (case.y_true, case.y_pred))
    yt = yp = None
    if not case.bad:  # the values as they are before the call (out= may alias y_pred)
        yt, yp = np.array(case.y_true), np.array(case.y_pred)

    def fail(msg: str) -> AssertionError:
        return AssertionError(f"{msg}\n{case.describe()}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning for any input is a finding too
            result = case.func(case.y_true, case.y_pred, **case.kwargs)
        error = None
    except (TypeError, ValueError) as e:
        error = e
    except Exception as e:  # noqa: BLE001 - any other exception is a finding
        raise fail(f"raised {type(e).__name__}: {e}\n{traceback.format_exc()}") from e

    for name, before in snaps.items():
        obj = (
            case.y_true
            if name == "y_true"
            else case.y_pred
            if name == "y_pred"
            else case.kwargs.get(name)
        )
        if out_is_input and obj is out:
            continue
        if not _same(before, obj):
            raise fail(f"{name} was modified")

    if error is not None:
        msg = str(error)
        named = {n for n in ARG_NAMES if re.search(rf"(?<![A-Za-z_]){n}(?![A-Za-z_])", msg)}
        if "<keyword>" in case.bad:
            named |= {"<keyword>"} if "keyword argument" in msg else set()
        if not named:
            raise fail(f"{type(error).__name__} names no argument: {msg!r}")
        if case.bad:
            if not (named & case.bad) and not (named & case.maybe_bad):
                raise fail(
                    f"error names {sorted(named)}, expected one of {sorted(case.bad)}: {msg!r}"
                )
            return
        # valid arguments: the only legitimate errors come from the values
        data_bad, _ = _data_problems(case, yt, yp)
        if not (named & data_bad):
            raise fail(
                f"unexpected {type(error).__name__} ({sorted(named)}; values at fault: "
                f"{sorted(data_bad)}): {msg!r}"
            )
        if named & {"y_true", "y_pred"} and "index" not in msg:
            raise fail(f"a value error that does not give the index: {msg!r}")
        return

    if case.bad:
        raise fail(f"no error, expected one naming {sorted(case.bad)}; got {result!r:.200}")
    data_bad, all_valid = _data_problems(case, yt, yp)
    if yp.size == 0:  # per-row weights of empty rows are never used: their check is optional
        data_bad.discard("sample_weight")
    if data_bad:
        raise fail(f"no error, expected one naming {sorted(data_bad)}")

    kw = case.kwargs
    reduction = kw.get("reduction", "mean")
    work = _working(yp)
    if reduction == "none":
        if not isinstance(result, np.ndarray) or result.shape != yp.shape or result.dtype != work:
            raise fail(
                f"'none' gave {type(result).__name__} {getattr(result, 'shape', '')} "
                f"{getattr(result, 'dtype', '')}"
            )
        if out is not None and result is not out:
            raise fail("out= was not returned")
    elif type(result) is not float:
        raise fail(f"reduction {reduction!r} gave {type(result).__name__}, not float")

    if not all_valid:
        aliased = out is not None and 0 in out.strides and out.size > 1  # (one place for all)
        if kw.get("nan_policy", "propagate") == "propagate" and not aliased:
            _check_nan_propagates(yt, yp, result, reduction, fail)
        return
    values = np.asarray(result, dtype=np.float64)
    ref = _reference(case, yt, yp, work)
    if np.isnan(values).any() and not np.isnan(ref.reduced).any():
        raise fail(f"NaN for valid input: {result!r:.300}")
    if not _moderate(case):
        return
    if out is not None and 0 in out.strides and out.size > 1:
        return  # every element was written to the same place: it holds one of them
    want, slack = ref.reduced, ref.slack
    rtol = 1e-9 if work == np.float64 else (2e-3 if ref.gamma else 2e-5)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (np.abs(values - want) <= rtol * np.abs(want) + slack) | (
            np.isnan(values) & np.isnan(want)
        )
        ok |= values == want  # infinities
        # beyond the working range the float32 result may be inf where float64 is finite
        ok |= (np.abs(want) > 1e30) & (values >= 0)
    if not ok.all():
        i = np.unravel_index(int(np.argmin(ok)), ok.shape) if ok.ndim else ()
        raise fail(
            f"{reduction}: got {values[i]!r}, reference {want[i]!r} (slack {slack[i]!r}) at {i}"
        )


def _check_nan_propagates(yt: np.ndarray, yp: np.ndarray, result: Any, reduction: str, fail: Any):
    """nan_policy="propagate": an element with a NaN label or prediction is NaN whatever its
    weights, and so is any reduction over it (docs/semantics.md, "A NaN is not beaten")."""
    with np.errstate(invalid="ignore"):
        nan_in = np.isnan(np.asarray(yt, dtype=np.float64)) | np.isnan(np.asarray(yp, np.float64))
    if not nan_in.any():
        return
    values = np.asarray(result, dtype=np.float64)
    if reduction != "none":
        if not np.isnan(values):
            raise fail(f"{reduction} of an input with a NaN label or prediction: {values!r}")
        return
    lost = nan_in & ~np.isnan(values)
    if lost.any():
        i = np.unravel_index(int(np.argmax(lost)), lost.shape)
        raise fail(f"NaN in, {values[i]!r} out at {i}")


@dataclass
class _Ref:
    reduced: np.ndarray  # the reference result (elementwise or reduced), float64
    slack: np.ndarray  # absolute error the working precision allows, same shape
    gamma: float


def _reference(case: Case, yt: np.ndarray, yp: np.ndarray, work: np.dtype) -> _Ref:
    """The float64 reference of tests/reference.py on the values as the kernel sees them (labels
    and predictions rounded to the working precision), plus the absolute error that rounding
    allows: a few ulp of w * (q * -log p + -log(1 - p))."""
    kw = case.kwargs
    gamma = float(kw.get("gamma", 2.0 if case.func is fastbce.binary_focal_crossentropy else 0.0))
    s = float(kw.get("label_smoothing", 0.0))
    with np.errstate(all="ignore"):
        y = yt.astype(work).astype(np.float64)
        p = yp.astype(work)
        opts = {
            k: kw[k]
            for k in ("from_logits", "epsilon", "pos_weight", "alpha", "sample_weight")
            if k in kw
        }
        for k in ("epsilon", "alpha"):
            if opts.get(k) is not None:
                opts[k] = float(opts[k])
        # smoothing as the kernel has it (1e-300 is 0 in float32)
        ce = bce_reference(y, p, gamma=gamma, label_smoothing=float(work.type(s)), **opts)
        x = p.astype(np.float64)
        if kw["from_logits"]:
            a, b = np.logaddexp(0.0, -x), np.logaddexp(0.0, x)
        else:
            e = work.type(float(kw.get("epsilon", 1e-7)))
            pc = np.clip(p, e, work.type(1) - e).astype(np.float64)
            a, b = -np.log(pc), -np.log1p(-pc)
        q = 1.0 if kw.get("pos_weight") is None else np.asarray(kw["pos_weight"]).astype(np.float64)
        scale = np.where(q == 0, 0.0, q * a) + b
        w = kw.get("sample_weight")
        w = np.ones(()) if w is None else np.asarray(w).astype(np.float64)
        if w.ndim == 1 and yp.ndim > 1:
            w = w.reshape((-1,) + (1,) * (yp.ndim - 1))
        wb = np.broadcast_to(w, yp.shape)
        scale = np.where(wb == 0, 0.0, wb * scale)
        eps = np.finfo(work).eps
        slack = 16 * eps * scale + (np.finfo(work).tiny if work == np.float32 else 0.0)
        reduction = kw.get("reduction", "mean")
        if reduction == "none":
            return _Ref(ce, slack, gamma)
        total, total_slack = (
            float(np.sum(ce)),
            float(np.sum(slack)) + 1e-12 * float(np.sum(np.abs(ce))),
        )
        if reduction == "sum":
            return _Ref(np.asarray(total), np.asarray(total_slack), gamma)
        denom = (
            float(yp.size)
            if reduction == "mean"
            else float(np.sum(wb.astype(work).astype(np.float64)))
        )
        if denom == 0:
            return _Ref(np.asarray(np.nan), np.asarray(0.0), gamma)
        return _Ref(np.asarray(total / denom), np.asarray(total_slack / denom), gamma)


# --------------------------------------------------------------------------- running


def run(seeds: range, *, stop_on_failure: bool = False) -> tuple[int, list[str]]:
    """Runs the cases of `seeds`; returns (calls made, failures)."""
    failures: list[str] = []
    calls = 0
    for seed in seeds:
        case = make_case(seed)
        calls += 1
        try:
            check(case)
        except AssertionError as e:
            failures.append(str(e))
            if stop_on_failure:
                break
    return calls, failures


def _worker(first: int, count: int) -> int:
    import faulthandler

    faulthandler.enable()
    calls, failures = 0, 0
    for seed in range(first, first + count):
        faulthandler.dump_traceback_later(60, exit=True)  # a hang: traceback, then exit
        print(f"seed {seed}", file=sys.stderr, flush=True) if os.environ.get("FUZZ_TRACE") else None
        n, errs = run(range(seed, seed + 1))
        calls += n
        for e in errs:
            failures += 1
            print("FAILURE " + e.replace("\n", "\n  "), flush=True)
    faulthandler.cancel_dump_traceback_later()
    print(f"CHUNK {first} {count} {calls} {failures}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=100_000, help="cases to run (one API call each)")
    ap.add_argument("--seed", type=int, default=1, help="first seed (cases are seed, seed+1, ...)")
    ap.add_argument("--chunk", type=int, default=20_000, help="cases per worker process")
    ap.add_argument("--workers", type=int, default=1, help="worker processes at once")
    ap.add_argument("--replay", type=int, help="run one case, print it and the outcome")
    ap.add_argument("--_worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        return _worker(*args._worker)
    if args.replay is not None:
        case = make_case(args.replay)
        print(case.describe())
        check(case)
        print("ok")
        return 0

    start = time.monotonic()
    total_calls = total_failures = 0
    crashes: list[str] = []
    chunks = [
        (s, min(args.chunk, args.seed + args.calls - s))
        for s in range(args.seed, args.seed + args.calls, args.chunk)
    ]
    running: list[tuple[subprocess.Popen, tuple[int, int]]] = []
    while chunks or running:
        while chunks and len(running) < args.workers:
            first, count = chunks.pop(0)
            proc = subprocess.Popen(
                [sys.executable, __file__, "--_worker", str(first), str(count)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running.append((proc, (first, count)))
        proc, (first, count) = running.pop(0)
        output, _ = proc.communicate()
        done = [line for line in output.splitlines() if line.startswith("CHUNK ")]
        for line in output.splitlines():
            if line.startswith("FAILURE") or line.startswith("  "):
                print(line)
        if proc.returncode != 0 or not done:
            crashes.append(
                f"seeds {first}..{first + count - 1}: exit {proc.returncode}\n{output[-3000:]}"
            )
            print(
                f"CRASH/HANG in seeds {first}..{first + count - 1} (exit {proc.returncode}); "
                f"rerun with FUZZ_TRACE=1 to find the seed:\n{output[-3000:]}",
                flush=True,
            )
            continue
        _, _, _, calls, failures = done[0].split()
        total_calls += int(calls)
        total_failures += int(failures)
        elapsed = time.monotonic() - start
        print(
            f"{total_calls} calls, {total_failures} failures, {len(crashes)} crashed chunks, "
            f"{elapsed:.0f} s ({total_calls / elapsed:.0f} calls/s)",
            flush=True,
        )
    elapsed = time.monotonic() - start
    print(
        f"DONE: {total_calls} calls in {elapsed:.0f} s, {total_failures} failures, "
        f"{len(crashes)} crashed or hung chunks"
    )
    return 1 if total_failures or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
