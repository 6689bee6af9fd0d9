"""What this build of fastbce is and how it runs (``fastbce.build_info()``, ``fastbce info``)."""

from __future__ import annotations

import platform
from typing import Any

from . import _core
from ._version import __version__


def build_info() -> dict[str, Any]:
    """What this build is and how it runs here (``fastbce info`` prints it).

    Returns
    -------
    dict
        ``version``; ``targets_compiled``, the SIMD tiers in this build; ``targets_supported``,
        those this CPU can run; ``target``, the one in use (the best supported, or the one named
        by the environment variable FASTBCE_FORCE_TARGET); ``line_fetch``, how calls of 16 MiB
        of input or more fetch it from memory (``"touch"``: each tile reads its cache lines first
        and prefetches the next tile's; ``"hardware"``: the CPU's prefetchers alone; by default
        ``"hardware"`` on AMD CPUs and ``"touch"`` elsewhere, or as the environment variable
        FASTBCE_LINE_FETCH says; results are the same either way); ``default_threads``, the
        threads a large call uses; ``machine`` and ``python``.

    Examples
    --------
    >>> import fastbce
    >>> info = fastbce.build_info()
    >>> info["version"] == fastbce.__version__
    True
    >>> info["target"] in info["targets_supported"]
    True
    >>> sorted(info)  # doctest: +NORMALIZE_WHITESPACE
    ['default_threads', 'line_fetch', 'machine', 'python', 'target', 'targets_compiled',
     'targets_supported', 'version']
    """
    return {
        "version": __version__,
        "targets_compiled": list(_core.compiled_targets()),
        "targets_supported": list(_core.supported_targets()),
        "target": _core.active_target(),
        "line_fetch": _core.line_fetch(),
        "default_threads": _core.default_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
