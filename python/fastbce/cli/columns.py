"""One batch of ``fastbce score``: its columns turned into the kernel's arrays (labels, with
--positive-label; predictions; weights) and scored, with errors naming the file, column and row.
Shared by the local run and the Dask workers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._arrow import to_numpy
from .._errors import DataError
from .._labels import encode, is_missing, kind_of, shift_index, some_values
from .job import Spec
from .report import IGNORED_CLASS


def new_accumulator(spec: Spec) -> Any:
    """An empty accumulator for the job: the report's (``LossAccumulator``), or with
    --loss-only the loss sums alone (``LossSums``, the plain loss pass)."""
    if spec.loss_only:
        from .._loss_sums import LossSums

        return LossSums(**spec.options)
    from .._accumulator import LossAccumulator

    return LossAccumulator(**spec.options)


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
        if spec.slicings:
            labels_of = {name: slicing_labels(batch, cols) for name, cols in spec.slicings}
            groups = next(iter(labels_of.values())) if len(labels_of) == 1 else labels_of
            del labels_of
        try:
            loss = acc._update(y_true, y_pred, weight, groups, want_elementwise=write is not None)
        except (ValueError, TypeError) as e:
            raise DataError(where.error(e, start)) from None
        if write is not None:
            assert loss is not None
            write(loss)
        # (the batch's columns and arrays go before the next is read: with a million groups
        # the reader decodes one row group at a time, while this one would still be held)
        del batch, y_true, y_pred, weight, groups, loss
        if tick is not None:
            tick()


def slicing_labels(batch: dict[str, Any], columns: tuple[str, ...]) -> Any:
    """The group labels of one slicing: its column, or for a crossed slicing (several columns)
    each row's values as text joined by ", " ("de, mobile"), a value that holds a comma or a
    double quote in double quotes, its quotes doubled, as CSV writes a field ('"x, y", z' and
    'x, "y, z"' are two groups); a row missing any of them has the missing key."""
    if len(columns) == 1:
        return batch[columns[0]]
    values = [batch[c] for c in columns]
    if all(_is_arrow(v) for v in values):
        import pyarrow as pa
        import pyarrow.compute as pc

        text = [pc.cast(_nan_as_null(v), pa.string()) for v in values]  # (dictionaries decoded too)
        quoted = [
            pc.if_else(
                pc.match_substring_regex(t, '[,"]'),
                pc.binary_join_element_wise('"', pc.replace_substring(t, '"', '""'), '"', ""),
                t,
            )
            for t in text
        ]
        return pc.binary_join_element_wise(*quoted, ", ")
    parts = [_quoted(_text(np.asarray(v))) for v in values]
    missing = np.zeros(len(parts[0]), dtype=bool)
    for v in values:
        missing |= is_missing(np.asarray(v, dtype=object))
    joined = parts[0]
    for part in parts[1:]:
        joined = np.char.add(np.char.add(joined, ", "), part)
    out = joined.astype(object)
    out[missing] = None
    return out


def _nan_as_null(values: Any) -> Any:
    """An Arrow float column's NaN as null (a missing value, as in NumPy input: the crossed key
    is then the missing key, not the text "nan")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_dictionary(kind) and pa.types.is_floating(kind.value_type):
        values, kind = values.dictionary_decode(), kind.value_type
    if not pa.types.is_floating(kind):
        return values
    return pc.if_else(pc.is_nan(values), pa.scalar(None, kind), values)


