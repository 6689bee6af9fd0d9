"""The loss sums alone, without the evaluation report: what ``fastbce score --loss-only`` keeps.

The plain loss pass of the kernel (``binary_crossentropy``'s) adds each row's loss, weight and
count to its group's float64 sums in the same pass and, with ``--output``, writes the per-row
loss too; no calibration bins, AUC histograms or top losses are computed or kept, and a group
costs 24 bytes of sums besides its key. ``LossSums`` has the part of ``LossAccumulator``'s
interface that the CLI uses (``_update``, ``merge``, ``result``, ``_summary``,
``_group_items``, ``_group_blocks``), so the printers and the Dask run take either. Its keys
are those of the report with the same names, from the same sums.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np

from . import _core
from ._accumulator import _offset
from ._api import _compute
from ._atomic import atomic
from ._group_arrays import grown
from ._groups import GroupIndex, kernel_codes, key_order, slicing_names
from ._inputs import as_arrays, check_pos_weight, same_pos_weight
from ._options import LossOptions
from ._report import _BLOCK, _as_list, _divs

__all__ = ["LossSums"]

_LOSS, _WEIGHT, _COUNT = range(3)  # the columns of a Sums (cpp/include/fastbce/types.hpp)


class _Groups:
    """The groups of one slicing: their keys and their (loss, weight, count) sums, in an array
    that grows in place by an eighth (row i for the key of code i)."""

    def __init__(self) -> None:
        self.index = GroupIndex()
        self.sums = np.zeros((0, 3))

    @property
    def keys(self) -> Sequence[Hashable]:
        return self.index.keys

    def add(self, table: np.ndarray, sums: np.ndarray) -> None:
        n = len(self.keys)
        capacity = self.sums.shape[0]
        if n > capacity:  # (in place, zeroed: by an eighth, not doubling, little is spare)
            self.sums = grown(self.sums, max(n + n // 32, capacity + capacity // 8, 16))
        if table.size:
            _core.add_rows(self.sums, table, sums)

    def merge(self, other: _Groups) -> None:
        n = len(other.keys)
        table = self.index.codes_of(other.index)
        self.add(table, np.ascontiguousarray(other.sums[:n]))

    def blocks(self) -> Iterator[tuple[list[Hashable], dict[str, np.ndarray]]]:
        # (the report's block of groups: with 1 << 16 a block's printed JSON, some 40 MB with
        # a million groups, made the peak of --loss-only)
        order = key_order(self.index)
        for start in range(0, len(order), _BLOCK):
            block = order[start : start + _BLOCK]
            yield self.index.keys_at(block), _columns(self.sums[np.asarray(block, np.intp)])

    def __getstate__(self) -> dict[str, Any]:
        n = len(self.keys)  # (without the spare capacity)
        return {"index": self.index, "sums": self.sums[:n].copy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _columns(sums: np.ndarray) -> dict[str, np.ndarray]:
    """rows, sum, mean and weighted_mean of many scopes (a row of sums each); NaN where the
    divisor is 0, as the report's keys of the same names (its division, ``_divs``)."""
    loss, weight, count = sums[:, _LOSS], sums[:, _WEIGHT], sums[:, _COUNT]
    with np.errstate(all="ignore"):
        mean, weighted = _divs(loss, count), _divs(loss, weight)
    return {"rows": count.astype(np.int64), "sum": loss, "mean": mean, "weighted_mean": weighted}


def _scope(sums: np.ndarray) -> dict[str, Any]:
    return {k: _as_list(v)[0] for k, v in _columns(sums[None]).items()}


