"""What the commands print: the progress bar, progress notes on stderr, aligned table rows and
the name of the missing group."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TextIO

__all__ = ["Progress", "aligned", "discard_stdout", "missing_name", "note"]


def discard_stdout() -> None:
    """Stdout to /dev/null, after its reader went away (`fastbce ... | head`: BrokenPipeError),
    so that the rest of the run and the interpreter's flush at exit write nowhere."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One table row: the first cell (a name) left-aligned, the others (figures) right-aligned,
    two spaces apart."""
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def missing_name(has_group: Callable[[Hashable], bool], first: str = "(missing)") -> str:
    """The name under which the missing group (key None) is printed: `first` ("null" in JSON,
    as json.dumps writes None; "(missing)" in the table), or, where a group has that text, the
    first of "(missing)", "((missing))", ... that no group has: two groups never share a name
    (a JSON reader would keep one of them)."""
    if not has_group(first):
        return first
    name = "(missing)"
    while has_group(name):
        name = f"({name})"
    return name


def note(quiet: bool, text: str) -> None:
    """A line of progress on stderr (stdout holds the result), unless quiet."""
    if not quiet:
        print(text, file=sys.stderr, flush=True)


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal, only for runs longer
    than a second, redrawn at most five times a second, erased at the end."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _isatty(self.stream)
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, fraction: float | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < 0.2:
            return
        self.last = now
        elapsed = now - self.start
        if fraction is None:
            text = f"scoring... {elapsed:.0f} s"
        else:
            fraction = min(max(fraction, 0.0), 1.0)
            filled = int(30 * fraction)
            left = elapsed / fraction - elapsed if fraction > 0 else math.nan
            eta = f", {left:.0f} s left" if math.isfinite(left) else ""
            text = (
                f"[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}% {elapsed:.0f} s{eta}"
            )
        self.stream.write("\r" + text.ljust(70))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
            self.drawn = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
