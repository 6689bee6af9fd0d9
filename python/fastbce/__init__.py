"""fastbce: binary cross-entropy at memory speed.

A vectorised, multi-threaded C++ kernel under a thin NumPy API. The contract (formulas, options,
shapes, errors) is docs/reference.md; see README.md for examples.
"""

from __future__ import annotations

from ._accumulator import LossAccumulator
from ._api import binary_crossentropy, binary_focal_crossentropy
from ._evaluate import evaluate
from ._info import build_info
from ._labels import encode_labels
from ._version import __version__

__all__ = [
    "LossAccumulator",
    "__version__",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "build_info",
    "encode_labels",
    "evaluate",
]
