"""``fastbce bench --grad``: ``fastbce.binary_crossentropy_grad`` against the same formulas in
NumPy and against the memory floor of its traffic, and (``--xgboost``) the objective's share of
an XGBoost boosting round.

This module is the one place where the benchmarks' NumPy gradient (:func:`numpy_grad`, what a
user writes without fastbce) and the grad timings live; ``benchmarks/grad_speed.py`` and
``benchmarks/test_bench_grad.py`` import them.

- Data: float32 logits from one of the loss benchmark's distributions (default N(0, 4^2)),
  float32 0/1 labels drawn from their sigmoid, the same values for every row.
- ``memory floor``: NumPy copies x -> grad and y -> hess (read 8 and write 8 bytes an element)
  in one contiguous part for each of as many Python threads as fastbce's kernel uses for that
  size (NumPy releases the GIL while it copies; a large part is glibc's memcpy, which writes
  without reading the output lines first).
- ``fastbce``: ``binary_crossentropy_grad(y, x, out=(grad, hess), ...)``, the outputs allocated
  and touched once outside the timing, as the floor's.
- ``numpy``: :func:`numpy_grad` on the whole float32 arrays, one thread.
- The reference is :func:`numpy_grad` in float64 of the same (float32) inputs; tests/test_grad.py
  checks the kernel against mpmath itself.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import _core
from ..._errors import UsageError
from ..output import aligned, note
from . import options, peers
from .options import choose
from .table import format_n
from .timing import figures, kernel_threads, machine_line, measure
from .variants import DEFAULT_DISTRIBUTION, DISTRIBUTIONS, _base

BYTES_PER_ELEMENT = 16  # float32 logits and labels read, float32 grad and hess written
CHUNK = 1 << 20  # elements of the float64 reference computed at a time
IMPLEMENTATIONS = ("memory floor", "fastbce", "numpy")
# --xgboost: (rows, features, rounds), and with --quick
XGBOOST_RUN = {False: (10**6, 20, 10), True: (10**5, 20, 3)}


@dataclass(frozen=True)
class GradVariant:
    """One objective of the gradient benchmark."""

    name: str
    description: str
    gamma: float = 0.0
    alpha: float | None = None

    @property
    def options(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "alpha": self.alpha} if self.gamma else {}


GRAD_VARIANTS: dict[str, GradVariant] = {
    v.name: v
    for v in (
        GradVariant("plain", "cross-entropy: grad = sigmoid(x) - y, hess = sigmoid(x)sigmoid(-x)"),
        GradVariant("focal", "focal loss, gamma=2, alpha=0.25", gamma=2.0, alpha=0.25),
    )
}


# --------------------------------------------------------------------------- the NumPy formulas


def numpy_grad(y: Any, x: Any, *, gamma: float = 0.0, alpha: float | None = None,
               sample_weight: Any = None) -> tuple[Any, Any]:  # fmt: skip
    """(grad, hess) of the loss from logits x with focal gamma and class balance alpha, in NumPy.

    The stable formulas of docs/gradients.md (everything from z = exp(-|x|), no 1 - p formed by a
    subtraction), elementwise in the inputs' dtype on whole arrays.
    """
    z = np.exp(-np.abs(x))
    d = 1 + z
    pos = x >= 0
    a = np.where(pos, 1, z)  # d * p
    b = np.where(pos, z, 1)  # d * (1 - p)
    g0 = ((1 - y) * a - y * b) / d
    s2 = z / (d * d)
    if gamma == 0:
        grad, hess = g0, s2
    else:
        nu = y * b + (1 - y) * a
        u = nu / d
        f = u**gamma
        r = (1 - 2 * y) * np.where(nu > 0, z / np.where(nu > 0, nu, 1), 1) / d
        soft = np.log1p(z)
        ce = y * (np.maximum(-x, 0) + soft) + (1 - y) * (np.maximum(x, 0) + soft)
        rce = r * ce
        grad = f * (gamma * rce + g0)
        hess = f * (gamma * (rce * ((gamma - 1) * r + (b - a) / d) + 2 * r * g0) + s2)
    if alpha is not None:
        balance = alpha * y + (1 - alpha) * (1 - y)
        grad, hess = grad * balance, hess * balance
    if sample_weight is not None:
        grad, hess = grad * sample_weight, hess * sample_weight
    return grad, hess


def grad_data(n: int, seed: int = 0, dist: str = DEFAULT_DISTRIBUTION) -> tuple[Any, Any]:
    """(labels, logits), float32: the loss benchmark's logits of `dist` and labels drawn from
    their sigmoid."""
    logits, labels, _ = _base(n, seed, dist)
    return labels.astype(np.float32), logits.astype(np.float32)


def tolerance(variant: GradVariant, implementation: str) -> float:
    """The relative error allowed away from zero crossings: fastbce's documented bounds for
    float32 (a few ulp plain, 1e-5 focal); NumPy's float32 arithmetic rounds at every step."""
    if implementation == "fastbce":
        return 1e-6 if variant.gamma == 0 else 1e-5
    return 1e-3


