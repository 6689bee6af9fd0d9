"""What the XGBoost and LightGBM adapters share: the options they take and their check."""

from __future__ import annotations

from typing import Any

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
