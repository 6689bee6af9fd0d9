"""fastbce against its peers and the read floor, one pytest-benchmark group per variant and size.

Each benchmark also checks its value against a float64 reference, so with ``--benchmark-disable``
they are tests. The expressions and the data live in ``fastbce.cli.bench`` (shared with
``fastbce bench``); conversion into each framework's tensors and JIT warm-up happen in
``prepare``, outside the timed call.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbce.cli import bench as _bench
from fastbce.cli.bench import table


def _group(data: _bench.Data) -> str:
    return f"{data.variant.name} [{data.dist}] N={table.format_n(data.n)}"


def test_loss(benchmark, case, data: _bench.Data, threads: int | None, record_median) -> None:
    _, _, impl, _ = case
    for module in _bench.PEERS[impl.peer].modules if impl.peer != "fastbce" else ():
        pytest.importorskip(module)
    benchmark.group = _group(data)
    benchmark.extra_info.update(n=data.n, bytes=data.nbytes, variant=data.variant.name)

    prepared = impl.prepare(data, threads)
    with prepared.context():
        result = benchmark(prepared.call)
    record_median(benchmark.group, impl.name, benchmark)

    if impl.name == "read floor":
        assert result == floor_checksum(data.arrays)
        return
    value = prepared.value(result)
    rel_error = abs(value - data.reference) / abs(data.reference)
    benchmark.extra_info["rel_error"] = rel_error
    assert rel_error <= _bench.tolerance(data.variant, impl.name), (value, data.reference)


def floor_checksum(arrays: list[np.ndarray]) -> int:
    """What read_floor computes: the XOR of every 64-bit word of each 1 MiB chunk, and of the
    bytes past the chunk's last whole 64-byte line. Equal only if it read every byte."""
    total = 0
    for a in arrays:
        raw = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        for start in range(0, raw.size, 1 << 20):
            chunk = raw[start : start + (1 << 20)]
            lines = chunk.size // 64 * 64
            total ^= int(np.bitwise_xor.reduce(chunk[:lines].view(np.uint64), initial=0))
            total ^= int(np.bitwise_xor.reduce(chunk[lines:], initial=0))
    return total
