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

    Parameters
    ----------
    y_true, y_pred : array_like
        As in ``binary_crossentropy``.
    groups : array_like or dict of array_like, optional
        One label per row: the report per group comes under "groups". A dict of such label
        arrays, one per slicing, reports each slicing under "slices".
    sample_weight : array_like or float, optional
        As in ``binary_crossentropy``.
    ignore_label : float, optional
        Rows with this label count in no key (they are reported as "ignored").
    logit_offset : float, default 0.0
        Added to every logit before anything else (``from_logits=True`` only; a ValueError
        with probabilities).
    top_losses : int, default 0
        How many rows of largest loss to list under "top_losses".
    **loss_options
        The loss options of ``binary_crossentropy``: ``from_logits``, ``epsilon``,
        ``label_smoothing``, ``pos_weight``, ``gamma``, ``alpha``, ``nan_policy``,
        ``validate``, ``threads``.

    Returns
    -------
    dict
        The loss reductions ("rows", "sum", "mean", "weighted_mean") and the report's keys:
        "weight", "log_loss", "base_rate", "mean_prediction", "calibration",
        "normalized_entropy", "brier", "loss_positive", "loss_negative", "std_error", "ci95",
        "auc", "auc_bound", "ece", "reliability", "omitted", "ignored" (and "top_losses" when
        ``top_losses`` > 0), with the same keys per group or slicing (docs/report.md). Keys
        with nothing to divide by are NaN; it never warns.

    Raises
    ------
    TypeError
        As ``binary_crossentropy``, and for ``reduction`` or ``out``.
    ValueError
        As ``binary_crossentropy``, and for a ``logit_offset`` with probabilities.

    See Also
    --------
    LossAccumulator : the same report over data seen in pieces.

    Examples
    --------
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
