"""``fastbce bench``: fastbce against NumPy, TensorFlow, Keras, PyTorch and JAX on the same data.

This module is the one place where each implementation's expression is written and where the
timing is done; the pytest benchmarks in ``benchmarks/`` import the same pieces
(:data:`VARIANTS`, :data:`IMPLEMENTATIONS`, :func:`make_data`, :func:`Implementation.prepare`).

How a measurement goes (docs/benchmarks.md explains the columns):

- Data are generated once per size with a fixed seed (logits ~ N(0, 2), labels drawn from the
  sigmoid of the logits, weights ~ U(0.5, 2)); every implementation gets the same values.
- ``prepare`` converts the NumPy arrays into the framework's tensors (``tf.constant``,
  ``torch.from_numpy``, ``jnp.asarray`` + ``block_until_ready``), builds the function
  (``tf.function``, ``jax.jit``) and calls it once, so conversion and JIT compilation stay
  outside the timed region. The timed function returns a finished result (JAX's is
  ``block_until_ready``'d inside it).
- The float64 reference follows shared/SPEC.md section 1 in log space (``np.logaddexp``), a
  different formula from the NumPy peer's, summed in float64 chunks with ``math.fsum``.
- The read floor is ``fastbce._core.read_floor``: it reads every byte of the inputs on the number
  of threads fastbce's kernel uses for that size, and does nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPSILON = 1e-7  # the probability clip of every implementation (Keras' default)
DEFAULT_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
QUICK_SIZES = (10**3, 10**4, 10**5)

# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One loss configuration, run by every implementation that supports it."""

    name: str
    description: str
    from_logits: bool = True
    gamma: float = 0.0
    alpha: float | None = None
    weighted: bool = False
    label_dtype: str = "float32"
    dtype: str = "float32"

    @property
    def focal(self) -> bool:
        return self.gamma > 0.0


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("logits", "float32 logits, float32 labels"),
        Variant("probs", "float32 probabilities, float32 labels", from_logits=False),
        Variant(
            "focal", "focal loss on float32 logits, gamma=2, alpha=0.25", gamma=2.0, alpha=0.25
        ),
        Variant("weighted", "float32 logits, float32 labels, float32 sample_weight", weighted=True),
        Variant("uint8", "float32 logits, uint8 labels", label_dtype="uint8"),
        Variant(
            "float64", "float64 logits, float64 labels", label_dtype="float64", dtype="float64"
        ),
    )
}


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    """The inputs of one (variant, size) as NumPy arrays, and their float64 reference value."""

    variant: Variant
    n: int
    y_true: np.ndarray
    y_pred: np.ndarray
    sample_weight: np.ndarray | None
    reference: float

    @property
    def arrays(self) -> list[np.ndarray]:
        return [a for a in (self.y_true, self.y_pred, self.sample_weight) if a is not None]

    @property
    def nbytes(self) -> int:
        """The bytes every implementation has to read: labels, predictions and weights."""
        return sum(a.nbytes for a in self.arrays)


