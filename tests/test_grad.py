"""binary_crossentropy_grad: exact derivatives of the loss, on every SIMD tier the CPU has.

Budgets (issue 14): plain cross-entropy grad = sigma(x) - y and hess = sigma(x) sigma(-x) within
4 ulp of mpmath; with focal terms and the other options within 1e-5 (float32) / 1e-11 (float64)
relative of mpmath's derivatives of the loss (docs/reference.md section 1) where the value is not
below 1e-30; finite for every finite logit and every gamma > 0.
"""

from __future__ import annotations

import functools
import zlib

import mpmath
import numpy as np
import pytest

import fastbce

pytestmark = pytest.mark.usefixtures("simd_target")

ULP_BUDGET = 4.0
REL_BUDGET = {"float32": 1e-5, "float64": 1e-11}
TINY = 1e-30


# --------------------------------------------------------------------------- exact values


def _softplus(t):
    return mpmath.log1p(mpmath.exp(t))


def _params(dtype, label_smoothing, pos_weight, gamma, alpha):
    """The options as the kernel takes them: rounded to the working type first."""
    t = np.dtype(dtype).type
    s = t(label_smoothing)
    return {
        "keep": mpmath.mpf(float(t(1) - s)),
        "shift": mpmath.mpf(float(s / t(2))),
        "q": mpmath.mpf(float(t(pos_weight))),
        "gamma": mpmath.mpf(float(t(gamma))),
        "alpha": None if alpha is None else mpmath.mpf(float(t(alpha))),
        "one_minus_alpha": None if alpha is None else mpmath.mpf(float(t(1) - t(alpha))),
    }


def _loss(x, y, w, k):
    """The elementwise loss of section 1 from the logit x (mpmath)."""
    ys = y * k["keep"] + k["shift"]
    ys_c = (1 - y) * k["keep"] + k["shift"]
    ce = k["q"] * ys * _softplus(-x) + ys_c * _softplus(x)
    if k["gamma"] > 0:
        p = 1 / (1 + mpmath.exp(-x))
        ce *= (ys * (1 - p) + ys_c * p) ** k["gamma"]
    if k["alpha"] is not None:
        ce *= k["alpha"] * ys + k["one_minus_alpha"] * ys_c
    return w * ce


def _derivatives(x, y, w, k):
    # precision enough for exp(-|x|) relative to the loss, twice (the second derivative)
    with mpmath.workdps(40 + int(0.9 * abs(x))):
        x, y, w = mpmath.mpf(x), mpmath.mpf(y), mpmath.mpf(w)
        f = functools.partial(_loss, y=y, w=w, k=k)
        return mpmath.diff(f, x, 1), mpmath.diff(f, x, 2), mpmath.diff(f, x, 3)


@functools.cache
def _exact_plain(dtype: str, labels: str):
    x, y = _plain_inputs(dtype, labels)
    grads, hesses = [], []
    with mpmath.workdps(60):
        for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
            with mpmath.workdps(40 + int(0.9 * min(abs(xi), 1e4))):
                p = 1 / (1 + mpmath.exp(-mpmath.mpf(xi)))
                grads.append(p - mpmath.mpf(yi))
                hesses.append(p * (1 - p))
    return grads, hesses


