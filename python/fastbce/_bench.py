"""``fastbce bench`` (issue #3): not built yet."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from .cli import UsageError

    raise UsageError("fastbce bench is not built yet (issue #3)")
