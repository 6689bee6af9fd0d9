"""A timed child process of the end-to-end bench: its wall time, CPU time and peak memory, and
a stop of the bench (Ctrl-C, SIGTERM, SIGHUP) that kills it and whatever it started."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile

from ..._atomic import whole
from ..signals import stop_signals

__all__ = ["run_child"]


# A launcher that stays small: a child's peak RSS (ru_maxrss) starts at the RSS of the process
# that spawned it, so the children are not spawned by this one (which holds the data's modules).
LAUNCHER = """
import json, os, signal, sys, time
signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (run_child blocked the stop signals to start it)
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    cpu = usage.ru_utime + usage.ru_stime
    json.dump({"seconds": seconds, "rss_kb": usage.ru_maxrss, "cpu": cpu,
               "status": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int, str, str]:
    """(wall seconds, CPU seconds, peak RSS MB, exit status, stdout, stderr) of one fresh
    process."""
    with tempfile.TemporaryDirectory() as tmp:
        measured = os.path.join(tmp, "measured.json")
        # (a session of their own: a stopped run kills the launcher and the tool it started,
        # which killing the launcher alone would leave running). The stop signals wait while
        # it starts: one that came between the fork and `launched` left both running. Blocking
        # them in this thread is not enough: the kernel then hands them to another thread (one
        # of Arrow's, after the data was written) and the Python handler still runs here, inside
        # Popen; `whole` holds the handler back until `launched` is set.
        launched = None
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals())
        try:
            try:
                with whole():  # (a stop lands here, when the with ends)
                    launched = subprocess.Popen(
                        [sys.executable, "-S", "-c", LAUNCHER, measured, *argv],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            stdout, stderr = launched.communicate()
        except BaseException:
            if launched is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(launched.pid, signal.SIGKILL)
                launched.wait()
                for pipe in (launched.stdout, launched.stderr):
                    if pipe is not None:
                        pipe.close()
            raise
        proc = subprocess.CompletedProcess(launched.args, launched.returncode, stdout, stderr)
        if not os.path.exists(measured):
            return math.nan, math.nan, math.nan, proc.returncode or 1, "", proc.stderr.decode()
        with open(measured) as f:
            m = json.load(f)
    text = proc.stderr.decode(errors="replace")
    return m["seconds"], m["cpu"], m["rss_kb"] / 1024.0, m["status"], proc.stdout.decode(), text