_base_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _base(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 logits, bool labels and float64 weights for size n (the last size is kept)."""
    key = (n, seed)
    if key not in _base_cache:
        _base_cache.clear()
        rng = np.random.default_rng([seed, n])
        logits = rng.normal(0.0, 2.0, n)
        labels = rng.random(n) < 1.0 / (1.0 + np.exp(-logits))
        weights = rng.uniform(0.5, 2.0, n)
        _base_cache[key] = (logits, labels, weights)
    return _base_cache[key]


def make_data(variant: Variant, n: int, seed: int = 0) -> Data:
    """The inputs of `variant` at size `n`; one seed gives the same values to every variant."""
    logits, labels, weights = _base(n, seed)
    dtype = np.dtype(variant.dtype)
    if variant.from_logits:
        y_pred = logits.astype(dtype)
    else:
        y_pred = (1.0 / (1.0 + np.exp(-logits))).astype(dtype)
    y_true = labels.astype(variant.label_dtype)
    sample_weight = weights.astype(dtype) if variant.weighted else None
    return Data(
        variant, n, y_true, y_pred, sample_weight, reference(variant, y_true, y_pred, sample_weight)
    )


def reference(
    variant: Variant, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None
) -> float:
    """The mean loss in float64 (shared/SPEC.md section 1, log space), in chunks, summed exactly."""
    chunk = 1 << 20
    sums = []
    for start in range(0, y_pred.size, chunk):
        part = slice(start, start + chunk)
        y = y_true[part].astype(np.float64)
        if variant.from_logits:
            x = y_pred[part].astype(np.float64)
            log_p, log_1mp = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
            clipped_log_p, clipped_log_1mp = log_p, log_1mp
        else:
            work = y_pred.dtype.type
            p = y_pred[part]
            pc = np.clip(p, work(EPSILON), work(1) - work(EPSILON)).astype(np.float64)
            clipped_log_p, clipped_log_1mp = np.log(pc), np.log1p(-pc)
            p64 = p.astype(np.float64)
            log_p, log_1mp = np.log(p64), np.log1p(-p64)
        ce = -(y * clipped_log_p + (1.0 - y) * clipped_log_1mp)
        if variant.focal:  # labels are 0 or 1 here: log(1 - p_t) is log(1 - p) or log(p)
            ce = ce * np.exp(variant.gamma * np.where(y == 1.0, log_1mp, log_p))
        if variant.alpha is not None:
            ce = ce * (variant.alpha * y + (1.0 - variant.alpha) * (1.0 - y))
        if sample_weight is not None:
            ce = ce * sample_weight[part].astype(np.float64)
        sums.append(math.fsum(ce))
    return math.fsum(sums) / y_pred.size if y_pred.size else math.nan


def tolerance(variant: Variant, implementation: str) -> float:
    """The relative error against the reference an implementation must stay within.

    fastbce accumulates in float64 whatever the input, so only the elementwise rounding of
    float32 shows; the peers add float32 accumulation of their own.
    """
    if variant.dtype == "float64":
        return 1e-12 if implementation == "fastbce" else 1e-9
    return 2e-6 if implementation == "fastbce" else 1e-5


# --------------------------------------------------------------------------- threads


def kernel_threads(n: int, threads: int | None) -> int:
    """The number of threads fastbce's kernel runs on for n elements (and so the read floor)."""
    from . import _core

    return _core.threads_for(n, threads or 0)


# --------------------------------------------------------------------------- implementations


@dataclass
class Prepared:
    """A warmed-up, zero-argument function computing the mean loss of one Data.

    `call()` is what is timed; `value(result)` turns its result into a Python float (outside the
    timing). `context()` is entered around warm-up and timing (JAX's float64 mode).
    """

    call: Callable[[], Any]
    value: Callable[[Any], float] = float
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    threads: int | str = "default"


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


@dataclass(frozen=True)
class Peer:
    name: str
    modules: tuple[str, ...]  # all importable means installed
    distributions: tuple[str, ...]  # whose versions are reported
    install: str


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("numpy", ("numpy",), ("numpy",), "pip install numpy"),
        Peer(
            "tensorflow",
            ("tensorflow",),
            ("tensorflow", "tensorflow-cpu"),
            "pip install tensorflow-cpu",
        ),
        Peer("keras", ("keras", "tensorflow"), ("keras",), "pip install keras tensorflow-cpu"),
        Peer(
            "torch",
            ("torch",),
            ("torch",),
            "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        ),
        Peer("jax", ("jax", "optax"), ("jax", "jaxlib", "optax"), "pip install jax optax"),
    )
}
ALL_PEERS_HINT = 'pip install "fastbce[peers]"'


def has_module(name: str) -> bool:
    """Whether `name` can be imported (without importing it: TensorFlow takes seconds)."""
    return importlib.util.find_spec(name) is not None


def peer_installed(peer: str) -> bool:
    return all(has_module(m) for m in PEERS[peer].modules)


def peer_versions(peer: str) -> dict[str, str]:
    versions = {}
    for dist in PEERS[peer].distributions:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


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
    from . import _core

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
    # another backend: eager Keras on that backend's tensors
    args = [keras.ops.convert_to_tensor(a) for a in arrays]
    weight = None
    if data.sample_weight is not None:
        weight = keras.ops.convert_to_tensor(data.sample_weight)
    return Prepared(lambda: loss(*args, sample_weight=weight), value=lambda r: float(np.asarray(r)))


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


# --------------------------------------------------------------------------- timing


