"""``fastbce bench`` from the command line: the table, the JSON, the plot and the usage errors.

The runs are quick (``--quick``, tiny sizes); the figures are not checked, only that they are
there, positive and that every value agrees with the float64 reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastbce
from fastbce import _core, cli
from fastbce.cli import bench as _bench
from fastbce.cli.bench import command, grad, peers

HEADER = ("implementation", "N", "ms", "ns/elem", "GB/s", "speed-up", "x floor", "rel. error")


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbce", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(stdout: str) -> list[list[str]]:
    """The data lines of the printed tables, split into cells (names may hold one space)."""
    names = sorted(_bench.IMPLEMENTATIONS, key=len, reverse=True)
    rows = []
    for line in stdout.splitlines():
        for name in names:
            if line.startswith(name + " "):
                rows.append([name, *line[len(name) :].split()])
                break
    return rows


def check_report(report: dict, sizes: list[int], variants: list[str], peers: list[str]) -> None:
    assert report["schema"] == "fastbce-bench/1"
    assert report["settings"]["sizes"] == sizes
    assert report["settings"]["variants"] == variants
    assert report["fastbce"]["version"]
    assert report["fastbce"]["build"]["target"]
    for peer in peers:
        assert report["peers"][peer]["status"] == "ran"
        assert report["peers"][peer]["versions"]
    expected = {
        (v, n, impl.name)
        for n in sizes
        for v in variants
        for impl in _bench.IMPLEMENTATIONS.values()
        if impl.supports(v) and (impl.peer == "fastbce" or impl.peer in peers)
    }
    results = report["results"]
    assert {(r["variant"], r["n"], r["implementation"]) for r in results} == expected
    for r in results:
        assert "error" not in r, r
        assert len(r["times_s"]) == report["settings"]["repeats"]
        assert all(t > 0 for t in r["times_s"])
        assert r["median_ms"] > 0 and r["ns_per_element"] > 0 and r["gb_per_s"] > 0
        assert r["bytes"] >= r["n"] * 2  # at least one byte of label and of prediction each
        assert r["floor_ratio"] > 0 and r["speedup"] > 0
        assert r["threads"]
        if r["implementation"] == "read floor":
            assert r["value"] is None and r["rel_error"] is None
            assert r["floor_ratio"] == 1.0
        else:
            assert r["ok"] is True
            assert 0 <= r["rel_error"] <= r["tolerance"] <= 1e-4
            assert r["value"] == pytest.approx(r["reference"], rel=1e-4)
        if r["implementation"] == "fastbce":
            assert r["speedup"] == 1.0


def test_numpy_only_table_json_and_plot(tmp_path):
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    result = bench(
        "--quick", "--sizes", "1e3,3000", "--peers", "numpy", "--variants", "logits,uint8,float64",
        "--json", str(json_path), "--plot", str(png_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    out = result.stdout
    assert "logits: float32 logits, float32 labels" in out
    assert "uint8: float32 logits, uint8 labels" in out
    for line in (ln for ln in out.splitlines() if ln.startswith("implementation")):
        assert line.split() == ["implementation", "N", "ms", "ns/elem", "GB/s", "speed-up",
                                "x", "floor", "rel.", "error"]  # fmt: skip
    rows = table_rows(out)
    assert sorted({(r[0], r[1]) for r in rows}) == sorted(
        (impl, n) for impl in ("read floor", "fastbce", "numpy") for n in ("1e3", "3000")
    )
    assert len(rows) == 3 * 2 * 3  # implementations x sizes x variants
    for row in rows:
        assert len(row) == len(HEADER)
        assert float(row[2]) > 0 and float(row[4]) > 0
        if row[0] != "read floor":
            assert float(row[7]) < 1e-4
    assert "tensorflow" not in out and "torch" not in out  # not asked for: not run, not skipped
    # progress goes to stderr, one line per entry
    assert result.stderr.count("[") >= len(rows)
    assert f"wrote {json_path}" in result.stderr

    report = json.loads(json_path.read_text())
    check_report(report, [1000, 3000], ["logits", "uint8", "float64"], ["numpy"])

    pytest.importorskip("matplotlib")
    data = png_path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


@pytest.mark.slow
def test_installed_peers(tmp_path):
    """Default peers: every installed one runs; the others are listed with a pip command."""
    json_path = tmp_path / "bench.json"
    variants = ["logits", "focal"]
    result = bench("--quick", "--sizes", "1e3", "--variants", ",".join(variants),
                   "--json", str(json_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    installed = [p for p in _bench.PEERS if _bench.peer_installed(p)]
    missing = [p for p in _bench.PEERS if p not in installed]
    report = json.loads(json_path.read_text())
    check_report(report, [1000], variants, installed)
    names = {r[0] for r in table_rows(result.stdout)}
    for impl in _bench.IMPLEMENTATIONS.values():
        if impl.peer == "fastbce" or impl.peer in installed:
            assert impl.name in names
    for peer in missing:
        assert f"skipped {peer}: not installed (pip install" in result.stdout
        assert report["peers"][peer]["status"] == "skipped"


def test_missing_peer_is_skipped_with_pip_command(monkeypatch, capsys):
    installed = _bench.peer_installed
    monkeypatch.setattr(peers, "peer_installed", lambda p: p != "torch" and installed(p))
    code = cli.main(["bench", "--quick", "--sizes", "1e3", "--variants", "logits",
                     "--peers", "numpy,torch", "-q"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert "skipped torch: not installed (pip install torch" in out
    assert 'pip install "fastbce[peers]"' in out
    assert {r[0] for r in table_rows(out)} == {"read floor", "fastbce", "numpy"}
    assert err == ""  # -q: no progress


def test_no_peers_runs_fastbce_and_floor(capsys):
    assert cli.main(["bench", "--quick", "--sizes", "2k", "--peers", "none", "-q"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert {r[0] for r in rows} == {"read floor", "fastbce"}
    assert {r[1] for r in rows} == {"2000"}
    assert len(rows) == 2 * len(_bench.VARIANTS)


def test_bad_option_exits_2():
    result = bench("--sizes", "lots")
    assert result.returncode == 2
    assert "not a size" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "0"], "whole number >= 1"),
        (["--sizes", "1.5"], "whole number >= 1"),
        (["--repeats", "0"], "must be >= 1"),
        (["--threads", "two"], "not an integer"),
        (["--min-time", "-1"], "finite number >= 0"),
        (["--variants", "logits,nope"], "unknown variant 'nope'"),
        (["--peers", "numpy,caffe"], "unknown peer 'caffe'"),
        (["--variants", "all,nope"], "unknown variant 'nope'"),  # (beside all too)
        (["--peers", "all,caffe"], "unknown peer 'caffe'"),
        (["--dist", "nope,all"], "unknown"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--seed", "-1"], "--seed: must be >= 0"),
        (["--threads", "50000"], "--threads: at most 1024"),
        (["--variants", ","], "no name in ','"),
        (["--dist", ","], "no name in ','"),
        (["--plot", ".png"], "the name must end in .png (after a name)"),
        (["--json", "/proc/x.json"], "cannot write in /proc"),
        (["--json", "/dev/null"], "is not a regular file"),
        (["--json", "same.png", "--plot", "same.png"], "are one file"),
    ],
)
def test_usage_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--quick", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_is_a_usage_error(monkeypatch, capsys, tmp_path):
    has_module = _bench.has_module
    monkeypatch.setattr(peers, "has_module", lambda name: name != "matplotlib" and has_module(name))
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--quick", "--peers", "none", "--plot", str(tmp_path / "p.png")])
    assert info.value.code == 2
    assert "--plot needs matplotlib: pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    "text, n", [("1e6", 10**6), ("1000", 1000), ("1_000", 1000), ("10k", 10**4), ("2M", 2 * 10**6)]
)
def test_size_syntax(text, n):
    assert command._size(text) == n


# --------------------------------------------------------------------------- distributions, sweep


def test_distributions_each_get_a_table(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    code = cli.main(["bench", "--quick", "--sizes", "2k", "--peers", "numpy", "--variants",
                     "logits,probs", "--dist", "normal,confident", "--json", str(json_path),
                     "-q"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("CPU: ") and f"SIMD tier {_core.active_target()}" in first
    assert f"line fetch {_core.line_fetch()}" in first
    assert "logits: float32 logits, float32 labels; logits ~ N(0, 1)" in out
    assert "probs: float32 probabilities, float32 labels; logits: 70% |x| ~ U(5, 30)" in out
    rows = table_rows(out)
    assert len(rows) == 2 * 2 * 3  # distributions x variants x implementations
    report = json.loads(json_path.read_text())
    assert report["settings"]["dists"] == ["normal", "confident"]
    assert set(report["distributions"]) == {"normal", "confident"}
    assert report["machine"]["cpu_model"]
    results = report["results"]
    assert {(r["dist"], r["variant"]) for r in results} == {
        (d, v) for d in ("normal", "confident") for v in ("logits", "probs")
    }
    for r in results:
        assert r["ok"] is True and r["floor_ratio"] > 0 and r["speedup"] > 0


def test_default_distribution_is_normal4():
    data = _bench.make_data(_bench.VARIANTS["logits"], 100_000)
    assert data.dist == _bench.DEFAULT_DISTRIBUTION == "normal4"
    assert 3.8 < float(np.std(data.y_pred)) < 4.2


def test_confident_mix():
    data = _bench.make_data(_bench.VARIANTS["logits"], 100_000, dist="confident")
    magnitude = np.abs(data.y_pred.astype(np.float64))
    assert magnitude.max() <= 30.0
    assert 0.66 < np.mean(magnitude >= 5.0) < 0.72  # 70% confident (+ the N(0, 1) tail's bit)
    assert 0.45 < np.mean(data.y_pred > 0) < 0.55  # random signs
    # labels from the sigmoid of the logits: confident predictions are mostly right
    right = (data.y_pred > 0) == (data.y_true == 1)
    assert np.mean(right[magnitude >= 5.0]) > 0.99


def test_sweep(tmp_path, capsys):
    json_path = tmp_path / "sweep.json"
    code = cli.main(["bench", "--sweep", "--sizes", "3000", "--variants", "logits,focal",
                     "--repeats", "1", "--json", str(json_path), "-q"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ")
    for mode in ("logits", "focal"):
        for dtype in ("float32", "float64"):
            assert f"\n{mode} {dtype}: fastest " in out
    assert "slowest/fastest" in out
    report = json.loads(json_path.read_text())
    assert report["schema"] == "fastbce-bench-sweep/1" and report["threads"] == 1
    assert [(s["mode"], s["dtype"]) for s in report["sweeps"]] == [
        (m, d) for m in ("logits", "focal") for d in ("float32", "float64")
    ]
    for s in report["sweeps"]:
        magnitudes = [p["magnitude"] for p in s["points"]]
        assert magnitudes[0] == 0 and magnitudes[-1] == 1e30
        assert all(p["ns_per_element"] > 0 for p in s["points"])
        assert s["normal_ratio"] >= 1.0
        # a correct prediction's loss exp(-(1 + gamma)|x|) is not normal, exp(-|x|) not 0 yet:
        # float32 |x| in (87.3, 103.97), float64 (708.4, 745.1); focal gamma 2 from a third of those
        subnormal = [p["magnitude"] for p in s["points"] if p["subnormal"]]
        expected = {
            ("logits", "float32"): [90, 100],
            ("logits", "float64"): [710, 745],
            ("focal", "float32"): [30, 36, 50, 70, 87, 90, 100],
            ("focal", "float64"): [500, 710, 745],
        }
        assert subnormal == expected[s["mode"], s["dtype"]]


def test_sweep_band_counts_the_weights_and_balance():
    # float32 e^-87 is normal (above 2^-126 = e^-87.34), but half of it, the smallest sample
    # weight of the sweep, is not: weighted |x| = 87 has subnormal results, logits |x| = 87 none
    from fastbce.cli.bench import sweep

    def band(mode: str, magnitude: float, dtype: str = "float32") -> bool:
        m = sweep.MODES[mode]
        factor = sweep.smallest_factor(m)
        return sweep.subnormal_band(dtype, magnitude, m.gamma, m.from_logits, factor)

    assert band("weighted", 87) and not band("logits", 87)
    assert not band("weighted", 86) and band("logits", 90)
    # focal gamma 2, alpha 0.25: 0.25 e^-(3 * 28.7) < 2^-126 < e^-(3 * 28.7)
    assert band("focal", 28.7) and not band("focal2.7", 87.3 / 3.7 - 0.01)
    assert not band("probs", 90) and not band("weighted", 110)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dist", "normal,cauchy"], "unknown distribution 'cauchy'"),
        (["--sweep", "--variants", "int4"], "unknown sweep mode 'int4'"),
        (["--sweep", "--sizes", "1e3,1e4"], "--sweep takes one size"),
        (["--sweep", "--dist", "normal"], "--sweep times fastbce alone"),
    ],
)
def test_dist_and_sweep_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--quick", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- gradients (--grad)


def grad_rows(stdout: str) -> list[list[str]]:
    names = sorted(grad.IMPLEMENTATIONS, key=len, reverse=True)
    return [
        [name, *line[len(name) :].split()]
        for line in stdout.splitlines()
        for name in names
        if line.startswith(name + " ")
    ]


def test_grad_table_and_json(tmp_path, capsys):
    json_path = tmp_path / "grad.json"
    code = cli.main(["bench", "--grad", "--quick", "--sizes", "1e3,3000", "--threads", "1",
                     "--json", str(json_path), "-q"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("CPU: ") and f"SIMD tier {_core.active_target()}" in first
    assert "grad plain: cross-entropy" in out and "grad focal: focal loss, gamma=2" in out
    rows = grad_rows(out)
    assert len(rows) == 3 * 2 * 2  # implementations x sizes x variants
    assert sorted({(r[0], r[1]) for r in rows}) == sorted(
        (impl, n) for impl in grad.IMPLEMENTATIONS for n in ("1e3", "3000")
    )
    for row in rows:
        assert len(row) == len(HEADER)
        assert float(row[2]) > 0 and float(row[4]) > 0 and float(row[6]) > 0
        if row[0] != "memory floor":
            assert float(row[7]) < 1e-2  # no "!": the row would have a ninth cell

    report = json.loads(json_path.read_text())
    assert report["schema"] == "fastbce-bench-grad/1"
    assert report["settings"]["sizes"] == [1000, 3000]
    assert report["settings"]["variants"] == ["plain", "focal"]
    assert report["machine"]["cpu_model"] and report["fastbce"]["build"]["target"]
    assert report["xgboost"] is None
    for r in report["results"]:
        assert len(r["times_s"]) == 3 and r["median_ms"] > 0
        assert r["bytes"] == 16 * r["n"] and r["threads"] == 1
        if r["implementation"] == "memory floor":
            assert r["floor_ratio"] == 1.0 and "rel_error" not in r
            continue
        assert r["ok"] is True and r["excess"] <= 1.0
        assert r["rel_error"] == max(r["grad_rel_error"], r["hess_rel_error"])
        if r["implementation"] == "fastbce":
            assert r["speedup"] == 1.0
            assert r["rel_error"] <= r["tolerance"] == (1e-6 if r["variant"] == "plain" else 1e-5)


def test_grad_check_finds_wrong_values():
    """The reference check catches a value off by 1e-4 relative, and a NaN."""
    variant = grad.GRAD_VARIANTS["focal"]
    y, x = grad.grad_data(5000)
    g, h = fastbce.binary_crossentropy_grad(y, x, **variant.options)
    tol = grad.tolerance(variant, "fastbce")
    wrong_g, nan_h = g.copy(), h.copy()
    i = int(np.argmax(np.abs(g)))
    wrong_g[i] *= 1 + 1e-4
    nan_h[7] = np.nan
    good, off, nan = grad.check(y, x, variant, [(g, h, tol), (wrong_g, h, tol), (g, nan_h, tol)])
    assert good["excess"] <= 1.0
    assert off["excess"] > 1.0 and off["grad_rel_error"] == pytest.approx(1e-4, rel=0.01)
    assert nan["hess_rel_error"] == np.inf and nan["excess"] == np.inf


def test_grad_xgboost(monkeypatch, capsys, tmp_path):
    pytest.importorskip("xgboost")
    monkeypatch.setattr(grad, "XGBOOST_RUN", {True: (2000, 5, 2), False: (2000, 5, 2)})
    json_path = tmp_path / "grad.json"
    code = cli.main(["bench", "--grad", "--xgboost", "--quick", "--sizes", "1e3", "--variants",
                     "focal", "--json", str(json_path), "-q"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "XGBoost " in out and "2,000 rows x 5 features" in out
    share = json.loads(json_path.read_text())["xgboost"]
    assert share["rows"] == 2000 and share["rounds"] == 2
    for name in ("fastbce", "numpy"):
        r = share["results"][name]
        assert 0 < r["objective_ms"] < r["round_ms"] and 0 < r["share"] < 1


# --------------------------------------------------------------------------- --e2e

E2E_TOOLS = {"fastbce score", "fastbce score --loss-only", "Polars", "DuckDB"}


def test_e2e_table_and_json(tmp_path):
    """A tiny end-to-end run: every task runs, agrees with the float64 reference, and the table
    names the CPU, the tier and the line fetch (Polars and DuckDB come with the test extra)."""
    out = tmp_path / "e2e.json"
    result = bench(
        "--e2e", "--rows", "20k", "--groups", "7", "--repeats", "1", "--json", str(out), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^CPU: .+, \d+ cores; fastbce \S+ on tier \S+, line fetch (touch|hardware);",
        result.stdout,
        re.M,
    )
    assert "20,000 rows" in result.stdout
    report = json.loads(out.read_text())
    assert report["rows"] == 20_000 and report["groups"] == 7 and report["repeat"] == 1
    assert report["machine"]["tier"] not in ("", "?")
    assert report["machine"]["line_fetch"] in ("touch", "hardware")
    tools = {(t["section"], t["tool"]) for t in report["tasks"]}
    for section in ("overall", "group"):
        assert {(section, tool) for tool in E2E_TOOLS} <= tools
    assert ("output", "fastbce score --output .parquet") in tools
    assert ("accumulator", "LossAccumulator.update, string groups") in tools
    for task in report["tasks"]:
        assert task["error"] is None, task
        assert len(task["times"]) == 1 and task["times"][0] > 0
        assert task["rel_error"] <= 1e-5
    for section in ("overall", "group"):  # (issue 12: x Polars, x DuckDB, x the fastest read)
        for tool in ("fastbce score", "fastbce score --loss-only"):
            assert re.search(
                rf"^  {section} +{tool} +\d+\.\d\dx Polars \(<= 0.7\), \d+\.\d\dx DuckDB "
                r"\(<= 0.5\), \d+\.\d\dx floor \(<= 1.2\)$",
                result.stdout,
                re.M,
            )
        assert re.search(
            rf"^  {section} +floor \(fastest pyarrow read\) = (table|stream|row groups), ",
            result.stdout,
            re.M,
        )
        assert (section, "start + imports only") in tools
    for section in ("overall", "group"):  # (issue 13: the report's cost, as a ratio)
        assert re.search(
            rf"^  {section} +with the report / without \(--loss-only\) +\d+\.\d\d  \(<= 1.15\)$",
            result.stdout,
            re.M,
        )


def test_e2e_missing_peer_is_skipped_with_pip_command(monkeypatch, capsys, tmp_path):
    import importlib.util

    from fastbce.cli.bench import e2e

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        e2e.importlib.util, "find_spec", lambda name: None if name == "duckdb" else find_spec(name)
    )
    code = cli.main(
        ["bench", "--e2e", "--rows", "3000", "--repeats", "1", "--data-dir", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert 'skipping duckdb: duckdb is not installed (pip install "fastbce[e2e]")' in captured.err
    assert "DuckDB" not in captured.out and "Polars" in captured.out
    assert [p.name for p in tmp_path.glob("clicks-3000-50.parquet*")]  # kept for the next run
    assert not list(tmp_path.glob("loss.*"))


def test_e2e_runs_the_tasks_in_rounds(monkeypatch, tmp_path, capsys):
    """Each task once a round, round after round (A B C A B C, not A A B B C C): a drift of the
    machine's speed during the run falls on every tool alike."""
    from fastbce.cli.bench import e2e

    calls = []
    monkeypatch.setattr(e2e, "run_task", lambda t, ref, env: calls.append(t.tool))
    skip = {"polars", "duckdb"}
    plan = e2e.run_e2e(3000, repeat=2, data_dir=str(tmp_path), skip=skip, quiet=True)
    capsys.readouterr()
    tools = [t.tool for t in plan]
    assert len(tools) > 2 and calls == tools * 2


