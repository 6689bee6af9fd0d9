"""The evaluation report (docs/report.md): its pass, its mergeable state and its keys.

One report pass of the kernel (``_core.report``) fills float64 sums per scope (the whole input and
each group of each slicing), 10 calibration bins, an AUC histogram per scope and the rows of
largest loss. ``ReportState`` keeps them across batches and merges them; ``scope_keys`` turns one
scope's sums into the report's keys. This is the one place that divides them.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._group_arrays import grown, narrowed
from ._groups import GROUP_CODE_FAULT, LOCAL_KEYS, GroupIndex, code_error, key_order
from ._options import real_number, whole_number

__all__ = ["Batch", "ReportOptions", "ReportPass", "ReportState", "histogram_bits"]

N_SUMS = int(_core.REPORT_SUMS)
N_SUMS_NO_ECE = int(_core.REPORT_SUMS_NO_ECE)  # a group's sums without the ECE bins
HIST_AFTER_CHECK = int(_core.REPORT_HIST_AFTER_CHECK)  # elements of a pass into a slicing's own
# column of each sum in a scope's vector (the order of cpp/include/fastbce/report_types.hpp)
(
    _COUNT,
    _W,
    _WL,
    _WBCE,
    _WY,
    _WN,
    _WP,
    _WSQ,
    _WYL,
    _WNL,
    _W2,
    _W2L,
    _W2L2,
    _OMITTED,
    _IGNORED,
    _ECE,
) = range(16)
_ECE_BINS = 10
_Z95 = 1.96  # the 97.5% quantile of the standard normal, rounded as the contract and TFMA give it

# AUC histograms: 64 << bits bins (bits mantissa bits of the binned prediction, at most 11). The
# whole input always uses 11; a slicing's groups share a budget of 2^21 bins, so they get fewer
# bits as they are more (50 groups: 9 bits; 1000 groups: 5; 32768 groups: 0), and past 65536
# groups a slicing has no histograms (its groups' auc is NaN).
MAX_BITS = 11
_GROUP_BIN_BUDGET = 1 << 21
# (the same bound as the keys' local renumbering: ReportState.new_pass adds a slicing past it in
# place, where a pass has no histograms)
_MAX_HISTOGRAM_GROUPS = LOCAL_KEYS


def histogram_bits(n_groups: int) -> int | None:
    """Mantissa bits of the AUC histograms of a slicing with n_groups groups (None: none)."""
    if n_groups <= 1:
        return MAX_BITS
    if n_groups > _MAX_HISTOGRAM_GROUPS:
        return None
    return max(0, min(MAX_BITS, 15 - math.ceil(math.log2(n_groups))))


def _bins(bits: int) -> int:
    return 64 << bits


def coarsen(hist: np.ndarray, bits: int, to_bits: int) -> np.ndarray:
    """A histogram of `bits` as one of `to_bits` <= bits (a coarse bin: 2^d adjacent fine ones)."""
    if to_bits == bits:
        return hist
    shape = hist.shape[:-2] + (_bins(to_bits), 1 << (bits - to_bits), 2)
    out: np.ndarray = hist.reshape(shape).sum(axis=-2)
    return out


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ReportOptions:
    """The report's own options, checked (the loss options are ``_options.LossOptions``)."""

    ignore_label: float | None = None
    logit_offset: float = 0.0
    top_losses: int = 0

    def __post_init__(self) -> None:
        if self.ignore_label is not None:
            value = real_number(self.ignore_label, "ignore_label")
            if math.isnan(value):
                raise ValueError("ignore_label must be a number or None; got nan")
        offset = real_number(self.logit_offset, "logit_offset")
        if not math.isfinite(offset):
            raise ValueError(f"logit_offset must be finite; got {self.logit_offset!r}")
        if whole_number(self.top_losses, "top_losses", 0, "an int >= 0") >= 2**62:
            raise ValueError(f"top_losses must be an int below 2**62; got {self.top_losses!r}")

    def check_with(self, from_logits: bool) -> None:
        if float(self.logit_offset) != 0.0 and not from_logits:
            raise ValueError(
                f"logit_offset={self.logit_offset!r} needs from_logits=True "
                "(it is added to logits; y_pred holds probabilities)"
            )


# --------------------------------------------------------------------------- one pass


