"""Whether this process is the ``fastbce`` command's own.

The command's entry point (``fastbce``, ``python -m fastbce``: ``fastbce.cli.entry_point``) says
so; the process then ends with the command, so a run may tune process-wide settings for itself
(``fastbce.io.prefetch``: glibc's malloc thresholds and jemalloc's decay with a million groups).
``fastbce.cli.main`` called inside another program (a notebook, a test) leaves them as they were:
glibc has no getter for its thresholds (and fixing them, even to its defaults, turns off their
adjustment for good), nor pyarrow for jemalloc's decay, so they could not be restored.
Standard library only: the command imports it first (``fastbce score --help`` imports no NumPy).
"""

from __future__ import annotations

__all__ = ["is_command", "own"]

_command = False


def own() -> None:
    """Marks this process as the command's own (called once, by the entry point)."""
    global _command
    _command = True


def is_command() -> bool:
    return _command