def _plain_inputs(dtype, labels):
    rng = np.random.default_rng(14)
    n = 1200
    x = rng.uniform(-40, 40, n)
    x[: n // 4] = rng.uniform(-0.5, 0.5, n // 4)
    x[n // 4 : n // 2] *= 2.5  # beyond float's normal exp(-|x|) (86)
    edges = [0.0, 1e-30, 1e-8, 0.5, 1.0, 16.0, 30.0, 86.0, 87.0, 88.7, 100.0, 103.0, 700.0]
    x[: 2 * len(edges)] = edges + [-e for e in edges]
    if labels == "hard":
        y = rng.integers(0, 2, n).astype(np.float64)
    else:
        y = rng.random(n)
        y[:5] = [0.0, 1.0, 0.5, 1e-8, 1 - 1e-8]
    return x.astype(dtype), y.astype(dtype)


def _ulps(got: np.ndarray, exact: list, dtype, spacing_of: list | None = None) -> np.ndarray:
    """|got - exact| in units of the spacing of dtype at exact (or at spacing_of)."""
    finfo = np.finfo(dtype)
    out = []
    for g, e, s in zip(got.tolist(), exact, spacing_of or exact, strict=True):
        with mpmath.workdps(40):
            mag = abs(s)
            exponent = int(mpmath.floor(mpmath.log(mag, 2))) if mag else finfo.minexp
            spacing = mpmath.ldexp(1, max(exponent, finfo.minexp) - finfo.nmant)
            out.append(float(abs(mpmath.mpf(g) - e) / spacing))
    return np.array(out)


# --------------------------------------------------------------------------- plain accuracy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_plain_within_4_ulp(dtype, labels):
    x, y = _plain_inputs(dtype, labels)
    grad, hess = fastbce.binary_crossentropy_grad(y, x)
    assert grad.dtype == hess.dtype == np.dtype(dtype)
    exact_g, exact_h = _exact_plain(dtype, labels)
    err_h = _ulps(hess, exact_h, dtype)
    assert err_h.max() <= ULP_BUDGET, (err_h.max(), x[err_h.argmax()])
    err_g = _ulps(grad, exact_g, dtype)
    if labels == "soft":
        # sigma(x) - y cancels where sigma(x) ~ y: there an ulp of sigma(x) (the rounding of
        # exp(-|x|), which no float computation avoids) is many ulps of the difference; the
        # budget is then 4 ulp of the larger of |grad| and y
        scale = [max(abs(e), mpmath.mpf(float(v))) for e, v in zip(exact_g, y, strict=True)]
        err_g = np.minimum(err_g, _ulps(grad, exact_g, dtype, spacing_of=scale))
    assert err_g.max() <= ULP_BUDGET, (err_g.max(), x[err_g.argmax()], y[err_g.argmax()])


def test_closed_form_is_the_derivative_of_the_loss():
    """sigma(x) - y and sigma(x) sigma(-x) are mpmath's derivatives of section 1's loss."""
    k = _params("float64", 0.0, 1.0, 0.0, None)
    for x, y in [(-30.0, 1.0), (-2.0, 0.3), (0.0, 0.0), (5.0, 1.0), (60.0, 0.0)]:
        d1, d2, _ = _derivatives(x, y, 1.0, k)
        with mpmath.workdps(60):
            p = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
            assert abs(d1 - (p - y)) <= 1e-25 * abs(p - y)
            assert abs(d2 - p * (1 - p)) <= 1e-25 * p * (1 - p)


# --------------------------------------------------------------------------- options accuracy

OPTION_SETS = {
    # gamma in {1/2, ..., 4} and outside it
    "gamma_0.5": {"gamma": 0.5},
    "gamma_1": {"gamma": 1.0},
    "gamma_2": {"gamma": 2.0},
    "gamma_4": {"gamma": 4.0},
    "gamma_0.3": {"gamma": 0.3},
    "gamma_1.7": {"gamma": 1.7},
    "gamma_5.5": {"gamma": 5.5},
    "gamma_2_alpha": {"gamma": 2.0, "alpha": 0.25},
    "focal_all": {
        "gamma": 0.7,
        "alpha": 0.6,
        "pos_weight": 3.0,
        "label_smoothing": 0.1,
        "weights": True,
    },
    "focal_pos_weight": {"gamma": 2.5, "pos_weight": 0.2},
    "pos_weight": {"pos_weight": 4.0},
    "smoothing_weights": {"label_smoothing": 0.2, "weights": True},
    "alpha_only": {"alpha": 0.3},
}


def _option_inputs(dtype, name):
    # crc32, not hash(): str hashes change with every interpreter (PYTHONHASHSEED), which made
    # these inputs, and so this test, differ from run to run.
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    n = 240
    x = rng.uniform(-25, 25, n)
    x[:40] = rng.uniform(-1, 1, 40)
    x[40:48] = [-60.0, -45.0, 45.0, 60.0, 0.0, -0.0, 1e-20, -1e-20]
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.random(n)).astype(np.float64)
    w = rng.uniform(0, 3, n)
    return x.astype(dtype), y.astype(dtype), w.astype(dtype)


@functools.cache
def _exact_options(dtype: str, name: str):
    opts = OPTION_SETS[name]
    x, y, w = _option_inputs(dtype, name)
    k = _params(
        dtype,
        opts.get("label_smoothing", 0.0),
        opts.get("pos_weight", 1.0),
        opts.get("gamma", 0.0),
        opts.get("alpha"),
    )
    weights = w if opts.get("weights") else np.ones_like(w)
    triples = [
        _derivatives(float(a), float(b), float(c), k) for a, b, c in zip(x, y, weights, strict=True)
    ]
    return tuple(np.array([float(t[i]) for t in triples]) for i in range(3))


def _call_options(name, w):
    opts = dict(OPTION_SETS[name])
    if opts.pop("weights", False):
        opts["sample_weight"] = w
    return opts


def _check_close(what, got, exact, slope, dtype, x, y):
    """|got - exact| <= budget * |exact| (|exact| >= 1e-30), plus 4 eps |d exact/dx|: where the
    value cancels (near a root of the gradient or Hessian) the rounding of exp(-|x|) in the
    working type, the same as moving x by an ulp of 1, is what remains."""
    eps = float(np.finfo(dtype).eps)
    allowed = REL_BUDGET[dtype] * np.maximum(np.abs(exact), TINY) + 4 * eps * np.abs(slope)
    excess = np.abs(got.astype(np.float64) - exact) / allowed
    i = int(excess.argmax())
    assert excess[i] <= 1.0, (what, excess[i], x[i], y[i], got[i], exact[i], slope[i])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_options_match_mpmath_derivatives(dtype, name):
    x, y, w = _option_inputs(dtype, name)
    grad, hess = fastbce.binary_crossentropy_grad(y, x, **_call_options(name, w))
    d1, d2, d3 = _exact_options(dtype, name)
    _check_close("grad", grad, d1, d2, dtype, x, y)
    _check_close("hess", hess, d2, d3, dtype, x, y)


def test_focal_hessian_where_it_cancels():
    """The point a CI run found (float64, every option): the Hessian's terms are ~5e-8 and their
    sum 4.5e-13, so each term must be right to far below an ulp (docs/gradients.md)."""
    x = np.array([-17.543282446385717])
    y = np.array([0.5351173149537426])
    k = _params("float64", 0.1, 3.0, 0.7, 0.6)  # the options of OPTION_SETS["focal_all"]
    _, d2, d3 = (np.array([float(v)]) for v in _derivatives(float(x[0]), float(y[0]), 1.0, k))
    _, hess = fastbce.binary_crossentropy_grad(y, x, **_call_options("focal_all", np.ones(1)))
    _check_close("hess", hess, d2, d3, "float64", x, y)


# Zeros of the focal derivatives: soft labels just above 1/2 put the Hessian's zero far out
# (|x| ~ 20 to 50), where its terms are |x| times larger than its slope.
ROOT_OPTIONS = {
    "focal_all": {"gamma": 0.7, "alpha": 0.6, "pos_weight": 3.0, "label_smoothing": 0.1},
    "gamma_0.3": {"gamma": 0.3},
    "gamma_1_smoothing": {"gamma": 1.0, "label_smoothing": 0.05},
    "gamma_2.5_pos_weight": {"gamma": 2.5, "pos_weight": 0.2},
    "gamma_8_smoothing": {"gamma": 8.0, "label_smoothing": 0.3},
    # a small pos_weight: the terms of the gradient cancel where ce's |x| term is most of ce
    "gamma_2_pos_weight_0.01": {"gamma": 2.0, "pos_weight": 0.01},
    "gamma_6_pos_weight_0.01": {"gamma": 6.0, "pos_weight": 0.01},
}
ROOT_LABELS = (0.0, 1.0, 0.5153, 0.5351173149537426, 0.8079, 0.0539)


def _nth_derivative(x, y, k, order):
    return _derivatives(x, y, 1.0, k)[order - 1]


@functools.cache
def _near_zeros(dtype: str, name: str, order: int):
    """Logits at and around every zero in [-60, 60] of the gradient (order 1) or Hessian (2) for
    ROOT_LABELS, with mpmath's derivatives there: (y, x, value, slope)."""
    opts = ROOT_OPTIONS[name]
    t = np.dtype(dtype).type
    k = _params(dtype, opts.get("label_smoothing", 0.0), opts.get("pos_weight", 1.0),
                opts["gamma"], opts.get("alpha"))  # fmt: skip
    grid = np.linspace(-60, 60, 2401)
    ys, xs = [], []
    for label in ROOT_LABELS:
        label = float(t(label))
        values = fastbce.binary_crossentropy_grad(np.full(grid.size, label), grid, **opts)
        v = values[order - 1]
        for i in np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]:
            f = functools.partial(_nth_derivative, y=label, k=k, order=order)
            with mpmath.workdps(30):
                root = float(mpmath.findroot(f, (grid[i], grid[i + 1]), solver="anderson"))
            near = {float(t(root * (1 + e))) for e in (0, 1e-15, -1e-15, 1e-9, -1e-9, 1e-5, -1e-5)}
            xs += sorted(near)
            ys += [label] * len(near)
    exact = [_derivatives(a, b, 1.0, k) for a, b in zip(xs, ys, strict=True)]
    value = np.array([float(e[order - 1]) for e in exact])
    slope = np.array([float(e[order]) for e in exact])
    return np.array(ys, dtype), np.array(xs, dtype), value, slope


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("name", sorted(ROOT_OPTIONS))
def test_focal_derivatives_near_their_zeros(dtype, order, name):
    y, x, value, slope = _near_zeros(dtype, name, order)
    assert x.size >= 4, "the sweep found too few zeros"
    got = fastbce.binary_crossentropy_grad(y, x, **ROOT_OPTIONS[name])[order - 1]
    _check_close(("grad", "hess")[order - 1], got, value, slope, dtype, x, y)


