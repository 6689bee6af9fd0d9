"""Group labels that were lost or merged: pandas' NA among floats or booleans (an error that did
not name groups), strings holding a NUL (cut at it by pyarrow: "a\0b" became "a"), and
accumulators with text groups pickled with protocol 0 or 1 (the process aborted)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastbce

pd = pytest.importorskip("pandas")


def rows_per_group(groups):
    acc = fastbce.LossAccumulator()
    acc.update(np.ones(len(groups)), np.full(len(groups), 0.5), groups=groups)
    return {k: v["rows"] for k, v in acc.result()["groups"].items()}


@pytest.mark.parametrize(
    ("groups", "want"),
    [
        ([1.5, pd.NA, 2.5, 1.5], {1.5: 2, 2.5: 1, None: 1}),
        (np.array([True, pd.NA, False, True], dtype=object), {True: 2, False: 1, None: 1}),
        (np.array(["a", pd.NA, "b", "a"], dtype=object), {"a": 2, "b": 1, None: 1}),
    ],
)
def test_pandas_na_is_the_missing_group(groups, want):
    assert rows_per_group(groups) == want


@pytest.mark.parametrize("kind", ["list", "str", "bytes", "object"])
def test_labels_holding_a_nul_stay_apart(kind):
    labels = ["a\x00b", "a", "a\x00b", "b", "\x00"]
    if kind == "str":
        groups = np.array(labels)
    elif kind == "bytes":
        groups = np.array([s.encode() for s in labels])
    elif kind == "object":
        groups = np.array(labels, dtype=object)
    else:
        groups = labels
    got = rows_per_group(groups)
    keys = [k.decode() if isinstance(k, bytes) else k for k in got]
    # (NumPy itself drops a string's trailing NULs: "\x00" is "" in a str or bytes array, and
    # a list becomes one)
    empty = "\x00" if kind == "object" else ""
    assert sorted(keys) == sorted(["a\x00b", "a", "b", empty])
    assert got[groups[0] if kind != "list" else "a\x00b"] == 2


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("groups", [["de", "fr", None, "de"], [3, 1, 3, 2]])
def test_accumulators_pickle_with_every_protocol(protocol, groups):
    acc = fastbce.LossAccumulator(top_losses=2)
    acc.update(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.9, 0.2, 0.6, 0.4]), groups=groups)
    back = pickle.loads(pickle.dumps(acc, protocol=protocol))
    assert back.result() == acc.result()
    back.update(np.array([1.0]), np.array([0.7]), groups=groups[:1])  # (and it still works)
    assert back.result()["groups"][groups[0]]["rows"] == 3
