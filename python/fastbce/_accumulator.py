"""Streaming and distributed scoring: ``LossAccumulator`` and ``encode_labels``.

A ``LossAccumulator`` keeps the float64 sums of one or many kernel passes (total and per group), so
a dataset can be scored in batches, in parallel, or on a cluster, and the pieces merged. Each
``update`` is one pass of the kernel (through ``_api._compute``); the per-group sums come from the
same pass, given one int64 code per row. Python loops only over groups, never over rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from typing import Any

import numpy as np

from ._api import LossOptions, _compute
from ._report import ReportOptions, ReportPass, ReportState

__all__ = ["LossAccumulator", "encode_labels"]

# The options that change the value of the loss: accumulators must agree on them to be merged.
# (`validate` and `threads` only change how the value is checked or computed.)
_VALUE_OPTIONS = (
    "from_logits",
    "epsilon",
    "label_smoothing",
    "gamma",
    "alpha",
    "nan_policy",
    "ignore_label",
    "logit_offset",
    "top_losses",
)


class LossAccumulator:
    """Sums of the binary cross-entropy over data seen in pieces, and the evaluation report.

    Takes every option of :func:`fastbce.binary_crossentropy` except ``reduction`` and ``out``
    (``sample_weight`` is given to :meth:`update`), and the report's ``ignore_label``,
    ``logit_offset`` and ``top_losses`` (docs/report.md). ``update`` adds a batch, ``merge`` adds
    another accumulator, ``result`` gives the reductions and the report::

        acc = fastbce.LossAccumulator(from_logits=True)
        for y, x, region in batches:
            acc.update(y, x, groups=region)
        acc.result()["mean"], acc.result()["groups"]["eu"]["auc"]

    The sums are float64, whatever the input dtype; merging accumulators that saw any split of the
    data equals one pass over all of it, up to the rounding of float64 additions (a merged
    accumulator's rows come after this one's). Accumulators are picklable, so they can be computed
    in other processes (``fastbce.dask`` does this).

    "rows" in the result is the number of elements counted: the number of rows for 1-D input,
    every element for N-D input, and only the elements with no NaN in y_true, y_pred or
    sample_weight under ``nan_policy="omit"`` and whose label is not ``ignore_label``.
    """

    def __init__(
        self,
        *,
        from_logits: bool = False,
        epsilon: float = 1e-7,
        label_smoothing: float = 0.0,
        pos_weight: Any = None,
        gamma: float = 0.0,
        alpha: float | None = None,
        nan_policy: str = "propagate",
        validate: bool = True,
        threads: int | None = None,
        ignore_label: float | None = None,
        logit_offset: float = 0.0,
        top_losses: int = 0,
    ) -> None:
        self._opts = LossOptions(
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
        self._report_opts = ReportOptions(ignore_label, logit_offset, top_losses)
        self._report_opts.check_with(bool(from_logits))
        self._state = ReportState(self._report_opts)
        self._grouped_as: str | None = None  # "groups" (labels) or "slices" (a dict of them)

    # ------------------------------------------------------------------ public

    @property
    def options(self) -> dict[str, Any]:
        """The loss and report options, as given to the constructor."""
        out = {name: getattr(self._opts, name) for name in self._opts.__dataclass_fields__}
        for name in self._report_opts.__dataclass_fields__:
            out[name] = getattr(self._report_opts, name)
        return out

    def update(
        self,
        y_true: Any,
        y_pred: Any,
        sample_weight: Any = None,
        groups: Any = None,
    ) -> LossAccumulator:
        """Adds one batch; returns the accumulator.

        ``y_true``, ``y_pred`` and ``sample_weight`` are as in :func:`fastbce.binary_crossentropy`.
        ``groups`` gives one hashable label per row (the first axis): a NumPy array or sequence of
        strings, integers, ... (a pyarrow array or pandas Series works too); or a dict of such
        label arrays, one per slicing, reported under "slices". Missing labels (None, NaN, null)
        are collected under the key None. If the batch raises (a label out of range, for
        example), the accumulator is left as it was.
        """
        self._update(y_true, y_pred, sample_weight, groups)
        return self

    def merge(self, other: LossAccumulator) -> LossAccumulator:
        """Adds the sums of another accumulator with the same options; returns self. The other
        accumulator's rows count as coming after this one's (for top_losses' "row")."""
        if not isinstance(other, LossAccumulator):
            raise TypeError(f"can only merge a LossAccumulator; got {type(other).__name__}")
        mine, theirs = self.options, other.options
        differ = [n for n in _VALUE_OPTIONS if mine[n] != theirs[n]]
        if not _same_pos_weight(mine["pos_weight"], theirs["pos_weight"]):
            differ.append("pos_weight")
        if differ:
            raise ValueError(
                "cannot merge accumulators with different options: "
                + ", ".join(f"{n}={mine[n]!r} vs {theirs[n]!r}" for n in differ)
            )
        if other._grouped_as is not None:
            self._set_grouping(other._grouped_as)
        self._state.merge(other._state)
        return self

    def result(self) -> dict[str, Any]:
        """The reductions and the evaluation report so far (docs/report.md)::

            {"rows": int, "sum": float, "mean": float, "weighted_mean": float, "weight": float,
             "log_loss", "base_rate", "mean_prediction", "calibration", "normalized_entropy",
             "brier", "loss_positive", "loss_negative", "std_error", "ci95", "auc",
             "auc_bound", "ece", "omitted", "ignored", "reliability", ["top_losses"],
             "groups": {key: {the same keys but reliability and top_losses}},
             ["slices": {slicing: {key: {...}}}]}

        "rows" counts the elements counted (see the class docstring); "mean" is sum / rows and
        "weighted_mean" is sum / (sum of sample weights), NaN when the divisor is 0, as the
        reductions of :func:`fastbce.binary_crossentropy`. Groups come sorted by key when the
        keys can be ordered (None last), else in the order first seen.
        """
        return self._state.result(grouped_as=self._grouped_as)

    def __repr__(self) -> str:
        rows = int(self._state.sums[0])
        groups = sum(len(s.keys) for s in self._state.slicings.values())
        return f"<LossAccumulator rows={rows} groups={groups}>"

    # ------------------------------------------------------------------ for the CLI and dask

    def _update(
        self,
        y_true: Any,
        y_pred: Any,
        sample_weight: Any = None,
        groups: Any = None,
        *,
        want_elementwise: bool = False,
    ) -> np.ndarray | None:
        """update() that can also return the elementwise loss (w times the loss of the offset
        logits; a second pass of the kernel)."""
        names: list[str] = []
        labels: list[Any] = []
        if groups is not None:
            grouped_as = "slices" if isinstance(groups, dict) else "groups"
            if grouped_as == "slices":
                names, labels = [str(n) for n in groups], list(groups.values())
            else:
                names, labels = ["groups"], [groups]
        rows = _leading_length(y_pred) if labels else int(np.size(y_pred))
        slicings, keys = [], []
        for name, group_labels in zip(names, labels, strict=True):
            codes, group_keys = _factorize(group_labels)
            if codes.shape[0] != rows:
                where = "groups" if name == "groups" else f"groups[{name!r}]"
                raise ValueError(
                    f"{where} must have one label per row of y_pred ({rows}); got {codes.shape[0]}"
                )
            slicings.append((codes, len(group_keys)))
            keys.append(group_keys)
        run = ReportPass(self._report_opts, slicings, int(np.size(y_pred)))
        _compute(self._opts, y_true, y_pred, sample_weight, report=run)
        elementwise = None
        if want_elementwise:
            offset = float(self._report_opts.logit_offset)
            _, elementwise = _compute(
                self._opts, y_true, _offset(y_pred, offset), sample_weight, want_elementwise=True
            )
        if labels:
            self._set_grouping(grouped_as)
        self._state.add_pass(run, names, keys)
        return elementwise

    def _set_grouping(self, grouped_as: str) -> None:
        if self._grouped_as not in (None, grouped_as):
            raise ValueError(
                "groups must stay one kind: labels (reported under 'groups') or a dict of "
                "slicings (under 'slices'); this accumulator has had the other"
            )
        self._grouped_as = grouped_as

    def __getstate__(self) -> dict[str, Any]:
        return {
            "opts": self._opts,
            "report_opts": self._report_opts,
            "state": self._state,
            "grouped_as": self._grouped_as,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._opts = state["opts"]
        self._report_opts = state["report_opts"]
        self._state = state["state"]
        self._grouped_as = state["grouped_as"]


def _offset(y_pred: Any, offset: float) -> Any:
    """Logits plus logit_offset, added in the working precision as the report pass does."""
    if offset == 0.0:
        return y_pred
    arr = np.asarray(y_pred)
    working = np.float64 if arr.dtype == np.float64 else np.float32
    return arr.astype(working) + working(offset)


def _same_pos_weight(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _leading_length(y_pred: Any) -> int:
    shape = np.shape(y_pred)
    if not shape:
        raise ValueError("groups needs y_pred with at least one axis (one label per row)")
    return int(shape[0])


def _factorize(groups: Any) -> tuple[np.ndarray, list[Hashable]]:
    """(codes, keys): contiguous int64 codes in [0, len(keys)), one per label, vectorised.

    Missing labels (None, NaN, null) get the key None. pyarrow arrays are dictionary-encoded by
    Arrow and pandas objects factorized by pandas (both in C); anything else goes through NumPy.
    """
    if hasattr(groups, "dictionary_encode"):  # pyarrow Array / ChunkedArray
        return _factorize_arrow(groups)
    if hasattr(groups, "factorize") and hasattr(groups, "to_numpy"):  # pandas Series / Index
        codes, uniques = groups.factorize(use_na_sentinel=True)
        return _with_missing(np.asarray(codes, dtype=np.int64), list(uniques.tolist()))
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"groups must be 1-D (one label per row); got shape {arr.shape}")
    if arr.dtype.kind == "O":
        missing = _is_missing(arr)
    elif arr.dtype.kind in "fc":
        missing = np.isnan(arr)
    else:
        return _unique(arr)
    if not missing.any():
        return _unique(arr)
    # missing labels (None, NaN, null) form one more group, keyed None
    codes = np.empty(arr.shape[0], dtype=np.int64)
    present_codes, keys = _unique(arr[~missing])
    codes[~missing] = present_codes
    codes[missing] = len(keys)
    return codes, keys + [None]


def _unique(arr: np.ndarray) -> tuple[np.ndarray, list[Hashable]]:
    try:
        uniques, inverse = np.unique(arr, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in arr[:10_000].tolist()})  # (the error path)
        raise TypeError(
            f"groups: labels of mixed types ({', '.join(kinds)}) cannot be ordered; "
            "use labels of one type, for example strings"
        ) from None
    return np.ascontiguousarray(inverse.reshape(-1), dtype=np.int64), uniques.tolist()


def _is_missing(arr: np.ndarray) -> np.ndarray:
    """None or NaN, elementwise over an object array (vectorised comparisons)."""
    is_none = arr == np.array(None, dtype=object)
    not_self = arr != arr  # NaN is the one value not equal to itself
    return np.asarray(is_none | not_self, dtype=bool)


def _with_missing(codes: np.ndarray, keys: list[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = len(keys)
        keys = keys + [None]
    return np.ascontiguousarray(codes, dtype=np.int64), keys


def _factorize_arrow(groups: Any) -> tuple[np.ndarray, list[Hashable]]:
    if hasattr(groups, "combine_chunks"):  # a ChunkedArray
        groups = groups.combine_chunks()
    if hasattr(groups, "dictionary") and hasattr(groups, "indices"):  # already encoded
        encoded = groups
    else:
        encoded = groups.dictionary_encode()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    keys = encoded.dictionary.to_pylist()
    codes, keys = _with_missing(indices.astype(np.int64), keys)
    if any(isinstance(k, float) and math.isnan(k) for k in keys):  # NaN values (not nulls)
        merged: list[Hashable] = []  # NaN joins the missing labels under None
        where: dict[Hashable, int] = {}
        remap = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):  # one iteration per group
            if isinstance(key, float) and math.isnan(key):
                key = None
            remap[i] = where.setdefault(key, len(merged))
            if remap[i] == len(merged):
                merged.append(key)
        return remap[codes], merged
    return codes, keys


# --------------------------------------------------------------------------- labels


def encode_labels(values: Any, positive: Any) -> np.ndarray:
    """Class labels to 0/1: a uint8 array, 1 where ``values == positive`` and 0 elsewhere.

    ``values`` holds string or integer (or any comparable) labels, for example "cat"/"dog" with
    ``positive="dog"`` or {1, 2} with ``positive=2``. Raises ValueError when ``positive`` does not
    occur at all (it names it and shows some values that do occur), which catches a misspelt or
    mistyped label (``positive="2"`` for integer labels) before it silently scores everything as
    the negative class.
    """
    encoded, found = _encode(values, positive)
    if not found:
        raise ValueError(_missing_positive_message(positive, values))
    return encoded


def _encode(values: Any, positive: Any) -> tuple[np.ndarray, bool]:
    """(uint8 0/1 labels, whether positive occurs)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biufUSO":
        raise TypeError(f"values: labels of dtype {arr.dtype} cannot be class labels")
    hit = np.asarray(arr == positive, dtype=bool)
    if hit.shape != arr.shape:  # a comparison NumPy could not do elementwise
        raise TypeError(f"values: labels of dtype {arr.dtype} cannot be compared to {positive!r}")
    return hit.view(np.uint8), bool(hit.any())


def _missing_positive_message(positive: Any, values: Any, limit: int = 5) -> str:
    sample = _some_values(values, limit)
    shown = ", ".join(map(repr, sample[:limit]))
    if len(sample) > limit:
        shown += ", ..."
    kind = _kind_of(values)
    return f"positive label {positive!r} does not occur in the labels; they include " + (
        f"{shown} ({kind})" if shown else "nothing (there are no labels)"
    )


def _kind_of(values: Any) -> str:
    dtype = getattr(values, "type", None) or getattr(values, "dtype", None)  # pyarrow, NumPy
    if dtype is None:
        dtype = np.asarray(values).dtype  # (the error path)
    return f"labels of type {dtype}"


def _some_values(values: Any, limit: int) -> list[Any]:
    """Up to limit + 1 distinct values from the start of values, as Python objects."""
    if hasattr(values, "unique") and hasattr(values, "to_pylist"):  # pyarrow
        return values.slice(0, 100_000).unique().to_pylist()[: limit + 1]
    arr = np.asarray(values).reshape(-1)[:100_000]
    try:
        distinct = np.unique(arr).tolist()
    except TypeError:
        distinct = list(dict.fromkeys(arr.tolist()))
    return distinct[: limit + 1]


_FLAT_INDEX = re.compile(r"at flat index (\d+)")


def _shift_index(message: str, offset: int, what: str = "row") -> str:
    """Rewrites "at flat index i" of a 1-D batch's error as the row in the whole input."""
    return _FLAT_INDEX.sub(lambda m: f"at {what} {offset + int(m.group(1))}", message)
