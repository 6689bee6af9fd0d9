"""Small and mid-size calls: where the Python layer and the hand-off to threads, not the kernel,
set the time. Median microseconds of a float32 mean call (logits ~ N(0, 1), 0/1 labels) at each
size for fastbce, NumPy's stable expression and PyTorch's binary_cross_entropy_with_logits (if
installed), with the ratios to fastbce's time; then a call with per-element sample_weight of the
smallest size above 4 elements; then the breakdown of a 4-element fastbce call.

    python benchmarks/small_calls.py [--sizes 4,1000,10000,100000,1000000] [--repeats 15]
                                     [--per-call 4000]

The peers' loops alternate with fastbce's (repeat 1 of each, then repeat 2, ...), so each ratio
column is the median of ratios of loops timed next to each other: a stretch of time when another
process or the VM's host takes a CPU slows both sides of a pair, not one side of the table. On
Linux the last line says how much CPU time the host took from this VM during the run ("steal").

--per-call K adds, for each size, quartiles of K single fastbce calls timed one by one (loops of
back-to-back calls, as above): where some calls find the pool thread watching and others not,
the quartiles show the two populations that a loop's mean mixes.

Run it on a quiet machine: the figures of other processes' load are the noise here.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
import timeit
from collections.abc import Callable

import numpy as np

import fastbce
from fastbce import _api, _core
from script_args import count


def loop_timer(call: Callable[[], object], min_time: float = 0.02) -> Callable[[], float]:
    """A function timing one loop of `call` lasting about min_time seconds: mean µs a call."""
    timer = timeit.Timer(call)
    # warm-up of 0.5 s: after other work, PyTorch's first few hundred calls take milliseconds
    # each on a busy machine (its idle OpenMP threads have to be scheduled again, it seems)
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        timer.timeit(100)
    number, _ = timer.autorange()  # >= 0.2 s; scale it down to min_time
    number = max(1, int(number * min_time / 0.2))
    return lambda: timer.timeit(number) / number * 1e6


def median_us(call: Callable[[], object], repeats: int) -> float:
    """Median over `repeats` of the mean time of a loop lasting about 0.02 s."""
    loop = loop_timer(call)
    return statistics.median(loop() for _ in range(repeats))


def paired_us(calls: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Per call, the mean µs of each of `repeats` loops, the calls' loops taken in turn."""
    loops = [loop_timer(call) for call in calls]
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for loop, seen in zip(loops, times, strict=True):
            seen.append(loop())
    return times


def median_ratio(peer: list[float], fast: list[float]) -> float:
    """The median of the ratios of loops timed next to each other."""
    return statistics.median(p / f for p, f in zip(peer, fast, strict=True))


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) CPU jiffies of this machine so far (Linux), else None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user, nice]
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def per_call_quartiles(call: Callable[[], object], k: int) -> tuple[float, float, float]:
    """Quartiles (µs) of k calls, each timed alone, in loops of 100 back-to-back calls."""
    times = []
    clock = time.perf_counter_ns
    while len(times) < k:
        for _ in range(10):
            call()
        for _ in range(100):
            start = clock()
            call()
            times.append((clock() - start) / 1e3)
    q = statistics.quantiles(times, n=4)
    return q[0], q[1], q[2]


def numpy_loss(y: np.ndarray, x: np.ndarray, w: np.ndarray | None = None) -> float:
    loss = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return float(np.mean(loss if w is None else w * loss))


def torch_loss() -> Callable[[np.ndarray, np.ndarray], Callable[[], object]] | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    def prepare(y: np.ndarray, x: np.ndarray) -> Callable[[], object]:
        ty, tx = torch.from_numpy(y), torch.from_numpy(x)
        return lambda: torch.nn.functional.binary_cross_entropy_with_logits(tx, ty).item()

    return prepare


