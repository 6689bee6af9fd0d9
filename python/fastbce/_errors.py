"""The errors of the command line and the readers, and the exit status each one gives.

They live apart from ``fastbce.cli`` so that ``fastbce.io`` can raise them without importing the
command line (the dependency goes one way: cli -> io -> _errors).
"""

from __future__ import annotations

__all__ = ["DataError", "UsageError"]


class UsageError(Exception):
    """A bad combination of command-line arguments (exit status 2)."""


class DataError(Exception):
    """The input data cannot be scored as asked (exit status 1)."""
