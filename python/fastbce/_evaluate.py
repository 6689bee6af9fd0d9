"""``fastbce.evaluate``: the evaluation report (docs/report.md) of one in-memory input."""

from __future__ import annotations

from typing import Any

from ._accumulator import LossAccumulator

__all__ = ["evaluate"]


def evaluate(
    y_true: Any,
    y_pred: Any,
    *,
    groups: Any = None,
    sample_weight: Any = None,
    ignore_label: float | None = None,
    logit_offset: float = 0.0,
    top_losses: int = 0,
    **loss_options: Any,
) -> dict[str, Any]:
    """The evaluation report of labels ``y_true`` and predictions ``y_pred`` in one pass.

    Returns a dict with the loss reductions ("rows", "sum", "mean", "weighted_mean") and the
    report's keys: "weight", "log_loss", "base_rate", "mean_prediction", "calibration",
    "normalized_entropy", "brier", "loss_positive", "loss_negative", "std_error", "ci95", "auc",
    "auc_bound", "ece", "reliability", "omitted", "ignored" (and "top_losses" when
    ``top_losses`` > 0), with the same keys per group under "groups" (``groups``: one label per
    row) or per slicing under "slices" (``groups``: a dict of such label arrays).

    ``ignore_label`` skips the rows with that label; ``logit_offset`` is added to every logit
    (``from_logits=True`` only); ``top_losses`` lists the rows of largest loss. Every other
    keyword is a loss option of :func:`fastbce.binary_crossentropy` (``from_logits``,
    ``epsilon``, ``label_smoothing``, ``pos_weight``, ``gamma``, ``alpha``, ``nan_policy``,
    ``validate``, ``threads``). Never warns; keys with nothing to divide by are NaN.

    >>> import numpy as np, fastbce
    >>> r = fastbce.evaluate(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.4]))
    >>> round(r["auc"], 3), r["rows"], round(r["base_rate"], 2)
    (1.0, 4, 0.5)
    """
    accepted = ("reduction", "out")
    for name in accepted:
        if name in loss_options:
            raise TypeError(f"evaluate() got an unexpected keyword argument {name!r}")
    try:
        acc = LossAccumulator(
            ignore_label=ignore_label,
            logit_offset=logit_offset,
            top_losses=top_losses,
            **loss_options,
        )
    except TypeError as e:
        raise TypeError(str(e).replace("LossAccumulator.__init__()", "evaluate()")) from None
    return acc.update(y_true, y_pred, sample_weight, groups).result()