def breakdown(repeats: int) -> list[tuple[str, float]]:
    """The pieces of a 4-element call on the fast path (each timed alone)."""
    from fastbce._options import LossOptions, plain_options_key

    rng = np.random.default_rng(0)
    x = rng.normal(size=4).astype(np.float32)
    y = (rng.random(4) < 0.5).astype(np.float32)
    fastbce.binary_crossentropy(y, x, from_logits=True)  # fills the cache of checked calls
    key = plain_options_key(True, 1e-7, 0.0, 0.0, None, "propagate", True, None, "mean")
    assert key is not None
    cache_key = (y.dtype, x.dtype, y.shape, x.shape, key)
    call, _ = _api._CHECKED_CALLS[cache_key]
    nothing = (None, 1, None, None, 1, None, None)  # no weights, pos_weight, out or groups
    opts = LossOptions(from_logits=True)
    dtypes, shapes = (y.dtype, x.dtype), (y.shape, x.shape)
    general = {"from_logits": True, "epsilon": np.float64(1e-7)}  # (a NumPy scalar: general path)
    plain = (True, 1e-7, 0.0, 0.0, None, "propagate", True, None, "mean")
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("whole call (fast path)", lambda: fastbce.binary_crossentropy(y, x, from_logits=True)),
        ("  options key (type checks)", lambda: plain_options_key(*plain)),
        ("  cache lookup", lambda: _api._CHECKED_CALLS.get((*dtypes, *shapes, key))),
        ("  _flat x 2 (layout checks)", lambda: (_api._flat(y), _api._flat(x))),
        ("  _core.compute (binding + kernel)", lambda: _core.compute(call, y, 1, x, 1, *nothing)),
        ("  reduction (division)", lambda: _api._reduce("mean", 1.0, 4.0, 4.0)),
        ("general path, whole call", lambda: fastbce.binary_crossentropy(y, x, **general)),
        ("  LossOptions (dataclass + checks)", lambda: LossOptions(from_logits=True)),
        ("  _compute (arrays, call, kernel)", lambda: _api._compute(opts, y, x, None)),
    ]  # fmt: skip
    return [(name, median_us(fn, repeats)) for name, fn in pieces]


def weighted(rng: np.random.Generator, n: int, repeats: int) -> None:
    """The same call with per-element float32 sample_weight, against NumPy's weighted mean."""
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    w = rng.random(n).astype(np.float32)
    fast, ref = paired_us(
        [
            lambda: fastbce.binary_crossentropy(y, x, from_logits=True, sample_weight=w),
            lambda: numpy_loss(y, x, w),
        ],
        repeats,
    )
    line = f"{statistics.median(fast):>9.2f} {statistics.median(ref):>9.2f}"
    print(f"{n:>8} {line} {median_ratio(ref, fast):>14.2f}  (sample_weight)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,1000,10000,100000,1000000")
    parser.add_argument("--repeats", type=count, default=15)
    parser.add_argument("--per-call", type=int, default=0, metavar="K")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    cpu_at_start = cpu_times()
    torch_prepare = torch_loss()
    rng = np.random.default_rng(0)
    print(
        f"fastbce {fastbce.__version__}, tier {_core.active_target()}, "
        f"{_core.default_threads()} threads available; float32 mean loss of logits, median µs"
    )
    header = f"{'N':>8} {'fastbce':>9} {'numpy':>9} {'numpy/fastbce':>14}"
    if torch_prepare:
        header += f" {'torch':>9} {'torch/fastbce':>14}"
    print(header + f" {'fastbce threads':>16}")
    for n in sizes:
        x = rng.normal(size=n).astype(np.float32)
        y = (rng.random(n) < 0.5).astype(np.float32)
        calls = [
            lambda y=y, x=x: fastbce.binary_crossentropy(y, x, from_logits=True),
            lambda y=y, x=x: numpy_loss(y, x),
        ]
        if torch_prepare:
            calls.append(torch_prepare(y, x))
        fast, *peers = paired_us(calls, args.repeats)
        line = f"{n:>8} {statistics.median(fast):>9.2f}"
        for peer in peers:
            line += f" {statistics.median(peer):>9.2f} {median_ratio(peer, fast):>14.2f}"
        print(line + f" {_core.threads_for(n, 0):>16}")
    weighted(rng, min([n for n in sizes if n > 4], default=1000), args.repeats)
    if args.per_call:
        print(f"\nsingle fastbce calls, {args.per_call} per size, µs: q25 / median / q75")
        for n in sizes:
            x = rng.normal(size=n).astype(np.float32)
            y = (rng.random(n) < 0.5).astype(np.float32)
            q = per_call_quartiles(
                lambda y=y, x=x: fastbce.binary_crossentropy(y, x, from_logits=True),
                args.per_call,
            )
            print(f"{n:>8} {q[0]:9.2f} {q[1]:9.2f} {q[2]:9.2f}")
    print("\nbreakdown of a 4-element call (median µs, each piece timed alone):")
    for name, us in breakdown(args.repeats):
        print(f"  {name:<38} {us:7.2f}")
    cpu_at_end = cpu_times()
    if cpu_at_start and cpu_at_end and cpu_at_end[1] > cpu_at_start[1]:
        stolen = (cpu_at_end[0] - cpu_at_start[0]) / (cpu_at_end[1] - cpu_at_start[1])
        print(f"\nsteal (CPU time the host took from this VM) during the run: {stolen:.1%}")


if __name__ == "__main__":
    main()
