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
import sys
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
    stopping: list[int] = []  # the signal acted on, once its Stopped is raised

    def handler(signum: int, frame: Any) -> None:
        if stopping:  # the clean-up that follows is not interrupted
            return
        stopping.append(signum)
        raise Stopped(signum)

    # Python runs a handler between any two bytecodes, also in a garbage collector's callback
    # (JAX has one) or a __del__, where an exception is printed ("Exception ignored in") and
    # dropped: the run would go on with every later signal ignored. Such a Stopped re-arms the
    # handler and has its signal sent again, a moment later (sent now, it would be handled
    # in this hook, which drops it too), to the main thread, where it stops the run.
    previous_hook = sys.unraisablehook

    def unraisable(args: Any) -> None:
        if isinstance(args.exc_value, Stopped) and stopping:
            again = (threading.main_thread().ident, stopping.pop())
            threading.Timer(0.01, signal.pthread_kill, again).start()
            return
        previous_hook(args)

    sys.unraisablehook = unraisable
    for s, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook
