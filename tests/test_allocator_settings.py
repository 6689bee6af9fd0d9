"""Process-wide allocator settings of a run with a million groups (docs/scoring.md, "Memory"):
glibc's mmap and trim thresholds, fixed at 1 MiB, and jemalloc's decay, at 0, once the groups'
sums fill the parquet read-ahead's budget; only in the ``fastbce`` command's own process, never
when ``fastbce.cli.main`` runs inside another program (neither setting can be read back and
restored), and glibc's not when the user set the thresholds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import fastbce.cli
from fastbce import _process
from fastbce.io import prefetch

LINUX_GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

# In a fresh process: the reader told that the consumer holds its whole budget (as the CLI's
# score loop does with a million groups), then whether a 2 MiB block is mapped on its own after a
# 4 MiB one was freed: glibc's own (adjusting) threshold rises to 4 MiB at that free, a fixed
# 1 MiB one maps it (mallinfo2's hblkhd: bytes in mapped blocks).
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    import fastbce._process
    from fastbce.io import prefetch

    if sys.argv[1] == "owned":
        fastbce._process.own()
    reader = prefetch.RowGroupReader([], [], [], [], threads=1, budget_bytes=1 << 20)
    reader.reserve(1 << 30)

    libc = ctypes.CDLL(None)
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in names.split()]

    libc.mallinfo2.restype = Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(2 << 20)
    mapped = libc.mallinfo2().hblkhd - before >= 2 << 20
    libc.free(block)
    print("mapped" if mapped else "heap")
    """
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    return {**env, **extra}


def _probe(mode: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env=_clean_env(**env),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not LINUX_GLIBC, reason="glibc's malloc thresholds")
def test_inside_another_program_glibc_keeps_its_thresholds():
    assert _probe("inside") == "heap"


@pytest.mark.skipif(not LINUX_GLIBC, reason="glibc's malloc thresholds")
def test_the_command_process_fixes_the_thresholds():
    assert _probe("owned") == "mapped"


@pytest.mark.skipif(not LINUX_GLIBC, reason="glibc's malloc thresholds")
def test_thresholds_the_user_set_are_kept():
    # (a fixed 8 MiB threshold: the 2 MiB block comes from the heap, as without fastbce)
    assert _probe("owned", MALLOC_MMAP_THRESHOLD_=str(8 << 20)) == "heap"


@pytest.mark.parametrize(
    "environ, user_set",
    [
        ({}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, False),
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, True),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}, True),
    ],
)
def test_which_environments_set_the_thresholds(environ, user_set):
    assert prefetch._user_set_malloc_thresholds(environ) is user_set


@pytest.mark.parametrize("owned", [False, True])
def test_jemalloc_decay_only_in_the_command_process(monkeypatch, owned):
    pa = pytest.importorskip("pyarrow")
    calls: list[object] = []
    monkeypatch.setattr(_process, "_command", owned)
    monkeypatch.setattr(prefetch, "_map_large_blocks", lambda: calls.append("mallopt"))
    monkeypatch.setattr(pa, "jemalloc_set_decay_ms", lambda ms: calls.append(ms))

    class Pool:
        backend_name = "jemalloc"

    monkeypatch.setattr(pa, "default_memory_pool", lambda: Pool())
    prefetch._return_freed_pages()
    assert calls == ([0, "mallopt"] if owned else [])


def test_every_way_to_run_the_command_owns_its_process():
    scripts = metadata.entry_points(group="console_scripts")
    assert [e.value for e in scripts if e.name == "fastbce"] == ["fastbce.cli:entry_point"]
    # the modules run by `python -m fastbce` and `python -m fastbce.cli`, with main replaced
    probe = (
        "import runpy, sys, fastbce.cli as cli, fastbce._process as p; "
        "cli.main = lambda: print(p.is_command()) or 0; "
        "runpy.run_module(sys.argv[1], run_name='__main__')"
    )
    for module in ("fastbce", "fastbce.cli"):
        done = subprocess.run(
            [sys.executable, "-c", probe, module], capture_output=True, text=True, timeout=120
        )
        assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_main_inside_a_program_does_not_own_it():
    assert fastbce.cli.main(["info"]) == 0
    assert _process.is_command() is False


# In a fresh process: NumPy imported inside one_blas_thread; the threads of the process after
# it (OpenBLAS starts its own when NumPy loads it), the variable inside and after.
BLAS_PROBE = textwrap.dedent(
    """
    import os, sys
    import fastbce._process as p

    if sys.argv[1] == "owned":
        p.own()
    with p.one_blas_thread():
        inside = os.environ.get("OPENBLAS_NUM_THREADS")
        import numpy
    threads = len(os.listdir("/proc/self/task"))
    print(threads, inside, os.environ.get("OPENBLAS_NUM_THREADS"))
    """
)


def _blas_probe(mode: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _process._BLAS_THREADS}
    done = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE, mode],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads listed in /proc")
def test_the_command_process_loads_numpy_without_blas_threads():
    threads, inside, after = _blas_probe("owned")
    assert (threads, inside, after) == ("1", "1", "None")  # (not left for child processes)
    _, inside, after = _blas_probe("inside")  # (fastbce.cli.main inside a program: untouched)
    assert (inside, after) == ("None", "None")


def test_a_blas_thread_count_the_user_set_is_kept():
    _, inside, after = _blas_probe("owned", OMP_NUM_THREADS="2")
    assert (inside, after) == ("None", "None")
    _, inside, after = _blas_probe("owned", OPENBLAS_NUM_THREADS="3")
    assert (inside, after) == ("3", "3")


# In a fresh process: output left in the buffers and an atexit function, then _process.end.
END_PROBE = textwrap.dedent(
    """
    import atexit, sys, threading
    import fastbce._process as p

    if sys.argv[1] != "inside":
        p.own()
    if sys.argv[1] == "thread":  # (a live thread: the ordinary exit, which joins it)
        stop = threading.Event()
        threading.Thread(target=stop.wait, args=(0.5,)).start()
        atexit.register(stop.set)
    atexit.register(lambda: print("atexit", file=sys.stderr))
    print("result")
    status = p.end(3)
    print("returned", status)
    sys.exit(status)
    """
)


@pytest.mark.parametrize(
    "mode, out",
    [
        ("owned", "result\n"),
        ("inside", "result\nreturned 3\n"),
        ("thread", "result\nreturned 3\n"),
    ],
)
def test_the_command_process_ends_without_teardown_after_its_output(mode, out):
    done = subprocess.run(
        [sys.executable, "-c", END_PROBE, mode], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, out, "atexit\n")
