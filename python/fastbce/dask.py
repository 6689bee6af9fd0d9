"""Binary cross-entropy of Dask arrays and Dask dataframe columns (``pip install 'fastbce[dask]'``).

Each chunk (or partition) is scored by the fastbce kernel into a picklable
``fastbce.LossAccumulator``; the accumulators are merged in a tree, so a reduction needs one
pass over the data and moves a few numbers between workers, and the result equals the in-memory
one (float64 sums, up to the rounding of the additions):

    import dask.array as da, fastbce.dask

    loss = fastbce.dask.binary_crossentropy(y_true, y_pred, from_logits=True)  # lazy
    loss.compute()                                                            # a float

``reduction="none"`` gives the elementwise loss lazily: a Dask array with y_pred's chunks for
array input, a Dask Series with y_pred's partitions for dataframe columns.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised in a subprocess without dask
    raise ImportError(
        "fastbce.dask needs Dask, which is not installed: pip install 'fastbce[dask]'"
    ) from e

from ._accumulator import LossAccumulator, merge_all
from ._api import binary_crossentropy as _binary_crossentropy
from ._api import pos_weight_shape_error
from ._labels import shift_index
from ._options import REDUCTIONS
from .io.readers import series_values as _values

__all__ = ["accumulate", "binary_crossentropy", "binary_focal_crossentropy"]

_ACCUMULATOR_OPTIONS = (
    "from_logits",
    "epsilon",
    "label_smoothing",
    "pos_weight",
    "gamma",
    "alpha",
    "nan_policy",
    "validate",
    "threads",
)
_REPORT_OPTIONS = ("ignore_label", "logit_offset", "top_losses")  # accumulate() only


# --------------------------------------------------------------------------- public


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    *,
    sample_weight: Any = None,
    reduction: str = "mean",
    split_every: int = 8,
    **options: Any,
) -> Any:
    """``fastbce.binary_crossentropy`` of Dask arrays or Dask dataframe columns, lazily.

    Each chunk is scored into a ``LossAccumulator``; the accumulators are merged
    ``split_every`` at a time in a tree, so the result equals the in-memory one up to the
    rounding of float64 additions.

    Parameters
    ----------
    y_true : dask.array.Array, dask.dataframe.Series or array_like
        Labels, rechunked to ``y_pred``'s chunks (a Series needs ``y_pred``'s partitions).
    y_pred : dask.array.Array or dask.dataframe.Series
        Probabilities, or logits with ``from_logits=True``.
    sample_weight : dask.array.Array, dask.dataframe.Series, array_like or float, optional
        Weights, aligned as ``y_true``.
    reduction : {"mean", "sum", "weighted_mean", "none"}, default "mean"
        As in ``fastbce.binary_crossentropy``.
    split_every : int, default 8
        How many accumulators a task of the merge tree adds up (>= 2).
    **options
        The other options of ``fastbce.binary_crossentropy`` (not ``out``).

    Returns
    -------
    dask.delayed.Delayed, dask.array.Array or dask.dataframe.Series
        A reduction is a lazy scalar: ``.compute()`` gives the float. With ``reduction="none"``,
        a Dask array with ``y_pred``'s chunks (a Series with ``y_pred``'s partitions and index
        for Series input) in the working precision.

    Raises
    ------
    TypeError
        An option of the wrong type, checked when the graph is built.
    ValueError
        An option out of range or shapes that differ, checked when the graph is built; errors in
        the data (a label out of range) are raised by ``.compute()``, naming the row.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastbce.dask
    >>> y = da.from_array(np.array([0, 1, 1, 0], np.uint8), chunks=2)
    >>> p = da.from_array(np.array([0.1, 0.8, 0.6, 0.3], np.float32), chunks=2)
    >>> loss = fastbce.dask.binary_crossentropy(y, p)
    >>> round(loss.compute(), 4)
    0.299
    >>> fastbce.dask.binary_crossentropy(y, p, reduction="none").compute().round(4)
    array([0.1054, 0.2231, 0.5108, 0.3567], dtype=float32)
    """
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}"
        )
    if "out" in options:
        raise TypeError("out is not supported for Dask input (the result is lazy)")
    checked = _options(options, report=False)
    if reduction == "none":
        return _elementwise(y_true, y_pred, sample_weight, checked)
    acc = accumulate(
        y_true, y_pred, sample_weight=sample_weight, split_every=split_every, **options
    )
    return dask.delayed(_reduce, pure=True)(acc, reduction)


def binary_focal_crossentropy(
    y_true: Any, y_pred: Any, *, gamma: float = 2.0, **options: Any
) -> Any:
    """``fastbce.dask.binary_crossentropy`` with ``gamma=2.0`` by default (the focal loss).

    Parameters
    ----------
    y_true, y_pred : dask.array.Array, dask.dataframe.Series or array_like
        As in ``fastbce.dask.binary_crossentropy``.
    gamma : float, default 2.0
        The focal exponent.
    **options
        As in ``fastbce.dask.binary_crossentropy``.

    Returns
    -------
    dask.delayed.Delayed, dask.array.Array or dask.dataframe.Series
        As ``fastbce.dask.binary_crossentropy``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastbce.dask
    >>> y = da.from_array(np.array([0, 1, 1, 0], np.uint8), chunks=2)
    >>> x = da.from_array(np.array([-2.2, 1.4, 0.4, -0.8], np.float32), chunks=2)
    >>> round(fastbce.dask.binary_focal_crossentropy(y, x, from_logits=True).compute(), 4)
    0.032
    """
    return binary_crossentropy(y_true, y_pred, gamma=gamma, **options)


def accumulate(
    y_true: Any,
    y_pred: Any,
    *,
    sample_weight: Any = None,
    groups: Any = None,
    split_every: int = 8,
    **options: Any,
) -> Any:
    """A lazy ``fastbce.LossAccumulator`` over Dask data, with per-group sums.

    Parameters
    ----------
    y_true, y_pred : dask.array.Array, dask.dataframe.Series or array_like
        As in ``fastbce.dask.binary_crossentropy``.
    sample_weight : dask.array.Array, dask.dataframe.Series, array_like or float, optional
        As in ``fastbce.dask.binary_crossentropy``.
    groups : dask.array.Array or dask.dataframe.Series, optional
        One group label per row, aligned as ``y_true``.
    split_every : int, default 8
        How many accumulators a task of the merge tree adds up (>= 2).
    **options
        The options of ``fastbce.LossAccumulator``, the evaluation report's (``ignore_label``,
        ``logit_offset``, ``top_losses``) included; ``.result()`` has the report's keys, the
        same as one pass over all the data (top_losses' rows count from the first partition).

    Returns
    -------
    dask.delayed.Delayed
        ``.compute()`` gives the merged ``LossAccumulator``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastbce.dask
    >>> y = da.from_array(np.array([0, 1, 1, 0], np.uint8), chunks=2)
    >>> x = da.from_array(np.array([-2.2, 1.4, 0.4, -0.8], np.float32), chunks=2)
    >>> country = da.from_array(np.array(["de", "fr", "de", "fr"]), chunks=2)
    >>> acc = fastbce.dask.accumulate(y, x, groups=country, from_logits=True).compute()
    >>> {key: group["rows"] for key, group in acc.result()["groups"].items()}
    {'de': 2, 'fr': 2}
    """
    opts = _options(options)
    if not (isinstance(split_every, numbers.Integral) and split_every >= 2):
        raise ValueError(f"split_every must be an int >= 2; got {split_every!r}")
    parts = partition_tasks(y_true, y_pred, sample_weight, groups, opts, want_loss=False)
    if not parts:
        return dask.delayed(_empty, pure=True)(opts)
    while len(parts) > 1:
        parts = [
            dask.delayed(_merge, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


# --------------------------------------------------------------------------- building the graph


def _options(options: dict[str, Any], report: bool = True) -> dict[str, Any]:
    """The accumulator's options, checked now (not on a worker later); with report, also the
    evaluation report's options."""
    allowed = _ACCUMULATOR_OPTIONS + (_REPORT_OPTIONS if report else ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    LossAccumulator(**options)  # checks the loss and report options
    return dict(options)


def _check_pos_weight(options: dict[str, Any], shape: tuple[Any, ...]) -> None:
    """A per-class pos_weight's length against y_pred's last axis, now (each chunk would see
    only its own shape, and a block of the classes only its slice)."""
    q = options.get("pos_weight")
    if q is None or np.ndim(q) == 0 or (shape and math.isnan(shape[-1])):
        return
    if not shape or np.shape(q) != (shape[-1],):  # (0-d y_pred has no class axis)
        raise pos_weight_shape_error(shape, np.shape(q))


def _known_shape(arr: Any, name: str) -> None:
    """ValueError for a Dask array of unknown chunk sizes (a filtered dataframe's
    ``to_dask_array()``): its blocks cannot be lined up with the others'."""
    if any(isinstance(n, float) and math.isnan(n) for n in arr.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {arr.shape}); call its "
            "compute_chunk_sizes() first (or to_dask_array(lengths=True)), or give the Dask "
            "Series themselves"
        )


def _is_frame(x: Any) -> bool:
    """A Dask Series or DataFrame (dask.dataframe is imported only when one is given)."""
    return dask.is_dask_collection(x) and hasattr(x, "npartitions") and not hasattr(x, "chunks")


def partition_tasks(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    groups: Any,
    options: dict[str, Any],
    want_loss: bool,
) -> list[Any]:
    """One delayed task per chunk or partition, in order, giving its LossAccumulator (and, with
    want_loss, the pair (accumulator, elementwise loss as a NumPy array))."""
    if any(_is_frame(x) for x in (y_true, y_pred, sample_weight, groups)):
        return _frame_tasks(y_true, y_pred, sample_weight, groups, options, want_loss)
    return _array_tasks(y_true, y_pred, sample_weight, groups, options, want_loss)


def _array_tasks(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    groups: Any,
    options: dict[str, Any],
    want_loss: bool,
) -> list[Any]:
    yp = da.asarray(y_pred)
    _known_shape(yp, "y_pred")
    _check_pos_weight(options, yp.shape)
    if yp.ndim > 1:  # blocks of whole rows: per-row weights, groups and pos_weight line up
        yp = yp.rechunk({axis: -1 for axis in range(1, yp.ndim)})
    yt = _aligned(y_true, yp, "y_true", full=True)
    w = None
    if sample_weight is not None and not _is_scalar(sample_weight):
        w = _aligned(sample_weight, yp, "sample_weight", full=None)
    g = None
    if groups is not None:
        if yp.ndim == 0:
            raise ValueError("groups needs y_pred with at least one axis (one label per row)")
        g = _aligned(groups, yp, "groups", full=False)
    blocks = _blocks(yp)
    true_blocks = _blocks(yt)
    weight_blocks = _blocks(w) if w is not None else [sample_weight] * len(blocks)
    group_blocks = _blocks(g) if g is not None else [None] * len(blocks)
    starts = np.concatenate([[0], np.cumsum(yp.chunks[0])[:-1]]) if yp.ndim else [0]
    one_d = yp.ndim == 1
    q = options.get("pos_weight")
    per_element = one_d and q is not None and np.ndim(q) == 1  # (1-D: the class axis is chunked)

    sizes = yp.chunks[0] if yp.ndim else [1]
    return [
        dask.delayed(_score_chunk, pure=True)(
            options,
            t,
            p,
            wb,
            gb,
            f"row {int(s)}",
            int(s) if one_d else None,
            want_loss,
            np.asarray(q)[int(s) : int(s) + int(n)] if per_element else None,
        )
        for t, p, wb, gb, s, n in zip(
            true_blocks, blocks, weight_blocks, group_blocks, starts, sizes, strict=True
        )
    ]


def _blocks(x: Any) -> list[Any]:
    return list(x.to_delayed().ravel())


def _is_scalar(x: Any) -> bool:
    return np.ndim(x) == 0 and not dask.is_dask_collection(x)


def _aligned(x: Any, yp: Any, name: str, full: bool | None) -> Any:
    """x as a Dask array chunked like y_pred (full=True), like its rows (full=False), or either
    (full=None: a per-row 1-D sample_weight or one of y_pred's shape)."""
    arr = (
        x
        if isinstance(x, da.Array)
        else da.asarray(np.asarray(x) if not hasattr(x, "shape") else x)
    )
    _known_shape(arr, name)
    if name == "sample_weight" and arr.ndim == 0:  # (a 0-d Dask array: a scalar weight,
        arr = da.broadcast_to(arr, yp.shape)  # read per element as it is not known yet)
    if full is None:
        full = arr.shape == yp.shape or yp.ndim <= 1
    if full:
        if arr.shape != yp.shape:
            raise ValueError(f"{name} must have y_pred's shape {yp.shape}; got shape {arr.shape}")
        return arr.rechunk(yp.chunks)
    if arr.ndim != 1 or arr.shape[0] != yp.shape[0]:
        raise ValueError(
            f"{name} must be a scalar, y_pred's shape {yp.shape} or 1-D of length "
            f"{yp.shape[0]} (one per row); got shape {arr.shape}"
            if name == "sample_weight"
            else f"{name} must be 1-D of length {yp.shape[0]} (one per row); got shape {arr.shape}"
        )
    return arr.rechunk((yp.chunks[0],))


def _frame_tasks(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    groups: Any,
    options: dict[str, Any],
    want_loss: bool,
) -> list[Any]:
    import dask.dataframe as dd
    import pandas as pd

    series = {"y_true": y_true, "y_pred": y_pred}
    if sample_weight is not None and not _is_scalar(sample_weight):
        series["sample_weight"] = sample_weight
    if groups is not None:
        series["groups"] = groups
    for name, s in series.items():
        if not _is_frame(s) or isinstance(s, dd.DataFrame):
            raise TypeError(
                f"{name}: with Dask dataframe columns every array argument must be a Dask "
                f"Series (one column) with the same partitions; got {type(s).__name__}"
            )
    q = options.get("pos_weight")
    if q is not None and np.ndim(q) == 1:
        raise ValueError(
            "pos_weight: with Dask Series (one value a row, partitions of unknown length) it "
            "must be a scalar; a pos_weight per element needs Dask arrays"
        )
    _same_partitions(series)
    scalar = sample_weight if "sample_weight" not in series else None
    results = dd.map_partitions(
        _score_partition,
        *series.values(),
        roles=tuple(series),
        options=options,
        scalar_weight=scalar,
        want_loss=want_loss,
        meta=pd.Series([], dtype=object),
        align_dataframes=False,
    )
    return [dask.delayed(_first, pure=True)(d) for d in results.to_delayed()]


def _same_partitions(series: dict[str, Any]) -> None:
    """ValueError, when the graph is built, unless the Series have as many partitions (rows
    are matched partition by partition)."""
    counts = {name: s.npartitions for name, s in series.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(
            "the Dask Series must have the same partitions; got "
            + ", ".join(f"{k}: {v} partitions" for k, v in counts.items())
        )


def _elementwise(y_true: Any, y_pred: Any, sample_weight: Any, options: dict[str, Any]) -> Any:
    if any(_is_frame(x) for x in (y_true, y_pred, sample_weight)):
        return _elementwise_frame(y_true, y_pred, sample_weight, options)
    yp = da.asarray(y_pred)
    _known_shape(yp, "y_pred")
    _check_pos_weight(options, yp.shape)
    working = np.float64 if yp.dtype == np.float64 else np.float32
    yt = _aligned(y_true, yp, "y_true", full=True)
    args = [yt, yp]
    scalar = None
    if sample_weight is None or _is_scalar(sample_weight):
        scalar = sample_weight
    else:
        w = _aligned(sample_weight, yp, "sample_weight", full=None)
        if w.shape != yp.shape:  # one per row: broadcast along the row, chunked like y_pred
            w = da.broadcast_to(w[(slice(None),) + (None,) * (yp.ndim - 1)], yp.shape)
            w = w.rechunk(yp.chunks)
        args.append(w)
    return da.map_blocks(
        _none_block,
        *args,
        options=options,
        scalar_weight=scalar,
        dtype=working,
        meta=np.empty((0,) * yp.ndim, dtype=working),
    )


def _elementwise_frame(
    y_true: Any, y_pred: Any, sample_weight: Any, options: dict[str, Any]
) -> Any:
    import dask.dataframe as dd
    import pandas as pd

    series = [y_true, y_pred]
    scalar = sample_weight
    if sample_weight is not None and not _is_scalar(sample_weight):
        series.append(sample_weight)
        scalar = None
    for name, s in zip(("y_true", "y_pred", "sample_weight"), series, strict=False):
        if not _is_frame(s):
            raise TypeError(
                f"{name}: with Dask dataframe columns every array argument must be a Dask "
                f"Series with the same partitions; got {type(s).__name__}"
            )
    _same_partitions(dict(zip(("y_true", "y_pred", "sample_weight"), series, strict=False)))
    working = np.float64 if _values(y_pred._meta).dtype == np.float64 else np.float32
    return dd.map_partitions(
        _none_partition,
        *series,
        options=options,
        scalar_weight=scalar,
        meta=pd.Series([], dtype=working, name="loss"),
        align_dataframes=False,
    )


# --------------------------------------------------------------------------- on the workers


def _score_chunk(
    options: dict[str, Any],
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    groups: Any,
    where: str,
    row_offset: int | None,
    want_loss: bool,
    chunk_pos_weight: Any = None,
) -> Any:
    """The chunk's accumulator (and elementwise loss). chunk_pos_weight: the chunk's slice of a
    pos_weight per element (1-D input), which the kernel takes; the accumulator then says the
    call's options, so that the chunks merge."""
    if chunk_pos_weight is None:
        acc = LossAccumulator(**options)
    else:
        acc = LossAccumulator(**{**options, "pos_weight": chunk_pos_weight})
    try:
        loss = acc._update(
            _values(y_true),
            _values(y_pred),
            _values(sample_weight) if sample_weight is not None else None,
            groups,
            want_elementwise=want_loss,
        )
    except (ValueError, TypeError) as e:
        raise _located(e, row_offset, f"chunk starting at {where}") from None
    if chunk_pos_weight is not None:
        acc._opts = dataclasses.replace(acc._opts, pos_weight=options["pos_weight"])
    return (acc, loss) if want_loss else acc


def _located(error: Exception, row_offset: int | None, chunk: str) -> Exception:
    """A chunk's error said of the whole input: its row shifted by row_offset (1-D input), else
    with the chunk named."""
    message = str(error)
    if row_offset is not None:
        message = shift_index(message, row_offset)
    else:
        message = f"{message} (in the {chunk})"
    return type(error)(message)


def _score_partition(
    *series: Any,
    roles: tuple[str, ...],
    options: dict[str, Any],
    scalar_weight: Any,
    want_loss: bool,
    partition_info: dict[str, Any] | None = None,
) -> Any:
    import pandas as pd

    by_role = dict(zip(roles, series, strict=True))
    number = partition_info["number"] if partition_info else "?"
    result = _score_chunk(
        options,
        by_role["y_true"],
        by_role["y_pred"],
        by_role.get("sample_weight", scalar_weight),
        by_role.get("groups"),
        f"partition {number}",
        None,
        want_loss,
    )
    return pd.Series([result], dtype=object)


def _none_block(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    options: dict[str, Any],
    scalar_weight: Any,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    opts = dict(options)
    pos_weight = opts.get("pos_weight")
    if pos_weight is not None and np.ndim(pos_weight) == 1 and block_info is not None:
        start, stop = block_info[None]["array-location"][-1]  # this block's classes
        opts["pos_weight"] = np.asarray(pos_weight)[start:stop]
    w = weight if weight is not None else scalar_weight
    try:
        return _binary_crossentropy(y_true, y_pred, sample_weight=w, reduction="none", **opts)
    except (ValueError, TypeError) as e:  # the row in the whole array, as _score_chunk says it
        if block_info is None:
            raise
        where = block_info[None]["array-location"]
        first_row = where[0][0] if where else 0
        if y_pred.ndim <= 1:
            raise _located(e, first_row, f"block starting at row {first_row}") from None
        start = tuple(int(lo) for lo, _ in where)  # (blocks of "none" split the columns too)
        raise _located(e, None, f"block starting at index {start}") from None


def _none_partition(
    y_true: Any,
    y_pred: Any,
    weight: Any = None,
    *,
    options: dict[str, Any],
    scalar_weight: Any,
    partition_info: dict[str, Any] | None = None,
) -> Any:
    import pandas as pd

    w = _values(weight) if weight is not None else scalar_weight
    try:
        loss = _binary_crossentropy(
            _values(y_true), _values(y_pred), sample_weight=w, reduction="none", **options
        )
    except (ValueError, TypeError) as e:  # (the index is the partition's: say which)
        number = partition_info["number"] if partition_info else "?"
        raise type(e)(f"{e} (in partition {number})") from None
    return pd.Series(loss, index=y_pred.index, name="loss")


def _first(series: Any) -> Any:
    return series.iloc[0]


def _merge(*accumulators: LossAccumulator) -> LossAccumulator:
    return merge_all(*accumulators)  # (a function of its own: the graph's tasks are named after it)


def _empty(options: dict[str, Any]) -> LossAccumulator:
    return LossAccumulator(**options)


def _reduce(acc: LossAccumulator, reduction: str) -> float:
    return float(acc.result()[reduction])  # (result() divides through _api.reduce_sums)
