"""fastbce.xgboost and fastbce.lightgbm: the objectives and metrics in real training runs.

Without options they reproduce the libraries' own binary logistic objective and log loss; with
focal, class-balancing, pos_weight, label smoothing and sample weights the loss falls and the
trees equal those grown from a NumPy objective written here from the formulas (independently of
the kernel's arrangement of them). Small data (2,000 rows, a few rounds) keeps this quick.
"""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

import fastbce.lightgbm  # noqa: E402
import fastbce.xgboost  # noqa: E402

ROUNDS = 6
FOCAL = {"gamma": 2.0, "alpha": 0.25, "pos_weight": 1.5, "label_smoothing": 0.05}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1414)
    n, d = 2000, 8
    X = rng.normal(size=(n, d)).astype(np.float32)
    margin = X[:, 0] * 1.5 - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(np.float32)
    w = rng.uniform(0.2, 2.0, n).astype(np.float32)
    return X, y, w


def numpy_focal_objective(
    y, x, w, *, gamma=0.0, alpha=None, pos_weight=1.0, label_smoothing=0.0, clip=True
):
    """Gradient and Hessian of the loss (docs/reference.md section 1) by the chain rule in p,
    float64: ys = y(1-s) + s/2, p = sigma(x), u = 1 - p_t, F = u^gamma, B the class balance."""
    x = np.asarray(x, np.float64)
    ys = np.asarray(y, np.float64) * (1 - label_smoothing) + label_smoothing / 2
    p = 1 / (1 + np.exp(-x))
    q = pos_weight
    ce = -(q * ys * np.log(p) + (1 - ys) * np.log1p(-p))
    d_ce = (1 - ys) * p - q * ys * (1 - p)
    d2_ce = (q * ys + 1 - ys) * p * (1 - p)
    u = ys * (1 - p) + (1 - ys) * p
    du = (1 - 2 * ys) * p * (1 - p)
    d2u = du * (1 - 2 * p)
    f = u**gamma
    df = gamma * u ** (gamma - 1) * du if gamma else 0.0 * u
    d2f = (
        gamma * (gamma - 1) * u ** (gamma - 2) * du**2 + gamma * u ** (gamma - 1) * d2u
        if gamma
        else 0.0 * u
    )
    b = 1.0 if alpha is None else alpha * ys + (1 - alpha) * (1 - ys)
    scale = (1.0 if w is None else np.asarray(w, np.float64)) * b
    grad = scale * (df * ce + f * d_ce)
    hess = scale * (d2f * ce + 2 * df * d_ce + f * d2_ce)
    if clip:
        hess = np.maximum(hess, scale * f * d2_ce)
    return grad, hess


def _weighted_logit(y, w=None):
    m = np.average(y, weights=w)
    return float(np.log(m / (1 - m)))


# --------------------------------------------------------------------------- XGBoost

XGB_PARAMS = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 3,
    "eta": 0.3,
    "nthread": 2,
    "eval_metric": "logloss",
}


def test_xgboost_train_reproduces_binary_logistic(data):
    X, y, w = data
    for weight in (None, w):
        dtrain = xgb.DMatrix(X, label=y, weight=weight)
        # XGBoost estimates base_score for its own objectives only: give both the same start
        params = dict(XGB_PARAMS, base_score=float(np.average(y, weights=weight)))
        builtin_log: dict = {}
        builtin = xgb.train(
            params,
            dtrain,
            ROUNDS,
            evals=[(dtrain, "t")],
            evals_result=builtin_log,
            verbose_eval=False,
        )
        ours_log: dict = {}
        ours = xgb.train(
            params,
            dtrain,
            ROUNDS,
            evals=[(dtrain, "t")],
            obj=fastbce.xgboost.objective(),
            custom_metric=fastbce.xgboost.metric(),
            evals_result=ours_log,
            verbose_eval=False,
        )
        np.testing.assert_allclose(
            ours.predict(dtrain, output_margin=True),
            builtin.predict(dtrain, output_margin=True),
            rtol=1e-5,
            atol=1e-5,
        )
        # the metric (from margins) is the built-in log loss of the same model
        np.testing.assert_allclose(
            ours_log["t"]["fastbce_loss"], builtin_log["t"]["logloss"], rtol=1e-5
        )
        np.testing.assert_allclose(ours_log["t"]["logloss"], builtin_log["t"]["logloss"], rtol=1e-5)


