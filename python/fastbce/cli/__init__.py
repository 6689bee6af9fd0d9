"""The ``fastbce`` command line (docs/reference.md): ``score``, ``bench`` and ``info``.

Exit status: 0 on success, 2 on a usage error, 1 on a data error, with a one-line message and no
traceback for user errors. Each subcommand lives in its own module with ``add_arguments(parser)``
and ``run(args) -> int``; this package's ``main`` only wires them up and turns errors into exit
codes (the errors are in ``fastbce._errors``, the printing helpers in ``output``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

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


def _usage_line(prog: str, message: str) -> str:
    """A usage error's one line: the command, the message, where the options are listed."""
    return f"{prog}: error: {message} (see '{prog} --help')\n"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (argparse prints the whole usage block
    first: ten lines for `score`) that names the subcommand and where its options are listed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _usage_line(self.prog, message))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command` only that subcommand gets its options (the others keep their
    line of help), with None all of them do."""
    parser = _Parser(prog="fastbce", description="Binary cross-entropy at memory speed.")
    parser.add_argument("--version", action="version", version=f"fastbce {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        if command is None or command == name:
            module = _command_module(name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(run=module.run)
    return parser


def _import_failed(command: str, e: ImportError) -> int:
    """One line for a kernel that refuses to load: a FASTBCE_* variable it does not know (a usage
    error, status 2: FASTBCE_FORCE_TARGET=bogus) or a broken install (status 1)."""
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f"fastbce {command}: error: {message}", file=sys.stderr)
    return 2 if message.startswith("FASTBCE_") else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), "")
    try:
        parser = build_parser(chosen if chosen in COMMANDS else "")
    except ImportError as e:  # (info's module loads the kernel)
        return _import_failed(chosen, e)
    args, unknown = parser.parse_known_args(argv)  # exits with status 2 on a usage error
    if unknown:  # (argparse would blame the top-level parser: "fastbce: error: ...")
        parser.exit(
            2,
            _usage_line(f"fastbce {args.command}", f"unrecognized arguments: {' '.join(unknown)}"),
        )
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
    except ImportError as e:
        return _import_failed(args.command, e)
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

    for name in ("stdout", "stderr"):  # a closed descriptor (`2>&-`): Python's stream is None
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (the process's to the end)
    _process.own()
    return _process.end(main())  # (without the interpreter's teardown: 20-30 ms)
