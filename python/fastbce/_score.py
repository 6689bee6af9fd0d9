"""``fastbce score``: the log loss of a dataset, overall and per group, and the per-row loss.

The data is streamed in batches (see ``_io``) through one ``LossAccumulator``: each batch is one
kernel pass that also fills the per-group sums and, with ``--output``, the per-row loss, which is
written out in input order. Memory stays bounded by the batch size, whatever the input size.
With ``--scheduler`` the same job runs on a Dask cluster (``_score_dask``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from .cli import DataError, UsageError

DEFAULT_BATCH_ROWS = 1 << 18


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score a table of labels and predictions: the log loss overall and per group, and "
        "optionally the loss of every row. INPUT is a .parquet file, a directory or glob of them, "
        "a .csv or an .npz; or give --y-true a.npy --y-pred b.npy (memory-mapped) and no INPUT."
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="the data to score")
    cols = parser.add_argument_group("columns (or .npy files when there is no INPUT)")
    cols.add_argument("--y-true", default="y_true", metavar="COL", help="labels (default y_true)")
    cols.add_argument(
        "--y-pred", default="y_pred", metavar="COL", help="probabilities or logits (default y_pred)"
    )
    cols.add_argument("--sample-weight", metavar="COL", help="a weight per row")
    cols.add_argument("--group-by", metavar="COL", help="also report the loss per value of COL")
    cols.add_argument(
        "--positive-label",
        metavar="VALUE",
        help="the label of the positive class, for string or integer labels "
        "(VALUE is 1, every other label 0)",
    )
    loss = parser.add_argument_group("loss options (as fastbce.binary_crossentropy)")
    loss.add_argument("--from-logits", action="store_true", help="y_pred holds logits")
    loss.add_argument("--epsilon", type=float, default=1e-7, help="clip (default 1e-7)")
    loss.add_argument("--label-smoothing", type=float, default=0.0, metavar="S")
    loss.add_argument("--pos-weight", type=float, default=None, metavar="Q")
    loss.add_argument("--gamma", type=float, default=0.0, help="focal loss exponent")
    loss.add_argument("--alpha", type=float, default=None, help="class balancing")
    loss.add_argument("--nan-policy", choices=["propagate", "omit", "raise"], default="propagate")
    loss.add_argument("--threads", type=int, default=None, metavar="N")
    loss.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="do not check that labels and probabilities are in [0, 1]",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output",
        metavar="PATH",
        help="write the loss of every row, in input order, to a "
        ".parquet (float column 'loss') or an .npy",
    )
    out.add_argument("--format", choices=["table", "json"], default="table")
    run = parser.add_argument_group("running")
    run.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask cluster (tcp://host:8786)"
    )
    run.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help=f"rows read at a time (default {DEFAULT_BATCH_ROWS}); memory grows with it",
    )


# --------------------------------------------------------------------------- the job


class Job:
    """What to score, checked: the loss options, the columns of each role and the output."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ._api import LossOptions
        from ._io import check_output_name

        self.options = {
            "from_logits": args.from_logits,
            "epsilon": args.epsilon,
            "label_smoothing": args.label_smoothing,
            "pos_weight": args.pos_weight,
            "gamma": args.gamma,
            "alpha": args.alpha,
            "nan_policy": args.nan_policy,
            "validate": args.validate,
            "threads": args.threads,
        }
        try:
            LossOptions(**self.options)
        except (ValueError, TypeError) as e:
            raise UsageError(_option_message(str(e))) from None
        q = args.pos_weight
        if q is not None and not (math.isfinite(q) and q >= 0.0):
            raise UsageError(f"--pos-weight must be finite and non-negative; got {q!r}")
        if args.batch_rows < 1:
            raise UsageError(f"--batch-rows must be >= 1; got {args.batch_rows}")
        if args.output is not None:
            check_output_name(args.output)
        self.args = args
        self.roles = {"y_true": args.y_true, "y_pred": args.y_pred}
        if args.sample_weight is not None:
            self.roles["sample_weight"] = args.sample_weight
        if args.group_by is not None:
            self.roles["groups"] = args.group_by
        self.columns = list(dict.fromkeys(self.roles.values()))
        self.positive = args.positive_label
        self.spec = Spec(self.options, self.roles, not args.inputs, self.positive)
        if args.inputs:
            self.npy = False
        else:
            not_npy = [
                f"--{role.replace('_', '-').replace('groups', 'group-by')} {name}"
                for role, name in self.roles.items()
                if not name.lower().endswith(".npy")
            ]
            if not_npy:
                raise UsageError(
                    "no INPUT: give .parquet, .csv or .npz files, or .npy files as "
                    "--y-true a.npy --y-pred b.npy (not " + ", ".join(not_npy) + ")"
                )
            self.npy = True

    def open_source(self) -> Any:
        from . import _io

        if self.npy:
            return _io.NpySource({path: path for path in self.columns})
        kind, files = _io.expand_inputs(self.args.inputs)
        if kind == "parquet":
            return _io.ParquetSource(files, self.columns)
        if kind == "csv":
            floats = [self.roles["y_pred"]] + (
                [self.roles["sample_weight"]] if "sample_weight" in self.roles else []
            )
            floats = [
                c for c in floats if c not in (self.roles["y_true"], self.roles.get("groups"))
            ]
            return _io.CsvSource(files, self.columns, floats)
        return _io.NpzSource(files[0], self.columns)


