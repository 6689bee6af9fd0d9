"""The ``fastbce bench`` command: its options, the run over every (size, variant,
implementation), the ratios and the JSON report."""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
from typing import Any

from ... import _core
from ..._errors import UsageError
from ..output import note
from . import grad, options, peers, sweep
from .implementations import IMPLEMENTATIONS, Prepared
from .options import choose
from .peers import ALL_PEERS_HINT, PEERS, peer_versions
from .table import format_n, format_table, plot
from .timing import Settings, cpu_model, figures, measure
from .variants import DEFAULT_DISTRIBUTION, DISTRIBUTIONS, VARIANTS, make_data, tolerance

# --------------------------------------------------------------------------- command line


def _size(text: str) -> int:
    """'1e6', '1000000', '1_000_000', '10k', '2M', '1G' -> int."""
    match = re.fullmatch(r"\s*([0-9._]+(?:[eE][0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1e6, 1000000, 10k, 2M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    try:
        value = float(match.group(1).replace("_", "")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a size must be finite; got {text!r}")
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"a size must be a whole number >= 1; got {text!r}")
    if value > 2**62:  # (NumPy's arrays end there: "maximum allowed dimension exceeded")
        raise argparse.ArgumentTypeError(f"a size must be at most 2^62; got {text!r}")
    return int(value)


def _sizes(text: str) -> list[int]:
    sizes = [_size(part) for part in text.split(",") if part.strip()]
    if not sizes:  # (an empty list would mean the default sizes: a long run nobody asked for)
        raise argparse.ArgumentTypeError(f"no size in {text!r} (examples: 1e6 or 1e3,1e6)")
    return list(dict.fromkeys(sizes))  # (each once: the ratios pair rows by size)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _some_names(text: str) -> list[str]:
    """_names, of an option where no name would silently mean the default (all of them)."""
    names = _names(text)
    if not names:
        raise argparse.ArgumentTypeError(f"no name in {text!r} (a name, a list, or all)")
    return names


def _int_at_least(lowest: int, text: str, highest: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be >= {lowest}; got {value}")
    if highest is not None and value > highest:
        raise argparse.ArgumentTypeError(f"at most {highest}; got {value}")
    return value


def _seed(text: str) -> int:
    return _int_at_least(0, text)


def _positive_int(text: str) -> int:
    return _int_at_least(1, text)


# (the peers start as many threads as asked: PyTorch's OpenMP crashed at 50,000)
MAX_BENCH_THREADS = 1024


def _thread_count(text: str) -> int:
    return _int_at_least(1, text, MAX_BENCH_THREADS)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Times fastbce against NumPy, TensorFlow (tf.nn), Keras 3, PyTorch and JAX/optax on the "
        "same data, checks each value against a float64 reference, and prints a table."
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help="element counts (default 1e3,1e4,1e5,1e6,1e7; with --quick 1e3,1e4,1e5)",
    )
    parser.add_argument(
        "--variants",
        type=_some_names,
        metavar="NAME,...",
        help=f"loss variants, or 'all' (default all: {', '.join(VARIANTS)})",
    )
    parser.add_argument(
        "--dist",
        type=_some_names,
        metavar="NAME,...",
        help=f"logit distributions, or 'all' ({', '.join(DISTRIBUTIONS)}; default "
        f"{DEFAULT_DISTRIBUTION}); see docs/benchmarks.md",
    )
    parser.add_argument(
        "--peers",
        type=_names,
        metavar="NAME,...",
        help=f"peers, 'all' or 'none' ({', '.join(PEERS)}; default: those installed)",
    )
    parser.add_argument(
        "--threads",
        type=_thread_count,
        help="threads for fastbce, the read floor, torch and TensorFlow (default: each one's "
        f"own; at most {MAX_BENCH_THREADS})",
    )
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        help="timed repeats per entry; the median is shown (default 7, quick 3)",
    )
    parser.add_argument(
        "--min-time",
        type=_non_negative_float,
        metavar="SECONDS",
        help="shortest duration of one repeat; short calls are looped (default 0.05, quick 0.005)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1e3,1e4,1e5 and 3 short repeats: a smoke run",
    )
    parser.add_argument(
        "--seed", type=_seed, default=0, help="seed of the generated data (default 0)"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write every figure and the versions as JSON"
    )
    parser.add_argument(
        "--plot", metavar="PATH", help="write a PNG of throughput against size (needs matplotlib)"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead of the peers: fastbce's time per element for inputs of one |x| each, "
        f"|x| from 0 to 1e30, and the slowest/fastest ratio; --variants then names modes "
        f"({', '.join(sweep.MODES)}), --sizes one size (default 1e6, quick 1e5), --threads "
        "defaults to 1",
    )
    grad.add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    e2e = parser.add_argument_group(
        "end to end (--e2e): fastbce score against Polars and DuckDB on a generated parquet file"
    )
    e2e.add_argument(
        "--e2e",
        action="store_true",
        help="time scoring a parquet file (overall, by group, --output, in process) against "
        "Polars and DuckDB (the peers: polars, duckdb) and pyarrow's decode; --repeats "
        "defaults to 3 (the best counts)",
    )
    e2e.add_argument("--rows", type=_size, help="rows of the file (default 5e7)")
    e2e.add_argument(
        "--groups", type=_positive_int, help="distinct values of its group column (default 50)"
    )
    e2e.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the file here and reuse it (default: a temporary directory, removed after)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    names = choose(args.variants or ["all"], VARIANTS, "variant")
    dists = options.dists(args)
    skipped: dict[str, str] = {}
    requested = choose(["all"] if args.peers is None else args.peers, PEERS, "peer", none=True)
    installed = []
    for name in requested:
        if peers.peer_installed(name):  # (looked up on the module: tests replace it)
            installed.append(name)
        else:
            skipped[name] = f"not installed ({PEERS[name].install}, or {ALL_PEERS_HINT})"
    return Settings(
        sizes=options.sizes(args),
        variants=[VARIANTS[n] for n in names],
        dists=dists,
        peers=installed,
        skipped=skipped,
        threads=args.threads,
        repeats=options.repeats(args),
        min_time=options.min_time(args),
        quick=args.quick,
        seed=args.seed,
    )


