"""What ``fastbce score`` is asked to do, checked before any data is read: the loss options, the
column of each role, the output, and the reader for the inputs."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import UsageError
from .._options import LossOptions
from ..io import (
    CsvSource,
    NpySource,
    NpzSource,
    ParquetSource,
    check_output_name,
    expand_inputs,
)


class Job:
    """What to score, checked: the loss options, the columns of each role and the output."""

    def __init__(self, args: argparse.Namespace) -> None:
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
        if args.scheduler is not None and not args.scheduler.strip():  # (an unset $ADDRESS)
            raise UsageError("--scheduler needs an address (tcp://host:8786); got ''")
        if not 1 <= args.batch_rows < 2**62:  # (pyarrow's batch sizes are int64)
            raise UsageError(f"--batch-rows must be >= 1 and < 2^62; got {args.batch_rows}")
        if args.output is not None:
            check_output_name(args.output)
        self.args = args
        self.roles = {"y_true": args.y_true, "y_pred": args.y_pred}
        if args.sample_weight is not None:
            self.roles["sample_weight"] = args.sample_weight
        self.slicings = parse_group_by(args.group_by or [])
        self.positive = args.positive_label
        self.spec = Spec(
            self.options,
            self.roles,
            not args.inputs,
            self.positive,
            self.slicings,
            loss_only=bool(getattr(args, "loss_only", False)),
            ignore=args.ignore_label if args.positive_label is not None else None,
        )
        self.group_columns = self.spec.group_columns
        self.columns = self.spec.columns
        if args.inputs:
            self.npy = False
        else:
            not_npy = [
                f"--{role.replace('_', '-')} {name}"
                for role, name in self.roles.items()
                if not name.lower().endswith(".npy")
            ]
            not_npy += [
                f"--group-by {c}" for c in self.group_columns if not c.lower().endswith(".npy")
            ]
            if not_npy:
                raise UsageError(
                    "no INPUT: give .parquet, .csv or .npz files, or .npy files as "
                    "--y-true a.npy --y-pred b.npy (not " + ", ".join(not_npy) + ")"
                )
            self.npy = True

    def open_source(self) -> Any:
        if self.npy:
            return NpySource({path: path for path in self.columns})
        kind, files = expand_inputs(self.args.inputs)
        if kind == "parquet":
            groups = self.group_columns
            return ParquetSource(files, self.columns, groups, self.args.threads, hive=groups)
        if kind == "csv":
            # (a column that is also the labels or a group is read as floats too: it must be
            # numbers here, and the labels and groups take floats as they do from parquet)
            floats = [self.roles["y_pred"]] + (
                [self.roles["sample_weight"]] if "sample_weight" in self.roles else []
            )
            return CsvSource(files, self.columns, floats)
        return NpzSource(files[0], self.columns)


def _option_message(message: str) -> str:
    """An option error of the library, in the command line's words (--label-smoothing)."""
    name, _, rest = message.partition(" ")
    return f"--{name.replace('_', '-')} {rest}" if name.islower() else message


def parse_group_by(options: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, columns) of each --group-by: "A" is the slicing by column A, "A,B" the crossed
    slicing by A and B (named "A,B"), in the order given."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for text in options:
        columns = tuple(c.strip() for c in text.split(","))
        if not all(columns):
            raise UsageError(f"--group-by {text!r}: expected COL or COL,COL,... (no empty name)")
        if len(set(columns)) != len(columns):
            raise UsageError(f"--group-by {text!r}: a column is named twice")
        name = ",".join(columns)
        if any(name == n for n, _ in out):
            raise UsageError(f"--group-by {name!r} is given twice")
        out.append((name, columns))
    return out


@dataclass(frozen=True)
class Spec:
    """What a batch needs to be scored (small and picklable: Dask workers get it too)."""

    options: dict[str, Any]
    roles: dict[str, str]  # role (y_true, y_pred, sample_weight) -> column or .npy file
    npy: bool
    positive: str | None
    slicings: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # --group-by
    loss_only: bool = False  # --loss-only: the loss sums, no report
    ignore: str | None = None  # --ignore-label as given, with --positive-label (columns.Labels)

    @property
    def group_columns(self) -> list[str]:
        return list(dict.fromkeys(c for _, columns in self.slicings for c in columns))

    @property
    def columns(self) -> list[str]:
        """Every column read: the roles', then the group columns (each once)."""
        return list(dict.fromkeys([*self.roles.values(), *self.group_columns]))


def output_dtype(source: Any, column: str) -> np.dtype:
    """float64 when any input's y_pred is float64 (the kernel then works in float64), else
    float32: the dtype of reduction="none"."""
    if hasattr(source, "dtypes"):
        dtypes = [source.dtypes[column]]
    elif hasattr(source, "types"):
        # (bit widths, not to_pandas_dtype: that imports pandas)
        dtypes = [
            np.dtype(f"f{t.bit_width // 8}") if _is_float(t) else None for t in source.types[column]
        ]
    else:  # csv: read as float64
        return np.dtype(np.float64)
    wide = any(d is not None and d.kind == "f" and d.itemsize == 8 for d in dtypes)
    return np.dtype(np.float64 if wide else np.float32)


def check_plot_path(job: Job, source: Any) -> None:
    """Before any data is read: UsageError when --plot names one of the inputs (as --output) or
    the --output file (through a link: their names end differently), DataError when no file can
    be made there (as --output)."""
    plot, output = job.args.plot, job.args.output
    if plot is None:
        return
    from ..io.writers import check_not_an_input, check_target, same_file

    check_not_an_input(plot, input_files(source), "--plot")
    if output is not None and same_file(plot, output):
        raise UsageError(
            f"--plot {plot} is the --output file {output}: the figure would replace the losses; "
            "choose another --plot path"
        )
    check_target(plot)


def input_files(source: Any) -> list[str]:
    """The files a source reads (for the check that --output is none of them)."""
    if hasattr(source, "files"):  # parquet, csv
        return list(source.files)
    if hasattr(source, "paths"):  # .npy files, one per role
        return list(source.paths.values())
    return [source.path]  # .npz


def _is_float(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(arrow_type))
