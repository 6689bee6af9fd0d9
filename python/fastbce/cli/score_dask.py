"""``fastbce score --scheduler ADDRESS``: the same job, split into partitions on a Dask cluster.

Each partition is read and scored on a worker by the code the local run uses (``score_batches``),
giving a ``LossAccumulator`` (``LossSums`` with --loss-only); the accumulators are merged in a tree
on the cluster (as ``fastbce.dask`` does), so only a few numbers per partition come back.
Partitions are ranges of row groups of a parquet file, ranges of rows of .npy / .npz arrays (read
by the workers from the same paths, so the files must be visible to them, as with any Dask
reader), and the blocks of ``dask.dataframe.read_csv`` for CSV. With ``--output`` the per-row loss
of each partition comes back to this process, a few partitions at a time, and is written in
input order.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._accumulator import merge_all
from .._errors import DataError
from ..io import (
    NpySource,
    NpzSource,
    ParquetSource,
    open_output,
    parquet_row_groups,
    row_group_ranges,
    series_values,
)
from .columns import Labels, missing_positive, new_accumulator, score_batches
from .job import Job, Spec, check_plot_path, input_files, output_dtype

PARTITION_BATCHES = 8  # a partition is about this many batches (--batch-rows) of rows


def _check_address(address: str) -> None:
    """ValueError for an address Dask cannot parse (no port, an unknown scheme), before a Client
    is made: a Client whose constructor fails on one is left half-built, and its finaliser then
    waited 20 s at exit and printed a traceback."""
    from distributed.comm import get_address_host_port, parse_address

    scheme = parse_address(address)[0]
    if scheme not in ("tcp", "tls"):  # (a `dask scheduler`'s; inproc://, ucx:// ... are not
        raise ValueError(  # a command's, and an unknown one left the Client half-built too)
            f"the scheme {scheme}:// is not one of a Dask scheduler's (tcp://, tls://)"
        )
    get_address_host_port(address)


CONNECT_SECONDS = 10  # Dask's own connect timeout (a closed port, an unknown host)
ANSWER_SECONDS = 20  # past it, whatever listens there is not answering as a Dask scheduler


def _connect(client_class: Any, address: str) -> Any:
    """A Client of the scheduler at `address`, or a DataError. Made on a thread of its own and
    waited for ANSWER_SECONDS: where another service listens (the dashboard's HTTP port, say),
    Dask's handshake waits for an answer that never comes, without a timeout, or reads an HTTP
    reply as a frame length ("cannot allocate 3 EiB"). A Client whose constructor failed is kept
    from its finaliser, which waited 20 s at exit and printed a traceback."""
    import threading

    class _Client(client_class):
        def __del__(self) -> None:
            if getattr(self, "_fastbce_connected", False):
                super().__del__()

    made: dict[str, Any] = {}

    def make() -> None:
        try:
            client = _Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
            client._fastbce_connected = True
            made["client"] = client
        except BaseException as e:  # (reported by the waiting thread)
            made["error"] = e

    thread = threading.Thread(target=make, name="fastbce-connect", daemon=True)
    thread.start()
    thread.join(ANSWER_SECONDS)
    if "client" in made:
        return made["client"]
    error = made.get("error")
    if error is None:  # (the thread is left waiting; as a daemon it does not hold up the exit)
        why = (
            f"no answer in {ANSWER_SECONDS} s from what listens there: is it a Dask scheduler's "
            "port (a `dask scheduler` listens on 8786; 8787 is its dashboard)?"
        )
    elif isinstance(error, (OSError, TimeoutError, ValueError)):
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
    else:  # (a reply that is not Dask's protocol)
        why = (
            "what answers there does not speak Dask's protocol (is it a Dask scheduler's port? "
            "8787 is the dashboard's)"
        )
    raise DataError(f"cannot reach the Dask scheduler at {address}: {why}")


def run_on_cluster(job: Job) -> Any:
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise DataError("--scheduler needs Dask: pip install 'fastbce[dask]'") from None
    source = job.open_source()  # checks the files and columns here, before the cluster
    check_plot_path(job, source)
    address = job.args.scheduler
    try:
        _check_address(address)
    except ValueError as e:
        raise DataError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    frames: dict[str, Any] = {}  # a CSV file's Dask dataframe (its rows, for an error's row)
    with _connect(Client, address) as client, _rows_in_file(client, frames):
        tasks = _partition_tasks(job, source, frames)
        if job.args.output is None:
            parts = tasks
            while len(parts) > 1:  # a tree of merges, on the cluster
                parts = [
                    dask.delayed(_merge_parts, pure=True)(*parts[i : i + 8])
                    for i in range(0, len(parts), 8)
                ]
            if parts:
                acc, found, sample, kind, _ = client.compute(parts[0], sync=True)
            else:
                acc, found, sample, kind = None, False, [], ""
        else:
            output, committed = None, False
            try:  # (from the temporary file's creation on: a signal removes it too)
                output = open_output(
                    job.args.output, output_dtype(source, job.roles["y_pred"]), input_files(source)
                )
                acc, found, sample, kind = _stream_output(client, tasks, output, merge_all)
                if job.positive is None or found:
                    output.commit()
                    committed = True
            finally:
                if output is not None and not committed:
                    output.abort()
    if job.positive is not None and not found:
        raise DataError(missing_positive(job.spec, sample, kind))
    if acc is None:
        acc = new_accumulator(job.spec)
    return acc


def _stream_output(client: Any, tasks: list[Any], output: Any, merge: Any) -> tuple[Any, ...]:
    """Computes the partitions a few at a time and writes their losses in order."""
    workers = client.scheduler_info().get("workers", {})
    window = max(2, 2 * sum(w.get("nthreads", 1) for w in workers.values()))
    pending: collections.deque[Any] = collections.deque()
    todo = iter(tasks)
    for task in todo:
        pending.append(client.compute(task))
        if len(pending) >= window:
            break
    acc, found, kind = None, False, ""
    sample: list[Any] = []
    while pending:
        future = pending.popleft()
        part_acc, part_found, part_sample, part_kind, loss = future.result()
        future.release()
        output.write(loss)
        acc = part_acc if acc is None else merge(acc, part_acc)
        found = found or part_found
        sample = sample or part_sample
        kind = kind or part_kind
        task = next(todo, None)
        if task is not None:
            pending.append(client.compute(task))
    return acc, found, sample, kind


def _partition_tasks(job: Job, source: Any, frames: dict[str, Any]) -> list[Any]:
    """One delayed task per partition, in input order, each giving (accumulator, positive label
    seen, some labels, their type, per-row loss or None); a CSV file's dataframe into `frames`."""
    import dask

    rows = job.args.batch_rows * PARTITION_BATCHES
    want_loss = job.args.output is not None
    spec, batch_rows = job.spec, job.args.batch_rows
    task = dask.delayed(_score_part, pure=True)
    if isinstance(source, ParquetSource):
        return [
            task(spec, ("parquet", path, groups, first), batch_rows, want_loss)
            for path, groups, first in row_group_ranges(source.files, rows)
        ]
    if isinstance(source, (NpySource, NpzSource)):
        where: Any
        if isinstance(source, NpySource):
            kind, where = "npy", {c: os.path.abspath(p) for c, p in source.paths.items()}
        else:
            kind, where = "npz", os.path.abspath(source.path)
        return [
            task(
                spec,
                (kind, where, start, min(start + rows, source.total_rows)),
                batch_rows,
                want_loss,
            )
            for start in range(0, source.total_rows, rows)
        ]
    return _csv_tasks(job, source, rows, want_loss, frames)


def _partition_place(path: str, number: int) -> str:
    """How an error names a CSV partition (the start of its message, _PARTITION_PLACE)."""
    return f"{path} (partition {number})"


_PARTITION_PLACE = re.compile(r"(.*?) \(partition (\d+)\): ", re.S)


@contextlib.contextmanager
def _rows_in_file(client: Any, frames: dict[str, Any]) -> Iterator[None]:
    """A CSV partition's error (its rows counted from the partition's first, the file named
    with "(partition N)") as a local run gives it: the row counted in the file, the rows of the
    partitions before it counted on the cluster now that one failed."""
    try:
        yield
    except DataError as e:
        found = _PARTITION_PLACE.match(str(e))
        if found is None or found.group(1) not in frames:
            raise
        import dask

        path, number = found.group(1), int(found.group(2))
        sizes = [dask.delayed(len)(p) for p in frames[path].to_delayed()[:number]]
        try:
            before = sum(client.compute(sizes, sync=True)) if sizes else 0
        except Exception:  # (the message as it is)
            raise e from None
        rest = re.sub(
            r"\bat row (\d+)",
            lambda m: f"at row {before + int(m.group(1))}",
            str(e)[found.end() :],
            count=1,
        )
        raise DataError(f"{path}: {rest}") from None


def _csv_tasks(
    job: Job, source: Any, rows: int, want_loss: bool, frames: dict[str, Any]
) -> list[Any]:
    import dask
    import dask.dataframe as dd
    import pyarrow.csv as pacsv

    dtypes = {c: ("float64" if c in source.floats else "object") for c in source.columns}
    # missing as the local reader (CsvSource) has it: in number columns the texts Arrow takes
    # for a missing number, in text columns only an empty field
    number_nulls = pacsv.ConvertOptions().null_values
    nulls = {c: (number_nulls if c in source.floats else [""]) for c in source.columns}
    parts = []
    for path in source.files:  # (one read_csv per file, so errors can name it)
        frame = frames[path] = dd.read_csv(
            os.path.abspath(path),
            usecols=source.columns,
            dtype=dtypes,
            blocksize=max(1 << 16, rows * 24),
            keep_default_na=False,
            na_values=nulls,
        )
        parts += [
            dask.delayed(_score_part, pure=True)(
                job.spec, ("frame", path, i), job.args.batch_rows, want_loss, part
            )
            for i, part in enumerate(frame.to_delayed())
        ]
    return parts


# --------------------------------------------------------------------------- on the workers


def _score_part(
    spec: Spec, where: tuple[Any, ...], batch_rows: int, want_loss: bool, frame: Any = None
) -> tuple[Any, ...]:
    acc = new_accumulator(spec)
    labels = Labels(spec.roles["y_true"], spec.positive, spec.ignore)
    losses: list[np.ndarray] = []
    score_batches(
        spec,
        _read_part(spec, where, batch_rows, frame),
        acc,
        labels,
        write=losses.append if want_loss else None,
    )
    loss = None
    if want_loss:
        loss = np.concatenate(losses) if losses else np.empty(0, np.float32)
    return acc, labels.found, labels.some_labels(), labels.kind(), loss


def _read_part(spec: Spec, where: tuple[Any, ...], batch_rows: int, frame: Any) -> Any:
    groups, columns = spec.group_columns, spec.columns
    kind = where[0]
    if kind == "parquet":
        _, path, row_groups, _first = where  # (the reader knows where its row groups start)
        yield from parquet_row_groups(path, row_groups, columns, groups, batch_rows, hive=groups)
    elif kind == "npy":
        _, paths, start, stop = where
        for _path, first, batch in NpySource(paths).rows(start, stop, batch_rows):
            yield spec.roles["y_pred"], first, batch
    elif kind == "npz":
        _, path, start, stop = where
        yield from NpzSource(path, columns).rows(start, stop, batch_rows)
    else:  # a pandas partition of dask.dataframe.read_csv
        _, path, number = where
        batch = {c: series_values(frame[c]) for c in columns}
        yield _partition_place(path, number), 0, batch


def _merge_parts(*parts: tuple[Any, ...]) -> tuple[Any, ...]:
    acc = merge_all(*(p[0] for p in parts))
    found = any(p[1] for p in parts)
    sample: list[Any] = next((p[2] for p in parts if p[2]), [])
    kind = next((p[3] for p in parts if p[3]), "")
    return acc, found, sample, kind, None
