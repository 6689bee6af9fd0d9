"""Speed of binary_crossentropy_grad (issue 14), standalone: one run prints every ratio.

1. grad + hess of N float32 logits (float32 labels, outputs given with out=) against the memory
   floor of the same traffic: reading 8 and writing 8 bytes per element, as two NumPy copies
   (x -> grad, y -> hess) split over the same number of Python threads (NumPy releases the GIL);
2. against the same formulas in NumPy (benchmarks/numpy_grad.py, whole arrays, one thread);
3. an XGBoost ``hist`` run (rows x features, the same threads) with the fastbce focal objective
   and with a NumPy one: the objective's share of a boosting round.

    python benchmarks/grad_speed.py [--n 1e8] [--threads 2] [--rows 1e6] [--features 20]

Timings are medians of --repeat runs; on a shared machine compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

import fastbce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_grad import numpy_grad  # noqa: E402


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _copy_floor(x, y, g, h, threads: int) -> None:
    """Reads x and y, writes g and h: the traffic of grad + hess, on `threads` threads."""
    chunk = 1 << 20
    starts = list(range(0, x.size, chunk))

    def work(part):
        for s in starts[part::threads]:
            np.copyto(g[s : s + chunk], x[s : s + chunk])
            np.copyto(h[s : s + chunk], y[s : s + chunk])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def kernel_vs_floor(n: int, threads: int, repeat: int) -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(0, 4, n).astype(np.float32)
    y = (rng.random(n) < 0.3).astype(np.float32)
    g, h = np.empty_like(x), np.empty_like(x)
    g.fill(0), h.fill(0)  # touch the pages once, outside the timings
    floor = _median_time(lambda: _copy_floor(x, y, g, h, threads), repeat)
    print(f"N = {n:.0e} float32, {threads} threads; medians of {repeat}")
    print(
        f"  memory floor (read 8 + write 8 B/element): {floor * 1e3:9.1f} ms  "
        f"{16 * n / floor / 1e9:5.1f} GB/s"
    )
    for name, opts in (("plain", {}), ("focal gamma=2 alpha=0.25", {"gamma": 2.0, "alpha": 0.25})):
        t = _median_time(
            lambda o=opts: fastbce.binary_crossentropy_grad(y, x, threads=threads, out=(g, h), **o),
            repeat,
        )
        print(
            f"  fastbce {name:26s} {t * 1e3:9.1f} ms  {t / floor:5.2f}x the floor  "
            f"{t / n * 1e9:5.2f} ns/element"
        )
        t_np = _median_time(lambda o=opts: numpy_grad(y, x, **o), 1)
        print(f"  NumPy   {name:26s} {t_np * 1e3:9.1f} ms  fastbce is {t_np / t:5.1f}x faster")


def xgboost_round(rows: int, features: int, threads: int, rounds: int) -> None:
    import xgboost as xgb

    import fastbce.xgboost

    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    margin = X[:, 0] - 0.5 * X[:, 1] + X[:, 2] * X[:, 3] - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-margin))).astype(np.float32)
    dtrain = xgb.DMatrix(X, label=y)
    params = {
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.3,
        "nthread": threads,
        "objective": "binary:logistic",
        "base_score": float(y.mean()),
    }
    options = {"gamma": 2.0, "alpha": 0.25}
    fast = fastbce.xgboost.objective(**options)

    def numpy_objective(preds, dmatrix):
        return numpy_grad(dmatrix.get_label(), preds, **options)

    print(
        f"XGBoost {xgb.__version__} hist, {rows:.0e} rows x {features} features, "
        f"{threads} threads, {rounds} rounds, focal gamma=2 alpha=0.25"
    )
    for name, objective in (("fastbce", fast), ("NumPy", numpy_objective)):
        spent = []

        def timed(preds, dmatrix, objective=objective, spent=spent):
            start = time.perf_counter()
            result = objective(preds, dmatrix)
            spent.append(time.perf_counter() - start)
            return result

        xgb.train(params, dtrain, 1, obj=timed)  # warm up (quantiles, caches)
        spent.clear()
        start = time.perf_counter()
        xgb.train(params, dtrain, rounds, obj=timed)
        per_round = (time.perf_counter() - start) / rounds
        obj = statistics.median(spent)
        print(
            f"  {name:8s} objective {obj * 1e3:8.2f} ms of a {per_round * 1e3:8.1f} ms round: "
            f"{100 * obj / per_round:5.2f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-xgboost", action="store_true")
    args = parser.parse_args()
    print(
        f"fastbce {fastbce.__version__}, tier {fastbce.build_info()['target']}, "
        f"{platform.processor() or platform.machine()}"
    )
    kernel_vs_floor(int(args.n), args.threads, args.repeat)
    if not args.skip_xgboost:
        xgboost_round(int(args.rows), args.features, args.threads, args.rounds)


if __name__ == "__main__":
    main()