def test_xgbclassifier_reproduces_binary_logistic(data):
    X, y, w = data
    common = {
        "n_estimators": ROUNDS,
        "max_depth": 3,
        "learning_rate": 0.3,
        "tree_method": "hist",
        "n_jobs": 2,
        "base_score": float(np.average(y, weights=w)),
    }
    builtin = xgb.XGBClassifier(objective="binary:logistic", eval_metric="logloss", **common)
    builtin.fit(X, y, sample_weight=w, eval_set=[(X, y)], sample_weight_eval_set=[w], verbose=False)
    ours = xgb.XGBClassifier(
        objective=fastbce.xgboost.objective(), eval_metric=fastbce.xgboost.metric(), **common
    )
    ours.fit(X, y, sample_weight=w, eval_set=[(X, y)], sample_weight_eval_set=[w], verbose=False)
    np.testing.assert_allclose(
        ours.predict(X, output_margin=True),
        builtin.predict(X, output_margin=True),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        ours.evals_result()["validation_0"]["fastbce_loss"],
        builtin.evals_result()["validation_0"]["logloss"],
        rtol=1e-5,
    )


def _xgb_trees(booster):
    frame = booster.trees_to_dataframe()
    return frame[["Tree", "Node", "Feature", "Split"]], frame["Gain"].to_numpy()


def _train_with_fastbce(params, dtrain, options):
    """(booster, the metric's value after each round) of fastbce's objective and metric."""
    log: dict = {}
    booster = xgb.train(
        params,
        dtrain,
        ROUNDS,
        obj=fastbce.xgboost.objective(**options),
        custom_metric=fastbce.xgboost.metric(**options),
        evals=[(dtrain, "t")],
        evals_result=log,
        verbose_eval=False,
    )
    return booster, log["t"]["fastbce_loss"]


@pytest.mark.parametrize("options", [FOCAL, {"gamma": 0.5}, {"pos_weight": 3.0, "alpha": 0.7}])
def test_xgboost_options_train_and_match_numpy(data, options):
    X, y, w = data
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    params = dict(XGB_PARAMS, eval_metric=[])
    ours, losses = _train_with_fastbce(params, dtrain, options)
    assert losses[-1] < losses[0] and all(np.diff(losses) < 0), losses

    def reference(preds, dmatrix):
        return numpy_focal_objective(dmatrix.get_label(), preds, dmatrix.get_weight(), **options)

    theirs = xgb.train(params, dtrain, ROUNDS, obj=reference)
    ours_split, ours_gain = _xgb_trees(ours)
    theirs_split, theirs_gain = _xgb_trees(theirs)
    assert ours_split.equals(theirs_split)
    np.testing.assert_allclose(ours_gain, theirs_gain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        ours.predict(dtrain, output_margin=True),
        theirs.predict(dtrain, output_margin=True),
        rtol=1e-4,
        atol=1e-5,
    )


def test_xgboost_reads_the_current_labels_and_weights(data):
    """The objective and metric read a DMatrix's labels and weights without copying them: after
    set_label / set_weight (same size, XGBoost rewrites its array in place; or a new size) the
    next call sees the new values, as from get_label / get_weight, and the views it used are not
    writeable."""
    X, y, w = data
    dtrain = xgb.DMatrix(X, label=y)
    objective, metric = fastbce.xgboost.objective(**FOCAL), fastbce.xgboost.metric(**FOCAL)
    margins = np.linspace(-3, 3, y.size).astype(np.float32)

    def expected():
        weight = dtrain.get_weight()
        weight = weight if weight.size else None
        grad = fastbce.binary_crossentropy_grad(
            dtrain.get_label(), margins, sample_weight=weight, hessian="clipped", **FOCAL
        )
        loss = fastbce.binary_crossentropy(
            dtrain.get_label(), margins, from_logits=True, sample_weight=weight,
            reduction="weighted_mean", **FOCAL,
        )  # fmt: skip
        return grad, float(loss)

    for change in (
        lambda: None,
        lambda: dtrain.set_label(1 - y),  # same size: the same storage rewritten
        lambda: dtrain.set_weight(w),
        lambda: dtrain.set_weight(2 * w),
        lambda: dtrain.set_label(np.where(np.arange(y.size) % 3 == 0, 0.25, y)),
    ):
        change()
        (grad, hess), loss = expected()
        got_grad, got_hess = objective(margins, dtrain)
        np.testing.assert_array_equal(got_grad, grad)
        np.testing.assert_array_equal(got_hess, hess)
        assert metric(margins, dtrain) == ("fastbce_loss", loss)
    labels, _, weight = fastbce.xgboost._labels_margins_weights(margins, dtrain, None)
    assert not labels.flags.writeable and not weight.flags.writeable
    np.testing.assert_array_equal(labels, dtrain.get_label())

    # a new number of rows: a new DMatrix (XGBoost checks the label length against the rows)
    small = xgb.DMatrix(X[:10], label=y[:10])
    np.testing.assert_array_equal(
        objective(margins[:10], small)[0],
        fastbce.binary_crossentropy_grad(y[:10], margins[:10], hessian="clipped", **FOCAL)[0],
    )