def _option_message(message: str) -> str:
    """An option error of the library, in the command line's words (--label-smoothing)."""
    name, _, rest = message.partition(" ")
    return f"--{name.replace('_', '-')} {rest}" if name.islower() else message


def run(args: argparse.Namespace) -> int:
    job = Job(args)
    if args.scheduler:
        from ._score_dask import run_on_cluster

        result = run_on_cluster(job)
    else:
        result = run_locally(job)
    _print_result(result, job, sys.stdout)
    return 0


def run_locally(job: Job) -> dict[str, Any]:
    from ._accumulator import LossAccumulator
    from ._io import open_output

    source = job.open_source()
    acc = LossAccumulator(**job.options)
    output = None
    if job.args.output is not None:
        output = open_output(job.args.output, _output_dtype(source, job.roles["y_pred"]))
    progress = Progress(enabled=job.args.format != "json")
    labels = Labels(job.roles["y_true"], job.positive)
    committed = False
    try:
        score_batches(
            job.spec,
            source.batches(job.args.batch_rows),
            acc,
            labels,
            write=output.write if output is not None else None,
            tick=lambda: progress.update(source.fraction()),
        )
        labels.check_found(job.spec)
        if output is not None:
            output.commit()
            committed = True
    finally:
        progress.close()
        if output is not None and not committed:
            output.abort()
    return acc.result()


@dataclass(frozen=True)
class Spec:
    """What a batch needs to be scored (small and picklable: Dask workers get it too)."""

    options: dict[str, Any]
    roles: dict[str, str]  # role (y_true, y_pred, sample_weight, groups) -> column or .npy file
    npy: bool
    positive: str | None


def score_batches(
    spec: Spec,
    batches: Iterable[tuple[str, int, dict[str, Any]]],
    acc: Any,
    labels: Labels,
    write: Callable[[np.ndarray], None] | None = None,
    tick: Callable[[], None] | None = None,
) -> None:
    """Adds each (path, first row, {column: array}) batch to acc: one kernel pass per batch that
    also gives the per-row loss to `write`, in order."""
    roles = spec.roles
    for path, start, batch in batches:
        where = _Where(path, spec.npy, roles)
        y_true = labels.convert(batch[roles["y_true"]], where)
        y_pred = predictions(batch[roles["y_pred"]], where.column("y_pred"))
        weight = groups = None
        if "sample_weight" in roles:
            weight = weights(batch[roles["sample_weight"]], where.column("sample_weight"))
        if "groups" in roles:
            groups = batch[roles["groups"]]
        try:
            loss = acc._update(y_true, y_pred, weight, groups, want_elementwise=write is not None)
        except (ValueError, TypeError) as e:
            raise DataError(where.error(e, start)) from None
        if write is not None:
            assert loss is not None
            write(loss)
        if tick is not None:
            tick()


def _output_dtype(source: Any, column: str) -> np.dtype:
    """float64 when any input's y_pred is float64 (the kernel then works in float64), else
    float32: the dtype of reduction="none"."""
    if hasattr(source, "dtypes"):
        dtypes = [source.dtypes[column]]
    elif hasattr(source, "types"):
        dtypes = [
            np.dtype(t.to_pandas_dtype()) if _is_float(t) else None for t in source.types[column]
        ]
    else:  # csv: read as float64
        return np.dtype(np.float64)
    wide = any(d is not None and d.kind == "f" and d.itemsize == 8 for d in dtypes)
    return np.dtype(np.float64 if wide else np.float32)


def _is_float(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(arrow_type))


# --------------------------------------------------------------------------- columns


