"""The loss variants ``fastbce bench`` times, their data (the same values for every
implementation) and the float64 reference each value is checked against."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-7  # the probability clip of every implementation (Keras' default)

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


# --------------------------------------------------------------------------- logit distributions


@dataclass(frozen=True)
class Distribution:
    """How the logits of the generated data are drawn (labels follow from them)."""

    name: str
    description: str

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n float64 logits."""
        if self.name == "confident":
            # a confident model: 70% of the logits have |x| uniform in [5, 30] (p within 7e-3
            # of 0 or 1, where exp(-|x|) runs down to 1e-13), 30% are N(0, 1); random signs
            confident = rng.random(n) < 0.7
            magnitude = np.where(confident, rng.uniform(5.0, 30.0, n), rng.normal(0.0, 1.0, n))
            return np.where(rng.random(n) < 0.5, -magnitude, magnitude)
        return rng.normal(0.0, _SIGMA[self.name], n)


_SIGMA = {"normal": 1.0, "normal2": 2.0, "normal4": 4.0}

DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("normal", "logits ~ N(0, 1)"),
        Distribution("normal2", "logits ~ N(0, 2^2)"),
        Distribution("normal4", "logits ~ N(0, 4^2)"),
        Distribution("confident", "logits: 70% |x| ~ U(5, 30), 30% N(0, 1), random signs"),
    )
}
DEFAULT_DISTRIBUTION = "normal4"  # the headline: a trained model's logits spread wider than N(0, 1)


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
    dist: str = DEFAULT_DISTRIBUTION

    @property
    def arrays(self) -> list[np.ndarray]:
        return [a for a in (self.y_true, self.y_pred, self.sample_weight) if a is not None]

    @property
    def nbytes(self) -> int:
        """The bytes every implementation has to read: labels, predictions and weights."""
        return sum(a.nbytes for a in self.arrays)


_base_cache: dict[tuple[int, int, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _base(n: int, seed: int, dist: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 logits, bool labels and float64 weights for size n (the last size is kept).
    Labels are drawn from the sigmoid of the logits: a calibrated model."""
    key = (n, seed, dist)
    if key not in _base_cache:
        _base_cache.clear()
        rng = np.random.default_rng([seed, n])
        logits = DISTRIBUTIONS[dist].draw(rng, n)
        labels = rng.random(n) < 1.0 / (1.0 + np.exp(-logits))
        weights = rng.uniform(0.5, 2.0, n)
        _base_cache[key] = (logits, labels, weights)
    return _base_cache[key]


def make_data(variant: Variant, n: int, seed: int = 0, dist: str = DEFAULT_DISTRIBUTION) -> Data:
    """The inputs of `variant` at size `n` with logits drawn from `dist` (a DISTRIBUTIONS name);
    one seed gives the same values to every variant."""
    logits, labels, weights = _base(n, seed, dist)
    dtype = np.dtype(variant.dtype)
    if variant.from_logits:
        y_pred = logits.astype(dtype)
    else:
        y_pred = (1.0 / (1.0 + np.exp(-logits))).astype(dtype)
    y_true = labels.astype(variant.label_dtype)
    sample_weight = weights.astype(dtype) if variant.weighted else None
    value = reference(variant, y_true, y_pred, sample_weight)
    return Data(variant, n, y_true, y_pred, sample_weight, value, dist)


def reference(
    variant: Variant, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None
) -> float:
    """The mean loss in float64 (docs/reference.md, in log space), in chunks, summed exactly."""
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
            with np.errstate(divide="ignore"):  # p of 0 or 1 (confident logits): -inf, as it is
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
