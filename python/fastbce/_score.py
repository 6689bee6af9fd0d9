"""``fastbce score`` (issue #4): not built yet."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT")


def run(args: argparse.Namespace) -> int:
    from .cli import UsageError

    raise UsageError("fastbce score is not built yet (issue #4)")