def _largest(current: float, values: Any) -> float:
    found = float(np.max(values, initial=0.0))
    return max(current, math.inf if math.isnan(found) else found)  # a NaN is the worst error


def check(y: Any, x: Any, variant: GradVariant, outputs: list[tuple[Any, Any, float]]
          ) -> list[dict[str, float]]:  # fmt: skip
    """Each (grad, hess, tolerance) of `outputs` against numpy_grad in float64 of the same inputs,
    in chunks.

    Near a zero crossing (the focal Hessian has them) the float32 rounding of exp(-|x|), the
    same as moving x by eps, bounds any float32 implementation's error, so an element passes
    within tolerance |reference| + 4 eps |d reference/dx| (tests/test_grad.py's criterion; the
    slope is the central difference over x +- eps): `excess` is the largest error over that
    bound, ``<= 1`` passes. ``grad_rel_error`` and ``hess_rel_error`` are the largest
    |value - reference| / |reference| over the elements where moving x by 4 eps changes the
    reference by at most 1e-5 relative; ``left_out`` counts the others.
    """
    eps = float(np.finfo(np.float32).eps)
    found = [
        {"grad_rel_error": 0.0, "hess_rel_error": 0.0, "excess": 0.0, "left_out": 0}
        for _ in outputs
    ]
    for start in range(0, x.size, CHUNK):
        part = slice(start, start + CHUNK)
        y64, x64 = y[part].astype(np.float64), x[part].astype(np.float64)
        with np.errstate(all="ignore"):
            want = numpy_grad(y64, x64, **variant.options)
            up = numpy_grad(y64, x64 + eps, **variant.options)
            down = numpy_grad(y64, x64 - eps, **variant.options)
        for k, name in enumerate(("grad_rel_error", "hess_rel_error")):
            size = np.maximum(np.abs(want[k]), 1e-30)
            shift = 2.0 * np.abs(up[k] - down[k])  # 4 eps |slope|
            conditioned = shift <= 1e-5 * size
            left_out = int(conditioned.size - np.count_nonzero(conditioned))
            for (*got, tol), f in zip(outputs, found, strict=True):
                diff = np.abs(got[k][part].astype(np.float64) - want[k])
                f[name] = _largest(f[name], (diff / size)[conditioned])
                f["excess"] = _largest(f["excess"], diff / (tol * size + shift))
                f["left_out"] += left_out
    return found


# --------------------------------------------------------------------------- timing


@contextmanager
def copy_floor(x: Any, y: Any, g: Any, h: Any, threads: int) -> Iterator[Callable[[], None]]:
    """A call that reads x and y and writes g and h (the traffic of grad + hess) as NumPy copies
    of `threads` contiguous parts, one a thread; the threads live around the timing."""
    bounds = np.linspace(0, x.size, threads + 1).round().astype(np.int64)
    parts = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def copy(part: slice) -> None:
        np.copyto(g[part], x[part])
        np.copyto(h[part], y[part])

    if threads == 1:
        yield lambda: copy(parts[0])
        return
    with ThreadPoolExecutor(threads) as pool:

        def call() -> None:
            for _ in pool.map(copy, parts):
                pass

        yield call