# (gamma, pos_weight, y, x) where the float32 focal gradient was off by 4e-5 to 3e-3 relative,
# 2.7 to 4.2 times its budget: z = exp(-|x|) rounded to float moved x in ce's log1p(z) and not in
# its |x| term (grad_loop now forms z in double; focal_float_loop's bound counts the mismatch)
FLOAT_FOCAL_CANCELLING = [
    (6.0, 0.01, 0.604382336139679, 0.7683836221694946),
    (6.0, 0.1, 0.5901895761489868, 0.06804264336824417),
    (2.0, 0.01, 0.7614663243293762, 1.237479567527771),
    (4.0, 0.01, 0.6501100659370422, 0.8699361681938171),
    (1.0, 0.01, 0.890201985836029, 1.8014647960662842),
]


@pytest.mark.parametrize(("gamma", "pos_weight", "label", "logit"), FLOAT_FOCAL_CANCELLING)
def test_float_focal_gradient_where_a_small_pos_weight_cancels(gamma, pos_weight, label, logit):
    y, x = np.array([label], np.float32), np.array([logit], np.float32)
    k = _params("float32", 0.0, pos_weight, gamma, None)
    d1, d2, d3 = (np.array([float(v)]) for v in _derivatives(float(x[0]), float(y[0]), 1.0, k))
    grad, hess = fastbce.binary_crossentropy_grad(y, x, gamma=gamma, pos_weight=pos_weight)
    _check_close("grad", grad, d1, d2, "float32", x, y)
    _check_close("hess", hess, d2, d3, "float32", x, y)