def run_benchmarks(settings: Settings, quiet: bool = True) -> list[dict[str, Any]]:
    """Every (size, variant, implementation) the settings select, as rows of figures."""
    chosen = [
        impl
        for impl in IMPLEMENTATIONS.values()
        if impl.peer == "fastbce" or impl.peer in settings.peers
    ]
    plan = [
        (dist, n, v, impl)
        for dist in settings.dists
        for n in settings.sizes
        for v in settings.variants
        for impl in chosen
        if impl.supports(v)
    ]
    rows: list[dict[str, Any]] = []
    data = None
    prepared: Prepared | None
    for step, (dist, n, v, impl) in enumerate(plan, 1):
        if data is None or data.n != n or data.variant != v or data.dist != dist:
            data = None
            gc.collect()
            data = make_data(v, n, settings.seed, dist)
        label = f"[{step}/{len(plan)}] {dist} {v.name} N={format_n(n)} {impl.name}"
        row: dict[str, Any] = {
            "dist": dist,
            "variant": v.name,
            "implementation": impl.name,
            "peer": impl.peer,
            "n": n,
            "bytes": data.nbytes,
            "reference": data.reference,
        }
        try:
            prepared = impl.prepare(data, settings.threads)
            with prepared.context():
                times = measure(prepared.call, settings.repeats, settings.min_time)
                value = prepared.value(prepared.call())
            threads = prepared.threads
        except Exception as e:  # a peer that fails is reported, the others still run
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            row.update(error=f"{type(e).__name__}: {message}")
            rows.append(row)
            note(quiet, f"{label}: failed: {row['error']}")
            continue
        finally:
            prepared = None  # drop the framework's copies of the data before the next entry
        rel_error = None
        if impl.name != "read floor":
            rel_error = abs(value - data.reference) / abs(data.reference)
        row.update(
            threads=threads,
            **figures(times, n, data.nbytes),
            value=None if math.isnan(value) else value,
            rel_error=rel_error,
            tolerance=None if rel_error is None else tolerance(v, impl.name),
        )
        row["ok"] = rel_error is None or rel_error <= row["tolerance"]
        rows.append(row)
        note(quiet, f"{label}: {row['median_ms']:.4g} ms")
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """speedup (an implementation's time over fastbce's) and floor_ratio (time over the floor's)."""
    by_key = {
        (r["dist"], r["variant"], r["n"], r["implementation"]): r for r in rows if "median_ms" in r
    }
    for r in rows:
        if "median_ms" not in r:
            continue
        fast = by_key.get((r["dist"], r["variant"], r["n"], "fastbce"))
        floor = by_key.get((r["dist"], r["variant"], r["n"], "read floor"))
        r["speedup"] = fast and r["median_ms"] / fast["median_ms"]
        r["floor_ratio"] = floor and r["median_ms"] / floor["median_ms"]


def _threads_used(settings: Settings) -> dict[str, Any]:
    """What --threads did to each implementation (see docs/benchmarks.md)."""
    return {
        "requested": settings.threads,
        "fastbce_default": _core.default_threads(),
        "fastbce": "kernel policy for each N" if settings.threads is None else settings.threads,
        "torch": "torch.set_num_threads" if settings.threads else "torch default",
        "tensorflow": "intra/inter-op threads" if settings.threads else "TensorFlow default",
        "jax": "XLA default (set XLA_FLAGS to change)",
        "numpy": "one thread (elementwise ufuncs)",
    }


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "line_fetch": _core.line_fetch(),
        "python": platform.python_version(),
    }