def test_e2e_seed_makes_its_own_data(tmp_path):
    """--seed reaches the generated file: another seed is another file (the first is kept for
    its next run) with other values, and the JSON says which seed."""
    import pyarrow.parquet as pq

    out = tmp_path / "e2e.json"
    for seed in ("0", "5"):
        result = bench(
            "--e2e", "--rows", "3000", "--repeats", "1", "--peers", "none", "--seed", seed,
            "--data-dir", str(tmp_path), "--json", str(out), "-q",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(out.read_text())["seed"] == int(seed)
    first, other = tmp_path / "clicks-3000-50.parquet", tmp_path / "clicks-3000-50-seed5.parquet"
    assert first.exists() and other.exists()
    a, b = (pq.read_table(p, columns=["logit"])["logit"].to_numpy() for p in (first, other))
    assert a.shape == b.shape == (3000,) and not np.array_equal(a, b)


def test_e2e_notes_a_fastbce_that_compiles_on_every_run(tmp_path):
    """A fastbce with no byte-compiled modules run with PYTHONDONTWRITEBYTECODE compiles them in
    every timed process: the table says so. Installed (compiled), or free to write them: no note."""
    import shutil

    from fastbce.cli.bench import e2e

    shutil.copytree(
        os.path.dirname(fastbce.__file__),
        tmp_path / "fastbce",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    info = e2e.machine(sys.executable, env)
    assert info["compiles_each_run"] is True
    assert "not byte-compiled" in e2e.report([], info, 10, 2, 1000, 1)
    env.pop("PYTHONDONTWRITEBYTECODE")
    info = e2e.machine(sys.executable, env)
    assert info["compiles_each_run"] is False
    assert "byte-compiled" not in e2e.report([], info, 10, 2, 1000, 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grad", "--variants", "logits"], "unknown objective 'logits'"),
        (["--grad", "--dist", "cauchy"], "unknown distribution 'cauchy'"),
        (["--xgboost"], "--xgboost goes with --grad"),
        (["--grad", "--peers", "numpy"], "no --sweep, --peers or --plot"),
        (["--grad", "--sweep"], "no --sweep, --peers or --plot"),
    ],
)
def test_grad_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--quick", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_grad_xgboost_missing_is_a_usage_error(monkeypatch, capsys):
    has_module = _bench.has_module
    monkeypatch.setattr(peers, "has_module", lambda name: name != "xgboost" and has_module(name))
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--grad", "--xgboost", "--quick", "--sizes", "1e3"])
    assert info.value.code == 2
    assert '--xgboost needs xgboost: pip install xgboost (or "fastbce[xgboost]")' in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--e2e", "--peers", "torch"], "unknown peer 'torch' for --e2e"),
        (["--e2e", "--sizes", "1k"], "--sizes does not apply to --e2e"),
        (["--e2e", "--quick"], "--quick does not apply to --e2e"),
        (["--rows", "1k"], "--rows needs --e2e"),
        (["--e2e", "--rows", "0"], "whole number >= 1"),
        (["--e2e", "--data-dir", __file__], "is not a folder"),
        (["--grad", "--rows", "1k"], "--rows needs --e2e"),
        (["--sizes", "1e20"], "at most 2^62"),
    ],
)
def test_e2e_usage_errors_exit_2(args, message):
    result = bench(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_e2e_refuses_a_table_the_disk_cannot_hold(tmp_path):
    """--rows 1e15 wrote for hours and then failed on a full disk; it stops before writing."""
    result = bench("--e2e", "--rows", "1e15", "--data-dir", str(tmp_path), "--repeats", "1", "-q")
    assert result.returncode == 1, result.stderr
    assert "--rows 1000000000000000 needs about" in result.stderr
    assert "GB are free" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_generation_leaves_no_half_table(tmp_path, monkeypatch):
    """A table written in part would be read as data by no run (its reference file comes last)
    but stayed in --data-dir: it is written whole or not at all."""
    pq = pytest.importorskip("pyarrow.parquet")
    from fastbce.cli.bench import e2e

    write_table = pq.ParquetWriter.write_table
    written: list[int] = []

    def stop_after_one(self, *args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(1)
        return write_table(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        e2e.generate(str(tmp_path / "t.parquet"), 3000, 1000, 7)
    assert written and list(tmp_path.iterdir()) == []


def test_e2e_script_is_the_same_benchmark():
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "e2e_score.py"
    result = subprocess.run(
        [sys.executable, str(script), "--skip", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown 'nope'" in result.stderr
    for bad in (["--repeat", "0"], ["--rows", "0"]):  # (nothing would be checked: status 0)
        result = subprocess.run([sys.executable, str(script), *bad], capture_output=True, text=True)
        assert result.returncode == 2 and "must be >= 1" in result.stderr, bad


def test_sizes_are_each_timed_once(capsys):
    assert cli.main(["bench", "--sizes", "1e3,1e3,1k", "--peers", "none", "--variants",
                     "logits", "--repeats", "1", "-q"]) == 0  # fmt: skip
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["read floor", "fastbce"], rows


def test_files_are_written_when_the_reader_of_the_table_goes_away(tmp_path):
    """`fastbce bench ... --json F | head -1`: the table's print met a closed pipe and the
    files after it were never written (exit status 0 all the same)."""
    out = tmp_path / "b.json"
    command = (
        f"{sys.executable} -m fastbce bench --sizes 1e3 --repeats 1 --peers none "
        f"--variants logits -q --json {out} | head -c 1 > /dev/null"
    )
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["results"]
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # (no temporary file left)


def _default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # (as from a shell, not nohup)
        signal.signal(s, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_e2e_bench_and_cleans_up(tmp_path, signum):
    """SIGTERM killed the bench outright: its temporary data folder and the timed process stayed;
    it stops as Ctrl-C does, the timed tools (a session of their own) are killed."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbce", "bench", "--e2e", "--rows", "3e6", "--repeats", "3",
         "--peers", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_default_signals,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        p.suffix == ".parquet" for d in tmp_path.glob("fastbce-e2e-*") for p in d.iterdir()
    ):
        time.sleep(0.05)
    time.sleep(2.0)  # (the timed runs under way)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a timed process was left running"


def _running_in_group(pgid: int) -> bool:
    """Whether a process of process group `pgid` runs (a zombie, which only its parent can reap,
    does not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_a_stop_handed_to_another_thread_while_the_timed_process_starts_kills_it(monkeypatch):
    """The stop signals are blocked in the main thread while the launcher starts, but the kernel
    then hands one to another thread (the bench has Arrow's), and Python runs its handler in the
    main thread inside Popen, before run_child knew the launcher: CI saw the launcher and its tool
    left running. The handler is now held until the launcher is known, and both are killed."""
    import threading

    from fastbce.cli.bench import child
    from fastbce.cli.signals import Stopped, stop_on_signals

    go, sent = threading.Event(), threading.Event()

    def send_from_this_thread() -> None:  # (started before run_child blocks the signals)
        go.wait(30)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        sent.set()

    started: list[int] = []

    class Popen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.pid)
            go.set()
            sent.wait(30)
            for _ in range(1000):  # (bytecodes: where the main thread runs a tripped handler)
                time.sleep(0)

    sender = threading.Thread(target=send_from_this_thread)
    sender.start()
    monkeypatch.setattr(child.subprocess, "Popen", Popen)
    try:
        with pytest.raises(Stopped), stop_on_signals():
            child.run_child([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
        assert sent.is_set() and len(started) == 1
        with pytest.raises(ProcessLookupError):
            os.kill(started[0], 0)  # (killed and waited for)
        deadline = time.monotonic() + 10  # (the tool, killed too, may take a moment to exit)
        while _running_in_group(started[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running_in_group(started[0]), "the timed tool was left running"
    finally:
        go.set()
        sender.join()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_status_is_1_only_when_fastbce_s_own_value_is_off(capsys):
    from fastbce.cli.bench.options import own_values_status

    rows = [{"peer": "fastbce", "ok": True}, {"peer": "numpy", "ok": False}]
    assert own_values_status(rows) == 0  # (a peer's inaccuracy is marked, not an error)
    assert own_values_status([*rows, {"implementation": "fastbce", "ok": False}]) == 1
    assert "off its reference" in capsys.readouterr().err
