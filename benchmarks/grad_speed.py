"""Speed of binary_crossentropy_grad (issue 14) at the issue's sizes, standalone: one run prints
every ratio. The measurements are those of ``fastbce bench --grad --xgboost``
(``fastbce.cli.bench.grad``, docs/benchmarks.md), with the sizes of the issue as defaults:

1. grad + hess of N float32 logits (``out=`` given) against the memory floor of reading 8 and
   writing 8 bytes an element (NumPy copies on the kernel's threads) and against the same
   formulas in NumPy, each value checked against a float64 reference;
2. an XGBoost ``hist`` run (rows x features, the same threads) with the fastbce focal objective
   and with a NumPy one: the objective's share of a boosting round.

    python benchmarks/grad_speed.py [--n 1e8] [--threads 2] [--rows 1e6] [--features 20]

Timings are medians of --repeat runs; on a shared machine compare the ratios of one run.
"""

from __future__ import annotations

import argparse

from fastbce.cli.bench import grad
from script_args import count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=count, default=1e8)
    parser.add_argument("--threads", type=count, default=2)
    parser.add_argument("--repeat", type=count, default=5)
    parser.add_argument("--rows", type=count, default=1e6)
    parser.add_argument("--features", type=count, default=20)
    parser.add_argument("--rounds", type=count, default=10)
    parser.add_argument("--skip-xgboost", action="store_true")
    args = parser.parse_args()
    settings = grad.GradSettings(
        sizes=[int(args.n)],
        variants=list(grad.GRAD_VARIANTS.values()),
        dists=[grad.DEFAULT_DISTRIBUTION],
        threads=args.threads,
        repeats=args.repeat,
        min_time=0.0,
        quick=False,
        seed=0,
    )
    print(grad.format_grad(settings, grad.run_grad(settings, quiet=False)))
    if not args.skip_xgboost:
        share = grad.xgboost_share(
            int(args.rows), args.features, args.threads, args.rounds, quiet=False
        )
        print()
        print(grad.format_xgboost(share))


if __name__ == "__main__":
    main()