class _Where:
    """Names the place of an error: the file and the column (or the .npy file of a role)."""

    def __init__(self, path: str, npy: bool, roles: dict[str, str]) -> None:
        self.path, self.npy, self.roles = path, npy, roles

    def column(self, role: str) -> str:
        name = self.roles[role]
        return name if self.npy else f"{self.path + ': ' if self.path else ''}column {name!r}"

    def error(self, e: BaseException, start: int) -> str:
        """The library's message for a batch, with the row in the file and the column named:
        "y_true must be in [0, 1]; got 2 at flat index 5" becomes
        "data.parquet: y_true (column 'label') must be in [0, 1]; got 2 at row 1000005"."""
        from ._accumulator import _shift_index

        message = _shift_index(str(e).splitlines()[0], start)

        def name(m: re.Match[str]) -> str:
            role = m.group(1)
            column = self.roles.get(role)
            if column is None:
                return role
            return f"{role} ({column})" if self.npy else f"{role} (column {column!r})"

        message = _ROLE.sub(name, message, count=1)
        for api, cli in _CLI_WORDS:
            message = message.replace(api, cli)
        return message if self.npy else f"{self.path}: {message}"


_CLI_WORDS = [
    ("validate=False", "--no-validate"),
    ("pass from_logits=True", "pass --from-logits"),
    ("(from_logits=False)", "(no --from-logits)"),
    ("nan_policy='raise'", "--nan-policy raise"),
]
_ROLE = re.compile(r"\b(y_true|y_pred|sample_weight)\b")


