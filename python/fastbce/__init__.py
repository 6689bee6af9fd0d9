"""fastbce: binary cross-entropy at memory speed.

A vectorised, multi-threaded C++ kernel under a thin NumPy API. The contract (formulas, options,
shapes, errors) is docs/reference.md; see README.md for examples.

The public names are imported on first use (PEP 562), so that the command line starts without
NumPy and the kernel when it does not need them (``fastbce score --help``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._accumulator import LossAccumulator
    from ._api import binary_crossentropy, binary_focal_crossentropy
    from ._evaluate import evaluate
    from ._grad import binary_crossentropy_grad
    from ._info import build_info
    from ._labels import encode_labels

__all__ = [
    "LossAccumulator",
    "__version__",
    "binary_crossentropy",
    "binary_crossentropy_grad",
    "binary_focal_crossentropy",
    "build_info",
    "encode_labels",
    "evaluate",
]

_WHERE = {  # public name -> the module that defines it
    "LossAccumulator": "._accumulator",
    "binary_crossentropy": "._api",
    "binary_crossentropy_grad": "._grad",
    "binary_focal_crossentropy": "._api",
    "build_info": "._info",
    "encode_labels": "._labels",
    "evaluate": "._evaluate",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fastbce' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # (the next access does not come here)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