def measure(call: Callable[[], Any], repeats: int, min_time: float) -> list[float]:
    """Seconds per call, one figure per repeat. A repeat runs `call` as many times as it takes to
    last `min_time` seconds (timeit's way of timing short calls), with the garbage collector off."""
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    inner = 1 if once >= min_time else min(1_000_000, max(1, math.ceil(min_time / max(once, 1e-7))))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(inner):
                call()
            times.append((time.perf_counter_ns() - start) / inner / 1e9)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


# --------------------------------------------------------------------------- command line


def _size(text: str) -> int:
    """'1e6', '1000000', '1_000_000', '10k', '2M', '1G' -> int."""
    match = re.fullmatch(r"\s*([0-9._]+(?:e[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1e6, 1000000, 10k, 2M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    try:
        value = float(match.group(1).replace("_", "")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"a size must be a whole number >= 1; got {text!r}")
    return int(value)


def _sizes(text: str) -> list[int]:
    return [_size(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Times fastbce against NumPy, TensorFlow (tf.nn), Keras 3, PyTorch and JAX/optax on the "
        "same data, checks each value against a float64 reference, and prints a table."
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help="element counts (default 1e3,1e4,1e5,1e6,1e7; with --quick 1e3,1e4,1e5)",
    )
    parser.add_argument(
        "--variants",
        type=_names,
        metavar="NAME,...",
        help=f"loss variants, or 'all' (default all: {', '.join(VARIANTS)})",
    )
    parser.add_argument(
        "--peers",
        type=_names,
        metavar="NAME,...",
        help=f"peers, 'all' or 'none' ({', '.join(PEERS)}; default: those installed)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="threads for fastbce, the read floor, torch and TensorFlow (default: each one's own)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        help="timed repeats per entry; the median is shown (default 7, quick 3)",
    )
    parser.add_argument(
        "--min-time",
        type=_non_negative_float,
        metavar="SECONDS",
        help="shortest duration of one repeat; short calls are looped (default 0.05, quick 0.005)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1e3,1e4,1e5 and 3 short repeats: a smoke run",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the generated data (default 0)"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write every figure and the versions as JSON"
    )
    parser.add_argument(
        "--plot", metavar="PATH", help="write a PNG of throughput against size (needs matplotlib)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


@dataclass
class Settings:
    sizes: list[int]
    variants: list[Variant]
    peers: list[str]
    skipped: dict[str, str]  # peer -> why
    threads: int | None
    repeats: int
    min_time: float
    quick: bool
    seed: int


def _settings(args: argparse.Namespace) -> Settings:
    from ._errors import UsageError

    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    names = args.variants or ["all"]
    if "all" in names:
        names = list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UsageError(
            f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)} or all"
        )
    variants = [VARIANTS[n] for n in dict.fromkeys(names)]

    skipped: dict[str, str] = {}
    if args.peers is None:
        requested = list(PEERS)
    else:
        requested = list(PEERS) if "all" in args.peers else [p for p in args.peers if p != "none"]
        unknown = [p for p in requested if p not in PEERS]
        if unknown:
            raise UsageError(
                f"unknown peer {unknown[0]!r}; choose from {', '.join(PEERS)}, all or none"
            )
    peers = []
    for name in dict.fromkeys(requested):
        if peer_installed(name):
            peers.append(name)
        else:
            skipped[name] = f"not installed ({PEERS[name].install}, or {ALL_PEERS_HINT})"
    return Settings(
        sizes=sizes,
        variants=variants,
        peers=peers,
        skipped=skipped,
        threads=args.threads,
        repeats=args.repeats or (3 if args.quick else 7),
        min_time=args.min_time if args.min_time is not None else (0.005 if args.quick else 0.05),
        quick=args.quick,
        seed=args.seed,
    )


def _progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _format_n(n: int) -> str:
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"1e{exponent}" if 10**exponent == n else str(n)


def run_benchmarks(settings: Settings, quiet: bool = True) -> list[dict[str, Any]]:
    """Every (size, variant, implementation) the settings select, as rows of figures."""
    chosen = [
        impl
        for impl in IMPLEMENTATIONS.values()
        if impl.peer == "fastbce" or impl.peer in settings.peers
    ]
    plan = [
        (n, v, impl)
        for n in settings.sizes
        for v in settings.variants
        for impl in chosen
        if impl.supports(v)
    ]
    rows: list[dict[str, Any]] = []
    data = None
    prepared: Prepared | None
    for step, (n, v, impl) in enumerate(plan, 1):
        if data is None or data.n != n or data.variant != v:
            data = None
            gc.collect()
            data = make_data(v, n, settings.seed)
        label = f"[{step}/{len(plan)}] {v.name} N={_format_n(n)} {impl.name}"
        row: dict[str, Any] = {
            "variant": v.name,
            "implementation": impl.name,
            "peer": impl.peer,
            "n": n,
            "bytes": data.nbytes,
            "reference": data.reference,
        }
        try:
            prepared = impl.prepare(data, settings.threads)
            with prepared.context():
                times = measure(prepared.call, settings.repeats, settings.min_time)
                value = prepared.value(prepared.call())
            threads = prepared.threads
        except Exception as e:  # a peer that fails is reported, the others still run
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            row.update(error=f"{type(e).__name__}: {message}")
            rows.append(row)
            _progress(quiet, f"{label}: failed: {row['error']}")
            continue
        finally:
            prepared = None  # drop the framework's copies of the data before the next entry
        median = float(np.median(times))
        rel_error = None
        if impl.name != "read floor":
            rel_error = abs(value - data.reference) / abs(data.reference)
        row.update(
            threads=threads,
            times_s=times,
            median_ms=median * 1e3,
            ns_per_element=median * 1e9 / n,
            gb_per_s=data.nbytes / median / 1e9,
            value=None if math.isnan(value) else value,
            rel_error=rel_error,
            tolerance=None if rel_error is None else tolerance(v, impl.name),
        )
        row["ok"] = rel_error is None or rel_error <= row["tolerance"]
        rows.append(row)
        _progress(quiet, f"{label}: {median * 1e3:.4g} ms")
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """speedup (an implementation's time over fastbce's) and floor_ratio (time over the floor's)."""
    by_key = {(r["variant"], r["n"], r["implementation"]): r for r in rows if "median_ms" in r}
    for r in rows:
        if "median_ms" not in r:
            continue
        fast = by_key.get((r["variant"], r["n"], "fastbce"))
        floor = by_key.get((r["variant"], r["n"], "read floor"))
        r["speedup"] = fast and r["median_ms"] / fast["median_ms"]
        r["floor_ratio"] = floor and r["median_ms"] / floor["median_ms"]


def _threads_used(settings: Settings) -> dict[str, Any]:
    """What --threads did to each implementation (see docs/benchmarks.md)."""
    from . import _core

    return {
        "requested": settings.threads,
        "fastbce_default": _core.default_threads(),
        "fastbce": "kernel policy for each N" if settings.threads is None else settings.threads,
        "torch": "torch.set_num_threads" if settings.threads else "torch default",
        "tensorflow": "intra/inter-op threads" if settings.threads else "TensorFlow default",
        "jax": "XLA default (set XLA_FLAGS to change)",
        "numpy": "one thread (elementwise ufuncs)",
    }


def report(settings: Settings, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from ._info import build_info
    from ._version import __version__

    return {
        "schema": "fastbce-bench/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fastbce": {"version": __version__, "build": build_info()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {
            "sizes": settings.sizes,
            "variants": [v.name for v in settings.variants],
            "repeats": settings.repeats,
            "min_time_s": settings.min_time,
            "quick": settings.quick,
            "seed": settings.seed,
            "threads": _threads_used(settings),
        },
        "variants": {
            v.name: {
                "description": v.description,
                "from_logits": v.from_logits,
                "gamma": v.gamma,
                "alpha": v.alpha,
                "weighted": v.weighted,
                "label_dtype": v.label_dtype,
                "dtype": v.dtype,
            }
            for v in settings.variants
        },
        "peers": {
            **{name: {"status": "ran", "versions": peer_versions(name)} for name in settings.peers},
            **{
                name: {"status": "skipped", "reason": why, "install": PEERS[name].install}
                for name, why in settings.skipped.items()
            },
        },
        "implementations": {
            name: {
                "peer": impl.peer,
                "expression": impl.expression,
                "variants": sorted(impl.variants),
            }
            for name, impl in IMPLEMENTATIONS.items()
        },
        "results": rows,
    }


def format_table(settings: Settings, rows: list[dict[str, Any]]) -> str:
    header = ("implementation", "N", "ms", "ns/elem", "GB/s", "speed-up", "x floor", "rel. error")
    lines = []
    for v in settings.variants:
        group = [r for r in rows if r["variant"] == v.name]
        if not group:
            continue
        table: list[tuple[str, ...]] = []
        for r in group:
            if "error" in r:
                table.append((r["implementation"], _format_n(r["n"]), "failed: " + r["error"]))
                continue
            speedup = (
                "-" if r["peer"] == "fastbce" or r["speedup"] is None else f"{r['speedup']:.2f}"
            )
            floor = "-" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"
            error = "-" if r["rel_error"] is None else f"{r['rel_error']:.1e}"
            if not r["ok"]:
                error += " !"
            table.append(
                (
                    r["implementation"],
                    _format_n(r["n"]),
                    f"{r['median_ms']:.3g}",
                    f"{r['ns_per_element']:.3g}",
                    f"{r['gb_per_s']:.3g}",
                    speedup,
                    floor,
                    error,
                )
            )
        widths = [
            max(len(str(c[i])) for c in [header, *table] if len(c) > i) for i in range(len(header))
        ]
        lines.append(f"{v.name}: {v.description}")
        lines.append(
            "  ".join(
                h.ljust(w) if i == 0 else h.rjust(w)
                for i, (h, w) in enumerate(zip(header, widths, strict=True))
            )
        )
        previous_n = None
        for cells in table:
            if previous_n is not None and cells[1] != previous_n:
                lines.append("")
            previous_n = cells[1]
            if len(cells) == 3:
                lines.append(
                    f"{cells[0].ljust(widths[0])}  {cells[1].rjust(widths[1])}  {cells[2]}"
                )
                continue
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
        lines.append("")
    notes = [
        "ms: median of the repeats; ns/elem: ms per element; GB/s: input bytes read per second;",
        "speed-up: this row's time / fastbce's (how many times faster fastbce is); x floor: time /",
        "the read floor's; rel. error: |value - float64 reference| / reference ('!': too large).",
    ]
    lines.extend(notes)
    if settings.skipped:
        lines.append("")
        for name, why in settings.skipped.items():
            lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(settings: Settings, rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in settings.variants if any(r["variant"] == v.name for r in rows)]
    columns = min(3, len(variants)) or 1
    lines = -(-len(variants) // columns) or 1
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 4 * lines), squeeze=False)
    for ax in axes.flat[len(variants) :]:
        ax.set_visible(False)
    for ax, v in zip(axes.flat, variants, strict=False):
        for color, name in enumerate(IMPLEMENTATIONS):
            points = sorted(
                (r["n"], r["gb_per_s"])
                for r in rows
                if r["variant"] == v.name and r["implementation"] == name and "gb_per_s" in r
            )
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style: dict[str, Any] = {"color": f"C{color}"}  # the same colour in every panel
            if name == "read floor":
                style = {"linestyle": "--", "color": "black"}
            elif name == "fastbce":
                style["linewidth"] = 2.5
            ax.plot(xs, ys, marker="o", label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{v.name}: {v.description}", fontsize=9)
        ax.set_xlabel("elements N")
        ax.set_ylabel("GB/s of input read")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("fastbce bench: throughput (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from ._errors import UsageError

    settings = _settings(args)
    if args.plot and not has_module("matplotlib"):
        raise UsageError('--plot needs matplotlib: pip install matplotlib (or "fastbce[plot]")')
    for name, why in settings.skipped.items():
        _progress(args.quiet, f"skipping {name}: {why}")
    rows = run_benchmarks(settings, quiet=args.quiet)
    print(format_table(settings, rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report(settings, rows), f, indent=1, allow_nan=False)
            f.write("\n")
        _progress(args.quiet, f"wrote {args.json}")
    if args.plot:
        plot(settings, rows, args.plot)
        _progress(args.quiet, f"wrote {args.plot}")
    return 0


__all__: Sequence[str] = [
    "IMPLEMENTATIONS",
    "PEERS",
    "VARIANTS",
    "Data",
    "Implementation",
    "Prepared",
    "Variant",
    "kernel_threads",
    "make_data",
    "measure",
    "reference",
    "tolerance",
]