# The float32 focal path (gamma in {1/2, ..., 4}) computes in float32 and redoes in float64 the
# elements whose error bound exceeds the budget: logits from 1e-4 to 0.5 relative away from each
# Hessian zero (the bound's amplification from ~3e4 down to ~1) cross that threshold.
REDO_OPTIONS = {
    "gamma_2_alpha": {"gamma": 2.0, "alpha": 0.25},
    "gamma_4_pos_weight": {"gamma": 4.0, "pos_weight": 3.0},
    "gamma_0.5_smoothing": {"gamma": 0.5, "label_smoothing": 0.1},
    "gamma_1.5_all": {"gamma": 1.5, "alpha": 0.6, "pos_weight": 0.5, "label_smoothing": 0.05},
}


@functools.cache
def _around_hessian_zeros(name: str):
    opts = REDO_OPTIONS[name]
    k = _params("float32", opts.get("label_smoothing", 0.0), opts.get("pos_weight", 1.0),
                opts["gamma"], opts.get("alpha"))  # fmt: skip
    grid = np.linspace(-16, 16, 641)
    offsets = np.geomspace(1e-4, 0.5, 12)
    ys, xs = [], []
    for label in (0.0, 1.0, 0.8079, 0.0539):
        label = float(np.float32(label))
        hess = fastbce.binary_crossentropy_grad(np.full(grid.size, label), grid, **opts)[1]
        for i in np.nonzero(np.sign(hess[:-1]) * np.sign(hess[1:]) < 0)[0]:
            f = functools.partial(_nth_derivative, y=label, k=k, order=2)
            with mpmath.workdps(30):
                root = float(mpmath.findroot(f, (grid[i], grid[i + 1]), solver="anderson"))
            near = {float(np.float32(root + s * e * max(abs(root), 1.0))) for e in offsets
                    for s in (1, -1)}  # fmt: skip
            xs += sorted(near)
            ys += [label] * len(near)
    exact = [_derivatives(a, b, 1.0, k) for a, b in zip(xs, ys, strict=True)]
    d1, d2, d3 = (np.array([float(e[i]) for e in exact]) for i in range(3))
    return np.array(ys, np.float32), np.array(xs, np.float32), d1, d2, d3


