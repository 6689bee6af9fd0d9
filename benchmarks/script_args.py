"""Argument types of the scripts in this folder: a count that must be at least 1 (sizes may be
written as 1e8), so that `--n 0` is a usage error, not a division by zero at the end of a run."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """An integer >= 1, also written as a float with no fraction (1e8)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text}")
    return int(value)
