"""fastbce.dask and ``fastbce score --scheduler`` on a local two-process Dask cluster (issue #4)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

import fastbce
import fastbce.dask

REL = 1e-12
N = 20_000


@pytest.fixture(scope="module")
def client():
    # ":0": the scheduler's HTTP server on a free port (None still binds 8787, and a cluster
    # of another job on this machine makes that a warning, an error here)
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=N).astype(np.float32)
    y = (rng.random(N) < 1 / (1 + np.exp(-x))).astype(np.uint8)
    return {
        "y_true": y,
        "logit": x,
        "y_pred": (1 / (1 + np.exp(-x))).astype(np.float32),
        "weight": rng.random(N) * 2,
        "group": rng.choice(np.array(["a", "b", "c"]), N),
    }


def close(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=REL, abs=0.0)


# --------------------------------------------------------------------------- optional


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_importing_fastbce_does_not_import_dask_or_pyarrow():
    proc = _python(
        "import sys, fastbce, fastbce.cli\n"
        "print(sorted(m for m in ('dask', 'distributed', 'pyarrow', 'pandas') if m in sys.modules))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_fastbce_dask_without_dask_says_how_to_install_it():
    proc = _python(
        "import sys\n"
        "sys.modules['dask'] = None  # as if it were not installed\n"
        "try:\n"
        "    import fastbce.dask\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'fastbce[dask]'" in proc.stdout


# --------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("reduction", ["sum", "mean", "weighted_mean"])
def test_reductions_of_dask_arrays(reduction, client, data):
    y = da.from_array(data["y_true"], chunks=3000)
    x = da.from_array(data["logit"], chunks=4100)  # chunks need not line up
    w = da.from_array(data["weight"], chunks=2500)
    lazy = fastbce.dask.binary_crossentropy(
        y, x, from_logits=True, sample_weight=w, reduction=reduction
    )
    assert dask.is_dask_collection(lazy)
    value = lazy.compute()
    assert type(value) is float
    expected = fastbce.binary_crossentropy(
        data["y_true"],
        data["logit"],
        from_logits=True,
        sample_weight=data["weight"],
        reduction=reduction,
    )
    assert close(value, expected)


def test_reduction_graph_is_a_tree_of_per_chunk_accumulators(client, data):
    x = da.from_array(data["y_pred"], chunks=500)  # 40 chunks
    acc = fastbce.dask.accumulate(da.from_array(data["y_true"], chunks=500), x, split_every=4)
    names = {key[0] if isinstance(key, tuple) else key for key in dict(acc.__dask_graph__())}
    assert sum(name.startswith("_score_chunk") for name in names) == 40
    assert sum(name.startswith("_merge") for name in names) == 10 + 3 + 1  # 40 -> 10 -> 3 -> 1
    result = acc.compute()
    assert isinstance(result, fastbce.LossAccumulator)
    assert close(
        result.result()["mean"], fastbce.binary_crossentropy(data["y_true"], data["y_pred"])
    )


def test_reduction_none_keeps_the_chunks(client, data):
    x = da.from_array(data["y_pred"], chunks=(3000,))
    w = da.from_array(data["weight"], chunks=(7000,))
    lazy = fastbce.dask.binary_crossentropy(data["y_true"], x, sample_weight=w, reduction="none")
    assert isinstance(lazy, da.Array) and lazy.chunks == x.chunks and lazy.dtype == np.float32
    np.testing.assert_array_equal(
        lazy.compute(),
        fastbce.binary_crossentropy(
            data["y_true"], data["y_pred"], sample_weight=data["weight"], reduction="none"
        ),
    )


def test_2d_with_per_row_weights_and_per_class_pos_weight(client, data):
    y = np.stack([data["y_true"], 1 - data["y_true"], data["y_true"]], axis=1)
    x = np.stack([data["logit"], data["logit"] * 0.5, -data["logit"]], axis=1).astype(np.float64)
    q = np.array([0.5, 2.0, 4.0])
    options = {"from_logits": True, "pos_weight": q, "gamma": 1.5}
    yd = da.from_array(y, chunks=(4000, 2))  # chunked along the classes too
    xd = da.from_array(x, chunks=(3000, 1))
    wd = da.from_array(data["weight"], chunks=5000)
    for reduction in ("sum", "weighted_mean"):
        got = fastbce.dask.binary_crossentropy(
            yd, xd, sample_weight=wd, reduction=reduction, **options
        ).compute()
        want = fastbce.binary_crossentropy(
            y, x, sample_weight=data["weight"], reduction=reduction, **options
        )
        assert close(got, want), reduction
    none = fastbce.dask.binary_crossentropy(yd, xd, sample_weight=wd, reduction="none", **options)
    assert none.chunks == xd.chunks and none.dtype == np.float64
    np.testing.assert_array_equal(
        none.compute(),
        fastbce.binary_crossentropy(
            y, x, sample_weight=data["weight"], reduction="none", **options
        ),
    )


def test_focal_and_omit(client, data):
    x = data["y_pred"].astype(np.float64)
    x[::13] = np.nan
    xd = da.from_array(x, chunks=3333)
    got = fastbce.dask.binary_focal_crossentropy(
        da.from_array(data["y_true"], chunks=3333), xd, alpha=0.25, nan_policy="omit"
    ).compute()
    want = fastbce.binary_focal_crossentropy(data["y_true"], x, alpha=0.25, nan_policy="omit")
    assert close(got, want)


def test_groups_of_dask_arrays(client, data):
    acc = fastbce.dask.accumulate(
        da.from_array(data["y_true"], chunks=6000),
        da.from_array(data["y_pred"], chunks=6000),
        sample_weight=da.from_array(data["weight"], chunks=6000),
        groups=da.from_array(data["group"], chunks=4000),
    ).compute()
    want = fastbce.LossAccumulator().update(
        data["y_true"], data["y_pred"], data["weight"], data["group"]
    )
    got, expected = acc.result(), want.result()
    assert got["rows"] == expected["rows"] and close(got["sum"], expected["sum"])
    for key, value in expected["groups"].items():
        assert got["groups"][key]["rows"] == value["rows"]
        assert close(got["groups"][key]["weighted_mean"], value["weighted_mean"])


def test_errors_name_the_row_in_the_whole_array(client, data):
    y = data["y_true"].copy()
    y[12_345] = 3
    lazy = fastbce.dask.binary_crossentropy(da.from_array(y, chunks=1000), data["y_pred"])
    with pytest.raises(ValueError, match=r"got 3 at row 12345"):
        lazy.compute()


def test_options_and_shapes_are_checked_before_computing(data):
    x = da.from_array(data["y_pred"], chunks=1000)
    with pytest.raises(ValueError, match="epsilon"):
        fastbce.dask.binary_crossentropy(data["y_true"], x, epsilon=0.7)
    with pytest.raises(ValueError, match="reduction"):
        fastbce.dask.binary_crossentropy(data["y_true"], x, reduction="avg")
    with pytest.raises(TypeError, match="unexpected keyword"):
        fastbce.dask.binary_crossentropy(data["y_true"], x, weights=1.0)
    with pytest.raises(ValueError, match="y_true must have y_pred's shape"):
        fastbce.dask.binary_crossentropy(data["y_true"][:10], x)
    with pytest.raises(ValueError, match="groups must be 1-D"):
        fastbce.dask.accumulate(data["y_true"], x, groups=np.zeros(3))


def test_empty_array(client):
    empty = da.zeros(0, dtype=np.float32, chunks=1)
    assert fastbce.dask.binary_crossentropy(empty, empty, reduction="sum").compute() == 0.0
    assert math.isnan(fastbce.dask.binary_crossentropy(empty, empty).compute())


# --------------------------------------------------------------------------- dataframes


@pytest.fixture(scope="module")
def frame(data) -> dd.DataFrame:
    return dd.from_pandas(pd.DataFrame(data), npartitions=5)


@pytest.mark.parametrize("reduction", ["sum", "mean", "weighted_mean"])
def test_dataframe_columns(reduction, client, frame, data):
    got = fastbce.dask.binary_crossentropy(
        frame.y_true,
        frame.logit,
        from_logits=True,
        sample_weight=frame.weight,
        reduction=reduction,
    ).compute()
    want = fastbce.binary_crossentropy(
        data["y_true"],
        data["logit"],
        from_logits=True,
        sample_weight=data["weight"],
        reduction=reduction,
    )
    assert close(got, want)


def test_dataframe_columns_none_and_groups(client, frame, data):
    none = fastbce.dask.binary_crossentropy(frame.y_true, frame.y_pred, reduction="none")
    assert isinstance(none, dd.Series) and none.npartitions == frame.npartitions
    computed = none.compute()
    assert computed.name == "loss"
    np.testing.assert_array_equal(
        computed.to_numpy(),
        fastbce.binary_crossentropy(data["y_true"], data["y_pred"], reduction="none"),
    )
    acc = fastbce.dask.accumulate(frame.y_true, frame.y_pred, groups=frame.group).compute()
    assert acc.result()["groups"]["b"]["rows"] == (data["group"] == "b").sum()


def test_dataframe_from_parquet_with_nullable_columns(client, tmp_path, data):
    labels = pa.array(data["y_true"].astype(float), mask=np.arange(N) % 17 == 0).cast(pa.int64())
    pq.write_table(
        pa.table({"y_true": labels, "y_pred": data["y_pred"]}),
        tmp_path / "t.parquet",
        row_group_size=5000,
    )
    frame = dd.read_parquet(tmp_path / "t.parquet", dtype_backend="numpy_nullable")
    got = fastbce.dask.binary_crossentropy(frame.y_true, frame.y_pred, nan_policy="omit").compute()
    keep = np.arange(N) % 17 != 0
    assert close(got, fastbce.binary_crossentropy(data["y_true"][keep], data["y_pred"][keep]))


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, data) -> Path:
    root = tmp_path_factory.mktemp("cluster")
    table = pa.table(data)
    (root / "parts").mkdir()
    for i in range(4):
        part = table.slice(i * N // 4, N // 4)
        pq.write_table(part, root / "parts" / f"part-{i}.parquet", row_group_size=1000)
    pacsv.write_csv(table, root / "data.csv")
    np.savez(root / "data.npz", **data)
    for name in ("y_true", "y_pred", "weight", "group"):
        np.save(root / f"{name}.npy", data[name])
    return root


def score(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbce", "score", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


INPUTS = {
    "parquet": ["parts", "--sample-weight", "weight", "--group-by", "group"],
    "csv": ["data.csv", "--sample-weight", "weight", "--group-by", "group"],
    "npz": ["data.npz", "--sample-weight", "weight", "--group-by", "group"],
    "npy": [
        "--y-true",
        "y_true.npy",
        "--y-pred",
        "y_pred.npy",
        "--sample-weight",
        "weight.npy",
        "--group-by",
        "group.npy",
    ],
}


@pytest.mark.parametrize("inputs", INPUTS.values(), ids=INPUTS.keys())
def test_cli_on_the_cluster_equals_the_local_run(inputs, client, files):
    local = score(*inputs, "--format", "json", cwd=files)
    remote = score(
        *inputs,
        "--format",
        "json",
        "--batch-rows",
        "700",
        "--scheduler",
        client.scheduler.address,
        cwd=files,
    )
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a["rows"] == b["rows"] == N
    for field in ("sum", "mean", "weighted_mean"):
        assert close(b[field], a[field])
    assert set(a["groups"]) == set(b["groups"]) == {"a", "b", "c"}
    for key in a["groups"]:
        assert a["groups"][key]["rows"] == b["groups"][key]["rows"]
        assert close(b["groups"][key]["mean"], a["groups"][key]["mean"])


def test_cli_loss_only_on_the_cluster_equals_the_local_run(client, files):
    """--loss-only: the workers keep loss sums (LossSums), merged on the cluster."""
    inputs = [*INPUTS["parquet"], "--format", "json", "--loss-only"]
    local = score(*inputs, cwd=files)
    remote = score(
        *inputs, "--batch-rows", "700", "--scheduler", client.scheduler.address, cwd=files
    )
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert set(b) == {"rows", "sum", "mean", "weighted_mean", "groups"}
    assert a["rows"] == b["rows"] == N and close(b["weighted_mean"], a["weighted_mean"])
    assert list(a["groups"]) == list(b["groups"]) == ["a", "b", "c"]
    for key in a["groups"]:
        assert a["groups"][key]["rows"] == b["groups"][key]["rows"]
        assert close(b["groups"][key]["sum"], a["groups"][key]["sum"])


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_cli_on_the_cluster_writes_rows_in_order(suffix, client, files, data, tmp_path):
    out = tmp_path / f"loss{suffix}"
    proc = score(
        "parts",
        "--positive-label",
        "1",
        "--batch-rows",
        "600",
        "--output",
        out,
        "--scheduler",
        client.scheduler.address,
        cwd=files,
    )
    assert proc.returncode == 0, proc.stderr
    loss = np.load(out) if suffix == ".npy" else pq.read_table(out)["loss"].to_numpy()
    np.testing.assert_array_equal(
        loss, fastbce.binary_crossentropy(data["y_true"], data["y_pred"], reduction="none")
    )
    assert list(tmp_path.iterdir()) == [out]


def test_cli_on_the_cluster_errors(client, files, data, tmp_path):
    y = data["y_true"].copy()
    y[15_000] = 2
    np.save(tmp_path / "bad.npy", y)
    out = tmp_path / "loss.npy"
    proc = score(
        "--y-true",
        tmp_path / "bad.npy",
        "--y-pred",
        "y_pred.npy",
        "--output",
        out,
        "--batch-rows",
        "1000",
        "--scheduler",
        client.scheduler.address,
        cwd=files,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "must be in [0, 1]; got 2 at row 15000" in proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.npy"]  # no output left behind

    proc = score(
        "parts",
        "--y-true",
        "group",
        "--positive-label",
        "z",
        "--scheduler",
        client.scheduler.address,
        cwd=files,
    )
    assert proc.returncode == 1
    assert "--positive-label 'z' does not occur in column 'group'" in proc.stderr


def test_cli_with_an_unreachable_scheduler(files):
    proc = score("parts", "--scheduler", "tcp://127.0.0.1:9", cwd=files)
    assert proc.returncode == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def _listener(reply: bytes) -> tuple[Any, int, list[Any]]:
    """A TCP server on a free port that answers every connection with `reply` (or, if empty,
    says nothing and keeps it open), as a service that is not Dask's would."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    kept = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if reply:
                conn.sendall(reply)
                conn.close()
            else:
                kept.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1], kept