@dataclass
class GradSettings:
    sizes: list[int]
    variants: list[GradVariant]
    dists: list[str]
    threads: int | None
    repeats: int
    min_time: float
    quick: bool
    seed: int
    xgboost: bool = False


def _row(times: list[float], **fields: Any) -> dict[str, Any]:
    nbytes = BYTES_PER_ELEMENT * fields["n"]
    return {**fields, "bytes": nbytes, **figures(times, fields["n"], nbytes)}


def time_entry(settings: GradSettings, dist: str, n: int, v: GradVariant) -> list[dict[str, Any]]:
    """The memory floor, fastbce and NumPy on one (distribution, size, variant): timed, and the
    errors of the last two against the float64 reference."""
    import fastbce

    y, x = grad_data(n, settings.seed, dist)
    g, h = np.empty_like(x), np.empty_like(x)
    g.fill(0), h.fill(0)  # the pages are touched once, outside the timings
    threads = kernel_threads(n, settings.threads)
    timing = (settings.repeats, settings.min_time)
    common = {"dist": dist, "variant": v.name, "n": n}
    with copy_floor(x, y, g, h, threads) as floor:
        floor_row = _row(measure(floor, *timing), implementation="memory floor", **common)
    options = dict(v.options, threads=settings.threads, out=(g, h))
    times = measure(lambda: fastbce.binary_crossentropy_grad(y, x, **options), *timing)
    fast = _row(times, implementation="fastbce", **common)
    with np.errstate(all="ignore"):  # inf in the guard of r's division: harmless
        slow = _row(measure(lambda: numpy_grad(y, x, **v.options), *timing),
                    implementation="numpy", **common)  # fmt: skip
        got = numpy_grad(y, x, **v.options)
    outputs = [(g, h, tolerance(v, "fastbce")), (*got, tolerance(v, "numpy"))]
    for r, errors, (*_, tol) in zip((fast, slow), check(y, x, v, outputs), outputs, strict=True):
        worst = max(errors["grad_rel_error"], errors["hess_rel_error"])
        r.update(errors, rel_error=worst, tolerance=tol, ok=errors["excess"] <= 1.0)
    floor_row["threads"], fast["threads"], slow["threads"] = threads, threads, 1
    for r in (floor_row, fast, slow):
        r["speedup"] = r["median_ms"] / fast["median_ms"]
        r["floor_ratio"] = r["median_ms"] / floor_row["median_ms"]
    return [floor_row, fast, slow]


def run_grad(settings: GradSettings, quiet: bool = True) -> list[dict[str, Any]]:
    """time_entry for every (distribution, size, variant) the settings select."""
    rows: list[dict[str, Any]] = []
    plan = [(d, n, v) for d in settings.dists for n in settings.sizes for v in settings.variants]
    for step, (dist, n, v) in enumerate(plan, 1):
        floor, fast, slow = time_entry(settings, dist, n, v)
        rows += [floor, fast, slow]
        note(quiet, f"[{step}/{len(plan)}] {dist} {v.name} N={format_n(n)}: fastbce "
                    f"{fast['median_ms']:.4g} ms, numpy {slow['median_ms']:.4g} ms, floor "
                    f"{floor['median_ms']:.4g} ms")  # fmt: skip
    return rows


# --------------------------------------------------------------------------- XGBoost


