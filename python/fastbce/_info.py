"""What this build of fastbce is and how it runs (``fastbce.build_info()``, ``fastbce info``)."""

from __future__ import annotations

import platform
from typing import Any

from . import _core
from ._version import __version__


def build_info() -> dict[str, Any]:
    """The SIMD tiers compiled into this build, those this CPU supports, the one in use (the best
    supported, or FASTBCE_FORCE_TARGET), and the default number of threads."""
    return {
        "version": __version__,
        "targets_compiled": list(_core.compiled_targets()),
        "targets_supported": list(_core.supported_targets()),
        "target": _core.active_target(),
        "default_threads": _core.default_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