def _text(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8")
    return values.astype(str)


def _quoted(text: np.ndarray) -> np.ndarray:
    """The values of a crossed key's part that hold a comma or a double quote in double quotes,
    their quotes doubled (slicing_labels)."""
    special = (np.char.find(text, ",") >= 0) | (np.char.find(text, '"') >= 0)
    if not special.any():
        return text
    quoted = np.char.add(np.char.add('"', np.char.replace(text, '"', '""')), '"')
    return np.where(special, quoted, text)


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
        message = shift_index(str(e).splitlines()[0], start)

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

    def __init__(self, column: str, positive: str | None, ignore: str | None = None) -> None:
        self.column = column
        self.positive = positive
        # --ignore-label with --positive-label: the rows of that label as given get the label
        # IGNORED_CLASS, which the accumulator ignores (report.options)
        self.ignore = ignore
        self.found = False
        self.sample: Any = None  # some labels, for the message when the positive one is missing

    def convert(self, values: Any, where: _Where) -> np.ndarray:
        if _is_arrow(values):
            return self._arrow(values, where.column("y_true"))
        return self._numpy(values, where.column("y_true"))

    def _numpy(self, arr: np.ndarray, name: str) -> np.ndarray:
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
        encoded, found = encode(arr, positive)
        self.found |= found
        if arr.dtype.kind == "O":  # a missing label is NaN, as with Arrow input
            missing = is_missing(arr)
            if missing.any():
                encoded = np.where(missing, np.nan, encoded)
        if self.ignore is not None:
            skip = np.asarray(arr == _coerce_numpy(self.ignore, arr.dtype, name, "--ignore-label"))
            encoded = np.where(skip, encoded.dtype.type(IGNORED_CLASS), encoded)
        return encoded

    def _arrow(self, arr: Any, name: str) -> np.ndarray:
        import pyarrow as pa  # (pyarrow.compute only where it is needed: its import is 25 ms)

        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        kind = arr.type
        if self.positive is None:
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                import pyarrow.compute as pc

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
            return to_numpy(arr, null=math.nan)  # nulls become NaN (see --nan-policy)
        import pyarrow.compute as pc

        positive = _coerce_arrow(self.positive, kind, name)
        if self.sample is None:
            self.sample = arr.slice(0, 100_000)
        hit = pc.equal(arr, pa.scalar(positive, kind))
        self.found |= bool(pc.any(hit).as_py())
        if hit.null_count:  # a missing label is NaN, not the negative class (see --nan-policy)
            encoded = to_numpy(hit, null=math.nan)
        else:
            encoded = to_numpy(hit).view(np.uint8)
        if self.ignore is not None:
            ignored = pa.scalar(_coerce_arrow(self.ignore, kind, name, "--ignore-label"), kind)
            skip = to_numpy(pc.fill_null(pc.equal(arr, ignored), False))
            encoded = np.where(skip, encoded.dtype.type(IGNORED_CLASS), encoded)
        return encoded

    def some_labels(self, limit: int = 5) -> list[Any]:
        """A few distinct labels seen (for the message when the positive one never occurs)."""
        return [] if self.sample is None else some_values(self.sample, limit)

    def kind(self) -> str:
        return "" if self.sample is None else kind_of(self.sample)

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


def _coerce_numpy(text: str, dtype: np.dtype, name: str, option: str = "--positive-label") -> Any:
    if dtype.kind in "iu":
        return _parse(int, text, "an integer", name, option)
    if dtype.kind == "f":
        return _parse(float, text, "a number", name, option)
    if dtype.kind == "b":
        return _parse_bool(text, name, option)
    if dtype.kind == "U" or dtype.kind == "O":
        return text
    if dtype.kind == "S":
        return text.encode()
    raise DataError(f"{name} has dtype {dtype}, which cannot be a label")


def _coerce_arrow(text: str, kind: Any, name: str, option: str = "--positive-label") -> Any:
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return text
    if pa.types.is_integer(kind):
        return _parse(int, text, "an integer", name, option)
    if pa.types.is_floating(kind):
        return _parse(float, text, "a number", name, option)
    if pa.types.is_boolean(kind):
        return _parse_bool(text, name, option)
    raise DataError(f"{name} has type {kind}, which cannot be a label")


def _parse(convert: Any, text: str, what: str, name: str, option: str) -> Any:
    try:
        value = convert(text)
    except ValueError:
        raise DataError(
            f"{option} {text!r} is not {what}, but {name} holds {what.split()[-1]}s"
        ) from None
    if value != value:  # (NaN equals no label: it would match nothing, silently)
        raise DataError(f"{option} {text!r} matches no label: NaN is a missing label of {name}")
    return value


def _parse_bool(text: str, name: str, option: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise DataError(f"{option} {text!r} is not true or false, but {name} holds booleans")


def _few(values: Any, limit: int = 3) -> str:
    sample = some_values(values, limit)
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

        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        kind = values.type
        if pa.types.is_floating(kind):
            return to_numpy(values, null=math.nan)
        if ints and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            import pyarrow.compute as pc

            return to_numpy(pc.cast(values, pa.float64()), null=math.nan)
        raise DataError(f"{name} has type {kind}; {what} must be floats")
    if values.dtype.kind == "f" or (ints and values.dtype.kind in "biu"):
        return values
    raise DataError(f"{name} has dtype {values.dtype}; {what} must be floats")


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow")
