"""A short run of the API fuzzer (tests/fuzz_api.py): a few thousand seeded random calls with
every kind of shape, dtype, layout, special value and option, valid or not. Each must return the
documented result or raise TypeError/ValueError naming an argument, and leave its inputs alone.

A failure message starts with the seed; `python tests/fuzz_api.py --replay SEED` reruns it.
The long campaign is `nice python tests/fuzz_api.py --calls 1000000` (docs/hardening.md)."""

from __future__ import annotations

import faulthandler
import os

import pytest

import fuzz_api

# Seeds are fixed so that the suite is reproducible; FASTBCE_FUZZ_SEED moves the window.
FIRST_SEED = int(os.environ.get("FASTBCE_FUZZ_SEED", "0"))
CASES = int(os.environ.get("FASTBCE_FUZZ_CASES", "3000"))
SHARDS = 4


@pytest.fixture
def watchdog():
    """A hang anywhere in the run dumps every thread's traceback and ends the process."""
    faulthandler.dump_traceback_later(600, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.usefixtures("watchdog")
@pytest.mark.parametrize("shard", range(SHARDS))
def test_api_fuzz(shard):
    per_shard = CASES // SHARDS
    first = FIRST_SEED + shard * per_shard
    calls, failures = fuzz_api.run(range(first, first + per_shard))
    assert calls == per_shard
    assert not failures, f"{len(failures)} of {calls} cases failed; the first:\n{failures[0]}"


def test_fuzzer_sees_invalid_cases():
    """The generator's model of which arguments are bad is itself checked: about a fifth of the
    cases must be invalid on purpose, and those must all raise (fuzz_api.check asserts that)."""
    cases = [fuzz_api.make_case(seed) for seed in range(500)]
    bad = sum(1 for c in cases if c.bad)
    assert 0.1 * len(cases) < bad < 0.5 * len(cases)