def xgboost_share(rows: int, features: int, threads: int, rounds: int, seed: int = 0,
                  quiet: bool = True) -> dict[str, Any]:  # fmt: skip
    """An XGBoost ``hist`` run (depth 6) with the fastbce focal objective (gamma 2, alpha 0.25)
    and with numpy_grad's: the median time of one objective call and its share of a round."""
    import xgboost as xgb

    import fastbce.xgboost

    rng = np.random.default_rng([seed, rows, features])
    X = rng.normal(size=(rows, features)).astype(np.float32)
    margin = X[:, 0] - 0.5 * X[:, 1] + X[:, 2] * X[:, 3] - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-margin))).astype(np.float32)
    dtrain = xgb.DMatrix(X, label=y, nthread=threads)
    params = {
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.3,
        "nthread": threads,
        "objective": "binary:logistic",
        "base_score": float(y.mean()),
    }
    options = GRAD_VARIANTS["focal"].options

    def numpy_objective(preds: Any, dmatrix: Any) -> tuple[Any, Any]:
        return numpy_grad(dmatrix.get_label(), preds, **options)

    objectives = {
        "fastbce": fastbce.xgboost.objective(threads=threads, **options),
        "numpy": numpy_objective,
    }
    results: dict[str, Any] = {}
    for name, objective in objectives.items():
        spent: list[float] = []

        def timed(preds: Any, dmatrix: Any, objective: Any = objective, spent: Any = spent) -> Any:
            start = time.perf_counter()
            result = objective(preds, dmatrix)
            spent.append(time.perf_counter() - start)
            return result

        xgb.train(params, dtrain, 1, obj=timed)  # warm-up: quantiles, caches
        spent.clear()
        start = time.perf_counter()
        with np.errstate(all="ignore"):
            xgb.train(params, dtrain, rounds, obj=timed)
        per_round = (time.perf_counter() - start) / rounds
        spent_ms = statistics.median(spent) * 1e3
        results[name] = {
            "objective_ms": spent_ms,
            "round_ms": per_round * 1e3,
            "share": spent_ms / (per_round * 1e3),
        }
        note(quiet, f"xgboost {name}: objective {spent_ms:.4g} ms of {per_round * 1e3:.4g} ms")
    return {
        "xgboost": xgb.__version__,
        "rows": rows,
        "features": features,
        "threads": threads,
        "rounds": rounds,
        "max_depth": params["max_depth"],
        "objective": "focal, gamma=2, alpha=0.25",
        "results": results,
    }


