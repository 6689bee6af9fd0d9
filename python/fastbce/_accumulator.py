"""Streaming and distributed scoring: ``LossAccumulator``.

A ``LossAccumulator`` keeps the float64 sums of one or many kernel passes (total and per group)
and the evaluation report's histograms and largest losses (``_report.ReportState``), so
a dataset can be scored in batches, in parallel, or on a cluster, and the pieces merged. Each
``update`` is one pass of the kernel (through ``_api._compute``); the per-group sums come from the
same pass, given one int64 code per row. Python loops only over groups, never over rows.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Hashable, Iterator
from typing import Any, Protocol, TypeVar

import numpy as np

from ._api import _compute
from ._atomic import atomic, whole
from ._groups import slicing_names
from ._inputs import as_arrays, check_pos_weight, same_pos_weight
from ._options import LossOptions
from ._report import Batch, ReportOptions, ReportPass, ReportState

__all__ = ["LossAccumulator", "merge_all"]


class _Mergeable(Protocol):
    """What merge_all needs of an accumulator (and a constructor taking its options)."""

    @property
    def options(self) -> dict[str, Any]: ...

    def merge(self, other: Any) -> Any: ...


_Acc = TypeVar("_Acc", bound=_Mergeable)

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


def _differs(a: Any, b: Any) -> bool:
    """Whether two values of an option differ as numbers where both are (exactly: under NumPy 2
    np.float32(0.1) == 0.1 compares in float32 and is True, but their losses differ in float64),
    else as values."""
    if isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral):
        return int(a) != int(b)
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return float(a) != float(b)
    return bool(a != b)


class LossAccumulator:
    """Sums of the binary cross-entropy over data seen in pieces, and the evaluation report.

    ``update`` adds a batch, ``merge`` adds another accumulator, ``result`` gives the reductions
    and the evaluation report (docs/report.md).
    The sums are float64, whatever the input dtype; merging accumulators that saw any split of the
    data equals one pass over all of it, up to the rounding of float64 additions (a merged
    accumulator's rows come after this one's). Accumulators are picklable, so they can be computed
    in other processes (``fastbce.dask`` does this).

    The constructor takes the options of ``binary_crossentropy``, keyword-only and with its
    defaults: ``from_logits``, ``epsilon``, ``label_smoothing``, ``pos_weight``, ``gamma``,
    ``alpha``, ``nan_policy``, ``validate`` and ``threads``, and the report's ``ignore_label``,
    ``logit_offset`` and ``top_losses``. ``sample_weight`` is given to ``update``; there is no
    ``reduction`` or ``out``. An option of the wrong type or out of range raises TypeError or
    ValueError, as in ``binary_crossentropy``.

    See Also
    --------
    binary_crossentropy, evaluate, fastbce.dask.accumulate

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce
    >>> acc = fastbce.LossAccumulator(from_logits=True)
    >>> acc.update([1, 0, 1], np.array([2.0, -1.0, 0.5], np.float32), groups=["a", "b", "a"])
    <LossAccumulator rows=3 groups=2>
    >>> acc.update([0], np.array([3.0], np.float32), groups=["b"])
    <LossAccumulator rows=4 groups=2>
    >>> result = acc.result()
    >>> result["rows"], round(result["mean"], 4)
    (4, 0.9907)
    >>> {key: round(group["mean"], 4) for key, group in result["groups"].items()}
    {'a': 0.3005, 'b': 1.6809}
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
        if pos_weight is not None:  # (its length is checked against each batch)
            check_pos_weight(pos_weight)
        self._report_opts = ReportOptions(ignore_label, logit_offset, top_losses)
        self._report_opts.check_with(bool(from_logits))
        self._state = ReportState(self._report_opts)
        self._grouped_as: str | None = None  # "groups" (labels) or "slices" (a dict of them)
        self._lock = threading.Lock()  # (one update, merge or result at a time: _atomic)

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
        """Adds one batch, in one pass of the kernel.

        Parameters
        ----------
        y_true, y_pred : array_like
            As in ``binary_crossentropy``.
        sample_weight : array_like or float, optional
            As in ``binary_crossentropy``.
        groups : array_like, optional
            One hashable label per row (the first axis): a NumPy array or sequence of strings,
            integers, ... (a pyarrow array or pandas Series works too); or a dict of such label
            arrays, one per slicing, reported under "slices". Missing labels (None, NaN, null)
            are collected under the key None.

        Returns
        -------
        LossAccumulator
            This accumulator.

        Raises
        ------
        TypeError
            As ``binary_crossentropy``; the accumulator is then left as it was.
        ValueError
            As ``binary_crossentropy``; the accumulator is then left as it was.
        """
        self._update(y_true, y_pred, sample_weight, groups)
        return self

    def merge(self, other: LossAccumulator) -> LossAccumulator:
        """Adds the sums of another accumulator; its rows count as coming after this one's (for
        the "row" of top_losses).

        Parameters
        ----------
        other : LossAccumulator
            An accumulator with the same options, the report's included (``validate`` and
            ``threads`` may differ).

        Returns
        -------
        LossAccumulator
            This accumulator.

        Raises
        ------
        TypeError
            ``other`` is not a ``LossAccumulator``.
        ValueError
            The options differ (the message names them).
        """
        if not isinstance(other, LossAccumulator):
            raise TypeError(f"can only merge a LossAccumulator; got {type(other).__name__}")
        mine, theirs = self.options, other.options
        differ = [n for n in _VALUE_OPTIONS if _differs(mine[n], theirs[n])]
        if not same_pos_weight(mine["pos_weight"], theirs["pos_weight"]):
            differ.append("pos_weight")
        if differ:
            raise ValueError(
                "cannot merge accumulators with different options: "
                + ", ".join(f"{n}={mine[n]!r} vs {theirs[n]!r}" for n in differ)
            )
        with whole(self._lock, other._lock):
            if other._grouped_as is not None:
                self._set_grouping(other._grouped_as)
            self._state.merge(other._state)
        return self

    @atomic
    def result(self) -> dict[str, Any]:
        """The reductions and the evaluation report so far, overall and per group.

        Returns
        -------
        dict
            ``{"rows", "sum", "mean", "weighted_mean", "weight", "log_loss", "base_rate",
            "mean_prediction", "calibration", "normalized_entropy", "brier", "loss_positive",
            "loss_negative", "std_error", "ci95", "auc", "auc_bound", "ece", "omitted",
            "ignored", "reliability", ["top_losses"], "groups": {key: {the same keys but
            reliability and top_losses}}, ["slices": {slicing: {key: {...}}}]}``
            (docs/report.md). "rows" is the number of elements counted: the rows for 1-D input,
            every element for N-D input, and only those with no NaN in y_true, y_pred or
            sample_weight under ``nan_policy="omit"`` and whose label is not ``ignore_label``.
            "mean" is sum / rows and "weighted_mean" is sum / (sum of sample weights), NaN when
            the divisor is 0, exactly as the reductions of ``binary_crossentropy``. Groups come
            sorted by key when the keys can be ordered (None last), else in the order first seen.
        """
        return self._state.result(grouped_as=self._grouped_as)

    def __repr__(self) -> str:
        rows = int(self._state.sums[0])
        groups = sum(len(s.keys) for s in self._state.slicings.values())
        return f"<LossAccumulator rows={rows} groups={groups}>"

    # ------------------------------------------------------------------ for the CLI and dask

    def _nbytes(self) -> int:
        """The size of the groups' sums and histograms (what grows with the groups)."""
        return self._state.nbytes()

    def _summary(self) -> dict[str, Any]:
        """result() without the groups."""
        return self._state.result(grouped_as=None, with_groups=False)

    def _group_items(self, slicing: str = "groups") -> Iterator[tuple[Hashable, dict[str, Any]]]:
        """(key, keys) of every group (of the groups, or of one slicing of slices) in result()'s
        order, made one at a time (a million groups print without a million dicts in memory)."""
        return self._state.group_items(slicing)

    def _has_group(self, key: Hashable, slicing: str = "groups") -> bool:
        """Whether a slicing has the group `key` (None: the missing group)."""
        return self._state.has_group(slicing, key)

    def _group_blocks(
        self, slicing: str = "groups"
    ) -> Iterator[tuple[list[Hashable], dict[str, np.ndarray]]]:
        """(keys, {key name: a value per group}) of the groups a block at a time, in result()'s
        order: what a printer of a million groups formats column by column."""
        return self._state.group_blocks(slicing)

    @atomic
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
        logits; a second pass of the kernel). One batch at a time, counted in full or not at
        all (_atomic)."""
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        names: list[str] = []
        labels: list[Any] = []
        grouped_as = None
        if groups is not None:
            grouped_as = "slices" if isinstance(groups, dict) else "groups"
            if grouped_as == "slices":
                names, labels = slicing_names(groups), list(groups.values())
            else:
                names, labels = ["groups"], [groups]
            if labels:
                self._check_grouping(grouped_as)
        rows = _leading_length(y_pred) if labels else int(np.size(y_pred))
        batch = self._state.encode(names, labels, rows)  # (codes; the new keys are added)
        run = None
        try:
            run = batch.new_pass(int(np.size(y_pred)), direct=not want_elementwise)
            _compute(self._opts, y_true, y_pred, sample_weight, report=run)
            elementwise = None
            if want_elementwise:
                elementwise = self._elementwise(y_true, y_pred, sample_weight)
        except BaseException:
            if run is None or not run.written[0]:
                batch.undo()  # (the accumulator is left as it was)
                raise
            # (the kernel added to the groups' histograms already: the batch counts)
            self._add_pass(run, batch, grouped_as if labels else None)
            raise
        self._add_pass(run, batch, grouped_as if labels else None)
        return elementwise

    def _elementwise(self, y_true: Any, y_pred: Any, sample_weight: Any) -> np.ndarray:
        """w times the loss of every element of the offset logits (a second pass of the kernel),
        NaN for the rows of ignore_label: those count in no key and have no loss, so their
        labels (often out of [0, 1], like -1), weights and predictions are not checked here
        either (they enter the pass as label 0, weight 0 and prediction 0.5 or logit 0)."""
        offset = float(self._report_opts.logit_offset)
        ignored = _ignored(self._report_opts.ignore_label, y_true, y_pred)
        if ignored is not None:
            y_true, y_pred, sample_weight = _neutral_where(
                ignored, y_true, y_pred, sample_weight, self._opts.from_logits
            )
        _, elementwise = _compute(
            self._opts, y_true, _offset(y_pred, offset), sample_weight, want_elementwise=True
        )
        assert elementwise is not None
        if ignored is not None:
            elementwise[ignored] = np.nan
        return elementwise

    def _add_pass(self, run: ReportPass, batch: Batch, grouped_as: str | None) -> None:
        if grouped_as is not None:
            self._grouped_as = grouped_as
        self._state.add_pass(run, batch)

    def _check_grouping(self, grouped_as: str) -> None:
        if self._grouped_as not in (None, grouped_as):
            raise ValueError(
                "groups must stay one kind: labels (reported under 'groups') or a dict of "
                "slicings (under 'slices'); this accumulator has had the other"
            )

    def _set_grouping(self, grouped_as: str) -> None:
        self._check_grouping(grouped_as)
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
        self._lock = threading.Lock()


def _offset(y_pred: Any, offset: float) -> Any:
    """Logits plus logit_offset, added in the working precision as the report pass does."""
    if offset == 0.0:
        return y_pred
    arr = np.asarray(y_pred)
    working = np.float64 if arr.dtype == np.float64 else np.float32
    return arr.astype(working) + working(offset)


def _ignored(ignore_label: float | None, y_true: Any, y_pred: Any) -> np.ndarray | None:
    """The elements whose label is ignore_label, compared as the report's pass compares them (in
    the working precision; float64 labels of a float32 call as float64), or None if there are
    none."""
    if ignore_label is None:
        return None
    labels = np.asarray(y_true)
    working = np.float64 if np.asarray(y_pred).dtype == np.float64 else np.float32
    if labels.dtype == np.float64:
        mask = labels == float(ignore_label)
    else:
        mask = labels.astype(working) == working(ignore_label)
    return mask if mask.any() else None


def _neutral_where(
    ignored: np.ndarray, y_true: Any, y_pred: Any, sample_weight: Any, from_logits: bool
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Copies of the inputs with label 0, prediction 0.5 (logit 0) and weight 0 where `ignored`
    (a weight of another shape, a scalar or one per row of N-D input, is kept)."""
    labels = np.where(ignored, np.zeros((), np.asarray(y_true).dtype), np.asarray(y_true))
    pred = np.asarray(y_pred)
    pred = np.where(ignored, pred.dtype.type(0.0 if from_logits else 0.5), pred)
    if sample_weight is not None and np.shape(sample_weight) == ignored.shape:
        weight = np.asarray(sample_weight)
        sample_weight = np.where(ignored, np.zeros((), weight.dtype), weight)
    return labels, pred, sample_weight


def _leading_length(y_pred: Any) -> int:
    shape = np.shape(y_pred)
    if not shape:
        raise ValueError("groups needs y_pred with at least one axis (one label per row)")
    return int(shape[0])


def merge_all(*accumulators: _Acc) -> _Acc:
    """A new accumulator of the parts' kind (LossAccumulator, or the loss-only sums) holding
    the sums of all of them (they are left as they are)."""
    out = type(accumulators[0])(**accumulators[0].options)
    for acc in accumulators:
        out.merge(acc)
    return out