@pytest.mark.parametrize("name", sorted(REDO_OPTIONS))
def test_float_focal_around_its_redo_threshold(name, simd_target):
    y, x, d1, d2, d3 = _around_hessian_zeros(name)
    assert x.size >= 40, "the sweep found too few zeros"
    grad, hess = fastbce.binary_crossentropy_grad(y, x, hessian="exact", **REDO_OPTIONS[name])
    _check_close("grad", grad, d1, d2, "float32", x, y)
    _check_close("hess", hess, d2, d3, "float32", x, y)


# --------------------------------------------------------------------------- finite everywhere

HUGE = {"float32": [1e30, 3.0e38, 1e10, 1e4], "float64": [1e30, 1e300, 1.7e308, 1e4]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("gamma", [0.0, 1e-3, 0.3, 0.5, 0.99, 1.0, 2.0, 3.7, 50.0, 1e6])
@pytest.mark.parametrize("hessian", ["exact", "clipped"])
def test_finite_for_every_finite_logit(dtype, gamma, hessian):
    edges = [*HUGE[dtype], 745.0, 103.0, 88.0, 30.0, 1.0, 1e-30, 1e-45, 0.0]
    x = np.array(edges + [-e for e in edges], dtype=dtype)
    for y0 in (0.0, 1.0, 0.5, 0.3, 1e-7):
        y = np.full(x.shape, y0, dtype=dtype)
        for extra in (
            {},
            {"pos_weight": 1e30 if dtype == "float32" else 1e300, "alpha": 0.25},
            {"label_smoothing": 0.05, "sample_weight": 1e-30},
        ):
            grad, hess = fastbce.binary_crossentropy_grad(
                y, x, gamma=gamma, hessian=hessian, **extra
            )
            assert np.isfinite(grad).all() or extra.get("pos_weight"), (y0, extra, grad)
            assert not np.isnan(grad).any() and not np.isnan(hess).any(), (y0, extra)
            if not extra.get("pos_weight"):
                assert np.isfinite(hess).all(), (y0, extra, hess)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinite_logits_are_the_limits(dtype):
    x = np.array([np.inf, -np.inf], dtype=dtype)
    for y0, limit in ((0.0, [1.0, 0.0]), (1.0, [0.0, -1.0]), (0.25, [0.75, -0.25])):
        grad, hess = fastbce.binary_crossentropy_grad(np.full(2, y0), x)
        np.testing.assert_array_equal(grad, limit)
        np.testing.assert_array_equal(hess, [0.0, 0.0])
        grad, hess = fastbce.binary_crossentropy_grad(np.full(2, y0), x, gamma=2.0)
        assert not np.isnan(grad).any() and not np.isnan(hess).any()
        np.testing.assert_array_equal(hess, [0.0, 0.0])


# --------------------------------------------------------------------------- Hessian options


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hessian_options(dtype, rng):
    x = rng.normal(0, 6, 5000).astype(dtype)
    y = (rng.random(5000) < 0.3).astype(dtype)
    g, h = fastbce.binary_crossentropy_grad(y, x, gamma=2.0, alpha=0.25)
    assert (h < 0).any()  # the exact focal Hessian is negative for badly misclassified rows
    g_none, h_none = fastbce.binary_crossentropy_grad(y, x, gamma=2.0, alpha=0.25, hessian="none")
    assert h_none is None
    np.testing.assert_array_equal(g_none, g)
    g_clip, h_clip = fastbce.binary_crossentropy_grad(
        y, x, gamma=2.0, alpha=0.25, hessian="clipped"
    )
    np.testing.assert_array_equal(g_clip, g)
    # the bound: alpha_t (1 - p_t)^gamma sigma(x) sigma(-x), the Hessian with the factor fixed
    x64 = x.astype(np.float64)
    p = 1 / (1 + np.exp(-x64))
    u = np.where(y == 1, 1 - p, p)
    bound = np.where(y == 1, 0.25, 0.75) * u**2 * p * (1 - p)
    np.testing.assert_allclose(h_clip, np.maximum(h, bound), rtol=1e-5, atol=1e-37)
    assert (h_clip[np.abs(x) < 30] > 0).all()
    # without focal terms the Hessian is never negative and "clipped" changes nothing
    h_plain = fastbce.binary_crossentropy_grad(y, x, pos_weight=3.0, alpha=0.2)[1]
    h_plain_clip = fastbce.binary_crossentropy_grad(
        y, x, pos_weight=3.0, alpha=0.2, hessian="clipped"
    )[1]
    np.testing.assert_array_equal(h_plain, h_plain_clip)


# --------------------------------------------------------------------------- layout and threads

VARIANTS = {
    "plain": {},
    "weighted": {"sample_weight": "w"},
    "general": {"label_smoothing": 0.1, "pos_weight": 2.0, "sample_weight": "w"},
    "focal": {"gamma": 2.0, "alpha": 0.25},
    "focal_sqrt": {"gamma": 1.5},  # the focal factor by products and a square root
    "focal_log_space": {"gamma": 2.7, "alpha": 0.25},  # exp(gamma log u)
    "focal_general": {
        "gamma": 0.6,
        "pos_weight": 0.5,
        "label_smoothing": 0.05,
        "sample_weight": "w",
        "hessian": "clipped",
    },
}


def _variant(name, w):
    return {k: (w if v == "w" else v) for k, v in VARIANTS[name].items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_position_independent(dtype, name, rng):
    n = 4 * 64 + 3
    x = rng.normal(0, 8, n).astype(dtype)
    x[::7] *= 20  # some beyond the fast exp's range
    y = rng.random(n).astype(dtype)
    w = rng.uniform(0, 2, n).astype(dtype)
    full_g, full_h = fastbce.binary_crossentropy_grad(y, x, **_variant(name, w))
    for k in range(1, 18):
        g, h = fastbce.binary_crossentropy_grad(y[k:], x[k:], **_variant(name, w[k:]))
        np.testing.assert_array_equal(g, full_g[k:])
        np.testing.assert_array_equal(h, full_h[k:])
    for m in (1, 15, 16, 17, 63, 64, 65):  # lengths around the vector widths
        g, h = fastbce.binary_crossentropy_grad(y[:m], x[:m], **_variant(name, w[:m]))
        np.testing.assert_array_equal(g, full_g[:m])


@pytest.mark.parametrize("spread", [1.0, 24.0])
@pytest.mark.parametrize("gamma", [0.5, 2.0, 4.0])
def test_float_focal_redo_batches(gamma, spread, rng):
    """The float focal path redoes the elements it marks in batches gathered across tiles when
    it writes straight to the caller's arrays, tile by tile otherwise: every element gets the
    same bits either way (few marks: N(0, 1) logits; a third beyond 16, more than a tile's worth
    gathered every few tiles: spread 24), and the same as in a call of its own."""
    n = 3 * (1 << 16) + 4321  # several blocks of many tiles
    x = (rng.uniform(-spread, spread, n) if spread > 1 else rng.normal(0, 1, n)).astype(np.float32)
    y = np.where(rng.random(n) < 0.8, rng.random(n) < 0.3, rng.random(n)).astype(np.float32)
    opts = {"gamma": gamma, "alpha": 0.25, "hessian": "clipped", "threads": 1}
    g, h = fastbce.binary_crossentropy_grad(y, x, **opts)
    wide = np.empty((2, 2 * n), np.float32)  # strided outputs: each tile's marks redone at once
    fastbce.binary_crossentropy_grad(y, x, out=(wide[0, ::2], wide[1, 1::2]), **opts)
    np.testing.assert_array_equal(wide[0, ::2], g)
    np.testing.assert_array_equal(wide[1, 1::2], h)
    g_only, _ = fastbce.binary_crossentropy_grad(y, x, **{**opts, "hessian": "none"})
    np.testing.assert_array_equal(g_only, g)
    for start in range(0, n, 20011):  # pieces of their own
        part = slice(start, start + 777)
        gp, hp = fastbce.binary_crossentropy_grad(y[part], x[part], **opts)
        np.testing.assert_array_equal(gp, g[part])
        np.testing.assert_array_equal(hp, h[part])
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(h))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_threads_bit_identical(name, rng):
    n = (1 << 20) + 12345
    x = rng.normal(0, 5, n).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    w = rng.uniform(0, 2, n).astype(np.float32)
    g1, h1 = fastbce.binary_crossentropy_grad(y, x, threads=1, **_variant(name, w))
    for threads in (2, 3, None):
        g, h = fastbce.binary_crossentropy_grad(y, x, threads=threads, **_variant(name, w))
        np.testing.assert_array_equal(g, g1)
        np.testing.assert_array_equal(h, h1)


def test_strided_2d_and_input_dtypes(rng):
    x = rng.normal(0, 3, (40, 6))
    y = rng.random((40, 6)) < 0.5
    q = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 4.0])
    w_rows = rng.uniform(0, 2, 40)
    g, h = fastbce.binary_crossentropy_grad(y, x, pos_weight=q, sample_weight=w_rows, gamma=1.5)
    g2, h2 = fastbce.binary_crossentropy_grad(
        y.astype(np.float64),
        np.ascontiguousarray(x),
        pos_weight=q,
        sample_weight=np.repeat(w_rows[:, None], 6, axis=1),
        gamma=1.5,
    )
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(h, h2)
    # strided views (a column, every other element) give what their copies give
    gc, hc = fastbce.binary_crossentropy_grad(y[:, 2], x[:, 2], gamma=1.5)
    gcc, hcc = fastbce.binary_crossentropy_grad(y[:, 2].copy(), x[:, 2].copy(), gamma=1.5)
    np.testing.assert_array_equal(gc, gcc)
    np.testing.assert_array_equal(hc, hcc)
    # float16 logits work in float32; 0-d and empty inputs keep their shape
    g16, _ = fastbce.binary_crossentropy_grad(np.ones(3), np.array([-1, 0, 1], np.float16))
    assert g16.dtype == np.float32
    g0, h0 = fastbce.binary_crossentropy_grad(1.0, np.float64(0.0))
    assert g0.shape == () and float(g0) == -0.5 and float(h0) == 0.25
    ge, he = fastbce.binary_crossentropy_grad(np.ones((0, 3)), np.ones((0, 3), np.float32))
    assert ge.shape == he.shape == (0, 3)