def report(settings: Settings, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **options.report_head("fastbce-bench/1", _machine()),
        "settings": {
            "sizes": settings.sizes,
            "variants": [v.name for v in settings.variants],
            "dists": settings.dists,
            "repeats": settings.repeats,
            "min_time_s": settings.min_time,
            "quick": settings.quick,
            "seed": settings.seed,
            "threads": _threads_used(settings),
        },
        "variants": {
            v.name: {
                "description": v.description,
                "from_logits": v.from_logits,
                "gamma": v.gamma,
                "alpha": v.alpha,
                "weighted": v.weighted,
                "label_dtype": v.label_dtype,
                "dtype": v.dtype,
            }
            for v in settings.variants
        },
        "distributions": {d: DISTRIBUTIONS[d].description for d in settings.dists},
        "peers": {
            **{name: {"status": "ran", "versions": peer_versions(name)} for name in settings.peers},
            **{
                name: {"status": "skipped", "reason": why, "install": PEERS[name].install}
                for name, why in settings.skipped.items()
            },
        },
        "implementations": {
            name: {
                "peer": impl.peer,
                "expression": impl.expression,
                "variants": sorted(impl.variants),
            }
            for name, impl in IMPLEMENTATIONS.items()
        },
        "results": rows,
    }


def _run_e2e(args: argparse.Namespace) -> int:
    from .e2e import E2E_PEERS, run_e2e

    for name in ("sizes", "variants", "threads", "min_time", "plot", "dist"):
        if getattr(args, name) is not None:
            raise UsageError(f"--{name.replace('_', '-')} does not apply to --e2e")
    if args.quick or args.sweep:
        raise UsageError(
            f"--{'quick' if args.quick else 'sweep'} does not apply to --e2e (use a small --rows)"
        )
    if args.data_dir is not None and os.path.exists(args.data_dir):
        if not os.path.isdir(args.data_dir):
            raise UsageError(f"--data-dir {args.data_dir}: is not a folder")
    if not peers.has_module("pyarrow"):
        raise UsageError('--e2e needs pyarrow: pip install pyarrow (or "fastbce[e2e]")')
    skip = set()
    if args.peers is not None:
        requested = choose(args.peers, E2E_PEERS, "peer", where=" for --e2e", none=True)
        skip = set(E2E_PEERS) - set(requested)
    plan = run_e2e(
        args.rows or 50_000_000,
        groups=args.groups or 50,
        repeat=args.repeats or 3,
        data_dir=args.data_dir,
        skip=skip,
        json_path=args.json,
        quiet=args.quiet,
        seed=args.seed,
    )
    return 1 if any(t.error for t in plan) else 0


def run_sweep(args: argparse.Namespace) -> int:
    """``--sweep``: the magnitude sweep of each mode in float32 and float64."""
    if args.plot or args.dist or args.peers:
        raise UsageError("--sweep times fastbce alone: no --plot, --dist or --peers")
    names = choose(args.variants or ["all"], sweep.MODES, "sweep mode")
    sizes = args.sizes or [10**5 if args.quick else 10**6]
    if len(sizes) != 1:
        raise UsageError(f"--sweep takes one size; got {len(sizes)}")
    n, threads = sizes[0], args.threads or 1
    repeats = options.repeats(args, default=5)
    min_time = args.min_time if args.min_time is not None else 0.0
    results = []
    for name in names:
        for dtype in sweep.DTYPES:
            note(args.quiet, f"sweep {name} {dtype} N={format_n(n)}")
            points = sweep.sweep(
                sweep.MODES[name], dtype, n, threads=threads, repeats=repeats,
                min_time=min_time, seed=args.seed,
            )  # fmt: skip
            results.append((sweep.MODES[name], dtype, points))
    if args.json:  # (before the table, as run's)
        document = sweep.report(results, n, threads)
        document["machine"] = _machine()
        options.write_json(args.json, document, args.quiet)
    print(sweep.format_sweep(results, n, threads))
    return 0


def run(args: argparse.Namespace) -> int:
    """The bench; SIGTERM and SIGHUP stop it as Ctrl-C does (the e2e data and the timed
    processes are cleaned up, status 128 + the signal's number)."""
    from ..signals import stop_on_signals

    with stop_on_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    options.check_output_paths(args)  # (before minutes of timing, not after)
    if args.e2e and grad.chosen(args):
        raise UsageError("--e2e and --grad are separate benchmarks: choose one")
    if args.e2e:
        return _run_e2e(args)
    for name in ("rows", "groups", "data_dir"):
        if getattr(args, name) is not None:
            raise UsageError(f"--{name.replace('_', '-')} needs --e2e")
    if grad.chosen(args):
        return grad.run(args, _machine())
    if args.sweep:
        return run_sweep(args)
    settings = _settings(args)
    if args.plot and not peers.has_module("matplotlib"):
        raise UsageError('--plot needs matplotlib: pip install matplotlib (or "fastbce[plot]")')
    for name, why in settings.skipped.items():
        note(args.quiet, f"skipping {name}: {why}")
    rows = run_benchmarks(settings, quiet=args.quiet)
    # (the files first: a reader of the table that goes away, `| head`, must not lose them)
    if args.json:
        options.write_json(args.json, report(settings, rows), args.quiet)
    if args.plot:
        plot(settings, rows, args.plot)
        note(args.quiet, f"wrote {args.plot}")
    print(format_table(settings, rows))
    return options.own_values_status(rows)
