"""One change of an accumulator at a time, whole: its lock, and signals held back meanwhile.

An accumulator's state is Python objects (key tables, arrays grown in place) that the kernel adds
into with the GIL released, so two threads updating one accumulator would interleave; and a
signal whose handler raises (Ctrl-C's KeyboardInterrupt, the command line's SIGTERM/SIGHUP) could
land between the kernel's adds and the Python state that goes with them (a batch counted without
its top losses, a slicing's keys grown without its sums). ``whole`` serialises the calls and, on
the main thread (the only one signal handlers run on), runs such a handler once the call is done:
a batch then counts in full, and the exception comes right after it. The kernel itself is not
interruptible either way, so a Ctrl-C waits no longer than it did. The end-to-end bench holds the
handlers the same way while it starts a timed process, so that a stop kills the process it started.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

__all__ = ["atomic", "whole"]

_Method = TypeVar("_Method", bound=Callable[..., Any])

_HELD = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def whole(*locks: Any) -> Iterator[None]:
    """Holds `locks` (taken in one global order, so that a.merge(b) and b.merge(a) in two threads
    cannot deadlock; the same lock twice counts once) and, on the main thread, the Python-level
    handlers of SIGINT, SIGTERM and SIGHUP, then runs the first signal that came meanwhile."""
    with contextlib.ExitStack() as stack:
        for _, lock in sorted({id(lock): lock for lock in locks}.items()):
            stack.enter_context(lock)
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        came: list[tuple[int, Any]] = []
        handlers = {s: h for s in _HELD if callable(h := signal.getsignal(s))}
        for s in handlers:
            signal.signal(s, lambda signum, frame: came.append((signum, frame)))
        try:
            yield
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if came:
                signum, frame = came[0]
                handlers[signum](signum, frame)


def atomic(method: _Method) -> _Method:
    """The method run `whole`, under its object's ``_lock`` if it has one."""

    @functools.wraps(method)
    def run_whole(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = getattr(self, "_lock", None)
        with whole(*(() if lock is None else (lock,))):
            return method(self, *args, **kwargs)

    return cast(_Method, run_whole)
