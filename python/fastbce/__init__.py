"""fastbce: binary cross-entropy at memory speed.

A vectorised, multi-threaded C++ kernel under a thin NumPy API. The contract (formulas, options,
shapes, errors) is shared/SPEC.md; see README.md for examples.
"""

from __future__ import annotations

from ._accumulator import LossAccumulator, encode_labels
from ._api import binary_crossentropy, binary_focal_crossentropy
from ._evaluate import evaluate
from ._info import build_info

__version__ = "0.1.0"

__all__ = [
    "LossAccumulator",
    "__version__",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "build_info",
    "encode_labels",
    "evaluate",
]
