"""Options and shared data for the pytest benchmarks (see docs/benchmarks.md).

Sizes: 1e3 to 1e7 when timing; only 1e3 and 1e6 with ``--benchmark-disable`` (the CI run, where
the benchmarks are tests of the values); ``--bench-sizes`` or ``FASTBCE_BENCH_SIZES`` choose
others, ``--bench-large`` adds 1e8.
"""

from __future__ import annotations

import os

import pytest

from fastbce.cli import bench as _bench
from fastbce.cli.bench import command, table

CHECK_SIZES = (10**3, 10**6)  # 1e6 is large enough for fastbce to use its threads
LARGE_SIZE = 10**8


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastbce benchmarks")
    group.addoption(
        "--bench-sizes",
        metavar="N,N,...",
        help="element counts (default: 1e3,1e4,1e5,1e6,1e7; 1e3,1e6 with --benchmark-disable); "
        "also FASTBCE_BENCH_SIZES",
    )
    group.addoption("--bench-large", action="store_true", help="add N = 1e8 (about 1 GB per input)")
    group.addoption(
        "--bench-variants",
        metavar="NAME,...",
        help=f"loss variants (default all: {', '.join(_bench.VARIANTS)})",
    )
    group.addoption(
        "--bench-dist",
        metavar="NAME,...",
        help=f"logit distributions ({', '.join(_bench.DISTRIBUTIONS)}; default "
        f"{_bench.DEFAULT_DISTRIBUTION})",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        help="threads for fastbce, the read floor, torch and TensorFlow (default: each one's own)",
    )


def _sizes(config: pytest.Config) -> list[int]:
    text = config.getoption("--bench-sizes") or os.environ.get("FASTBCE_BENCH_SIZES")
    if text:
        sizes = command._sizes(text)
    elif config.getoption("benchmark_disable", False):
        sizes = list(CHECK_SIZES)
    else:
        sizes = list(_bench.DEFAULT_SIZES)
    if config.getoption("--bench-large") and LARGE_SIZE not in sizes:
        sizes.append(LARGE_SIZE)
    return sizes


def _variants(config: pytest.Config) -> list[_bench.Variant]:
    text = config.getoption("--bench-variants")
    names = command._names(text) if text else list(_bench.VARIANTS)
    unknown = [n for n in names if n not in _bench.VARIANTS]
    if unknown:
        raise pytest.UsageError(f"--bench-variants: unknown variant {unknown[0]!r}")
    return [_bench.VARIANTS[n] for n in names]


def _dists(config: pytest.Config) -> list[str]:
    text = config.getoption("--bench-dist")
    names = command._names(text) if text else [_bench.DEFAULT_DISTRIBUTION]
    unknown = [n for n in names if n not in _bench.DISTRIBUTIONS]
    if unknown:
        raise pytest.UsageError(f"--bench-dist: unknown distribution {unknown[0]!r}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per (distribution, size, variant, implementation) the implementation supports,
    in that order so that the data of one size and variant are made once."""
    if "case" not in metafunc.fixturenames:
        return
    cases, ids = [], []
    for dist in _dists(metafunc.config):
        for n in _sizes(metafunc.config):
            for variant in _variants(metafunc.config):
                for impl in _bench.IMPLEMENTATIONS.values():
                    if impl.supports(variant):
                        cases.append((variant, n, impl, dist))
                        name = impl.name.replace(" ", "_")
                        ids.append(f"{dist}-{variant.name}-{table.format_n(n)}-{name}")
    metafunc.parametrize("case", cases, ids=ids)


_data_cache: dict[tuple[str, int, str], _bench.Data] = {}


@pytest.fixture
def data(case: tuple[_bench.Variant, int, _bench.Implementation, str]) -> _bench.Data:
    """The inputs of the case's variant, size and distribution; the last ones are kept for the
    next test."""
    variant, n, _, dist = case
    key = (variant.name, n, dist)
    if key not in _data_cache:
        _data_cache.clear()
        _data_cache[key] = _bench.make_data(variant, n, dist=dist)
    return _data_cache[key]


@pytest.fixture
def threads(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--bench-threads")


# --------------------------------------------------------------------------- floor ratios

_medians: dict[tuple[str, str], float] = {}  # (group, implementation) -> median seconds


@pytest.fixture
def record_median():
    """Keeps a finished benchmark's median for the fastbce / read floor summary."""

    def record(group: str, implementation: str, benchmark: object) -> None:
        stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
        if stats is not None:
            _medians[(group, implementation)] = stats.stats.median

    return record


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    groups = sorted(
        {g for g, _ in _medians}, key=lambda g: (g.split(" N=")[0], float(g.split("N=")[1]))
    )
    rows = [
        (g, _medians[(g, "fastbce")], _medians[(g, "read floor")])
        for g in groups
        if (g, "fastbce") in _medians and (g, "read floor") in _medians
    ]
    if not rows:
        return
    terminalreporter.write_sep("-", "fastbce against the read floor (median times)")
    width = max(len(g) for g, _, _ in rows)
    terminalreporter.write_line(
        f"{'group':<{width}}  {'fastbce ms':>11}  {'floor ms':>10}  {'fastbce / floor':>15}"
    )
    for g, fast, floor in rows:
        terminalreporter.write_line(
            f"{g:<{width}}  {fast * 1e3:>11.4g}  {floor * 1e3:>10.4g}  {fast / floor:>15.2f}"
        )
