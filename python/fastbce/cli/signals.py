"""Stopping a command cleanly on a signal.

SIGTERM (what job schedulers send before SIGKILL) and SIGHUP (a closed terminal) become an
exception, as SIGINT becomes KeyboardInterrupt, so the run unwinds through its clean-up (the
temporary output file is removed) and exits with 128 + the signal's number. Once one arrived, the
others are ignored until the clean-up is over. A signal the process was started ignoring (nohup,
a background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Stopped", "stop_on_signals", "stop_signals"]


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal (a KeyboardInterrupt, so that what cleans up after SIGINT
    cleans up after it too)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_signals() -> list[int]:
    """The signals that stop a run: SIGINT, SIGTERM and SIGHUP, those the platform has."""
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # (handlers need it)
        yield
        return
    previous = {s: signal.getsignal(s) for s in stop_signals()}

    def handler(signum: int, frame: Any) -> None:
        for s in previous:  # the clean-up that follows is not interrupted
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    for s, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
