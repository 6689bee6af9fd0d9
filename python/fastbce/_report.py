"""The evaluation report (docs/report.md): its pass, its mergeable state and its keys.

One report pass of the kernel (``_core.report``) fills float64 sums per scope (the whole input and
each group of each slicing), 10 calibration bins, an AUC histogram per scope and the rows of
largest loss. ``ReportState`` keeps them across batches and merges them; ``scope_keys`` turns one
scope's sums into the report's keys. This is the one place that divides them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

__all__ = ["ReportOptions", "ReportPass", "ReportState", "histogram_bits"]

N_SUMS = int(_core.REPORT_SUMS)
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
_Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal

# AUC histograms: 64 << bits bins (bits mantissa bits of the binned prediction, at most 11). The
# whole input always uses 11; a slicing's groups share a budget of 2^21 bins, so they get fewer
# bits as they are more (50 groups: 9 bits; 1000 groups: 5; 32768 groups: 0), and past 65536
# groups a slicing has no histograms (its groups' auc is NaN).
MAX_BITS = 11
_GROUP_BIN_BUDGET = 1 << 21
_MAX_HISTOGRAM_GROUPS = 1 << 16


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
            value = _real(self.ignore_label, "ignore_label")
            if math.isnan(value):
                raise ValueError("ignore_label must be a number or None; got nan")
        offset = _real(self.logit_offset, "logit_offset")
        if not math.isfinite(offset):
            raise ValueError(f"logit_offset must be finite; got {self.logit_offset!r}")
        if isinstance(self.top_losses, (bool, np.bool_)):
            raise TypeError(f"top_losses must be an int >= 0; got {self.top_losses!r}")
        try:
            k = operator.index(self.top_losses)
        except TypeError:
            raise TypeError(f"top_losses must be an int >= 0; got {self.top_losses!r}") from None
        if k < 0:
            raise ValueError(f"top_losses must be an int >= 0; got {self.top_losses!r}")

    def check_with(self, from_logits: bool) -> None:
        if float(self.logit_offset) != 0.0 and not from_logits:
            raise ValueError(
                f"logit_offset={self.logit_offset!r} needs from_logits=True "
                "(it is added to logits; y_pred holds probabilities)"
            )


def _real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is out of range; got {value!r}") from None


# --------------------------------------------------------------------------- one pass


class ReportPass:
    """The outputs of one report pass; ``run`` is what ``_api._compute`` calls for the kernel.

    ``slicings`` holds (codes, n_groups) per slicing: int64 codes, one per row.
    """

    def __init__(
        self, options: ReportOptions, slicings: list[tuple[np.ndarray, int]], rows: int
    ) -> None:
        self.options = options
        self.sums = np.zeros(N_SUMS)
        self.bits = MAX_BITS
        self.hist = np.zeros((_bins(MAX_BITS), 2))
        self.slices: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, int | None]] = []
        for codes, n_groups in slicings:
            bits = histogram_bits(n_groups)
            hist = None if bits is None else np.zeros((n_groups, _bins(bits), 2))
            self.slices.append((codes, np.zeros((n_groups, N_SUMS)), hist, bits))
        self.rows = rows
        self.top_values = np.zeros((0, 4))
        self.top_index = np.zeros((0, 2), dtype=np.int64)

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
        slicings = [(c, s, h, 0 if b is None else b) for c, s, h, b in self.slices]
        if self.rows == 0:  # (the kernel has no rows to index)
            slicings = []
        out = _core.report(
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
            slicings,
            operator.index(opts.top_losses),
        )
        loss, wsum, count, fault, index, self.top_values, self.top_index = out
        return loss, wsum, count, fault, index


# --------------------------------------------------------------------------- state


class _Slicing:
    """The per-group sums and histograms of one slicing, keyed by group label."""

    def __init__(self) -> None:
        self.keys: list[Hashable] = []
        self.index: dict[Hashable, int] = {}
        self.sums = np.zeros((0, N_SUMS))
        self.hist: np.ndarray | None = np.zeros((0, _bins(MAX_BITS), 2))
        self.bits: int | None = MAX_BITS

    def add(
        self, keys: list[Hashable], sums: np.ndarray, hist: np.ndarray | None, bits: int | None
    ) -> None:
        rows = np.empty(len(keys), dtype=np.intp)
        for i, key in enumerate(keys):  # one iteration per group
            row = self.index.get(key)
            if row is None:
                row = self.index[key] = len(self.keys)
                self.keys.append(key)
            rows[i] = row
        n = len(self.keys)
        grown = np.zeros((n, N_SUMS))
        grown[: self.sums.shape[0]] = self.sums
        grown[rows] += sums  # (the rows are distinct)
        self.sums = grown
        self._add_hist(rows, n, hist, bits)

    def _add_hist(
        self, rows: np.ndarray, n: int, hist: np.ndarray | None, bits: int | None
    ) -> None:
        if self.hist is None or self.bits is None:
            return
        if hist is None or bits is None or n > _MAX_HISTOGRAM_GROUPS:
            self.hist, self.bits = None, None
            return
        to = min(self.bits, bits)
        mine = coarsen(self.hist, self.bits, to)
        grown = np.zeros((n, _bins(to), 2))
        grown[: mine.shape[0]] = mine
        grown[rows] += coarsen(hist, bits, to)
        self.hist, self.bits = grown, to

    def merge(self, other: _Slicing) -> None:
        self.add(other.keys, other.sums, other.hist, other.bits)

    def ordered(self) -> list[int]:
        order = list(range(len(self.keys)))
        try:
            order.sort(key=lambda i: (self.keys[i] is None, self.keys[i]))
        except TypeError:  # keys of mixed types: keep the order first seen
            pass
        return order


class ReportState:
    """Everything a report needs, over any number of passes; merges and pickles."""

    def __init__(self, options: ReportOptions, slicing_names: list[str] | None = None) -> None:
        self.options = options
        self.sums = np.zeros(N_SUMS)
        self.bits = MAX_BITS
        self.hist = np.zeros((_bins(MAX_BITS), 2))
        self.slicings: dict[str, _Slicing] = {n: _Slicing() for n in (slicing_names or [])}
        # (loss, row, weight, y_true, y_pred, group key) of the rows of largest loss
        self.top: list[tuple[float, int, float, float, float, Hashable]] = []
        self.rows_seen = 0  # elements given so far, counted or not: the next row's index

    def add_pass(self, p: ReportPass, names: list[str], keys: list[list[Hashable]]) -> None:
        self.sums += p.sums
        self.hist += p.hist
        for name, group_keys, (_codes, sums, hist, bits) in zip(names, keys, p.slices, strict=True):
            self.slicings.setdefault(name, _Slicing()).add(group_keys, sums, hist, bits)
        first = keys[0] if len(keys) == 1 else None
        new = []
        for (loss, weight, y_true, y_pred), (row, code) in zip(
            p.top_values.tolist(), p.top_index.tolist(), strict=True
        ):
            key = first[code] if first is not None and code >= 0 else None
            new.append((loss, self.rows_seen + row, weight, y_true, y_pred, key))
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

    def group_items(self, name: str) -> Iterator[tuple[Hashable, dict[str, Any]]]:
        """(key, keys) of the groups of one slicing, in result()'s order, one at a time."""
        s = self.slicings.get(name)
        if s is None:
            return
        for i in s.ordered():
            yield s.keys[i], scope_keys(s.sums[i], None if s.hist is None else s.hist[i])

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
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _slicing_keys(s: _Slicing) -> dict[Hashable, dict[str, Any]]:
    out = {}
    for i in s.ordered():
        hist = None if s.hist is None else s.hist[i]
        out[s.keys[i]] = scope_keys(s.sums[i], hist)
    return out


