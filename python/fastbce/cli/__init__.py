"""The ``fastbce`` command line (docs/reference.md): ``score``, ``bench`` and ``info``.

Exit status: 0 on success, 2 on a usage error, 1 on a data error, with a one-line message and no
traceback for user errors. Each subcommand lives in its own module with ``add_arguments(parser)``
and ``run(args) -> int``; this package's ``main`` only wires them up and turns errors into exit
codes (the errors are in ``fastbce._errors``, the printing helpers in ``output``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .._errors import DataError, UsageError
from .._version import __version__

__all__ = ["build_parser", "entry_point", "main"]

COMMANDS = {
    "score": "score a table of labels and predictions",
    "bench": "compare fastbce with NumPy, TensorFlow, PyTorch and JAX",
    "info": "version, build, SIMD targets and default threads",
}


def _command_module(name: str) -> Any:
    """A subcommand's module, imported only when it is the one run: `fastbce score --help`
    does not import the benchmark and its peers."""
    if name == "score":
        from . import score

        return score
    if name == "bench":
        from .bench import command

        return command
    from . import info

    return info


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command` only that subcommand gets its options (the others keep their
    line of help), with None all of them do."""
    parser = argparse.ArgumentParser(
        prog="fastbce", description="Binary cross-entropy at memory speed."
    )
    parser.add_argument("--version", action="version", version=f"fastbce {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        if command is None or command == name:
            module = _command_module(name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(chosen if chosen in COMMANDS else "")
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    try:
        return int(args.run(args))
    except BrokenPipeError:  # the reader went away (`fastbce ... | head`): not an error
        from .output import discard_stdout

        discard_stdout()
        return 0
    except UsageError as e:
        parser.exit(2, f"fastbce {args.command}: error: {e}\n")
    except (DataError, ValueError, TypeError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"fastbce {args.command}: error: {message}", file=sys.stderr)
        return 1
    except MemoryError as e:  # (NumPy's says how much: "Unable to allocate 72.8 TiB for ...")
        print(f"fastbce {args.command}: error: out of memory ({e})", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM / SIGHUP (cli.signals.Stopped)
        signum = getattr(e, "signum", signal.SIGINT)
        what = (
            "interrupted"
            if signum == signal.SIGINT
            else f"stopped by {signal.Signals(signum).name}"
        )
        print(f"fastbce {args.command}: {what}", file=sys.stderr)
        return 128 + signum
    return 0


def entry_point() -> int:
    """The ``fastbce`` command (and ``python -m fastbce``): ``main`` in a process that ends with
    it, which may therefore tune process-wide allocator settings for a run (docs/scoring.md,
    "Memory"); ``main`` called inside another program leaves them as they were."""
    from .. import _process

    _process.own()
    return _process.end(main())  # (without the interpreter's teardown: 20-30 ms)
