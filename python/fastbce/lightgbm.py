"""fastbce objectives and metrics for LightGBM (``pip install 'fastbce[lightgbm]'``).

One callable serves both of LightGBM's call signatures:

    import lightgbm, fastbce.lightgbm

    booster = lightgbm.train(
        {"objective": fastbce.lightgbm.objective(gamma=2.0, alpha=0.25), "metric": "None"},
        train_set, 100, valid_sets=[valid_set],
        feval=fastbce.lightgbm.metric(gamma=2.0, alpha=0.25),
    )
    clf = lightgbm.LGBMClassifier(objective=fastbce.lightgbm.objective(gamma=2.0))
    clf.fit(X, y, eval_set=[(X_val, y_val)], eval_metric=fastbce.lightgbm.metric(gamma=2.0))

The objective reads raw scores (LightGBM passes them to a custom objective, init_score
included) and returns the gradient and Hessian of ``fastbce.binary_crossentropy`` from logits
with the given options, multiplied by the dataset's sample weights. A custom objective starts
from a score of 0 (no ``boost_from_average``): pass ``init_score`` (docs/gradients.md). The
metric is the weighted mean loss with the same options, from raw scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._boosting import (
    ReusedOutputs,
    checked_metric_options,
    checked_objective_options,
    objective_call,
    weighted_mean_loss,
)

try:
    import lightgbm as _lgb
except ImportError as e:  # pragma: no cover - exercised in a subprocess without lightgbm
    raise ImportError(
        "fastbce.lightgbm needs LightGBM, which is not installed: pip install 'fastbce[lightgbm]'"
    ) from e

__all__ = ["metric", "objective"]


def _labels_scores_weights(a: Any, b: Any, weight: Any) -> tuple[Any, Any, Any]:
    """(labels, raw scores, weights or None) from either call signature."""
    if isinstance(b, _lgb.Dataset):  # lightgbm.train: (scores, train_set)
        return b.get_label(), np.asarray(a), b.get_weight()
    return a, np.asarray(b), weight  # LGBMClassifier: (y_true, y_pred, weight)


def objective(**options: Any) -> Any:
    """A LightGBM objective: the gradient and Hessian of the loss with these options.

    Options: those of ``fastbce.binary_crossentropy_grad`` (``label_smoothing``,
    ``pos_weight``, ``gamma``, ``alpha``, ``hessian``, ``validate``, ``threads``); ``hessian``
    defaults to ``"clipped"`` here (LightGBM divides by sums of Hessians, which must stay
    positive, see docs/gradients.md); without focal terms it equals the exact Hessian. With no
    options this is LightGBM's ``binary`` objective. The options are checked now.

    Examples
    --------
    The scikit-learn estimators' call, ``(y_true, raw margins)``:

    >>> import numpy as np
    >>> import fastbce.lightgbm
    >>> objective = fastbce.lightgbm.objective()
    >>> grad, hess = objective(np.array([0, 1]), np.array([-2.2, 1.4], np.float32))
    >>> hess.round(4)
    array([0.0898, 0.1587], dtype=float32)
    """
    options = checked_objective_options(options, "fastbce.lightgbm.objective", "LightGBM", False)

    outputs = ReusedOutputs()

    def fastbce_objective(a: Any, b: Any, weight: Any = None) -> tuple[Any, Any]:
        y, scores, w = _labels_scores_weights(a, b, weight)
        return objective_call(y, scores, w, options, outputs)

    return fastbce_objective


def metric(**options: Any) -> Any:
    """A LightGBM metric: ``("fastbce_loss", weighted mean loss, False)`` from raw scores.

    For ``lightgbm.train(feval=...)`` and ``LGBMClassifier.fit(eval_metric=...)``. Options:
    ``label_smoothing``, ``pos_weight``, ``gamma``, ``alpha``, ``validate``, ``threads``. With no
    options the value is LightGBM's ``binary_logloss``. Pair it with :func:`objective`: with the
    built-in ``objective="binary"`` LightGBM hands a custom metric probabilities, not raw
    scores, and the value read from them as logits means nothing.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce.lightgbm
    >>> metric = fastbce.lightgbm.metric()
    >>> name, value, higher_is_better = metric(
    ...     np.array([0, 1, 1, 0]), np.array([-2.2, 1.4, 0.4, -0.8], np.float32)
    ... )
    >>> name, round(value, 4), higher_is_better
    ('fastbce_loss', 0.3024, False)
    """
    options = checked_metric_options(options, "fastbce.lightgbm.metric", False)

    def fastbce_loss(a: Any, b: Any, weight: Any = None) -> tuple[str, float, bool]:
        y, scores, w = _labels_scores_weights(a, b, weight)
        value = weighted_mean_loss(y, scores, w, options)
        return "fastbce_loss", value, False

    return fastbce_loss