def _address(array):
    return array.__array_interface__["data"][0]


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_objective_reuses_only_unreferenced_outputs(data, library):
    """An objective writes its next derivatives into the arrays it returned last only when
    nothing else references them (the library has copied them and let them go): arrays the
    caller keeps, or a view of them, keep their values; another shape or dtype gets new ones."""
    X, y, w = data
    adapter = fastbce.xgboost if library == "xgboost" else fastbce.lightgbm
    objective = adapter.objective(**FOCAL)
    m1 = np.linspace(-3, 3, y.size).astype(np.float32)
    m2 = (m1[::-1] * 0.5).copy()

    def expected(margins, n=y.size):
        return fastbce.binary_crossentropy_grad(y[:n], margins, hessian="clipped", **FOCAL)

    grad, hess = objective(y, m1)
    first = _address(grad), _address(hess)
    del grad, hess
    grad, hess = objective(y, m2)  # the same arrays, written again
    assert (_address(grad), _address(hess)) == first
    np.testing.assert_array_equal(grad, expected(m2)[0])
    np.testing.assert_array_equal(hess, expected(m2)[1])

    kept = objective(y, m1)  # kept by the caller: the next call writes new arrays
    again = objective(y, m2)
    assert _address(again[0]) != _address(kept[0]) and _address(again[1]) != _address(kept[1])
    np.testing.assert_array_equal(kept[0], expected(m1)[0])
    np.testing.assert_array_equal(kept[1], expected(m1)[1])
    view, hess_view = again[0][5:], memoryview(again[1])  # a view or a buffer of either
    del kept, again
    before = view.copy(), np.array(hess_view)
    objective(y, m1)
    np.testing.assert_array_equal(view, before[0])
    np.testing.assert_array_equal(np.asarray(hess_view), before[1])
    del view, hess_view
    # another shape, another working dtype: new arrays of their own
    np.testing.assert_array_equal(objective(y[:10], m2[:10])[0], expected(m2[:10], 10)[0])
    g64, h64 = objective(y, m2.astype(np.float64))
    assert g64.dtype == h64.dtype == np.float64
    np.testing.assert_array_equal(objective(y, m2)[1], expected(m2)[1])


def test_xgboost_multi_target_with_a_pos_weight_per_target(data):
    """A 3-target model: the per-target pos_weight of binary_crossentropy_grad is accepted by the
    objective and the metric, and trains as the NumPy reference objective column by column."""
    X, y, w = data
    rng = np.random.default_rng(7)
    Y = np.column_stack([y, (X[:, 4] > 0).astype(np.float32), (rng.random(y.size) < 0.2)])
    Y = Y.astype(np.float32)
    pos_weight = np.array([1.0, 2.0, 4.0])
    dtrain = xgb.DMatrix(X, label=Y, weight=w)
    params = dict(XGB_PARAMS, eval_metric=[])
    ours, losses = _train_with_fastbce(params, dtrain, {"pos_weight": pos_weight})
    assert losses[-1] < losses[0], losses

    def reference(preds, dmatrix):
        labels = dmatrix.get_label().reshape(preds.shape)
        weight = dmatrix.get_weight()[:, None]
        return numpy_focal_objective(labels, preds, weight, pos_weight=pos_weight)

    theirs = xgb.train(params, dtrain, ROUNDS, obj=reference)
    margins = ours.predict(dtrain, output_margin=True)
    assert margins.shape == Y.shape
    np.testing.assert_allclose(
        margins, theirs.predict(dtrain, output_margin=True), rtol=1e-4, atol=1e-5
    )
    # the metric's last value is the weighted mean loss of the final margins
    want = fastbce.binary_crossentropy(
        Y,
        margins,
        from_logits=True,
        pos_weight=pos_weight,
        sample_weight=w,
        reduction="weighted_mean",
    )
    assert losses[-1] == pytest.approx(float(want), rel=1e-6)


