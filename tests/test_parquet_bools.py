"""fastbce's reader of boolean parquet columns (``fastbce.io.parquet_bools``, issue 12): it gives
pyarrow's array for every file layout it takes, and None (pyarrow reads the column) for every
one it does not take: nulls, codecs it cannot tell apart, damaged bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa  # (the test extra has it)
import pyarrow.parquet as pq
import pytest

from fastbce import _core
from fastbce.io import parquet_bools
from fastbce.io.prefetch import RowGroupReader

LABELS = {
    "random": lambda rng, n: rng.random(n) < 0.3,
    "all true": lambda rng, n: np.ones(n, dtype=bool),
    "all false": lambda rng, n: np.zeros(n, dtype=bool),
    "runs": lambda rng, n: (np.arange(n) // 997) % 2 == 0,  # (RLE runs and bit-packed parts)
}


def write(path: Path, y: np.ndarray, *, nullable: bool = True, **options) -> pq.FileMetaData:
    schema = pa.schema([pa.field("x", pa.float32()), pa.field("y", pa.bool_(), nullable=nullable)])
    x = np.arange(y.size, dtype=np.float32)
    pq.write_table(pa.table({"x": x, "y": y}, schema=schema), path, **options)
    return pq.read_metadata(path)


def own_read(path: Path, meta: pq.FileMetaData, row_groups: tuple[int, ...]):
    (column,) = parquet_bools.bool_columns(meta, ["x", "y"])
    return parquet_bools.read(str(path), meta, row_groups, column)


def pyarrow_read(path: Path, row_groups: tuple[int, ...]) -> pa.Array:
    table = pq.ParquetFile(path).read_row_groups(list(row_groups), columns=["y"])
    return table.column("y").combine_chunks()


@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("nullable", [True, False])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("compression", ["none", "snappy", "gzip", "brotli", "zstd"])
def test_every_layout_pyarrow_writes_reads_as_pyarrow_reads_it(
    tmp_path, compression, version, nullable, labels
):
    """Pages of 37 values (so most start inside a byte), row groups of 3001 rows, read one by
    one and several together: pyarrow's array bit for bit (v1 pages hold PLAIN values, v2 RLE)."""
    y = LABELS[labels](np.random.default_rng(7), 10_007)
    path = tmp_path / "f.parquet"
    meta = write(
        path,
        y,
        nullable=nullable,
        compression=compression,
        data_page_version=version,
        row_group_size=3001,
        data_page_size=1,
        write_batch_size=37,
    )
    assert meta.num_row_groups == 4
    assert parquet_bools.bool_columns(meta, ["y"])[0].optional is nullable
    for groups in [(0,), (3,), (1, 2), (0, 1, 2, 3), (0, 2)]:
        got = own_read(path, meta, groups)
        assert got is not None, groups
        assert got.equals(pyarrow_read(path, groups)), groups


@pytest.mark.parametrize("writer", ["polars", "duckdb"])
@pytest.mark.parametrize("compression", ["uncompressed", "snappy", "zstd", "gzip"])
def test_files_of_polars_and_duckdb(tmp_path, writer, compression):
    """The peers' writers (their own page layouts) read as pyarrow reads them."""
    y = np.random.default_rng(3).random(250_003) < 0.2
    path = tmp_path / "f.parquet"
    if writer == "polars":
        pl = pytest.importorskip("polars")  # (the e2e extra)
        pl.DataFrame({"x": np.zeros(y.size, np.float32), "y": y}).write_parquet(
            path, compression=compression, row_group_size=60_001, data_page_size=1000
        )
    else:
        duckdb = pytest.importorskip("duckdb")
        con = duckdb.connect()
        con.register("frame", pa.table({"x": np.zeros(y.size, np.float32), "y": y}))
        con.execute(
            f"COPY (SELECT * FROM frame) TO '{path}' "
            f"(FORMAT parquet, COMPRESSION {compression}, ROW_GROUP_SIZE 100000)"
        )
    meta = pq.read_metadata(path)
    groups = tuple(range(meta.num_row_groups))
    got = own_read(path, meta, groups)
    assert got is not None
    assert got.equals(pyarrow_read(path, groups))


