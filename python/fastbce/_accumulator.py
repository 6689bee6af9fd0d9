"""Streaming and distributed scoring: ``LossAccumulator``.

A ``LossAccumulator`` keeps the float64 sums of one or many kernel passes (total and per group), so
a dataset can be scored in batches, in parallel, or on a cluster, and the pieces merged. Each
``update`` is one pass of the kernel (through ``_api._compute``); the per-group sums come from the
same pass, given one int64 code per row by a ``GroupIndex`` (``_groups``), which codes the labels
without a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from ._api import Sums, _compute, reduce_sums
from ._groups import GroupIndex
from ._options import LossOptions

__all__ = ["LossAccumulator", "merge_all"]

# The options that change the value of the loss: accumulators must agree on them to be merged.
# (`validate` and `threads` only change how the value is checked or computed.)
_VALUE_OPTIONS = ("from_logits", "epsilon", "label_smoothing", "gamma", "alpha", "nan_policy")


class LossAccumulator:
    """Sums of the binary cross-entropy over data seen in pieces, in total and per group.

    ``update`` adds a batch, ``merge`` adds another accumulator, ``result`` gives the reductions.
    The sums are float64, whatever the input dtype; merging accumulators that saw any split of the
    data equals one pass over all of it, up to the rounding of float64 additions. Accumulators
    are picklable, so they can be computed in other processes (``fastbce.dask`` does this).

    The constructor takes the options of ``binary_crossentropy``, keyword-only and with its
    defaults: ``from_logits``, ``epsilon``, ``label_smoothing``, ``pos_weight``, ``gamma``,
    ``alpha``, ``nan_policy``, ``validate`` and ``threads``. ``sample_weight`` is given to
    ``update``; there is no ``reduction`` or ``out``. An option of the wrong type or out of range
    raises TypeError or ValueError, as in ``binary_crossentropy``.

    See Also
    --------
    binary_crossentropy, fastbce.dask.accumulate

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
        self._total = np.zeros(3)  # (sum of w*ce, sum of w, elements counted)
        self._groups = GroupIndex()  # the group keys, in the order first seen, and their codes
        self._sums = np.zeros((0, 3))  # per group code; rows past the keys are spare capacity

    # ------------------------------------------------------------------ public

    @property
    def options(self) -> dict[str, Any]:
        """The loss options, as given to the constructor."""
        return {name: getattr(self._opts, name) for name in self._opts.__dataclass_fields__}

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
            integers, ... (a pyarrow array or pandas Series works too). Missing labels (None,
            NaN, null) are collected under the key None.

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
        """Adds the sums of another accumulator.

        Parameters
        ----------
        other : LossAccumulator
            An accumulator with the same loss options (``validate`` and ``threads`` may differ).

        Returns
        -------
        LossAccumulator
            This accumulator.

        Raises
        ------
        TypeError
            ``other`` is not a ``LossAccumulator``.
        ValueError
            The loss options differ (the message names them).
        """
        if not isinstance(other, LossAccumulator):
            raise TypeError(f"can only merge a LossAccumulator; got {type(other).__name__}")
        mine, theirs = self._opts, other._opts
        differ = [n for n in _VALUE_OPTIONS if getattr(mine, n) != getattr(theirs, n)]
        if not _same_pos_weight(mine.pos_weight, theirs.pos_weight):
            differ.append("pos_weight")
        if differ:
            raise ValueError(
                "cannot merge accumulators with different loss options: "
                + ", ".join(f"{n}={getattr(mine, n)!r} vs {getattr(theirs, n)!r}" for n in differ)
            )
        self._total += other._total
        keys = other._groups.keys
        if keys:
            rows = np.fromiter(map(self._groups.code, keys), dtype=np.int64, count=len(keys))
            self._grow()
            self._sums[rows] += other._sums[: len(keys)]  # (the rows are distinct)
        return self

    def result(self) -> dict[str, Any]:
        """The reductions so far, overall and per group.

        Returns
        -------
        dict
            ``{"rows", "sum", "mean", "weighted_mean", "groups": {key: {the same four}}}``.
            "rows" is the number of elements counted: the rows for 1-D input, every element for
            N-D input, and only those with no NaN in y_true, y_pred or sample_weight under
            ``nan_policy="omit"``. "mean" is sum / rows and "weighted_mean" is sum / (sum of
            sample weights), NaN when the divisor is 0, exactly as the reductions of
            ``binary_crossentropy``. Groups come sorted by key when the keys can be ordered
            (None last), else in the order first seen.
        """
        out = self._summary()
        out["groups"] = dict(self._group_items())
        return out

    def __repr__(self) -> str:
        rows = int(self._total[2])
        return f"<LossAccumulator rows={rows} groups={len(self._groups.keys)}>"

    # ------------------------------------------------------------------ for the CLI and dask

    def _summary(self) -> dict[str, Any]:
        """result() without the groups."""
        return _reductions(self._total)

    def _group_items(self) -> Iterator[tuple[Hashable, dict[str, Any]]]:
        """(key, reductions) of every group in result()'s order, made one at a time (a million
        groups print without a million dicts in memory)."""
        keys = self._groups.keys
        for i in self._group_order():
            yield keys[i], _reductions(self._sums[i])

    def _group_order(self) -> list[int]:
        """Sorted by key, None last; in the order first seen when the keys cannot be ordered."""
        keys: list[Any] = self._groups.keys
        order = [i for i, key in enumerate(keys) if key is not None]
        try:
            order.sort(key=keys.__getitem__)
        except TypeError:  # keys of mixed types
            return list(range(len(keys)))
        if len(order) < len(keys):
            order.append(keys.index(None))
        return order

    def _update(
        self,
        y_true: Any,
        y_pred: Any,
        sample_weight: Any = None,
        groups: Any = None,
        *,
        want_elementwise: bool = False,
    ) -> np.ndarray | None:
        """update() that can also return the elementwise loss of the same kernel pass."""
        codes = group_sums = None
        mark = len(self._groups.keys)
        try:
            if groups is not None:
                codes = self._groups.encode(groups)  # (new keys are added: undone on error)
                rows = _leading_length(y_pred)
                if codes.shape[0] != rows:
                    raise ValueError(
                        f"groups must have one label per row of y_pred ({rows}); "
                        f"got {codes.shape[0]}"
                    )
                group_sums = np.empty((len(self._groups.keys), 3))  # (the kernel fills it)
                if rows == 0:  # (the kernel has no rows to index)
                    codes = group_sums = None
            sums, elementwise = _compute(
                self._opts,
                y_true,
                y_pred,
                sample_weight,
                want_elementwise=want_elementwise,
                groups=codes,
                group_sums=group_sums,
            )
        except BaseException:
            self._groups.rollback(mark)
            raise
        self._total += (sums.loss, sums.weight, sums.count)
        self._grow()
        if group_sums is not None:
            self._sums[: group_sums.shape[0]] += group_sums
        return elementwise

    def _grow(self) -> None:
        """Room in self._sums for every key (by doubling)."""
        n = len(self._groups.keys)
        if n > self._sums.shape[0]:
            grown = np.zeros((max(n, 2 * self._sums.shape[0]), 3))
            grown[: self._sums.shape[0]] = self._sums
            self._sums = grown

    def __getstate__(self) -> dict[str, Any]:
        keys = self._groups.keys
        return {
            "opts": self._opts,
            "total": self._total,
            "keys": keys,
            "sums": self._sums[: len(keys)],
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._opts = state["opts"]
        self._total = np.array(state["total"], dtype=np.float64)
        self._groups = GroupIndex(list(state["keys"]))
        n = len(self._groups.keys)
        self._sums = np.array(state["sums"], dtype=np.float64).reshape(n, 3)


def _reductions(sums: np.ndarray) -> dict[str, Any]:
    s = Sums(float(sums[0]), float(sums[1]), float(sums[2]))
    return {
        "rows": int(s.count),
        "sum": reduce_sums(s, "sum"),
        "mean": reduce_sums(s, "mean"),
        "weighted_mean": reduce_sums(s, "weighted_mean"),
    }


def _same_pos_weight(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _leading_length(y_pred: Any) -> int:
    shape = np.shape(y_pred)
    if not shape:
        raise ValueError("groups needs y_pred with at least one axis (one label per row)")
    return int(shape[0])


def merge_all(*accumulators: LossAccumulator) -> LossAccumulator:
    """A new accumulator holding the sums of all of them (they are left as they are)."""
    out = LossAccumulator(**accumulators[0].options)
    for acc in accumulators:
        out.merge(acc)
    return out