class LossSums:
    """Sums of the loss over batches, overall and per group: ``LossAccumulator`` without the
    report. Takes the same options; the report's ``ignore_label`` and ``top_losses`` must be
    unset (ValueError), ``logit_offset`` is added to the logits."""

    def __init__(
        self,
        *,
        ignore_label: float | None = None,
        logit_offset: float = 0.0,
        top_losses: int = 0,
        **loss_options: Any,
    ) -> None:
        if ignore_label is not None or top_losses:
            raise ValueError("ignore_label and top_losses need the report (LossAccumulator)")
        self._opts = LossOptions(**loss_options)
        if self._opts.pos_weight is not None:
            check_pos_weight(self._opts.pos_weight)
        if float(logit_offset) != 0.0 and not self._opts.from_logits:
            raise ValueError("logit_offset needs from_logits=True")
        self._logit_offset = float(logit_offset)
        self._sums = np.zeros(3)
        self._slicings: dict[str, _Groups] = {}
        self._grouped_as: str | None = None  # "groups" (labels) or "slices" (a dict of them)

    @property
    def options(self) -> dict[str, Any]:
        out = {name: getattr(self._opts, name) for name in self._opts.__dataclass_fields__}
        out.update(ignore_label=None, logit_offset=self._logit_offset, top_losses=0)
        return out

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
        """Adds a batch: a kernel pass per slicing (one without groups); the first also gives
        the elementwise loss when asked for. On an error nothing is added; a signal waits until
        the batch is added in full (_atomic; this internal class takes no lock)."""
        if groups is None:
            named: dict[str, Any] = {}
        elif isinstance(groups, dict):
            named = dict(zip(slicing_names(groups), groups.values(), strict=True))
        else:
            named = {"groups": groups}
        grouped_as = (
            None if groups is None else ("slices" if isinstance(groups, dict) else "groups")
        )
        if named and self._grouped_as not in (None, grouped_as):
            raise ValueError(
                "groups must stay one kind: labels (reported under 'groups') or a dict of "
                "slicings (under 'slices'); this accumulator has had the other"
            )
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        y_pred = _offset(y_pred, self._logit_offset)  # (as the report's elementwise loss)
        rows = int(np.shape(y_pred)[0]) if named and np.ndim(y_pred) else int(np.size(y_pred))
        encoded: list[tuple[_Groups, np.ndarray, np.ndarray]] = []
        marks, created = [], []
        try:
            for name, labels in named.items():
                if name not in self._slicings:
                    self._slicings[name] = _Groups()
                    created.append(name)
                slicing = self._slicings[name]
                marks.append((slicing, len(slicing.keys)))
                codes, table = slicing.index.encode_batch(labels, rows, name)
                encoded.append((slicing, kernel_codes(codes), table))
            # (codes, the batch's groups' sums) of each pass: one per slicing, or one plain
            passes: list[tuple[np.ndarray | None, np.ndarray | None]] = [
                (codes, np.zeros((table.size, 3))) for _, codes, table in encoded
            ] or [(None, None)]
            totals = []
            for i, (pass_codes, pass_sums) in enumerate(passes):
                total, loss = _compute(
                    self._opts,
                    y_true,
                    y_pred,
                    sample_weight,
                    want_elementwise=want_elementwise and i == 0,
                    groups=pass_codes,
                    group_sums=pass_sums,
                )
                totals.append((total, loss))
        except BaseException:
            for slicing, mark in marks:
                slicing.index.rollback(mark)
            for name in created:
                del self._slicings[name]
            raise
        total, elementwise = totals[0]
        self._sums += (total.loss, total.weight, total.count)
        for (slicing, _codes, table), (_codes_again, sums) in zip(encoded, passes, strict=False):
            assert sums is not None
            slicing.add(table, sums)
        if grouped_as is not None and named:
            self._grouped_as = grouped_as
        return elementwise

    def update(
        self, y_true: Any, y_pred: Any, sample_weight: Any = None, groups: Any = None
    ) -> LossSums:
        self._update(y_true, y_pred, sample_weight, groups)
        return self

    def _nbytes(self) -> int:
        """The size of the groups' sums and keys (what grows with the groups), as
        LossAccumulator's: the parquet read-ahead gives way to it (a million groups' 32 MB of
        sums and 23 MB of text keys)."""
        return sum(g.sums.nbytes + g.index.nbytes for g in self._slicings.values())

    def merge(self, other: LossSums) -> LossSums:
        if not isinstance(other, LossSums):
            raise TypeError(f"can only merge LossSums; got {type(other).__name__}")
        differ = _differ(self.options, other.options)
        if differ:
            raise ValueError(f"cannot merge loss sums with different options: {', '.join(differ)}")
        if other._grouped_as is not None:
            if self._grouped_as not in (None, other._grouped_as):
                raise ValueError("groups must stay one kind: labels or a dict of slicings")
            self._grouped_as = other._grouped_as
        self._sums += other._sums
        for name, slicing in other._slicings.items():
            self._slicings.setdefault(name, _Groups()).merge(slicing)
        return self

    def result(self) -> dict[str, Any]:
        """{rows, sum, mean, weighted_mean, groups: {key: {the same}}[, slices]}, the groups in
        the report's order (sorted by key when the keys can be ordered, None last)."""
        out = self._summary()
        slices = {name: {k: v for k, v in self._group_items(name)} for name in self._slicings}
        if self._grouped_as == "slices":
            out["groups"], out["slices"] = {}, slices
        else:
            out["groups"] = next(iter(slices.values())) if slices else {}
        return out

    def _summary(self) -> dict[str, Any]:
        return _scope(self._sums)

    def _has_group(self, key: Hashable, slicing: str = "groups") -> bool:
        s = self._slicings.get(slicing)
        return s is not None and s.index.find(key) is not None

    def _group_blocks(
        self, slicing: str = "groups"
    ) -> Iterator[tuple[list[Hashable], dict[str, np.ndarray]]]:
        s = self._slicings.get(slicing)
        return s.blocks() if s is not None else iter(())

    def _group_items(self, slicing: str = "groups") -> Iterator[tuple[Hashable, dict[str, Any]]]:
        for keys, columns in self._group_blocks(slicing):
            values = [_as_list(c) for c in columns.values()]
            for key, row in zip(keys, zip(*values, strict=True), strict=True):
                yield key, dict(zip(columns, row, strict=True))

    def __repr__(self) -> str:
        groups = sum(len(s.keys) for s in self._slicings.values())
        return f"<LossSums rows={int(self._sums[_COUNT])} groups={groups}>"


def _differ(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The options that change the value and differ (validate and threads change only how it
    is computed)."""
    out = [
        k for k in mine if k not in ("validate", "threads", "pos_weight") and mine[k] != theirs[k]
    ]
    if not same_pos_weight(mine["pos_weight"], theirs["pos_weight"]):
        out.append("pos_weight")
    return out