def test_what_it_does_not_take_is_left_to_pyarrow(tmp_path):
    """A null, an LZ4 codec (LZ4_RAW and Hadoop's LZ4 have one name in pyarrow's footer) and a
    column that is not a top-level boolean: None or not offered, never an array of its own."""
    y = np.random.default_rng(1).random(5000) < 0.5
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"y": pa.array(y, mask=np.arange(5000) == 4321)}), path)
    meta = pq.read_metadata(path)
    (column,) = parquet_bools.bool_columns(meta, ["y"])
    assert parquet_bools.read(str(path), meta, (0,), column) is None

    path = tmp_path / "lz4.parquet"
    meta = write(path, y, compression="lz4")
    assert own_read(path, meta, (0,)) is None

    path = tmp_path / "nested.parquet"
    pq.write_table(
        pa.table({"s": pa.array([{"b": True}, {"b": False}]), "l": [[True], [False, True]]}), path
    )
    assert parquet_bools.bool_columns(pq.read_metadata(path), ["s", "l"]) == []


def test_damaged_chunks_give_pyarrows_answer_or_none(tmp_path):
    """Bytes of the boolean chunk overwritten at random (its page headers too), and the file cut
    short: the reader returns pyarrow's array for the damaged file or None, and never raises or
    reads past its buffers (the C++ checks every length against the chunk)."""
    rng = np.random.default_rng(11)
    y = rng.random(20_000) < 0.4
    path = tmp_path / "f.parquet"
    for version in ["1.0", "2.0"]:
        meta = write(path, y, compression="none", data_page_version=version, data_page_size=1,
                     write_batch_size=999)  # fmt: skip
        good = path.read_bytes()
        chunk = meta.row_group(0).column(1)
        first, size = chunk.data_page_offset, chunk.total_compressed_size
        taken = 0
        for trial in range(300):
            data = bytearray(good)
            for _ in range(1 + trial % 4):
                where = first + int(rng.integers(0, min(size, 64) if trial % 2 else size))
                data[where] = int(rng.integers(0, 256))
            path.write_bytes(bytes(data))
            got = own_read(path, meta, (0,))
            if got is None:
                continue
            taken += 1
            try:
                want = pyarrow_read(path, (0,))
            except (OSError, pa.ArrowException):  # (pyarrow rejects what this reader skips:
                continue  # a header's statistics)
            assert got.equals(want), trial
        assert 0 < taken < 300
        path.write_bytes(good[: first + size // 2])  # (the footer is the good file's)
        assert own_read(path, meta, (0,)) is None


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_a_header_asking_for_a_huge_page_is_refused_before_decompressing(
    tmp_path, monkeypatch, version
):
    """A damaged uncompressed_page_size (2^31 - 1 here) is refused before the codec is asked for
    that many bytes; the reader returns None (pyarrow then reads the file, or says it is damaged).
    The bound holds for every page pyarrow writes, on every label pattern."""
    rng = np.random.default_rng(5)
    path = tmp_path / "f.parquet"
    for make in LABELS.values():
        meta = write(path, make(rng, 5000), compression="snappy", data_page_version=version,
                     data_page_size=1, write_batch_size=37)  # fmt: skip
        got = own_read(path, meta, (0,))  # (None if a real page were over the bound)
        assert got is not None and got.equals(pyarrow_read(path, (0,)))
    real_headers = _core.parquet_page_headers
    asked: list[int] = []
    real_decompressed = parquet_bools._decompressed

    def damaged(chunk):
        headers = real_headers(chunk)
        headers[len(headers) // 2, 3] = 2**31 - 1  # (uncompressed_page_size of a middle page)
        return headers

    def decompressed(codec, body, size):
        asked.append(size)
        return real_decompressed(codec, body, size)

    monkeypatch.setattr(parquet_bools._core, "parquet_page_headers", damaged)
    monkeypatch.setattr(parquet_bools, "_decompressed", decompressed)
    assert own_read(path, meta, (0,)) is None
    assert max(asked, default=0) < 2**20  # (v2: pyarrow left these pages uncompressed)


def test_the_cpp_reader_rejects_what_does_not_fit():
    """The C++ side alone: a bitmap too small for the page's values, and levels saying null."""
    out = np.zeros(2, dtype=np.uint8)
    page = np.full(4, 0xFF, dtype=np.uint8)  # PLAIN: 32 true values
    assert _core.parquet_bool_page(page, 0, 16, 0, out, 0, 16) == 16
    assert out.tolist() == [255, 255]
    with pytest.raises(ValueError, match="more values"):
        _core.parquet_bool_page(page, 0, 17, 0, out, 0, 16)
    levels = np.array([2, 0, 0, 0, 0b10, 0], dtype=np.uint8)  # v1: length 2, a run of one 0
    with pytest.raises(ValueError, match="null"):
        _core.parquet_bool_page(np.concatenate([levels, page]), -1, 1, 0, out, 0, 16)
    with pytest.raises(ValueError):
        _core.parquet_page_headers(np.array([0x15, 0x00], dtype=np.uint8))  # (cut short)


def test_row_group_reader_gives_the_same_batches_either_way(tmp_path):
    """RowGroupReader with the boolean reader and without it (pyarrow alone): the same batches,
    with a file whose labels have a null (read by pyarrow) between two that have none."""
    rng = np.random.default_rng(5)
    files, metas = [], []
    for i in range(3):
        path = tmp_path / f"p{i}.parquet"
        y = pa.array(rng.random(7000) < 0.5, mask=(np.arange(7000) == 99) if i == 1 else None)
        g = [f"c{v}" for v in rng.integers(0, 5, 7000).tolist()]
        pq.write_table(pa.table({"y": y, "x": rng.random(7000), "g": g}), path, row_group_size=1500)
        files.append(str(path))
        metas.append(pq.read_metadata(path))
    runs = []
    for own in (True, False):
        reader = RowGroupReader(files, metas, ["x", "y", "g"], ["g"], threads=2, own_bools=own)
        batches = list(reader.batches(3500))
        assert all(list(batch) == ["x", "y", "g"] for _, _, batch in batches)
        runs.append([(p, s, {c: a.to_pylist() for c, a in b.items()}) for p, s, b in batches])
    assert runs[0] == runs[1]
    assert sum(len(b["y"]) for _, _, b in runs[0]) == 21_000


SCORE_ARGS = ["--y-true", "clicked", "--y-pred", "logit", "--from-logits", "--nan-policy", "omit",
              "--format", "json", "--loss-only"]  # fmt: skip


def test_score_of_boolean_labels_matches_numpy(tmp_path):
    """``fastbce score`` of boolean labels read by this reader, one with a null (NaN under
    --nan-policy omit, pyarrow's read): the log loss of the NumPy formula."""
    rng = np.random.default_rng(9)
    x = rng.normal(0, 3, 40_000).astype(np.float32)
    y = rng.random(40_000) < 1 / (1 + np.exp(-x))
    mask = np.zeros(40_000, dtype=bool)
    path = tmp_path / "s.parquet"
    for with_null in (False, True):
        mask[123] = with_null
        table = pa.table({"logit": x, "clicked": pa.array(y, mask=mask)})
        pq.write_table(table, path, row_group_size=7000, data_page_version="2.0")
        proc = subprocess.run(
            [sys.executable, "-m", "fastbce", "score", str(path), *SCORE_ARGS],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
        assert proc.returncode == 0, proc.stderr
        keep = ~mask
        xd, yd = x[keep].astype(np.float64), y[keep]
        want = np.mean(np.maximum(xd, 0) - xd * yd + np.log1p(np.exp(-np.abs(xd))))
        got = json.loads(proc.stdout)["mean"]
        assert got == pytest.approx(want, rel=1e-6)  # (float32 losses)