class Labels:
    """y_true as 0/1 (or soft) numbers: numeric labels as they are, string or integer classes
    compared with --positive-label. Remembers whether the positive label was ever seen."""

    def __init__(self, column: str, positive: str | None) -> None:
        self.column = column
        self.positive = positive
        self.found = False
        self.sample: Any = None  # some labels, for the message when the positive one is missing

    def convert(self, values: Any, where: _Where) -> np.ndarray:
        if _is_arrow(values):
            return self._arrow(values, where.column("y_true"))
        return self._numpy(values, where.column("y_true"))

    def _numpy(self, arr: np.ndarray, name: str) -> np.ndarray:
        from ._accumulator import _encode, _is_missing

        if self.positive is None:
            if arr.dtype.kind in "biuf":
                return arr
            if arr.dtype.kind in "USO":
                try:  # numbers stored as text ("0", "1", "0.5")
                    return arr.astype(np.float64)
                except (ValueError, TypeError):
                    pass
                raise DataError(
                    f"{name} holds strings ({_few(arr)}); pass --positive-label VALUE to say "
                    "which one is the positive class"
                )
            raise DataError(f"{name} has dtype {arr.dtype}, which cannot be a label")
        positive = _coerce_numpy(self.positive, arr.dtype, name)
        if self.sample is None:
            self.sample = arr[:100_000]
        encoded, found = _encode(arr, positive)
        self.found |= found
        if arr.dtype.kind == "O":  # a missing label is NaN, as with Arrow input
            missing = _is_missing(arr)
            if missing.any():
                return np.where(missing, np.nan, encoded)
        return encoded

    def _arrow(self, arr: Any, name: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        kind = arr.type
        if self.positive is None:
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                try:  # (csv labels are read as text: numbers, "true"/"false")
                    arr = pc.cast(arr, pa.float64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    try:
                        arr = pc.cast(arr, pa.bool_())
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        raise DataError(
                            f"{name} holds strings ({_few(arr)}); pass --positive-label VALUE "
                            "to say which one is the positive class"
                        ) from None
                kind = arr.type
            if not (
                pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
            ):
                raise DataError(f"{name} has type {kind}, which cannot be a label")
            if arr.null_count and not pa.types.is_floating(kind):
                arr = pc.cast(arr, pa.float64())  # nulls become NaN (see --nan-policy)
            return arr.to_numpy(zero_copy_only=False)
        positive = _coerce_arrow(self.positive, kind, name)
        if self.sample is None:
            self.sample = arr.slice(0, 100_000)
        hit = pc.equal(arr, pa.scalar(positive, kind))
        self.found |= bool(pc.any(hit).as_py())
        if hit.null_count:  # a missing label is NaN, not the negative class (see --nan-policy)
            return pc.if_else(hit, 1.0, 0.0).to_numpy(zero_copy_only=False)
        return hit.to_numpy(zero_copy_only=False).view(np.uint8)

    def some_labels(self, limit: int = 5) -> list[Any]:
        """A few distinct labels seen (for the message when the positive one never occurs)."""
        from ._accumulator import _some_values

        return [] if self.sample is None else _some_values(self.sample, limit)

    def kind(self) -> str:
        from ._accumulator import _kind_of

        return "" if self.sample is None else _kind_of(self.sample)

    def check_found(self, spec: Spec) -> None:
        if self.positive is not None and not self.found:
            raise DataError(missing_positive(spec, self.some_labels(), self.kind()))


def missing_positive(spec: Spec, sample: list[Any], kind: str, limit: int = 5) -> str:
    shown = ", ".join(map(repr, sample[:limit])) + (", ..." if len(sample) > limit else "")
    column = spec.roles["y_true"]
    place = column if spec.npy else f"column {column!r}"
    return f"--positive-label {spec.positive!r} does not occur in {place}; " + (
        f"it holds {shown} ({kind})" if shown else "it holds no labels"
    )


def _coerce_numpy(text: str, dtype: np.dtype, name: str) -> Any:
    if dtype.kind in "iu":
        return _parse(int, text, "an integer", name)
    if dtype.kind == "f":
        return _parse(float, text, "a number", name)
    if dtype.kind == "b":
        return _parse_bool(text, name)
    if dtype.kind == "U" or dtype.kind == "O":
        return text
    if dtype.kind == "S":
        return text.encode()
    raise DataError(f"{name} has dtype {dtype}, which cannot be a label")


def _coerce_arrow(text: str, kind: Any, name: str) -> Any:
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return text
    if pa.types.is_integer(kind):
        return _parse(int, text, "an integer", name)
    if pa.types.is_floating(kind):
        return _parse(float, text, "a number", name)
    if pa.types.is_boolean(kind):
        return _parse_bool(text, name)
    raise DataError(f"{name} has type {kind}, which cannot be a label")


def _parse(convert: Any, text: str, what: str, name: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise DataError(
            f"--positive-label {text!r} is not {what}, but {name} holds {what.split()[-1]}s"
        ) from None


def _parse_bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise DataError(f"--positive-label {text!r} is not true or false, but {name} holds booleans")


def _few(values: Any, limit: int = 3) -> str:
    from ._accumulator import _some_values

    sample = _some_values(values, limit)
    return ", ".join(map(repr, sample[:limit])) + (", ..." if len(sample) > limit else "")


def predictions(values: Any, name: str) -> np.ndarray:
    """y_pred as a float array (nulls as NaN)."""
    arr = _floats(values, name, ints=False)
    return arr


def weights(values: Any, name: str) -> np.ndarray:
    return _floats(values, name, ints=True)


def _floats(values: Any, name: str, ints: bool) -> np.ndarray:
    what = "weights" if ints else "predictions (probabilities or logits)"
    if _is_arrow(values):
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        kind = values.type
        if pa.types.is_floating(kind):
            return values.to_numpy(zero_copy_only=False)
        if ints and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        raise DataError(f"{name} has type {kind}; {what} must be floats")
    if values.dtype.kind == "f" or (ints and values.dtype.kind in "biu"):
        return values
    raise DataError(f"{name} has dtype {values.dtype}; {what} must be floats")


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow")


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal, only for runs longer
    than a second, redrawn at most five times a second, erased at the end."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _isatty(self.stream)
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, fraction: float | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < 0.2:
            return
        self.last = now
        elapsed = now - self.start
        if fraction is None:
            text = f"scoring... {elapsed:.0f} s"
        else:
            fraction = min(max(fraction, 0.0), 1.0)
            filled = int(30 * fraction)
            left = elapsed / fraction - elapsed if fraction > 0 else math.nan
            eta = f", {left:.0f} s left" if math.isfinite(left) else ""
            text = (
                f"[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}% {elapsed:.0f} s{eta}"
            )
        self.stream.write("\r" + text.ljust(70))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
            self.drawn = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- printing


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_key(key: Any) -> Any:
    return key if key is None or isinstance(key, (str, int, float, bool)) else str(key)


def to_json(result: Any) -> Any:
    """The result with NaN and infinities as null (strict JSON) and keys JSON can hold, at
    every depth (groups, slices, reliability bins, top_losses)."""
    if isinstance(result, dict):
        return {_json_key(k): to_json(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [to_json(v) for v in result]
    if isinstance(result, float):
        return _json_number(result)
    return result


def _print_result(result: dict[str, Any], job: Job, stream: TextIO) -> None:
    if job.args.format == "json":
        stream.write(json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")
        return
    fields = ("rows", "sum", "mean", "weighted_mean")
    for field in fields:
        stream.write(f"{field:<14} {_fmt(result[field])}\n")
    if "groups" in job.roles:
        head = [job.roles["groups"], *fields]
        rows = [
            [_group_text(k), *(_fmt(v[f]) for f in fields)] for k, v in result["groups"].items()
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        stream.write("\n")
        for r in [head, *rows]:
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            stream.write("  ".join(cells).rstrip() + "\n")


def _group_text(key: Any) -> str:
    return "(missing)" if key is None else str(key)


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.10g}"
