"""fastbce score's options where they meet: --ignore-label with --positive-label (the label as
the column holds it), a NaN prediction's auc, --top-losses past the rows, --plot's name and
path, --fail-if when stdout's reader went away, an unparsable --scheduler address and crossed
keys of a NaN float column."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastbce

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def score(*args, cwd=None, **kw):
    cmd = [sys.executable, "-m", "fastbce", "score", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd, **kw)


@pytest.fixture
def labels_npy(tmp_path):
    np.save(tmp_path / "y.npy", np.array([2, 1, 2, 1, 3]))
    np.save(tmp_path / "p.npy", np.array([0.9, 0.2, 0.3, 0.4, 0.6], np.float32))
    return ["--y-true", tmp_path / "y.npy", "--y-pred", tmp_path / "p.npy"]


@pytest.mark.parametrize(
    ("ignore", "rows", "base_rate"), [("3", 4, 0.5), ("1", 3, 2 / 3), ("5", 5, 0.4)]
)
def test_ignore_label_is_matched_before_positive_label(labels_npy, ignore, rows, base_rate):
    proc = score(*labels_npy, "--positive-label", "2", "--ignore-label", ignore, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["rows"] == rows and got["ignored"] == 5 - rows
    assert got["base_rate"] == pytest.approx(base_rate, rel=1e-15)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_text_labels_can_be_ignored_with_positive_label(tmp_path, fmt):
    y = ["click", "no", "unk", "click", "no", "unk"]
    p = [0.7, 0.2, 0.5, 0.4, 0.1, 0.9]
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        path.write_text(
            "y_true,y_pred\n" + "".join(f"{a},{b}\n" for a, b in zip(y, p, strict=True))
        )
    else:
        table = pa.table(
            {"y_true": pa.array(y).dictionary_encode(), "y_pred": pa.array(p, pa.float32())}
        )
        pq.write_table(table, path)
    proc = score(path, "--positive-label", "click", "--ignore-label", "unk", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["rows"] == 4 and got["ignored"] == 2 and got["base_rate"] == 0.5
    # without --positive-label a text label cannot be ignored: the labels must be numbers
    proc = score(path, "--ignore-label", "unk")
    assert proc.returncode == 2 and "--ignore-label must be a number" in proc.stderr


def test_an_ignore_label_that_matches_nothing_or_every_positive_is_an_error(labels_npy):
    # (NaN equals no label; ignoring the positive label would skip every positive row)
    proc = score(*labels_npy, "--positive-label", "2", "--ignore-label", "2")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "--ignore-label and --positive-label name the same label '2'" in line, line
    floats = labels_npy[1].parent / "yf.npy"  # (a float label column: "nan" parses as NaN)
    np.save(floats, np.array([2.0, 1.0, 2.0, 1.0, 3.0]))
    for option in ("--ignore-label", "--positive-label"):
        labels = {"--positive-label": "2", "--ignore-label": "3", option: "nan"}
        proc = score("--y-true", floats, *labels_npy[2:], *(a for kv in labels.items() for a in kv))
        assert proc.returncode == 1, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert f"{option} 'nan' matches no label: NaN is a missing label of" in line, line


@pytest.mark.parametrize("with_positive_label", [False, True])
def test_ignored_rows_have_a_nan_loss_in_the_output(tmp_path, with_positive_label):
    # --output runs a second, elementwise pass: it used to check the ignored labels (-1 is not
    # in [0, 1]: exit 1) and, with --no-validate, to give those rows a loss
    y = np.array([1, -1, 0, 1, -1, 0], np.int8)
    x = np.array([0.5, 0.2, -1.0, 3.0, -40.0, 0.25], np.float32)
    w = np.array([1.0, -5.0, 2.0, 0.5, np.inf, 1.0], np.float32)  # (unchecked where ignored)
    labels = np.where(y == 1, "click", np.where(y == 0, "no", "unk"))
    pq.write_table(
        pa.table({"y": labels if with_positive_label else y, "x": x, "w": w}),
        tmp_path / "t.parquet",
    )
    out = tmp_path / "loss.npy"
    args = (
        ["--positive-label", "click", "--ignore-label", "unk"]
        if with_positive_label
        else ["--ignore-label", "-1"]
    )
    proc = score(
        tmp_path / "t.parquet",
        "--y-true",
        "y",
        "--y-pred",
        "x",
        "--sample-weight",
        "w",
        "--from-logits",
        *args,
        "--output",
        out,
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["rows"] == 4 and got["ignored"] == 2
    loss = np.load(out)
    kept = y != -1
    assert np.isnan(loss[~kept]).all()
    want = np.asarray(
        fastbce.binary_crossentropy(
            y[kept], x[kept], from_logits=True, sample_weight=w[kept], reduction="none"
        )
    )
    np.testing.assert_array_equal(loss[kept], want)
    assert float(np.sum(loss[kept], dtype=np.float64)) == pytest.approx(got["sum"], rel=1e-12)


def test_nan_prediction_makes_auc_null_under_propagate(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("y_true,y_pred\n1,0.7\n0,NaN\n1,0.2\n0,0.4\n")
    got = json.loads(score(path, "--format", "json").stdout)
    assert got["sum"] is None and got["auc"] is None and got["auc_bound"] is None
    omitted = json.loads(score(path, "--format", "json", "--nan-policy", "omit").stdout)
    assert omitted["auc"] == 0.5 and omitted["omitted"] == 1


def test_top_losses_past_the_rows_lists_every_row(labels_npy):
    proc = score(
        *labels_npy, "--positive-label", "2", "--top-losses", "1000000000", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["top_losses"]) == 5


def test_plot_name_and_path_are_checked_before_the_data(tmp_path):
    data = tmp_path / "in.csv"
    text = "y_true,y_pred\n1,0.7\n0,0.2\n"
    data.write_text(text)
    for name in ("fig.jpg", "fig", "fig.xyz"):
        proc = score(data, "--plot", tmp_path / name)
        assert proc.returncode == 2 and "the name must end in .png" in proc.stderr, name
        assert not (tmp_path / name).exists() and not (tmp_path / f"{name}.png").exists()
    (tmp_path / "plot.png").symlink_to(data)
    proc = score(data, "--plot", tmp_path / "plot.png")
    assert proc.returncode == 2 and "is the input" in proc.stderr
    assert data.read_text() == text


def test_plot_that_is_the_output_or_cannot_be_made_fails_before_the_data(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("y_true,y_pred\n1,0.7\n0,0.2\n")
    out = tmp_path / "loss.npy"
    (tmp_path / "plot.png").symlink_to(out)  # (the losses would become a PNG)
    proc = score(data, "--output", out, "--plot", tmp_path / "plot.png")
    assert proc.returncode == 2 and "is the --output file" in proc.stderr, proc.stderr
    assert not out.exists()
    for plot, message in [
        (tmp_path / "no" / "x.png", "the directory"),
        (tmp_path / "dir.png", "it is a directory"),
    ]:
        (tmp_path / "dir.png").mkdir(exist_ok=True)
        proc = score(data, "--output", out, "--plot", plot, "--fail-if", "rows>0")
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert proc.stdout == "" and not out.exists()  # (before anything was read)


def test_an_interrupted_figure_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from fastbce.cli import report

    def stopped_half_way(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt  # (SIGINT, or SIGTERM / SIGHUP made one by the command)

    monkeypatch.setattr(Figure, "savefig", stopped_half_way)
    png = tmp_path / "fig.png"
    png.write_bytes(b"the old figure")
    result = fastbce.evaluate([1.0, 0.0, 1.0], [0.8, 0.3, 0.4])
    with pytest.raises(KeyboardInterrupt):
        report.plot(result, str(png))
    assert png.read_bytes() == b"the old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


@pytest.mark.parametrize("where", ["reader", "output"])
def test_a_signal_as_the_run_starts_leaves_no_temporary_file(tmp_path, monkeypatch, where):
    # (the reader's start reads every parquet footer: ~150 ms for 100 wide files, after the
    # output's temporary file was made; and the output's own start: between its file's
    # creation and its first bytes)
    from fastbce.cli import main
    from fastbce.io import NpyOutput, readers

    def stopped(*args, **kw):
        raise KeyboardInterrupt  # (SIGINT, or SIGTERM / SIGHUP made one by the command)

    if where == "reader":
        monkeypatch.setattr(readers.ParquetSource, "batches", stopped)
    else:
        monkeypatch.setattr(NpyOutput, "_open", stopped)
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"y_true": [1, 0], "y_pred": [0.7, 0.2]}), data)
    assert main(["score", str(data), "--output", str(tmp_path / "loss.npy")]) == 128 + signal.SIGINT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_stop_signal_handled_where_python_drops_exceptions_still_stops_the_run():
    # (Python runs a handler between any two bytecodes, also in a gc callback such as JAX's,
    # which prints and drops the exception: the bench then ran to its end, every later signal
    # ignored; the dropped Stopped is now delivered again)
    import gc

    from fastbce.cli.signals import Stopped, stop_on_signals

    fired: list[int] = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start" and not fired:
            fired.append(1)
            signal.raise_signal(signal.SIGTERM)
            for _ in range(100):  # (bytecodes: the handler runs here, in the callback)
                time.sleep(0)

    gc.callbacks.append(callback)
    try:
        with pytest.raises(Stopped) as stopped, stop_on_signals():
            gc.collect()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # (the run goes on: here it is stopped)
                time.sleep(0.001)
        assert fired and stopped.value.signum == signal.SIGTERM
    finally:
        gc.callbacks.remove(callback)


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_stdout_or_stderr_does_not_change_the_exit_status(tmp_path, closed):
    data = tmp_path / "in.csv"
    data.write_text("y_true,y_pred\n1,0.7\n0,0.2\n")
    out = tmp_path / "loss.npy"
    for extra, status in [([], 0), (["--fail-if", "rows>1"], 3)]:
        out.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "fastbce", "score", str(data), "--output", str(out), *extra],
            capture_output=True,
            preexec_fn=lambda: os.close(closed),  # (`>&-` / `2>&-`: Python's stream is None)
            check=False,
        )
        assert proc.returncode == status, proc
        assert b"Traceback" not in proc.stderr
        assert np.load(out).shape == (2,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-rows", str(2**64)], "--batch-rows must be >= 1 and < 2^62"),
        (["--top-losses", str(2**64)], "--top-losses must be >= 0 and < 2^62"),
        (["--fail-if", "log_loss>nan"], "the value is NaN"),
    ],
)
def test_option_values_out_of_range_are_usage_errors(tmp_path, args, message):
    # (a traceback, an exit 1 with pybind11's argument list, a condition that never held)
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"y_true": [1, 0], "y_pred": [0.7, 0.2]}), data)
    proc = score(data, *args)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert message in line


def test_top_losses_group_in_json_is_written_as_the_groups_key(tmp_path):
    # a date or decimal group broke the JSON ("not JSON serializable") after the whole pass, and an
    # infinite float group was null, as the missing group is
    import datetime
    import decimal

    data = tmp_path / "g.parquet"
    table = pa.table(
        {
            "y_true": [1, 0, 1],
            "y_pred": [0.01, 0.2, 0.9],
            "day": [datetime.date(2024, 1, 1), datetime.date(2024, 1, 2), None],
            "price": pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("2.00")]),
            "f": [float("inf"), 1.0, None],
        }
    )
    pq.write_table(table, data)
    for column in ("day", "price", "f"):
        proc = score(data, "--group-by", column, "--top-losses", "2", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        keys = set(got["groups"])
        top = got["top_losses"]
        assert top[0]["row"] == 0 and top[0]["group"] in keys, (column, top, keys)


def test_fail_if_holds_when_stdout_is_closed(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("y_true,y_pred\n1,0.7\n0,0.2\n")
    cmd = [sys.executable, "-m", "fastbce", "score", str(path), "--fail-if", "rows>0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # (the reader is gone before anything is written: `| true`)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert b"--fail-if rows>0" in err


def test_unparsable_scheduler_address_is_one_line_at_once(labels_npy):
    pytest.importorskip("distributed")
    # (an unknown scheme, or one a command cannot use, waited 20 s and printed a traceback)
    for address in ("tcp://localhost", "notanaddress", "foo://x:1", "inproc://nothing"):
        start = time.monotonic()
        proc = score(*labels_npy, "--positive-label", "2", "--scheduler", address)
        assert time.monotonic() - start < 10, address
        assert proc.returncode == 1
        assert (
            proc.stderr.strip().count("\n") == 0
            and "cannot reach the Dask scheduler" in proc.stderr
        )


def test_crossed_keys_of_a_nan_float_column_are_missing(tmp_path):
    path = tmp_path / "cross.parquet"
    table = {
        "y_true": pa.array([1, 0, 1], pa.uint8()),
        "y_pred": pa.array([0.6, 0.3, 0.2], pa.float32()),
    }
    table |= {"a": [1.0, float("nan"), 2.0], "b": ["u", "u", "v"]}
    pq.write_table(pa.table(table), path)
    proc = score(path, "--group-by", "a,b", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    keys = list(json.loads(proc.stdout)["groups"])
    assert "null" in keys and not any("nan" in k for k in keys)