# (codes, n_groups, width, bits, direct, own) of a slicing in a pass (ReportPass)
_PassSlicing = tuple[
    np.ndarray, int, int, int | None, tuple[np.ndarray, np.ndarray] | None, np.ndarray | None
]


class ReportPass:
    """The outputs of one report pass; ``run`` is what ``_api._compute`` calls for the kernel.

    ``slicings`` holds (codes, n_groups, width, bits, direct, own) per slicing: int64 (or int32: an
    Arrow dictionary's indices, int32 labels that are their codes) codes into the batch's own
    n_groups groups, one per row; the width of a group's sums (N_SUMS, or N_SUMS_NO_ECE without ECE
    bins) and its histograms' bits (None: no histograms), as ``ReportState`` says; own: None, or the
    slicing's own sums (its first n_groups rows, the codes being the slicing's) for the kernel to
    add to straight away, as for a slicing of very many groups (a batch's copy of a million groups'
    sums was 76 MB): ``run`` then checks every row first, in a pass without groups, so that nothing
    is added unless the pass succeeds; state_hist: the state's histogram of the whole input, added
    to in place (``hist_in_place``) when no check pass comes first; direct: None, or (histograms,
    rows) when the kernel adds straight into the slicing's own histograms, group i into row rows[i]
    (a pass of at most HIST_AFTER_CHECK elements, where the kernel adds nothing unless every row
    passed its checks, or a slicing's first pass of any size, whose rows ``Batch.undo`` clears; the
    kernel sets ``written`` when it added; a fresh 26 MB array per batch and its sum into the
    slicing's cost more than the whole pass's other group work).
    """

    def __init__(
        self,
        options: ReportOptions,
        slicings: list[_PassSlicing],
        rows: int,
        state_hist: np.ndarray | None = None,
    ) -> None:
        self.options = options
        self.sums = np.zeros(N_SUMS)
        self.bits = MAX_BITS
        self.own = [own is not None for *_, own in slicings]  # per slicing: sums added in place
        # the whole input's histogram: the state's own (state_hist), which the kernel adds to only
        # once the call has succeeded (a fresh 2 MiB array per batch and its sum into the
        # state's cost as much as the report's other per-batch work), except with a check pass
        # first (own sums), which would add to it too
        self.hist_in_place = (
            state_hist is not None
            and not any(self.own)
            and state_hist.flags.c_contiguous
            and state_hist.flags.writeable
        )
        in_place = state_hist if self.hist_in_place else None
        self.hist: np.ndarray = np.zeros((_bins(MAX_BITS), 2)) if in_place is None else in_place
        self.slices: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, int | None]] = []
        self.direct: list[np.ndarray | None] = []  # per slicing: the hist_rows, or None
        for codes, n_groups, width, bits, direct, own in slicings:
            hist: np.ndarray | None = None
            hist_rows: np.ndarray | None = None
            if direct is not None:
                hist, hist_rows = direct
            elif bits is not None:
                hist = np.zeros((n_groups, _bins(bits), 2))
            sums = own if own is not None else np.zeros((n_groups, width))
            self.slices.append((codes, sums, hist, bits))
            self.direct.append(hist_rows)
        self.written = np.zeros(1, dtype=np.int64)  # set by the kernel when direct adds are in
        self.rows = rows
        self.top_values = np.zeros((0, 4))
        self.top_index = np.zeros((0, 2), dtype=np.int64)
        self.working: np.dtype = np.dtype(np.float32)  # the call's working precision (run)

    def run(
        self,
        call: Any,
        y_true: np.ndarray,
        y_true_stride: int,
        y_pred: np.ndarray,
        y_pred_stride: int,
        weight: Any,
        weight_stride: int,
        pos_weight: Any,
        *_unused: Any,
    ) -> tuple[float, float, float, int, int]:
        opts = self.options
        slicings = [
            (c, s, h, 0 if b is None else b, r)
            for (c, s, h, b), r in zip(self.slices, self.direct, strict=True)
        ]

        def kernel_pass(groups: list[Any], top_losses: int, written: Any) -> tuple[Any, ...]:
            # (this batch's one kernel pass; with no slicings, the check before in-place adds)
            return _core.report(
                call,
                y_true,
                y_true_stride,
                y_pred,
                y_pred_stride,
                weight,
                weight_stride,
                pos_weight,
                float(opts.logit_offset),
                None if opts.ignore_label is None else float(opts.ignore_label),
                self.sums,
                self.hist,
                self.bits,
                groups,
                top_losses,
                written,
            )

        if self.rows == 0:  # (the kernel has no rows to index)
            slicings = []
        elif any(self.own):  # every row checked before any adds to a slicing's own sums
            check = kernel_pass([], 0, None)
            if check[3]:  # (a fault: the same one the grouped pass would stop at)
                return check[0], check[1], check[2], check[3], check[4]
            self.sums[:] = 0.0
            self.hist[:] = 0.0
        out = kernel_pass(slicings, operator.index(opts.top_losses), self.written)
        loss, wsum, count, fault, index, self.top_values, self.top_index = out
        self.working = np.dtype(np.float64 if y_pred.dtype == np.float64 else np.float32)
        if fault == GROUP_CODE_FAULT:  # (an Arrow dictionary's index outside its dictionary)
            row = index // call.row_size
            for codes, sums, _hist, _bits in self.slices:  # (the first slicing it is outside)
                if not 0 <= int(codes[row]) < sums.shape[0]:
                    raise code_error(int(codes[row]), row, sums.shape[0])
        return loss, wsum, count, fault, index


