"""``fastbce info``: the version, the build, the SIMD targets and the default number of threads."""

from __future__ import annotations

import argparse
import json

from .._info import build_info

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "The version, the build, the SIMD targets and the default threads."
    parser.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="a table of key and value (default), or fastbce.build_info() as JSON",
    )


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
