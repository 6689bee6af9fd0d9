"""fastbce score's evaluation report (issue 13): JSON keys, table, --top-losses, --ignore-label,
--logit-offset, --fail-if and --plot, against fastbce.evaluate on the same data."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastbce

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 5000
    x = (rng.normal(size=n) - 1.0).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(np.uint8)
    y[::50] = 9  # an "unknown" label, skipped with --ignore-label 9
    g = rng.choice(np.array(["de", "fr", "it"]), n)
    path = tmp_path_factory.mktemp("report") / "ctr.parquet"
    pq.write_table(pa.table({"y_true": y, "logit": x, "country": g}), path)
    return path, y, x, g


def score(path, *args):
    cmd = [sys.executable, "-m", "fastbce", "score", str(path), "--y-pred", "logit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_json_has_every_key_and_equals_evaluate(table):
    path, y, x, g = table
    args = ["--from-logits", "--group-by", "country", "--ignore-label", "9"]
    proc = score(path, *args, "--logit-offset", "-0.5", "--top-losses", "3", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = fastbce.evaluate(
        y, x, from_logits=True, groups=g, ignore_label=9, logit_offset=-0.5, top_losses=3
    )
    for key in ("rows", "ignored", "auc", "log_loss", "calibration", "normalized_entropy"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
        assert got["groups"]["fr"][key] == pytest.approx(want["groups"]["fr"][key], rel=1e-12)
    assert got["ignored"] == 100 and len(got["reliability"]) == 10
    assert [t["row"] for t in got["top_losses"]] == [t["row"] for t in want["top_losses"]]
    assert got["top_losses"][0]["group"] in {"de", "fr", "it"}


def test_table_shows_the_main_keys_per_group(table):
    path, *_ = table
    proc = score(path, "--from-logits", "--group-by", "country", "--ignore-label", "9")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("country"))
    for key in ("log_loss", "normalized_entropy", "calibration", "auc", "±95%"):
        assert key in header
    assert sum(line.startswith(("de ", "fr ", "it ")) for line in lines) == 3


def test_fail_if_exits_3_and_says_where(table):
    path, *_ = table
    base = ["--from-logits", "--group-by", "country", "--ignore-label", "9"]
    proc = score(path, *base, "--fail-if", "auc>0.5", "--fail-if", "calibration<0")
    assert proc.returncode == 3
    assert "auc>0.5: overall" in proc.stderr and "in group de" in proc.stderr
    assert "calibration<0" not in proc.stderr
    assert score(path, *base, "--fail-if", "normalized_entropy>5").returncode == 0
    bad = score(path, *base, "--fail-if", "auc>>1")
    assert bad.returncode == 2 and "'>1' is not a number" in bad.stderr
    bad = score(path, *base, "--fail-if", "auc")
    assert bad.returncode == 2 and "KEY OP VALUE" in bad.stderr


def test_report_option_errors(table):
    path, *_ = table
    proc = score(path, "--logit-offset", "1")  # probabilities
    assert proc.returncode == 2 and "--from-logits" in proc.stderr
    assert score(path, "--from-logits", "--top-losses", "-1").returncode == 2


def test_plot(table, tmp_path):
    pytest.importorskip("matplotlib")
    path, *_ = table
    png = tmp_path / "report.png"
    args = ["--from-logits", "--group-by", "country", "--ignore-label", "9"]
    proc = score(path, *args, "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nan_keys_are_null_in_json(tmp_path):
    np.save(tmp_path / "y.npy", np.ones(4, np.float32))  # one class: auc, NE are NaN
    np.save(tmp_path / "p.npy", np.full(4, 0.9, np.float32))
    cmd = [sys.executable, "-m", "fastbce", "score", "--y-true", "y.npy", "--y-pred", "p.npy"]
    proc = subprocess.run([*cmd, "--format", "json"], capture_output=True, text=True, cwd=tmp_path)
    got = json.loads(proc.stdout)
    assert got["auc"] is None and got["normalized_entropy"] is None
    assert math.isclose(got["log_loss"], -math.log(0.9), rel_tol=1e-6)