def test_cli_with_a_port_that_is_not_a_dask_scheduler(files, monkeypatch):
    """An HTTP reply (the dashboard's port, say) was read as a frame length ("out of memory")
    and a Client's finaliser printed a traceback 20 s later; a silent service hung for good."""
    server, port, _ = _listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 3)
    with server:
        proc = score("parts", "--scheduler", f"tcp://127.0.0.1:{port}", cwd=files)
    assert proc.returncode == 1
    assert "does not speak Dask's protocol" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    from fastbce._errors import DataError
    from fastbce.cli import score_dask

    monkeypatch.setattr(score_dask, "ANSWER_SECONDS", 1.0)
    server, port, kept = _listener(b"")
    with server, pytest.raises(DataError, match="no answer in 1.0 s"):
        score_dask._connect(Client, f"tcp://127.0.0.1:{port}")
    for conn in kept:  # (the waiting handshake ends)
        conn.close()


def test_cli_slices_on_the_cluster_equal_the_local_run(client, tmp_path):
    """Several --group-by, a crossed one and a Hive partition key through --scheduler."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(5)
    for country in ("de", "fr"):
        (tmp_path / f"country={country}").mkdir()
        n = 3000
        pq.write_table(
            pa.table(
                {
                    "y_true": (rng.random(n) < 0.4).astype(np.uint8),
                    "logit": rng.normal(size=n).astype(np.float32),
                    "device": rng.choice(np.array(["mobile", "desktop"]), n),
                }
            ),
            tmp_path / f"country={country}" / "part-0.parquet",
            row_group_size=500,
        )
    args = ["--y-pred", "logit", "--from-logits", "--format", "json", "--group-by", "country"]
    args += ["--group-by", "country,device"]
    local = score(".", *args, cwd=tmp_path)
    remote = score(
        ".", *args, "--batch-rows", "700", "--scheduler", client.scheduler.address, cwd=tmp_path
    )
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert list(a["slices"]) == list(b["slices"]) == ["country", "country,device"]
    assert list(b["slices"]["country,device"]) == [
        "de, desktop", "de, mobile", "fr, desktop", "fr, mobile"
    ]  # fmt: skip
    for name, groups in a["slices"].items():
        assert list(b["slices"][name]) == list(groups)
        for key, scope in groups.items():
            assert b["slices"][name][key]["rows"] == scope["rows"]
            assert close(b["slices"][name][key]["sum"], scope["sum"])


# --------------------------------------------------------------------------- inputs (round 17)


def test_nullable_float32_with_missing_values_is_the_same_for_any_partitioning():
    """A pandas Float32 column with <NA> stays float32 in every partition (it went to float64
    only where a partition had a NA, so the sum depended on the partitioning)."""
    rng = np.random.default_rng(5)
    n = 4000
    p = pd.Series((rng.random(n) * 0.98 + 0.01).astype(np.float32), dtype="Float32")
    p[[5, 1700, 3999]] = pd.NA
    y = pd.Series((rng.random(n) < 0.5).astype(np.float32))
    want = fastbce.evaluate(y, p, nan_policy="omit")["weighted_mean"]
    for parts in (1, 2, 4):
        dy, dp = dd.from_pandas(y, npartitions=parts), dd.from_pandas(p, npartitions=parts)
        got = fastbce.dask.binary_crossentropy(dy, dp, nan_policy="omit", reduction="mean")
        assert got.compute(scheduler="synchronous") == want, parts
        loss = fastbce.dask.binary_crossentropy(dy, dp, reduction="none")
        assert loss.compute(scheduler="synchronous").dtype == np.float32, parts


def test_elementwise_errors_name_the_row_of_the_whole_array():
    y = da.from_array(np.array([0, 1, 1, 0, 1, 0, 2, 1, 0, 1], np.float32), chunks=3)
    p = da.from_array(np.full(10, 0.5, np.float32), chunks=3)
    for reduction in ("sum", "none"):
        with pytest.raises(ValueError, match=r"got 2\.0 at row 6"):
            fastbce.dask.binary_crossentropy(y, p, reduction=reduction).compute(
                scheduler="synchronous"
            )
    # a 2-D block of "none" splits the columns too: it is named by its first index (it was
    # named by its row alone, so "index (1, 0) in the block starting at row 2" was (3, 0))
    y2 = np.zeros((4, 3))
    y2[3, 2] = 2.0
    with pytest.raises(
        ValueError, match=r"index \(1, 0\).* \(in the block starting at index \(2, 2\)\)"
    ):
        fastbce.dask.binary_crossentropy(
            da.from_array(y2, chunks=2), da.full((4, 3), 0.5, chunks=2), reduction="none"
        ).compute(scheduler="synchronous")


@pytest.mark.parametrize("length", [2, 4])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_pos_weight_length_is_checked_when_the_graph_is_built(length, reduction):
    y, p = da.ones((4, 3), chunks=2), da.full((4, 3), 0.5, chunks=2)
    message = (
        r"pos_weight must be a scalar or \(3,\) \(one per class\) for y_pred of shape "
        rf"\(4, 3\); got shape \({length},\)"
    )
    with pytest.raises(ValueError, match=message):  # (no compute: the graph is not built)
        fastbce.dask.binary_crossentropy(y, p, pos_weight=np.ones(length), reduction=reduction)
    got = fastbce.dask.binary_crossentropy(y, p, pos_weight=np.ones(3), reduction=reduction)
    want = fastbce.binary_crossentropy(np.ones((4, 3)), np.full((4, 3), 0.5), reduction=reduction)
    np.testing.assert_allclose(got.compute(scheduler="synchronous"), want, rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_more_shapes_are_checked_when_the_graph_is_built(reduction):
    # Series of other partition counts (with "none" the compute failed with Dask's "Missing
    # dependency"); a per-class pos_weight of 0-d input (an IndexError on the worker)
    y = dd.from_pandas(pd.Series([0.0, 1.0] * 5), npartitions=3)
    p = dd.from_pandas(pd.Series(np.linspace(0.05, 0.95, 10)), npartitions=2)
    with pytest.raises(ValueError, match="y_true: 3 partitions, y_pred: 2 partitions"):
        fastbce.dask.binary_crossentropy(y, p, reduction=reduction)
    with pytest.raises(ValueError, match=r"pos_weight must be a scalar for y_pred of shape \(\)"):
        fastbce.dask.binary_crossentropy(
            da.from_array(np.array(1.0)), da.from_array(np.array(0.3)),
            pos_weight=np.array([2.0]), reduction=reduction,
        )  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_0d_dask_array_is_a_scalar_weight(reduction):
    p = da.from_array(np.linspace(0.1, 0.9, 10), chunks=3)
    got = fastbce.dask.binary_crossentropy(
        np.zeros(10), p, sample_weight=da.from_array(np.array(2.0)), reduction=reduction
    ).compute(scheduler="synchronous")
    want = fastbce.binary_crossentropy(
        np.zeros(10), np.linspace(0.1, 0.9, 10), sample_weight=2.0, reduction=reduction
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_cli_scheduler_reads_csv_missing_fields_and_na_texts_as_locally(client, tmp_path):
    """Empty fields are missing, and in text columns "NA" and "null" are values, with
    --scheduler as without it (a crossed group, text labels with --positive-label, 0/1 labels)."""
    (tmp_path / "t.csv").write_text(
        "y_true,y_pred,country,dev,animal\n"
        "1,0.9,NA,m,dog\n0,0.2,de,,cat\n,0.7,null,d,\n1,NA,N/A,m,dog\n0,0.4,,d,NA\n"
    )
    runs = [
        ["--group-by", "country,dev", "--nan-policy", "omit"],
        ["--y-true", "animal", "--positive-label", "dog", "--nan-policy", "omit"],
        ["--group-by", "country", "--nan-policy", "omit"],
    ]
    for args in runs:
        local = score("t.csv", *args, "--format", "json", cwd=tmp_path)
        remote = score(
            "t.csv", *args, "--format", "json", "--scheduler", client.scheduler.address,
            cwd=tmp_path,
        )  # fmt: skip
        assert local.returncode == 0, local.stderr
        assert remote.returncode == 0, remote.stderr
        a, b = json.loads(local.stdout), json.loads(remote.stdout)
        assert a["rows"] == b["rows"] and a["omitted"] == b["omitted"], args
        assert close(a["sum"], b["sum"]), args
        assert {k: v["rows"] for k, v in a["groups"].items()} == {
            k: v["rows"] for k, v in b["groups"].items()
        }, args
    groups = json.loads(score("t.csv", *runs[2], "--format", "json", cwd=tmp_path).stdout)
    assert set(groups["groups"]) == {"NA", "de", "null", "N/A", "(missing)"}


def test_cli_scheduler_names_a_csv_row_as_locally(client, tmp_path):
    """A bad label in a later partition of a CSV file: with --scheduler the error names the row
    in the file, as a local run does (the partition's own row count was given before)."""
    n, bad = 40_000, 31_234
    labels = np.zeros(n, dtype=int)
    labels[bad] = 3
    lines = [f"{y},0.25" for y in labels.tolist()]
    (tmp_path / "t.csv").write_text("y_true,y_pred\n" + "\n".join(lines) + "\n")
    args = ["t.csv", "--batch-rows", "500"]  # (partitions of about 64 KiB: several)
    local = score(*args, cwd=tmp_path)
    remote = score(*args, "--scheduler", client.scheduler.address, cwd=tmp_path)
    assert local.returncode == remote.returncode == 1, (local.stderr, remote.stderr)
    assert f"got 3.0 at row {bad} " in local.stderr
    assert remote.stderr == local.stderr
    assert "partition" not in remote.stderr


@pytest.mark.parametrize("reduction", ["sum", "mean", "weighted_mean"])
def test_a_pos_weight_per_element_of_1d_input_is_sliced_per_chunk(reduction):
    # (each chunk was given the whole pos_weight: "must be a scalar or (3,)")
    rng = np.random.default_rng(3)
    y = (rng.random(10) < 0.5).astype(np.float32)
    p = rng.random(10).astype(np.float32)
    q = np.arange(1.0, 11.0)
    got = fastbce.dask.binary_crossentropy(
        da.from_array(y, chunks=3), da.from_array(p, chunks=3), pos_weight=q, reduction=reduction
    ).compute(scheduler="synchronous")
    want = fastbce.binary_crossentropy(y, p, pos_weight=q, reduction=reduction)
    assert got == pytest.approx(want, rel=REL)


@pytest.mark.parametrize("q", [-1.0, float("nan"), np.array([1.0, -2.0, 1.0]), np.ones((3, 1))])
def test_a_bad_pos_weight_is_refused_when_the_graph_is_built(q):
    y, p = da.ones((4, 3), chunks=2), da.full((4, 3), 0.5, chunks=2)
    with pytest.raises(ValueError, match="pos_weight must be"):
        fastbce.dask.binary_crossentropy(y, p, pos_weight=q)  # (no compute)
    with pytest.raises(ValueError, match="pos_weight must be"):
        fastbce.LossAccumulator(pos_weight=q)
    with pytest.raises(TypeError, match="pos_weight"):
        fastbce.LossAccumulator(pos_weight="a")


def test_arrays_of_unknown_chunk_sizes_and_dataframes_are_clear_errors():
    frame = dd.from_pandas(
        pd.DataFrame({"y": [1.0, 0.0, 1.0, 0.0], "p": [0.9, 0.2, 0.6, 0.4]}), npartitions=2
    )
    kept = frame[frame.p > 0.3]
    y, p = kept.y.to_dask_array(), kept.p.to_dask_array()  # (chunk sizes unknown)
    for reduction in ("mean", "none"):
        with pytest.raises(
            ValueError, match=r"y_pred has unknown chunk sizes.*compute_chunk_sizes"
        ):
            fastbce.dask.binary_crossentropy(y, p, reduction=reduction)
    with pytest.raises(TypeError, match=r"y_true: .* a Dask Series \(one column\).*got DataFrame"):
        fastbce.dask.binary_crossentropy(frame[["y"]], frame.p)
