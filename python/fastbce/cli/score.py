"""``fastbce score``: the log loss of a dataset, overall and per group, and the per-row loss.

The data is streamed in batches (see ``fastbce.io``) through one ``LossAccumulator``: each batch
is one kernel pass that also fills the per-group sums and, with ``--output``, the per-row loss,
which is written out in input order. Memory stays bounded by the batch size, whatever the input
size. With ``--scheduler`` the same job runs on a Dask cluster (``score_dask``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from . import report
from .output import missing_name
from .signals import stop_on_signals

if TYPE_CHECKING:
    from .job import Job

# (NumPy, the kernel and the readers are imported by run(), not here: `--help` needs none)

DEFAULT_BATCH_ROWS = 1 << 20
_JSON_ROWS = 1024  # groups a text of --format json holds (about 0.7 MB, _groups_json)


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
    cols.add_argument(
        "--group-by",
        action="append",
        metavar="COL[,COL...]",
        help="also report the loss per value of COL; COL,COL2 per pair of values (a crossed "
        "slicing, keys joined by ', '); repeatable (each a slicing under 'slices'). Hive "
        "partition keys of parquet directories (.../COL=value/...) count as columns here",
    )
    cols.add_argument(
        "--positive-label",
        metavar="VALUE",
        help="the label of the positive class, for string or integer labels "
        "(VALUE is 1, every other label 0)",
    )
    loss = parser.add_argument_group("loss options (as fastbce.binary_crossentropy)")
    loss.add_argument("--from-logits", action="store_true", help="y_pred holds logits")
    loss.add_argument("--epsilon", type=float, default=1e-7, help="clip (default 1e-7)")
    loss.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        metavar="S",
        help="labels become y (1 - S) + S/2 (default 0)",
    )
    loss.add_argument(
        "--pos-weight", type=float, default=None, metavar="Q", help="weight of the positive term"
    )
    loss.add_argument("--gamma", type=float, default=0.0, help="focal loss exponent")
    loss.add_argument("--alpha", type=float, default=None, help="class balancing")
    loss.add_argument(
        "--nan-policy",
        choices=["propagate", "omit", "raise"],
        default="propagate",
        help="a NaN label, prediction or weight: NaN results, the row left out, or an error "
        "(default propagate)",
    )
    loss.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="at most N threads for the kernel and the parquet decode (default: all cores)",
    )
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
    report.add_arguments(parser)
    run = parser.add_argument_group("running")
    run.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask cluster (tcp://host:8786)"
    )
    run.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help=f"rows scored at a time (default {DEFAULT_BATCH_ROWS}; parquet is read a row group "
        "at a time, ahead, on all cores); memory grows with it",
    )


# --------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    from .. import _process

    with _process.one_blas_thread():  # (NumPy's OpenBLAS threads would spin 0.1 s of CPU)
        from .job import Job  # (NumPy)

    job = Job(args)
    job.options.update(report.options(args))  # (the accumulator takes the report's options)
    conditions = report.parse_conditions(args.fail_if, args.loss_only)
    # SIGTERM and SIGHUP clean up as SIGINT does, to the end: a signal while the result is
    # printed or the figure drawn (after --output was written) leaves no figure
    with stop_on_signals():
        if args.scheduler:
            from .score_dask import run_on_cluster

            acc = run_on_cluster(job)
        else:
            acc = run_locally(job)
        try:
            _print_result(acc, job, sys.stdout)
        except BrokenPipeError:  # the reader went away (`| head`): --plot and --fail-if hold
            from .output import discard_stdout

            discard_stdout()
        if args.plot is None and not conditions:
            return 0
        result = acc.result()  # (every group's keys at once: only for --plot and --fail-if)
        failed = report.failures(result, conditions)
        for text in failed:  # (before the figure: a failing figure does not hide them)
            print(f"fastbce score: --fail-if {text}", file=sys.stderr)
        if args.plot is not None:
            report.plot(result, args.plot, job.slicings[0][0] if job.slicings else "group")
    return report.EXIT_FAILED_CONDITION if failed else 0


def run_locally(job: Job) -> Any:
    from ..io import open_output
    from .columns import Labels, new_accumulator, score_batches
    from .job import check_plot_path, input_files, output_dtype
    from .output import Progress

    source = job.open_source()
    check_plot_path(job, source)
    acc = new_accumulator(job.spec)
    progress = Progress(enabled=job.args.format != "json")
    labels = Labels(job.roles["y_true"], job.positive, job.spec.ignore)
    reserve = getattr(source, "reserve", None)  # (parquet: its read-ahead gives way to groups)
    held = getattr(acc, "_nbytes", None)
    restore_allocator = None
    batches: Any = None
    output = None

    def tick() -> None:
        progress.update(source.fraction())
        if reserve is not None:
            reserve(held() if held is not None else 0)

    committed = False
    # (from the output's temporary file on, everything is in the try: a signal or an error
    # while the reader starts, which reads every parquet footer, removes that file too)
    try:
        if job.args.output is not None:
            output = open_output(
                job.args.output, output_dtype(source, job.roles["y_pred"]), input_files(source)
            )
        batches = source.batches(job.args.batch_rows)
        if reserve is not None:
            from ..io.prefetch import use_jemalloc

            restore_allocator = use_jemalloc()  # (pyarrow's, for this command only)
        if reserve is not None and job.slicings:  # (no read-ahead until the first batch says
            reserve(None)  # what the groups hold; without groups they hold nothing: at once)
        score_batches(
            job.spec,
            batches,
            acc,
            labels,
            write=output.write if output is not None else None,
            tick=tick,
        )
        labels.check_found(job.spec)
        if output is not None:
            output.commit()
            committed = True
    finally:
        if batches is not None and hasattr(batches, "close"):  # (a generator: stops the
            batches.close()  # read-ahead threads now)
        progress.close()
        if output is not None and not committed:
            output.abort()
        if restore_allocator is not None:
            restore_allocator()
    return acc


# --------------------------------------------------------------------------- printing


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_missing(has_group: Callable[[Hashable], bool]) -> str | None:
    """The JSON name of the missing group: None (json.dumps writes "null"), or where a group is
    the text "null" the first of "(missing)", "((missing))", ... that no group is."""
    name = missing_name(has_group, "null")
    return None if name == "null" else name


def _json_key(key: Any, missing: str | None = None) -> Any:
    """A group key as a JSON object key: text, numbers and bool as json.dumps writes them, an
    infinite float as the table shows it ("inf"), None as "null" (or `missing`)."""
    if key is None:
        return missing
    if isinstance(key, float) and not math.isfinite(key):
        return str(key)
    return key if isinstance(key, (str, int, float, bool)) else str(key)


def _json_value(key: Any, value: Any) -> Any:
    """to_json of a value; a top loss's "group" is written as the group's key is (a date, a
    decimal or an infinite float key would otherwise break or blur the JSON)."""
    if key == "group" and not isinstance(value, (dict, list, tuple)):
        return _json_key(value)
    return to_json(value)


def to_json(result: Any) -> Any:
    """The result with NaN and infinities as null (strict JSON) and keys JSON can hold, at
    every depth (groups, slices, reliability bins, top_losses)."""
    if isinstance(result, dict):
        missing = _json_missing(result.__contains__) if None in result else None
        return {_json_key(k, missing): _json_value(k, v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [to_json(v) for v in result]
    if isinstance(result, float):
        return _json_number(result)
    return result


def _json_numbers(r: dict[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in r.items() if k not in ("groups", "slices")}


def _print_result(acc: Any, job: Job, stream: TextIO) -> None:
    """The result, written a group at a time: what json.dumps(to_json(acc.result()), indent=2)
    or the table would give, without holding every group's dict or line at once. One --group-by
    gives "groups"; several give "slices", one slicing each."""
    summary = acc._summary()
    names = [name for name, _ in job.slicings]
    if job.args.format == "json":
        if len(names) > 1:
            slices = [(name, acc._group_blocks(name), _missing_name(acc, name)) for name in names]
            _write_json(summary, iter(()), stream, slices)
        else:
            _write_json(summary, acc._group_blocks(), stream, missing=_missing_name(acc))
        return
    slicings = ["groups"] if len(names) == 1 else names
    tables = [
        (name, functools.partial(acc._group_items, slicing), _table_missing(acc, slicing))
        for name, slicing in zip(names, slicings, strict=True)
    ]
    report.print_table(summary, stream, tables, loss_only=job.spec.loss_only)


def _missing_name(acc: Any, slicing: str = "groups") -> str | None:
    """The JSON name of a slicing's missing group (None: "null", as json.dumps writes it)."""
    if not acc._has_group(None, slicing):
        return None
    return _json_missing(functools.partial(acc._has_group, slicing=slicing))


