"""What the XGBoost and LightGBM adapters share: the options they take, their checks, and the
calls an objective and a metric make."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._api import binary_crossentropy
from ._grad import binary_crossentropy_grad

# The options of binary_crossentropy_grad an objective takes, and of the loss a metric takes.
GRAD_OPTIONS = ("label_smoothing", "pos_weight", "gamma", "alpha", "hessian", "validate", "threads")
LOSS_OPTIONS = ("label_smoothing", "pos_weight", "gamma", "alpha", "validate", "threads")


def check_option_names(options: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """TypeError naming `where` (e.g. "fastbce.xgboost.objective") for an unknown option."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"{where}() got unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def checked_objective_options(options: dict[str, Any], where: str, library: str) -> dict[str, Any]:
    """The objective's options, checked now on a tiny input: ``hessian`` defaults to "clipped"
    (both libraries need Hessians that are not negative, see docs/gradients.md) and may not be
    "none" (the library needs a Hessian)."""
    check_option_names(options, GRAD_OPTIONS, where)
    options = {"hessian": "clipped", **options}
    if options["hessian"] == "none":
        raise ValueError(f"hessian='none' gives {library} no Hessian; use 'clipped' or 'exact'")
    binary_crossentropy_grad(np.zeros(1), np.zeros(1, np.float32), **options)
    return options


def checked_metric_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    """The metric's options, checked now on a tiny input."""
    check_option_names(options, LOSS_OPTIONS, where)
    binary_crossentropy(np.zeros(1), np.zeros(1, np.float32), from_logits=True, **options)
    return options


def weighted_mean_loss(y: Any, margins: Any, weight: Any, options: dict[str, Any]) -> float:
    """The metric's value: the weighted mean loss of raw margins."""
    return float(
        binary_crossentropy(
            y, margins, from_logits=True, sample_weight=weight, reduction="weighted_mean", **options
        )
    )