def format_xgboost(share: dict[str, Any]) -> str:
    lines = [
        f"XGBoost {share['xgboost']} hist, {share['rows']:,} rows x {share['features']} features, "
        f"depth {share['max_depth']}, {share['threads']} threads, {share['rounds']} rounds, "
        f"{share['objective']}:"
    ]
    for name, r in share["results"].items():
        lines.append(
            f"  {name:8s} objective {r['objective_ms']:8.3g} ms of a {r['round_ms']:8.4g} ms "
            f"round: {100 * r['share']:5.1f}%"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the table, the JSON


HEADER = ("implementation", "N", "ms", "ns/elem", "GB/s", "speed-up", "x floor", "rel. error")


def _error_cell(row: dict[str, Any]) -> str:
    if "rel_error" not in row:
        return "-"
    return f"{row['rel_error']:.1e}" + ("" if row["ok"] else " !")


def format_grad(settings: GradSettings, rows: list[dict[str, Any]]) -> str:
    lines = [machine_line(), ""]
    for dist, v in ((d, v) for d in settings.dists for v in settings.variants):
        group = [r for r in rows if r["variant"] == v.name and r["dist"] == dist]
        table = [
            (
                r["implementation"],
                format_n(r["n"]),
                f"{r['median_ms']:.3g}",
                f"{r['ns_per_element']:.3g}",
                f"{r['gb_per_s']:.3g}",
                "-" if r["implementation"] != "numpy" else f"{r['speedup']:.2f}",
                f"{r['floor_ratio']:.2f}",
                _error_cell(r),
            )
            for r in group
        ]
        widths = [max(len(c[i]) for c in [HEADER, *table]) for i in range(len(HEADER))]
        lines.append(f"grad {v.name}: {v.description}; float32 logits and labels; "
                     f"{DISTRIBUTIONS[dist].description}")  # fmt: skip
        lines.append(aligned(HEADER, widths))
        for i, cells in enumerate(table):
            if i and cells[1] != table[i - 1][1]:
                lines.append("")
            lines.append(aligned(cells, widths))
        lines.append("")
    lines += [
        "ms: median of the repeats; GB/s: 16 bytes an element (logits and labels read, grad and",
        "hess written) per second; speed-up: this row's time / fastbce's; x floor: time / the",
        "memory floor's (NumPy copies x -> grad, y -> hess on fastbce's threads into the out=",
        "arrays of fastbce's call, allocated and touched before timing: neither pays page faults);",
        "rel. error: the largest of grad's and hess's |value - float64 reference| / |reference|,",
        "but for values next to a zero crossing (where rounding x to float32 moves them more);",
        "'!': an element is off by more than the tolerance (docs/benchmarks.md).",
    ]
    return "\n".join(lines)


def report(settings: GradSettings, rows: list[dict[str, Any]], machine: dict[str, Any],
           share: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    return {
        **options.report_head("fastbce-bench-grad/1", machine),
        "settings": {
            "sizes": settings.sizes,
            "variants": [v.name for v in settings.variants],
            "dists": settings.dists,
            "threads": settings.threads,
            "repeats": settings.repeats,
            "min_time_s": settings.min_time,
            "quick": settings.quick,
            "seed": settings.seed,
        },
        "variants": {
            v.name: {"description": v.description, "gamma": v.gamma, "alpha": v.alpha}
            for v in settings.variants
        },
        "results": rows,
        "xgboost": share,
    }


# --------------------------------------------------------------------------- the command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--grad`` and ``--xgboost``; the sizes, threads, repeats, seed and JSON options are the
    bench command's own."""
    parser.add_argument(
        "--grad",
        action="store_true",
        help="instead of the loss: binary_crossentropy_grad against the same formulas in NumPy "
        "and a memory floor (read 8 + write 8 bytes an element); --variants then names "
        f"objectives ({', '.join(GRAD_VARIANTS)})",
    )
    parser.add_argument(
        "--xgboost",
        action="store_true",
        help="with --grad: also the focal objective's share of an XGBoost hist boosting round, "
        "fastbce's and NumPy's (1e6 rows x 20 features, 10 rounds; quick 1e5 rows, 3 rounds)",
    )


def chosen(args: argparse.Namespace) -> bool:
    return bool(args.grad or args.xgboost)


def _settings(args: argparse.Namespace) -> GradSettings:
    if not args.grad:
        raise UsageError("--xgboost goes with --grad")
    if args.sweep or args.peers or args.plot:
        raise UsageError("--grad times fastbce against NumPy: no --sweep, --peers or --plot")
    names = choose(args.variants or ["all"], GRAD_VARIANTS, "objective", lead="with --grad ")
    dists = options.dists(args)
    return GradSettings(
        sizes=options.sizes(args),
        variants=[GRAD_VARIANTS[n] for n in names],
        dists=dists,
        threads=args.threads,
        repeats=options.repeats(args),
        min_time=options.min_time(args),
        quick=args.quick,
        seed=args.seed,
        xgboost=args.xgboost,
    )


def run(args: argparse.Namespace, machine: dict[str, Any]) -> int:
    """``--grad``: the table (and the XGBoost round) on stdout, the JSON to --json."""
    settings = _settings(args)
    if settings.xgboost and not peers.has_module("xgboost"):  # (tests replace it)
        raise UsageError('--xgboost needs xgboost: pip install xgboost (or "fastbce[xgboost]")')
    rows = run_grad(settings, quiet=args.quiet)
    share = None
    if settings.xgboost:
        n_rows, features, rounds = XGBOOST_RUN[settings.quick]
        threads = settings.threads or _core.default_threads()
        share = xgboost_share(n_rows, features, threads, rounds, settings.seed, args.quiet)
    if args.json:  # (before the tables: a reader that goes away must not lose the file)
        options.write_json(args.json, report(settings, rows, machine, share), args.quiet)
    print(format_grad(settings, rows))
    if share is not None:
        print()
        print(format_xgboost(share))
    return options.own_values_status(rows)