def _table_missing(acc: Any, slicing: str) -> str:
    """The table's name of a slicing's missing group."""
    return missing_name(functools.partial(acc._has_group, slicing=slicing))


def _write_json(
    summary: dict[str, Any],
    groups: Any,
    stream: TextIO,
    slices: list[tuple[str, Any, str | None]] | None = None,
    missing: str | None = None,
) -> None:
    def obj(d: dict[str, Any], indent: str) -> str:
        def value(v: Any) -> str:  # (nested lists and dicts indented as json.dumps does)
            return json.dumps(v, indent=2, allow_nan=False).replace("\n", "\n" + indent + "  ")

        lines = [f'{indent}  "{k}": {value(v)}' for k, v in d.items()]
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"

    stream.write(obj(_json_numbers(summary), "")[:-2] + ',\n  "groups": ')
    _write_groups(groups, stream, "  ", missing)
    if slices is not None:
        stream.write(',\n  "slices": {')
        for i, (name, blocks, missing_name) in enumerate(slices):
            stream.write(("\n" if i == 0 else ",\n") + f"    {json.dumps(name)}: ")
            _write_groups(blocks, stream, "    ", missing_name)
        stream.write("\n  }" if slices else "}")
    stream.write("\n}\n")


def _write_groups(blocks: Any, stream: TextIO, indent: str, missing: str | None) -> None:
    """{key: {...}, ...} of some groups, as json.dumps(indent=2) writes it at this depth."""
    stream.write("{")
    first = True
    for keys, columns in blocks:
        for text in _groups_json(keys, columns, indent + "  ", missing):
            stream.write("\n" if first else ",\n")
            stream.write(text)
            first = False
    stream.write("}" if first else f"\n{indent}}}")