def test_consistent_with_the_loss(rng):
    """Central differences of fastbce.binary_crossentropy (float64) agree with the gradient."""
    x = rng.normal(0, 3, 200)
    y = rng.random(200)
    opts = {"gamma": 1.3, "alpha": 0.4, "pos_weight": 2.0, "label_smoothing": 0.1}
    grad, _ = fastbce.binary_crossentropy_grad(y, x, **opts)
    h = 1e-6
    f = functools.partial(
        fastbce.binary_crossentropy, y, from_logits=True, reduction="none", **opts
    )
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- out= and NaN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_pair(dtype, rng):
    x = rng.normal(0, 3, 100).astype(dtype)
    y = rng.random(100).astype(dtype)
    expected = fastbce.binary_crossentropy_grad(y, x, gamma=2.0)
    g_out, h_out = np.empty(100, dtype), np.empty(100, dtype)
    g, h = fastbce.binary_crossentropy_grad(y, x, gamma=2.0, out=(g_out, h_out))
    assert g is g_out and h is h_out
    np.testing.assert_array_equal(g, expected[0])
    np.testing.assert_array_equal(h, expected[1])
    # strided outputs, and an output that is the input (computed into a fresh array, then copied)
    big = np.empty((2, 200), dtype)
    g, h = fastbce.binary_crossentropy_grad(y, x, gamma=2.0, out=(big[0, ::2], big[1, 1::2]))
    np.testing.assert_array_equal(big[0, ::2], expected[0])
    np.testing.assert_array_equal(big[1, 1::2], expected[1])
    xc = x.copy()
    g, h = fastbce.binary_crossentropy_grad(y, xc, gamma=2.0, out=(xc, np.empty(100, dtype)))
    np.testing.assert_array_equal(xc, expected[0])
    g, h = fastbce.binary_crossentropy_grad(y, x, hessian="none", out=(np.empty(100, dtype), None))
    assert h is None


