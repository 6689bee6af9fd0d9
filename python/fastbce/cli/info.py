"""``fastbce info``: the version, the build, the SIMD targets and the default number of threads."""

from __future__ import annotations

import argparse
import json

from .._info import build_info

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json"], default="table")


def run(args: argparse.Namespace) -> int:
    info = build_info()
    if args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            text = ", ".join(value) if isinstance(value, list) else value
            print(f"{key:<{width}}  {text}")
    return 0