def _name_json(keys: list[Any], missing: str | None) -> list[str]:
    """Group keys as json.dumps writes them as object keys (the key None as `missing`)."""
    if all(type(k) is str for k in keys):
        from json.encoder import encode_basestring_ascii  # (json.dumps' own, in C)

        return list(map(encode_basestring_ascii, keys))
    return [json.dumps({_json_key(k, missing): 0}, allow_nan=False)[1:-4] for k in keys]


def _groups_json(
    keys: list[Any], columns: dict[str, Any], indent: str, missing: str | None
) -> Iterator[str]:
    """'KEY: {...}' of each group, as json.dumps(..., indent=2) writes them at this indent, in
    texts of _JSON_ROWS groups joined by ',\n', each formatted in one C++ call (the json
    module's pure-Python indenting encoder, then `template % row` of each group's strings, were
    most of the time that printing a million groups of twenty keys took): the text between the
    values (`pieces`) is made once here, the numbers as Python's repr writes them (null for NaN
    and infinities). (A whole block of 8,192 groups would be a text of about 6 MB, and as much
    again in each copy on its way out.)"""
    from .. import _core

    inner, item = indent + "  ", indent + "    "
    pieces, values = [indent], []
    text = ": {\n"
    for i, (name, column) in enumerate(columns.items()):
        text += ("" if i == 0 else ",\n") + inner + json.dumps(name) + ": "
        if column.ndim == 2:  # (ci95: pairs)
            pieces += [text + f"[\n{item}", f",\n{item}"]
            values += [_json_column(column[:, 0]), _json_column(column[:, 1])]
            text = f"\n{inner}]"
        else:
            pieces.append(text)
            values.append(_json_column(column))
            text = ""
    pieces.append(text + f"\n{indent}}}")
    names = _name_json(keys, missing)
    for start in range(0, len(names), _JSON_ROWS):
        stop = start + _JSON_ROWS
        yield _core.json_rows(pieces, names[start:stop], [v[start:stop] for v in values])


def _json_column(values: Any) -> Any:
    """A column as json_rows takes it: contiguous float64, int64 or uint64."""
    import numpy as np

    kind = values.dtype.kind
    dtype = np.int64 if kind == "i" else np.uint64 if kind == "u" else np.float64
    return np.ascontiguousarray(values, dtype=dtype)