def test_nan_policies():
    x = np.array([0.0, np.nan, 1.0, 2.0], np.float32)
    y = np.array([1.0, 0.0, np.nan, 0.0], np.float32)
    w = np.array([1.0, 1.0, 1.0, np.nan], np.float32)
    for policy in ("propagate", "omit"):
        g, h = fastbce.binary_crossentropy_grad(y, x, sample_weight=w, nan_policy=policy, gamma=2.0)
        np.testing.assert_array_equal(np.isnan(g), [False, True, True, True])
        np.testing.assert_array_equal(np.isnan(h), [False, True, True, True])
    with pytest.raises(ValueError, match=r"nan_policy='raise': logits is NaN at flat index 1"):
        fastbce.binary_crossentropy_grad(y, x, nan_policy="raise")


def test_errors():
    x = np.zeros(4, np.float32)
    y = np.array([0, 1, 1.5, 0], np.float32)
    with pytest.raises(ValueError, match=r"hessian must be one of 'exact', 'none', 'clipped'"):
        fastbce.binary_crossentropy_grad(y, x, hessian="fisher")
    with pytest.raises(ValueError, match=r"y_true must be in \[0, 1\]; got 1.5 at flat index 2"):
        fastbce.binary_crossentropy_grad(y, x)
    fastbce.binary_crossentropy_grad(y, x, validate=False)
    y = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"y_true and logits must have the same shape"):
        fastbce.binary_crossentropy_grad(y, np.zeros(5, np.float32))
    with pytest.raises(TypeError, match=r"logits must be float16, float32 or float64"):
        fastbce.binary_crossentropy_grad(y, np.zeros(4, np.int32))
    with pytest.raises(ValueError, match=r"sample_weight must be finite and non-negative"):
        fastbce.binary_crossentropy_grad(y, x, sample_weight=np.array([1, -1, 1, 1.0]))
    with pytest.raises(ValueError, match=r"gamma must be finite and >= 0"):
        fastbce.binary_crossentropy_grad(y, x, gamma=-1.0)
    with pytest.raises(ValueError, match=r"pos_weight must be"):
        fastbce.binary_crossentropy_grad(y, x, pos_weight=np.ones(3))
    with pytest.raises(TypeError, match=r"out must be None or a pair"):
        fastbce.binary_crossentropy_grad(y, x, out=np.zeros(4, np.float32))
    with pytest.raises(
        ValueError, match=r"out\[0\] must have logits' shape \(4,\) and dtype float32"
    ):
        fastbce.binary_crossentropy_grad(y, x, out=(np.zeros(4), np.zeros(4)))
    # each of the pair is named (both said "out")
    good = np.zeros(4, np.float32)
    with pytest.raises(
        ValueError, match=r"out\[1\] must have logits' shape \(4,\) and dtype float32"
    ):
        fastbce.binary_crossentropy_grad(y, x, out=(good, np.zeros(4)))
    with pytest.raises(ValueError, match=r"out\[1\] must be writeable"):
        locked = np.zeros(4, np.float32)
        locked.flags.writeable = False
        fastbce.binary_crossentropy_grad(y, x, out=(good, locked))
    with pytest.raises(TypeError, match=r"out\[0\] must be a numpy.ndarray; got list"):
        fastbce.binary_crossentropy_grad(y, x, out=([0.0] * 4, good))
    with pytest.raises(ValueError, match=r"out\[1\] must be None with hessian='none'"):
        fastbce.binary_crossentropy_grad(
            y, x, hessian="none", out=(np.zeros(4, np.float32), np.zeros(4, np.float32))
        )
    buf = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"must not overlap"):
        fastbce.binary_crossentropy_grad(y, x, out=(buf, buf))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'from_logits'"):
        fastbce.binary_crossentropy_grad(y, x, from_logits=True)