def _top_entry(t: tuple[float, int, float, float, float, Hashable], with_group: bool) -> dict:
    loss, row, weight, y_true, y_pred, key = t
    entry: dict[str, Any] = {
        "row": row,
        "y_true": y_true,
        "y_pred": y_pred,
        "loss": 0.0 if weight == 0.0 else weight * loss,
    }
    if with_group:
        entry["group"] = key
    return entry


# --------------------------------------------------------------------------- keys


def _div(a: float, b: float) -> float:
    """a / b, NaN when b is 0 (never an exception)."""
    return a / b if b != 0.0 else math.nan


def _entropy(b: float) -> float:
    if not 0.0 < b < 1.0:
        return 0.0 if b in (0.0, 1.0) else math.nan
    return -b * math.log(b) - (1.0 - b) * math.log1p(-b)


def scope_keys(sums: np.ndarray, hist: np.ndarray | None) -> dict[str, Any]:
    """The report's keys of one scope from its sums and AUC histogram (None: auc is NaN)."""
    s = [float(v) for v in sums[:_ECE]]
    rows, w, wl = s[_COUNT], s[_W], s[_WL]
    m = _div(wl, w)
    log_loss = _div(s[_WBCE], w)
    base_rate = _div(s[_WY], w)
    h = _entropy(base_rate)
    var = s[_W2L2] - 2.0 * m * s[_W2L] + m * m * s[_W2] if w != 0.0 else math.nan
    std_error = _div(math.sqrt(max(var, 0.0)) if var == var else math.nan, w)
    auc, auc_bound = _auc(hist)
    return {
        "rows": int(rows),
        "sum": wl,
        "mean": _div(wl, rows),
        "weighted_mean": m,
        "weight": w,
        "log_loss": log_loss,
        "base_rate": base_rate,
        "mean_prediction": _div(s[_WP], w),
        "calibration": _div(s[_WP], s[_WY]),
        "normalized_entropy": _div(log_loss, h),
        "brier": _div(s[_WSQ], w),
        "loss_positive": _div(s[_WYL], s[_WY]),
        "loss_negative": _div(s[_WNL], s[_WN]),
        "std_error": std_error,
        "ci95": [m - _Z95 * std_error, m + _Z95 * std_error],
        "auc": auc,
        "auc_bound": auc_bound,
        "ece": _ece(sums, w),
        "omitted": int(s[_OMITTED]),
        "ignored": int(s[_IGNORED]),
    }


def _auc(hist: np.ndarray | None) -> tuple[float, float]:
    """ROC AUC with ties within a bin counted 1/2, and the most that binning can move it."""
    if hist is None:
        return math.nan, math.nan
    pos, neg = hist[:, 0], hist[:, 1]
    total_pos, total_neg = float(pos.sum()), float(neg.sum())
    if not (total_pos > 0.0 and total_neg > 0.0):  # (NaN too)
        return math.nan, math.nan
    with np.errstate(all="ignore"):  # (no np.dot: OpenBLAS's threads would spin afterwards)
        below = np.cumsum(neg) - neg  # negatives in lower bins
        pairs = float((pos * (below + 0.5 * neg)).sum())
        tied = float((pos * neg).sum())
    denominator = total_pos * total_neg
    return pairs / denominator, tied / (2.0 * denominator)


def _ece_bins(sums: np.ndarray) -> np.ndarray:
    return np.asarray(sums[_ECE : _ECE + 3 * _ECE_BINS], dtype=np.float64).reshape(_ECE_BINS, 3)


def _ece(sums: np.ndarray, w: float) -> float:
    bins = _ece_bins(sums)
    with np.errstate(all="ignore"):
        gap = float(np.abs(bins[:, 1] - bins[:, 2]).sum())
    return _div(gap, w)


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