def test_xgboost_one_target_with_a_pos_weight_of_one_target(data):
    """[q] for a one-target model is q: XGBoost gives its margins as (n,), where [q] was read
    as one weight per class of n classes and training failed at its first call."""
    X, y, w = data
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    params = dict(XGB_PARAMS, eval_metric=[])
    listed, losses = _train_with_fastbce(params, dtrain, {"pos_weight": [2.0]})
    scalar, want = _train_with_fastbce(params, dtrain, {"pos_weight": 2.0})
    assert losses == want
    np.testing.assert_array_equal(
        listed.predict(dtrain, output_margin=True), scalar.predict(dtrain, output_margin=True)
    )


@pytest.mark.parametrize("make", ["objective", "metric"])
def test_adapters_check_the_shape_of_pos_weight(make):
    with pytest.raises(
        ValueError,
        match=rf"xgboost\.{make}\(\): pos_weight must be a scalar or 1-D, "
        r"one per target; got shape \(2, 3\)",
    ):
        getattr(fastbce.xgboost, make)(pos_weight=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"one per target; got shape \(0,\)"):
        getattr(fastbce.xgboost, make)(pos_weight=[])  # (not at the first round: now)
    with pytest.raises(
        ValueError,
        match=rf"lightgbm\.{make}\(\): pos_weight must be a scalar "
        r"\(one margin a row\); got shape \(3,\)",
    ):
        getattr(fastbce.lightgbm, make)(pos_weight=np.ones(3))
    # a scalar in any form is one weight
    getattr(fastbce.lightgbm, make)(pos_weight=np.float32(2.0))
    getattr(fastbce.xgboost, make)(pos_weight=np.array(2.0))


def test_xgboost_adapter_errors():
    with pytest.raises(TypeError, match=r"unknown option\(s\) sample_weight"):
        fastbce.xgboost.objective(sample_weight=1.0)
    with pytest.raises(ValueError, match=r"gamma must be finite and >= 0"):
        fastbce.xgboost.objective(gamma=-1.0)
    with pytest.raises(ValueError, match=r"hessian='none'"):
        fastbce.xgboost.objective(hessian="none")
    with pytest.raises(TypeError, match=r"unknown option\(s\) hessian"):
        fastbce.xgboost.metric(hessian="exact")


# --------------------------------------------------------------------------- LightGBM

