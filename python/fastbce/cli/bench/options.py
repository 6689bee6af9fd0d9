"""What the bench's runs (the loss against its peers, ``--grad``, ``--sweep``) share of their
command line and their JSON: the default sizes and timing, the names an option selects, and the
report's head and file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import Any

from ..._errors import UsageError
from ..._info import build_info
from ..._version import __version__
from ..output import note
from .variants import DEFAULT_DISTRIBUTION, DISTRIBUTIONS

DEFAULT_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
QUICK_SIZES = (10**3, 10**4, 10**5)


def sizes(args: argparse.Namespace) -> list[int]:
    """--sizes, or the default sizes (fewer with --quick)."""
    return args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)


def repeats(args: argparse.Namespace, default: int = 7) -> int:
    """--repeats, or 3 with --quick, else `default`."""
    return int(args.repeats or (3 if args.quick else default))


def min_time(args: argparse.Namespace) -> float:
    """--min-time, or the shortest repeat of a run (0.05 s; 0.005 s with --quick)."""
    return float(args.min_time if args.min_time is not None else (0.005 if args.quick else 0.05))


def choose(
    names: list[str],
    choices: Iterable[str],
    what: str,
    *,
    where: str = "",
    lead: str = "",
    none: bool = False,
) -> list[str]:
    """The choices that `names` (an option's comma-separated names) select, each once: every
    one for "all", and none of them for "none" where `none` allows it. An unknown name is a
    UsageError: "unknown {what} 'name'{where}; {lead}choose from ..."."""
    choices = list(choices)
    chosen = [name for name in names if not (none and name == "none")]
    unknown = [name for name in chosen if name not in choices and name != "all"]
    if unknown:  # (beside "all" too: `all,foo` is a typo, not all)
        rest = ", all or none" if none else " or all"
        raise UsageError(
            f"unknown {what} {unknown[0]!r}{where}; {lead}choose from {', '.join(choices)}{rest}"
        )
    if "all" in names:
        return choices
    return list(dict.fromkeys(chosen))


def dists(args: argparse.Namespace) -> list[str]:
    """The logit distributions of --dist (default: DEFAULT_DISTRIBUTION)."""
    return choose(args.dist or [DEFAULT_DISTRIBUTION], DISTRIBUTIONS, "distribution")


def report_head(schema: str, machine: dict[str, Any]) -> dict[str, Any]:
    """The first keys of a JSON report: its schema, when, fastbce's build and the machine."""
    return {
        "schema": schema,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fastbce": {"version": __version__, "build": build_info()},
        "machine": machine,
    }


def check_output_paths(args: argparse.Namespace) -> None:
    """UsageError before anything runs if --json or --plot cannot be written where asked: its
    folder missing or not writable, the name a folder or another file than a regular one (a
    device), both options one file, or --plot not a .png."""
    from ...io.writers import check_plot_name, same_file

    paths = (("--json", args.json), ("--plot", getattr(args, "plot", None)))
    for option, path in paths:
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"{option} {path}: no such folder {folder}")
        if os.path.isdir(path):
            raise UsageError(f"{option} {path}: is a folder")
        if os.path.exists(path) and not os.path.isfile(path):
            raise UsageError(f"{option} {path}: is not a regular file")
        if option == "--plot":
            check_plot_name(path)
        try:  # (a file can be made there: the result is written beside it, then renamed)
            fd, probe = tempfile.mkstemp(
                dir=os.path.dirname(os.path.realpath(path)), prefix=".fastbce-"
            )
        except OSError as e:
            raise UsageError(f"{option} {path}: cannot write in {folder}: {e.strerror}") from None
        os.close(fd)
        os.unlink(probe)
    if args.json and getattr(args, "plot", None) and same_file(args.json, args.plot):
        raise UsageError(f"--json {args.json} and --plot {args.plot} are one file")


def write_json(path: str, document: dict[str, Any], quiet: bool) -> None:
    """--json: the report as strict JSON (one-space indent), written whole or not at all, and a
    note on stderr."""
    from ...io.writers import whole_file

    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    with whole_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    note(quiet, f"wrote {path}")


def own_values_status(rows: list[dict[str, Any]]) -> int:
    """The exit status: 1 when one of fastbce's own values is off its reference (a '!' on a
    fastbce row), else 0; a peer's inaccuracy is the peer's (marked, the status stays 0)."""
    wrong = [
        r
        for r in rows
        if r.get("peer", r.get("implementation")) == "fastbce" and r.get("ok") is False
    ]
    if wrong:
        print(
            "fastbce bench: error: a value of fastbce's is off its reference (marked '!')",
            file=sys.stderr,
        )
    return 1 if wrong else 0