def test_no_subnormal_intermediates_for_normal_results(simd_target, raises_underflow):
    """The FP underflow flag (per thread: threads=1 runs on this one) stays clear for logits
    whose derivatives are normal numbers: a subnormal intermediate costs a microcode assist
    each on Intel CPUs (and the flag shows it on every CPU)."""
    # |x| up to 80 plain (hess ~ exp(-80) = 1.8e-35); focal gamma = 2 goes as (1 - p_t)^3
    for bound, opts in (
        (80, {}),
        (80, {"sample_weight": np.ones(20001, np.float32)}),
        (25, {"gamma": 2.0, "alpha": 0.25}),
        (25, {"gamma": 0.3, "pos_weight": 2.0, "label_smoothing": 0.1}),
    ):
        x = np.linspace(-bound, bound, 20001).astype(np.float32)
        y = (np.arange(x.size) % 2).astype(np.float32)
        grad = fastbce.binary_crossentropy_grad
        assert not raises_underflow(lambda: grad(y, x, threads=1, **opts)), opts  # noqa: B023


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [("fastbce.xgboost", "xgboost", "xgboost"), ("fastbce.lightgbm", "lightgbm", "lightgbm")],
)
def test_adapters_say_what_to_install(monkeypatch, module, library, extra):
    """Without the library the adapter's import fails with the pip command that fixes it."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, library, None)  # makes `import library` fail
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'fastbce\[{extra}\]'"):
        importlib.import_module(module)
