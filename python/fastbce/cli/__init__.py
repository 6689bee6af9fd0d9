"""The ``fastbce`` command line (docs/reference.md): ``score``, ``bench`` and ``info``.

Exit status: 0 on success, 2 on a usage error, 1 on a data error, with a one-line message and no
traceback for user errors. Each subcommand lives in its own module with ``add_arguments(parser)``
and ``run(args) -> int``; this package's ``main`` only wires them up and turns errors into exit
codes (the errors are in ``fastbce._errors``, the printing helpers in ``output``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import DataError, UsageError
from .._version import __version__
from . import info as info_command
from . import score as score_command
from .bench import command as bench_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastbce", description="Binary cross-entropy at memory speed."
    )
    parser.add_argument("--version", action="version", version=f"fastbce {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = sub.add_parser("score", help="score a table of labels and predictions")
    score_command.add_arguments(score)
    score.set_defaults(run=score_command.run)

    bench = sub.add_parser("bench", help="compare fastbce with NumPy, TensorFlow, PyTorch and JAX")
    bench_command.add_arguments(bench)
    bench.set_defaults(run=bench_command.run)

    info = sub.add_parser("info", help="version, build, SIMD targets and default threads")
    info_command.add_arguments(info)
    info.set_defaults(run=info_command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    try:
        return int(args.run(args))
    except BrokenPipeError:  # the reader went away (`fastbce ... | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as e:
        parser.exit(2, f"fastbce {args.command}: error: {e}\n")
    except (DataError, ValueError, TypeError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"fastbce {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastbce {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