LGB_PARAMS = {
    "num_leaves": 7,
    "learning_rate": 0.3,
    "min_data_in_leaf": 20,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def test_lightgbm_train_reproduces_binary(data):
    X, y, w = data
    for weight in (None, w):
        builtin_log: dict = {}
        dbuiltin = lgb.Dataset(X, label=y, weight=weight)
        builtin = lgb.train(
            dict(LGB_PARAMS, objective="binary", metric="binary_logloss"),
            dbuiltin,
            ROUNDS,
            valid_sets=[dbuiltin],
            valid_names=["t"],
            callbacks=[lgb.record_evaluation(builtin_log)],
        )
        # a custom objective starts at 0: the fair start is the built-in's boost_from_average
        init = _weighted_logit(y, weight)
        ours_log: dict = {}
        dours = lgb.Dataset(X, label=y, weight=weight, init_score=np.full(len(y), init))
        ours = lgb.train(
            dict(LGB_PARAMS, objective=fastbce.lightgbm.objective(), metric="None"),
            dours,
            ROUNDS,
            valid_sets=[dours],
            valid_names=["t"],
            feval=fastbce.lightgbm.metric(),
            callbacks=[lgb.record_evaluation(ours_log)],
        )
        np.testing.assert_allclose(
            ours.predict(X, raw_score=True) + init,
            builtin.predict(X, raw_score=True),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            ours_log["t"]["fastbce_loss"], builtin_log["t"]["binary_logloss"], rtol=1e-5
        )


# (LightGBM 4.7 renames eval_set to eval_X/eval_y; eval_set works on every 4.x)
@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_lgbmclassifier_reproduces_binary(data):
    X, y, w = data
    common = {
        "n_estimators": ROUNDS,
        "num_leaves": 7,
        "learning_rate": 0.3,
        "min_child_samples": 20,
        "n_jobs": 2,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    builtin = lgb.LGBMClassifier(objective="binary", **common)
    builtin.fit(
        X,
        y,
        sample_weight=w,
        eval_set=[(X, y)],
        eval_sample_weight=[w],
        eval_metric="binary_logloss",
    )
    init = np.full(len(y), _weighted_logit(y, w))
    ours = lgb.LGBMClassifier(objective=fastbce.lightgbm.objective(), **common)
    ours.fit(
        X,
        y,
        sample_weight=w,
        init_score=init,
        eval_set=[(X, y)],
        eval_sample_weight=[w],
        eval_init_score=[init],
        eval_metric=fastbce.lightgbm.metric(),
    )
    np.testing.assert_allclose(
        ours.predict(X, raw_score=True) + init,
        builtin.predict(X, raw_score=True),
        rtol=1e-5,
        atol=1e-5,
    )
    # (the eval set is the training set, which LightGBM names "training")
    (ours_log,) = ours.evals_result_.values()
    (builtin_log,) = builtin.evals_result_.values()
    np.testing.assert_allclose(ours_log["fastbce_loss"], builtin_log["binary_logloss"], rtol=1e-5)


def _lgb_trees(booster):
    frame = booster.trees_to_dataframe()
    return (
        frame[["tree_index", "node_depth", "split_feature", "threshold"]],
        frame["value"].to_numpy(),
    )


@pytest.mark.parametrize("options", [FOCAL, {"gamma": 0.5}, {"pos_weight": 3.0, "alpha": 0.7}])
def test_lightgbm_options_train_and_match_numpy(data, options):
    X, y, w = data
    log: dict = {}
    dtrain = lgb.Dataset(X, label=y, weight=w, free_raw_data=False)
    ours = lgb.train(
        dict(LGB_PARAMS, objective=fastbce.lightgbm.objective(**options), metric="None"),
        dtrain,
        ROUNDS,
        valid_sets=[dtrain],
        valid_names=["t"],
        feval=fastbce.lightgbm.metric(**options),
        callbacks=[lgb.record_evaluation(log)],
    )
    losses = log["t"]["fastbce_loss"]
    assert losses[-1] < losses[0] and all(np.diff(losses) < 0), losses

    def reference(y_true, y_pred, weight):  # the scikit-learn signature, for LGBMClassifier
        return numpy_focal_objective(y_true, y_pred, weight, **options)

    common = {
        "n_estimators": ROUNDS,
        "num_leaves": 7,
        "learning_rate": 0.3,
        "min_child_samples": 20,
        "n_jobs": 2,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    theirs = lgb.LGBMClassifier(objective=reference, **common).fit(X, y, sample_weight=w)
    mine = lgb.LGBMClassifier(objective=fastbce.lightgbm.objective(**options), **common)
    mine.fit(X, y, sample_weight=w)
    for model in (ours, mine.booster_):
        ours_split, ours_value = _lgb_trees(model)
        theirs_split, theirs_value = _lgb_trees(theirs.booster_)
        assert ours_split.equals(theirs_split)
        np.testing.assert_allclose(ours_value, theirs_value, rtol=1e-4, atol=1e-6)


def test_the_docs_best_constant_margin_recipe_on_imbalanced_labels():
    """docs/gradients.md's recipe for a focal model's starting margin: its undamped Newton step
    diverged to NaN with 5% positives; the bisection finds the loss's minimum over constants."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "gradients.md").read_text()
    code = re.search(
        r"```python\n(import numpy as np, fastbce\n\ndef best_constant_margin.*?)\n\n", text, re.S
    )
    assert code, "the recipe is in docs/gradients.md"
    space: dict = {}
    exec(code.group(1), space)  # noqa: S102 (the project's own docs)
    for positives in (0.02, 0.05, 0.3, 0.999):
        y = np.zeros(1000)
        y[: int(positives * 1000)] = 1
        for options in ({"gamma": 2.0, "alpha": 0.25}, {"gamma": 2.0}, {"pos_weight": 10.0}):
            c = space["best_constant_margin"](y, **options)
            assert np.isfinite(c), (positives, options)

            def loss(m, options=options, y=y):
                return (
                    fastbce.binary_crossentropy(
                        y, np.full(y.size, m), from_logits=True, reduction="sum", **options
                    )
                    if "gamma" not in options
                    else fastbce.binary_focal_crossentropy(
                        y, np.full(y.size, m), from_logits=True, reduction="sum", **options
                    )
                )

            assert loss(c) <= min(loss(c - 1e-3), loss(c + 1e-3)), (positives, options)
