"""Each implementation's expression, in one place: how fastbce, the read floor and every peer
compute the mean loss of a ``Data``, converted and compiled outside the timed call."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import _core
from .timing import Prepared, kernel_threads
from .variants import EPSILON, VARIANTS, Data, Variant


@dataclass(frozen=True)
class Implementation:
    name: str  # the row label
    peer: str  # what --peers selects; also the install hint
    expression: str  # what it computes, for the docs and the JSON
    variants: frozenset[str]
    build: Callable[[Data, int | None], Prepared] = field(repr=False, compare=False)

    def supports(self, variant: Variant | str) -> bool:
        return (variant if isinstance(variant, str) else variant.name) in self.variants

    def prepare(self, data: Data, threads: int | None = None) -> Prepared:
        """Converts the data, compiles, and runs it once (the warm-up); nothing of it is timed."""
        prepared = self.build(data, threads)
        with prepared.context():
            prepared.call()
        return prepared


# ---- fastbce and the read floor


def _build_fastbce(data: Data, threads: int | None) -> Prepared:
    import fastbce

    v = data.variant

    def call() -> float:
        return fastbce.binary_crossentropy(
            data.y_true,
            data.y_pred,
            from_logits=v.from_logits,
            sample_weight=data.sample_weight,
            gamma=v.gamma,
            alpha=v.alpha,
            threads=threads,
        )

    return Prepared(call, threads=kernel_threads(data.n, threads))


def _build_floor(data: Data, threads: int | None) -> Prepared:
    arrays = data.arrays
    used = kernel_threads(data.n, threads)
    return Prepared(lambda: _core.read_floor(arrays, used), value=lambda _: math.nan, threads=used)


# ---- NumPy


def _numpy_loss(v: Variant, y: Any, x: Any, w: Any) -> Any:
    if v.from_logits:
        ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    else:
        eps = x.dtype.type(EPSILON)
        p = np.clip(x, eps, 1 - eps)
        ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if v.focal:
        p = 1 / (1 + np.exp(-x))
        p_t = y * p + (1 - y) * (1 - p)
        ce = ce * (1 - p_t) ** v.gamma
    if v.alpha is not None:
        ce = ce * (v.alpha * y + (1 - v.alpha) * (1 - y))
    if w is not None:
        ce = ce * w
    return ce.mean()


def _build_numpy(data: Data, threads: int | None) -> Prepared:
    v, y, x, w = data.variant, data.y_true, data.y_pred, data.sample_weight
    return Prepared(lambda: _numpy_loss(v, y, x, w), threads=1)


# ---- TensorFlow (tf.nn) and Keras 3


@contextlib.contextmanager
def _quiet_tensorflow() -> Iterator[None]:
    """Imports TensorFlow without its C++ info lines (an env var it reads at import only)."""
    old = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def _tensorflow(threads: int | None) -> Any:
    with _quiet_tensorflow():
        import tensorflow as tf
    if threads:  # only possible before TensorFlow's first op; else the default stays
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    return tf


def _tf_threads(tf: Any) -> int | str:
    return tf.config.threading.get_intra_op_parallelism_threads() or "default"


def _build_tf(data: Data, threads: int | None) -> Prepared:
    tf = _tensorflow(threads)
    y, x = tf.constant(data.y_true), tf.constant(data.y_pred)
    args = [y, x]
    if data.sample_weight is not None:
        args.append(tf.constant(data.sample_weight))

    @tf.function
    def loss(y: Any, x: Any, *w: Any) -> Any:
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y, x.dtype), logits=x)
        if w:
            ce = ce * w[0]
        return tf.reduce_mean(ce)

    return Prepared(lambda: loss(*args), threads=_tf_threads(tf))


def _build_keras(data: Data, threads: int | None) -> Prepared:
    tf = _tensorflow(threads)
    with _quiet_tensorflow():
        import keras
    v = data.variant
    # Keras takes the mean over the last axis first: shape (N, 1) makes one sample per element.
    if v.focal:
        loss = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True,
            alpha=v.alpha,
            gamma=v.gamma,
            from_logits=v.from_logits,
            dtype=v.dtype,
        )
    else:
        loss = keras.losses.BinaryCrossentropy(from_logits=v.from_logits, dtype=v.dtype)
    arrays = [data.y_true.reshape(-1, 1), data.y_pred.reshape(-1, 1)]
    if keras.backend.backend() == "tensorflow":
        args = [tf.constant(a) for a in arrays]
        weight = None if data.sample_weight is None else tf.constant(data.sample_weight)
        compiled = tf.function(lambda y, x, w: loss(y, x, sample_weight=w))
        return Prepared(lambda: compiled(*args, weight), threads=_tf_threads(tf))
    # another backend: eager Keras on that backend's tensors, of the arrays' dtypes (without
    # one they became float32: a float64 variant was off by 3e-8); JAX keeps float64 with x64
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    if keras.backend.backend() == "jax" and v.dtype == "float64":
        import jax

        context = lambda: jax.enable_x64(True)  # noqa: E731
    with context():
        args = [keras.ops.convert_to_tensor(a, dtype=a.dtype.name) for a in arrays]
        weight = None
        if data.sample_weight is not None:
            w = data.sample_weight
            weight = keras.ops.convert_to_tensor(w, dtype=w.dtype.name)
    return Prepared(
        lambda: loss(*args, sample_weight=weight),
        value=lambda r: float(np.asarray(r)),
        context=context,
    )


# ---- PyTorch


def _build_torch(data: Data, threads: int | None) -> Prepared:
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    v = data.variant
    y, x = torch.from_numpy(data.y_true), torch.from_numpy(data.y_pred)
    w = None if data.sample_weight is None else torch.from_numpy(data.sample_weight)

    def loss() -> Any:
        t = y.to(x.dtype)  # a no-op for float labels; uint8 labels must be converted
        if not v.from_logits:
            return F.binary_cross_entropy(x, t, weight=w)
        if not v.focal:
            return F.binary_cross_entropy_with_logits(x, t, weight=w)
        # torchvision.ops.sigmoid_focal_loss(x, t, alpha, gamma, reduction="mean"), written out
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        out = ce * ((1 - p_t) ** v.gamma)
        if v.alpha is not None:
            out = (v.alpha * t + (1 - v.alpha) * (1 - t)) * out
        return out.mean()

    return Prepared(loss, value=lambda r: float(r.item()), threads=torch.get_num_threads())


# ---- JAX / optax


def _build_jax(data: Data, threads: int | None) -> Prepared:
    import jax
    import jax.numpy as jnp
    import optax

    v = data.variant
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    if v.dtype == "float64":
        context = lambda: jax.enable_x64(True)  # noqa: E731

    def loss(y: Any, x: Any, *w: Any) -> Any:
        t = y.astype(x.dtype)
        if v.focal:
            ce = optax.sigmoid_focal_loss(x, t, alpha=v.alpha, gamma=v.gamma)
        else:
            ce = optax.sigmoid_binary_cross_entropy(x, t)
        if w:
            ce = ce * w[0]
        return ce.mean()

    compiled = jax.jit(loss)
    with context():
        args = [jnp.asarray(a) for a in data.arrays]
        for a in args:
            a.block_until_ready()
    return Prepared(lambda: compiled(*args).block_until_ready(), context=context)


_LOGIT_VARIANTS = frozenset({"logits", "focal", "weighted", "uint8", "float64"})

IMPLEMENTATIONS: dict[str, Implementation] = {
    i.name: i
    for i in (
        Implementation(
            "read floor",
            "fastbce",
            "fastbce._core.read_floor(inputs, threads): reads every input byte, nothing else",
            frozenset(VARIANTS),
            _build_floor,
        ),
        Implementation(
            "fastbce",
            "fastbce",
            "fastbce.binary_crossentropy(y_true, y_pred, from_logits=..., gamma=..., alpha=..., "
            "sample_weight=...)",
            frozenset(VARIANTS),
            _build_fastbce,
        ),
        Implementation(
            "numpy",
            "numpy",
            "(np.maximum(x, 0) - x*y + np.log1p(np.exp(-np.abs(x)))).mean(); probabilities: "
            "-(y*log(p) + (1-y)*log(1-p)) of p clipped to [1e-7, 1-1e-7]",
            frozenset(VARIANTS),
            _build_numpy,
        ),
        Implementation(
            "tf.nn",
            "tensorflow",
            "tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, x)) in a tf.function",
            _LOGIT_VARIANTS - {"focal"},
            _build_tf,
        ),
        Implementation(
            "keras",
            "keras",
            "keras.losses.BinaryCrossentropy / BinaryFocalCrossentropy(apply_class_balancing=True) "
            "on (N, 1) tensors, in a tf.function",
            frozenset(VARIANTS),
            _build_keras,
        ),
        Implementation(
            "torch",
            "torch",
            "torch.nn.functional.binary_cross_entropy_with_logits (binary_cross_entropy for "
            "probabilities; focal: torchvision.ops.sigmoid_focal_loss's formula), mean",
            frozenset(VARIANTS),
            _build_torch,
        ),
        Implementation(
            "optax",
            "jax",
            "optax.sigmoid_binary_cross_entropy / optax.sigmoid_focal_loss, .mean(), in jax.jit",
            _LOGIT_VARIANTS,
            _build_jax,
        ),
    )
}
