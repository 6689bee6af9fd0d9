"""fastbce objectives and metrics for XGBoost (``pip install 'fastbce[xgboost]'``).

One callable serves both of XGBoost's call signatures:

    import xgboost, fastbce.xgboost

    booster = xgboost.train(
        {"objective": "binary:logistic", "tree_method": "hist"}, dtrain, 100,
        obj=fastbce.xgboost.objective(gamma=2.0, alpha=0.25),
        custom_metric=fastbce.xgboost.metric(gamma=2.0, alpha=0.25),
    )
    clf = xgboost.XGBClassifier(
        objective=fastbce.xgboost.objective(gamma=2.0),
        eval_metric=fastbce.xgboost.metric(gamma=2.0),
    )

The objective reads raw margins (XGBoost passes margins to a custom objective) and returns the
gradient and Hessian of ``fastbce.binary_crossentropy`` from logits with the given options,
multiplied by the dataset's (or the estimator's) sample weights. The metric is the weighted mean
loss with the same options, from margins: XGBoost passes margins to a custom metric when the
objective is custom too. docs/gradients.md says how to choose ``base_score`` for a focal model.
"""

from __future__ import annotations

import ctypes
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
    import xgboost as _xgb
except ImportError as e:  # pragma: no cover - exercised in a subprocess without xgboost
    raise ImportError(
        "fastbce.xgboost needs XGBoost, which is not installed: pip install 'fastbce[xgboost]'"
    ) from e

__all__ = ["metric", "objective"]


# XGBoost's C API: XGDMatrixGetFloatInfo gives a pointer to a DMatrix's own float field (no
# copy); None where this XGBoost's Python package does not expose its library handle.
_GET_FLOAT_INFO = getattr(getattr(_xgb.core, "_LIB", None), "XGDMatrixGetFloatInfo", None)


def _float_info(dmatrix: Any, field: str) -> Any:
    """A read-only view of the DMatrix's float field ("label", "weight"; None if empty), valid
    while the DMatrix keeps it: XGBoost's own storage, so always its current values (set_label
    and set_weight rewrite it), without the copy DMatrix.get_label makes on every call (a third
    of the objective's time at 1e6 rows, docs/benchmarks.md). Falls back to that copy where
    the C call is not available."""
    if _GET_FLOAT_INFO is not None:
        length, data = ctypes.c_uint64(), ctypes.POINTER(ctypes.c_float)()
        status = _GET_FLOAT_INFO(
            dmatrix.handle, field.encode(), ctypes.byref(length), ctypes.byref(data)
        )
        if status == 0:
            if length.value == 0:
                return None
            view = np.ctypeslib.as_array(data, shape=(length.value,))
            view.flags.writeable = False
            return view
    values = dmatrix.get_label() if field == "label" else dmatrix.get_weight()
    return values if values.size else None


def _labels_margins_weights(a: Any, b: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """(labels, margins, weights or None) from either call signature. The DMatrix's labels and
    weights are views of its own arrays: use them only during the call."""
    if isinstance(b, _xgb.DMatrix):  # xgboost.train: (margins, dtrain)
        margins = np.asarray(a)
        labels = _float_info(b, "label")
        if labels is not None and labels.size == margins.size:
            labels = labels.reshape(margins.shape)  # (multi-target labels are stored flat)
        else:  # its own shape: the loss's check names the mismatch
            labels = b.get_label()
        return labels, margins, _float_info(b, "weight")
    return a, np.asarray(b), sample_weight  # scikit-learn estimators: (y_true, y_pred, weight)


def objective(**options: Any) -> Any:
    """An XGBoost objective: the gradient and Hessian of the loss with these options.

    Options: those of ``fastbce.binary_crossentropy_grad`` (``label_smoothing``,
    ``pos_weight``, ``gamma``, ``alpha``, ``hessian``, ``validate``, ``threads``); ``hessian``
    defaults to ``"clipped"`` here (XGBoost clips negative Hessians to 0 itself, see
    docs/gradients.md); without focal terms it equals the exact Hessian. With no options this is
    XGBoost's ``binary:logistic`` objective. The options are checked now, on a tiny input.

    Examples
    --------
    The scikit-learn estimators' call, ``(y_true, raw margins)``:

    >>> import numpy as np
    >>> import fastbce.xgboost
    >>> objective = fastbce.xgboost.objective()
    >>> grad, hess = objective(np.array([0, 1]), np.array([-2.2, 1.4], np.float32))
    >>> hess.round(4)
    array([0.0898, 0.1587], dtype=float32)
    """
    options = checked_objective_options(options, "fastbce.xgboost.objective", "XGBoost", True)

    outputs = ReusedOutputs()

    def fastbce_objective(a: Any, b: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        y, margins, weight = _labels_margins_weights(a, b, sample_weight)
        return objective_call(y, margins, weight, options, outputs)

    return fastbce_objective


def metric(**options: Any) -> Any:
    """An XGBoost metric: the weighted mean loss with these options, from margins.

    For ``xgboost.train(custom_metric=...)`` it returns ``(name, value)``; for the scikit-learn
    estimators' ``eval_metric`` the value (the name is the function's, ``fastbce_loss``).
    Options: ``label_smoothing``, ``pos_weight``, ``gamma``, ``alpha``, ``validate``, ``threads``.
    With no options the value is XGBoost's ``logloss`` (up to its clipping of probabilities).
    Pair it with :func:`objective`: with a built-in objective XGBoost hands a custom metric
    probabilities, not margins, and the value read from them as logits means nothing.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce.xgboost
    >>> metric = fastbce.xgboost.metric()
    >>> round(metric(np.array([0, 1, 1, 0]), np.array([-2.2, 1.4, 0.4, -0.8], np.float32)), 4)
    0.3024
    """
    options = checked_metric_options(options, "fastbce.xgboost.metric", True)

    def fastbce_loss(a: Any, b: Any, sample_weight: Any = None) -> Any:
        y, margins, weight = _labels_margins_weights(a, b, sample_weight)
        value = weighted_mean_loss(y, margins, weight, options)
        return ("fastbce_loss", value) if isinstance(b, _xgb.DMatrix) else value

    return fastbce_loss