# --------------------------------------------------------------------------- state


class _Slicing:
    """The groups of one slicing: their keys (one ``GroupIndex`` for every batch, so a label is
    hashed once) and their sums and histograms, in arrays that grow in place (by an eighth or
    more), row i for the key of code i."""

    def __init__(self) -> None:
        self.index = GroupIndex()
        self.sums = np.zeros((0, N_SUMS))
        self.hist: np.ndarray | None = np.zeros((0, _bins(MAX_BITS), 2))
        self.bits: int | None = MAX_BITS

    @property
    def keys(self) -> Sequence[Hashable]:
        return self.index.keys

    @property
    def width(self) -> int:
        return int(self.sums.shape[1])

    def layout(self) -> tuple[int, int | None]:
        """(width of a group's sums, histogram bits or None) for the keys so far: fewer bits as
        groups are more, and past _MAX_HISTOGRAM_GROUPS neither histograms nor ECE bins (a
        million groups would take 360 bytes each for the bins). It depends only on the number
        of keys (and never grows back), so any split of the data, merged, gives the one-pass
        layout."""
        n = len(self.keys)
        if n > _MAX_HISTOGRAM_GROUPS or self.bits is None:
            return N_SUMS_NO_ECE, None
        return self.width, min(self.bits, histogram_bits(n) or 0)

    def prepare(self) -> None:
        """The layout of ``layout`` and room for every key so far (growing by an eighth or more)."""
        width, bits = self.layout()
        if width != self.width:
            self.sums = narrowed(self.sums, width)
        if bits is None or self.hist is None or self.bits is None:
            self.hist, self.bits = None, None
        elif bits != self.bits:
            self.hist, self.bits = coarsen(self.hist, self.bits, bits), bits
        n, capacity = len(self.keys), self.sums.shape[0]
        if n > capacity:  # (by an eighth or more: in place, _group_arrays.grown)
            capacity = max(n + n // 32, capacity + capacity // 8, 16)
            self.sums = grown(self.sums, capacity)
            if self.hist is not None:
                self.hist = grown(self.hist, capacity)

    def direct_hist(self, size: int, fresh: bool) -> np.ndarray | None:
        """The slicing's own histograms, for a pass of `size` elements to add to straight away
        (None: it adds to its own, zeroed). Only when the layout stays as it is: room for the
        batch's new keys (rows of zeros, harmless if the batch fails) is all that changes. A
        pass of more than HIST_AFTER_CHECK elements may add some rows before it fails, so only
        when every group of the batch is new (fresh: the slicing had no keys; ``Batch.undo``
        clears the new keys' rows)."""
        if size > HIST_AFTER_CHECK and not fresh:
            return None
        if fresh:  # (nothing in it yet: its layout may change first)
            self.prepare()
        width, bits = self.layout()
        if bits is None or bits != self.bits or width != self.width:
            return None
        self.prepare()
        return self.hist

    def add(
        self, table: np.ndarray, sums: np.ndarray, hist: np.ndarray | None, bits: int | None
    ) -> None:
        """Adds the sums of groups whose codes are `table` (distinct), after ``prepare``; hist
        None: the histograms are in already (a direct pass)."""
        if table.size == 0:
            return
        _core.add_rows(self.sums, table, np.ascontiguousarray(sums[:, : self.width]))
        if self.hist is not None and self.bits is not None and hist is not None:
            assert bits is not None
            _core.add_rows(self.hist, table, np.ascontiguousarray(coarsen(hist, bits, self.bits)))

    def merge(self, other: _Slicing) -> None:
        n = len(other.keys)
        table = self.index.codes_of(other.index)
        self.prepare()  # (at least as many keys as other: its layout or a coarser one)
        hist = None if other.hist is None else other.hist[:n]
        self.add(table, other.sums[:n], hist, other.bits)

    def ordered(self) -> np.ndarray:
        """Group indices in result()'s order (``_groups.key_order``)."""
        return key_order(self.index)

    def __getstate__(self) -> dict[str, Any]:
        n = len(self.keys)  # (without the spare capacity)
        hist = None if self.hist is None else _packed(self.hist[:n])
        return {"index": self.index, "sums": self.sums[:n].copy(), "hist": hist, "bits": self.bits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.hist is not None:
            self.hist = _unpacked(self.hist)


class ReportState:
    """Everything a report needs, over any number of passes; merges and pickles."""

    def __init__(self, options: ReportOptions) -> None:
        self.options = options
        self.sums = np.zeros(N_SUMS)
        self.bits = MAX_BITS
        self.hist = np.zeros((_bins(MAX_BITS), 2))
        self.slicings: dict[str, _Slicing] = {}
        # (loss, row, weighted loss, y_true, y_pred, group key) of the rows of largest loss:
        # loss is l (the ranking key), the weighted loss w·l as reduction="none" gives it
        self.top: list[tuple[float, int, float, float, float, Hashable]] = []
        self.rows_seen = 0  # elements given so far, counted or not: the next row's index

    def nbytes(self) -> int:
        """The size of the slicings' sums, histograms and keys."""
        sizes = [
            s.sums.nbytes + (0 if s.hist is None else s.hist.nbytes) + s.index.nbytes
            for s in self.slicings.values()
        ]
        return sum(sizes)

    def encode(self, names: list[str], labels: list[Any], rows: int) -> Batch:
        """Codes of one batch's labels per slicing (new keys are added: ``Batch.undo`` forgets
        them if the batch fails). A slicing whose labels are not one per row raises ValueError."""
        batch = Batch(self)
        try:
            for name, group_labels in zip(names, labels, strict=True):
                slicing = self.slicings.get(name)
                if slicing is None:
                    slicing = self.slicings[name] = _Slicing()
                    batch.created.append(name)
                batch.marks.append((slicing, len(slicing.keys)))
                codes, table = slicing.index.encode_in_place(group_labels, rows, name)
                batch.slices.append((slicing, codes, table))
        except BaseException:
            batch.undo()
            raise
        return batch

    def add_pass(self, p: ReportPass, batch: Batch) -> None:
        self.sums += p.sums
        if not p.hist_in_place:  # (else the kernel added it when the pass succeeded)
            self.hist += p.hist
        for (slicing, _codes, table), (_c, sums, hist, bits), direct, own in zip(
            batch.slices, p.slices, p.direct, p.own, strict=True
        ):
            slicing.prepare()
            if not own and table is not None:  # (else the kernel added them in place)
                slicing.add(table, sums, None if direct is not None else hist, bits)
        first = batch.slices[0] if len(batch.slices) == 1 else None
        new = []
        for (loss, weight, y_true, y_pred), (row, code) in zip(
            p.top_values.tolist(), p.top_index.tolist(), strict=True
        ):
            key = None
            if first is not None and code >= 0:
                key = first[0].keys[code if first[2] is None else int(first[2][code])]
            weighted = _weighted_loss(weight, loss, p.working)
            new.append((loss, self.rows_seen + row, weighted, y_true, y_pred, key))
        self._add_top(new)
        self.rows_seen += p.rows

    def merge(self, other: ReportState) -> None:
        """Adds other as if its rows came after self's."""
        self.sums += other.sums
        self.hist += other.hist
        for name, slicing in other.slicings.items():
            self.slicings.setdefault(name, _Slicing()).merge(slicing)
        shifted = [(t[0], t[1] + self.rows_seen, *t[2:]) for t in other.top]
        self._add_top(shifted)
        self.rows_seen += other.rows_seen

    def _add_top(self, entries: list[tuple[float, int, float, float, float, Hashable]]) -> None:
        k = operator.index(self.options.top_losses)
        if k:
            self.top = sorted(self.top + entries, key=lambda t: (-t[0], t[1]))[:k]

    def group_blocks(self, name: str) -> Iterator[tuple[list[Hashable], dict[str, np.ndarray]]]:
        """``group_blocks`` of one slicing (none if there is no such slicing)."""
        s = self.slicings.get(name)
        return group_blocks(s) if s is not None else iter(())

    def has_group(self, name: str, key: Hashable) -> bool:
        """Whether slicing `name` has the group `key`."""
        s = self.slicings.get(name)
        return s is not None and s.index.find(key) is not None

    def group_items(self, name: str) -> Iterator[tuple[Hashable, dict[str, Any]]]:
        """(key, keys) of the groups of one slicing, in result()'s order, one at a time."""
        s = self.slicings.get(name)
        if s is None:
            return
        yield from _group_scopes(s)

    def result(self, *, grouped_as: str | None, with_groups: bool = True) -> dict[str, Any]:
        """The report. grouped_as: "groups" (one slicing, as groups=labels), "slices" (a dict of
        slicings) or None (no slicing; an empty "groups" is still there)."""
        out = scope_keys(self.sums, self.hist)
        out["reliability"] = reliability(self.sums)
        if operator.index(self.options.top_losses):
            one = len(self.slicings) == 1
            out["top_losses"] = [_top_entry(t, one) for t in self.top]
        if not with_groups:
            return out
        slices = {name: _slicing_keys(s) for name, s in self.slicings.items()}
        if grouped_as == "slices":
            out["groups"] = {}
            out["slices"] = slices
        else:
            out["groups"] = next(iter(slices.values())) if slices else {}
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "hist": _packed(self.hist)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.hist = _unpacked(self.hist)


def _packed(hist: np.ndarray) -> Any:
    """A histogram as pickled: its nonzero cells alone (shape, flat indices, values) where they
    are under a quarter of it, as in the accumulator of a Dask chunk (the whole input's 2 MB
    histogram of a chunk of a few rows was 2 MB a chunk), else a copy of the array."""
    nonzero = np.flatnonzero(hist)
    if nonzero.size * 4 >= hist.size:
        return hist.copy()
    return (hist.shape, nonzero, hist.reshape(-1)[nonzero])


def _unpacked(packed: Any) -> np.ndarray:
    """The histogram _packed made (an array as it is)."""
    if isinstance(packed, np.ndarray):
        return packed
    shape, nonzero, values = packed
    hist = np.zeros(shape)
    hist.reshape(-1)[nonzero] = values
    return hist


class Batch:
    """One batch's codes per slicing: (slicing, codes into the batch's groups, their codes in
    the slicing; None once the codes are the slicing's), and what ``undo`` needs to forget the
    keys it added."""

    def __init__(self, state: ReportState) -> None:
        self.state = state
        self.slices: list[tuple[_Slicing, np.ndarray, np.ndarray | None]] = []
        self.marks: list[tuple[_Slicing, int]] = []
        self.created: list[str] = []
        # (slicing, its sums, hist and bits) before a direct pass of a slicing with no keys
        # changed its layout for the batch's keys: undo puts them back (a layout never grows)
        self.layouts: list[tuple[_Slicing, tuple[np.ndarray, np.ndarray | None, int | None]]] = []

    def new_pass(self, size: int, *, direct: bool = True) -> ReportPass:
        """The pass of this batch; direct: its histograms may go straight into the slicings'.
        A slicing of more than _MAX_HISTOGRAM_GROUPS keys (no histograms) always has its sums
        added in place (ReportPass's own). Either way a pass that ran must be added,
        ``ReportPass.written``, even if an exception follows."""
        slicings: list[_PassSlicing] = []
        for i, ((s, codes, table), (_, mark)) in enumerate(
            zip(self.slices, self.marks, strict=True)
        ):
            many = table is None or len(s.keys) > _MAX_HISTOGRAM_GROUPS
            if (direct or many) and (mark == 0 or s.layout() != (s.width, s.bits)):
                self.layouts.append((s, (s.sums, s.hist, s.bits)))  # (undo puts them back)
            if many:
                s.prepare()  # (room for the new keys: zero rows, harmless if the pass fails)
                if table is not None:
                    codes = table[codes]  # (the slicing's codes)
                    self.slices[i] = (s, codes, None)
                n = len(s.keys)
                slicings.append((codes, n, *s.layout(), None, s.sums[:n]))
                continue
            assert table is not None
            hist = s.direct_hist(size, mark == 0) if direct else None
            into = None if hist is None else (hist, table)
            slicings.append((codes, table.size, *s.layout(), into, None))
        return ReportPass(self.state.options, slicings, size, self.state.hist)

    def undo(self) -> None:
        for slicing, mark in self.marks:
            if slicing.hist is not None:  # (a direct pass that failed may have added to them)
                slicing.hist[mark : len(slicing.keys)] = 0.0
            slicing.index.rollback(mark)
        for slicing, (sums, hist, bits) in self.layouts:
            slicing.sums, slicing.hist, slicing.bits = sums, hist, bits
        for name in self.created:
            del self.state.slicings[name]


def _slicing_keys(s: _Slicing) -> dict[Hashable, dict[str, Any]]:
    return dict(_group_scopes(s))


_BLOCK = 1 << 13  # groups whose keys are computed (and printed) at once: bounded memory


def _group_scopes(s: _Slicing) -> Iterator[tuple[Hashable, dict[str, Any]]]:
    """(key, scope_keys of the group) in result()'s order, one at a time."""
    for keys, columns in group_blocks(s):
        yield from zip(keys, _scope_rows(columns), strict=True)


def _scope_rows(columns: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """The keys of each scope (a dict of Python numbers) from ``_scope_columns``' arrays, one
    at a time (made by map and zip: no Python frame per row of a million)."""
    rows = zip(*(_as_list(c) for c in columns.values()), strict=True)
    return map(dict, map(zip, itertools.repeat(list(columns)), rows))


def _as_list(column: np.ndarray) -> list[Any]:
    """column.tolist() with math.nan for every NaN (so that results compare equal: containers
    compare NaN by identity)."""
    out: list[Any] = column.tolist()
    if column.dtype.kind == "f":
        where = np.isnan(column)
        if column.ndim == 2:
            for i, j in zip(*np.nonzero(where), strict=True):
                out[i][j] = math.nan
        else:
            for i in where.nonzero()[0].tolist():
                out[i] = math.nan
    return out


def group_blocks(s: _Slicing) -> Iterator[tuple[list[Hashable], dict[str, np.ndarray]]]:
    """(keys, {key name: an array of one value per group (ci95: pairs)}) of a block of groups
    at a time, in result()'s order (``_scope_columns``, the formulas of scope_keys)."""
    order = s.ordered()
    for start in range(0, len(order), _BLOCK):
        block = order[start : start + _BLOCK]
        rows = np.asarray(block, dtype=np.int64)
        yield s.index.keys_at(block), _scope_columns(s.sums[rows], s.hist, rows)


def _scope_columns(
    sums: np.ndarray, hist: np.ndarray | None, hist_rows: np.ndarray
) -> dict[str, np.ndarray]:
    """The report's keys of many scopes at once, each an array with one value per row of sums
    (their AUC histograms: hist[hist_rows], no copy; hist None: auc is NaN). The one place of
    each key's formula."""
    n = sums.shape[0]
    col = [sums[:, j] for j in range(_ECE)]
    rows, w, wl = col[_COUNT], col[_W], col[_WL]
    with np.errstate(all="ignore"):
        m = _divs(wl, w)
        log_loss = _divs(col[_WBCE], w)
        base_rate = _divs(col[_WY], w)
        h = _core.entropies(base_rate)
        var = np.where(w != 0.0, col[_W2L2] - 2.0 * m * col[_W2L] + m * m * col[_W2], np.nan)
        # one row: 0 exactly (m = w l / w need not round to l, and the difference then left
        # about 1e-8 of m for a weight other than 1)
        var = np.where((rows == 1) & np.isfinite(var), 0.0, var)
        root = np.where(var == var, np.sqrt(np.maximum(var, 0.0)), np.nan)
        std_error = _divs(root, w)
        half = _Z95 * std_error
        if sums.shape[1] >= N_SUMS:
            bins = sums[:, _ECE : _ECE + 3 * _ECE_BINS].reshape(n, _ECE_BINS, 3)
            ece = _divs(np.abs(bins[:, :, 1] - bins[:, :, 2]).sum(axis=1), w)
        else:
            ece = np.full(n, math.nan)
        if hist is not None:
            aucs = _core.hist_auc(hist, hist_rows)
            # a NaN that counts (nan_policy "propagate") makes the AUC NaN as it makes the sums:
            # the histograms bin a NaN prediction as a number (w p is NaN in the scope's sums)
            aucs[np.isnan(col[_W]) | np.isnan(col[_WP]) | np.isnan(col[_WY])] = math.nan
        else:
            aucs = np.full((n, 2), math.nan)
        return {
            "rows": rows.astype(np.int64),
            "sum": wl,
            "mean": _divs(wl, rows),
            "weighted_mean": m,
            "weight": w,
            "log_loss": log_loss,
            "base_rate": base_rate,
            "mean_prediction": _divs(col[_WP], w),
            "calibration": _divs(col[_WP], col[_WY]),
            "normalized_entropy": _divs(log_loss, h),
            "brier": _divs(col[_WSQ], w),
            "loss_positive": _divs(col[_WYL], col[_WY]),
            "loss_negative": _divs(col[_WNL], col[_WN]),
            "std_error": std_error,
            "ci95": np.stack([m - half, m + half], axis=1),
            "auc": aucs[:, 0].copy(),
            "auc_bound": aucs[:, 1].copy(),
            "ece": ece,
            "omitted": col[_OMITTED].astype(np.int64),
            "ignored": col[_IGNORED].astype(np.int64),
        }


def _divs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b elementwise, NaN where b is 0 (as _div); in _scope_columns' errstate, which
    ignores the divisions by 0 that are then overwritten."""
    out: np.ndarray = np.divide(a, b)
    out[b == 0.0] = math.nan
    return out


def _weighted_loss(weight: float, loss: float, working: np.dtype) -> float:
    """w·l as reduction="none" gives it: rounded once to the working precision (the float64
    product of two float32 values is exact, so this is their float32 product); 0 for a weight
    of 0 whatever l is (an infinite l too)."""
    if weight == 0.0:
        return 0.0
    with np.errstate(over="ignore"):  # (beyond float32's range the loss is inf, as the kernel's)
        return float(working.type(weight * loss))


def _top_entry(t: tuple[float, int, float, float, float, Hashable], with_group: bool) -> dict:
    _loss, row, weighted, y_true, y_pred, key = t
    entry: dict[str, Any] = {"row": row, "y_true": y_true, "y_pred": y_pred, "loss": weighted}
    if with_group:
        entry["group"] = key
    return entry


# --------------------------------------------------------------------------- keys


def _div(a: float, b: float) -> float:
    """a / b, NaN when b is 0 (never an exception)."""
    return a / b if b != 0.0 else math.nan


def scope_keys(sums: np.ndarray, hist: np.ndarray | None) -> dict[str, Any]:
    """The report's keys of one scope from its sums and AUC histogram (None: auc is NaN): the
    one-row case of ``_scope_columns``, so the whole input and its groups share each formula."""
    hists = None if hist is None else np.ascontiguousarray(hist, dtype=np.float64)[None]
    return next(_scope_rows(_scope_columns(sums[None], hists, np.zeros(1, np.int64))))


def _ece_bins(sums: np.ndarray) -> np.ndarray:
    return np.asarray(sums[_ECE : _ECE + 3 * _ECE_BINS], dtype=np.float64).reshape(_ECE_BINS, 3)


def reliability(sums: np.ndarray) -> list[dict[str, float]]:
    """The 10 bins of the ECE: edges, weight, mean prediction and base rate (NaN when empty)."""
    out = []
    for b, (w, wp, wy) in enumerate(_ece_bins(sums).tolist()):
        out.append(
            {
                "lo": b / _ECE_BINS,
                "hi": (b + 1) / _ECE_BINS,
                "weight": w,
                "mean_prediction": _div(wp, w),
                "base_rate": _div(wy, w),
            }
        )
    return out
