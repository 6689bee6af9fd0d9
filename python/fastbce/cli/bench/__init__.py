"""``fastbce bench``: fastbce against NumPy, TensorFlow, Keras, PyTorch and JAX on the same data.

This package is the one place where each implementation's expression is written
(``implementations``) and where the timing is done (``timing``); the pytest benchmarks in
``benchmarks/`` import the same pieces (:data:`VARIANTS`, :data:`IMPLEMENTATIONS`,
:func:`make_data`, :func:`Implementation.prepare`).

How a measurement goes (docs/benchmarks.md explains the columns):

- Data are generated once per size with a fixed seed (logits from one of :data:`DISTRIBUTIONS`,
  by default N(0, 4^2); labels drawn from the sigmoid of the logits, weights ~ U(0.5, 2)); every
  implementation gets the same values. ``sweep`` times fastbce alone on inputs of one magnitude
  each (``--sweep``); ``grad`` times ``binary_crossentropy_grad`` against NumPy and a memory
  floor (``--grad``).
- ``prepare`` converts the NumPy arrays into the framework's tensors (``tf.constant``,
  ``torch.from_numpy``, ``jnp.asarray`` + ``block_until_ready``), builds the function
  (``tf.function``, ``jax.jit``) and calls it once, so conversion and JIT compilation stay
  outside the timed region. The timed function returns a finished result (JAX's is
  ``block_until_ready``'d inside it).
- The float64 reference follows the loss formula of docs/reference.md in log space
  (``np.logaddexp``), a different formula from the NumPy peer's, summed in float64 chunks with
  ``math.fsum``.
- The read floor is ``fastbce._core.read_floor``: it reads every byte of the inputs on the number
  of threads fastbce's kernel uses for that size, and does nothing else.
"""

from __future__ import annotations

from .command import add_arguments, run
from .implementations import IMPLEMENTATIONS, Implementation
from .options import DEFAULT_SIZES, QUICK_SIZES
from .peers import PEERS, Peer, has_module, peer_installed, peer_versions
from .timing import Prepared, Settings, kernel_threads, measure
from .variants import (
    DEFAULT_DISTRIBUTION,
    DISTRIBUTIONS,
    VARIANTS,
    Data,
    Distribution,
    Variant,
    make_data,
    reference,
    tolerance,
)

__all__ = [
    "DEFAULT_DISTRIBUTION",
    "DEFAULT_SIZES",
    "DISTRIBUTIONS",
    "IMPLEMENTATIONS",
    "PEERS",
    "QUICK_SIZES",
    "VARIANTS",
    "Data",
    "Distribution",
    "Implementation",
    "Peer",
    "Prepared",
    "Settings",
    "Variant",
    "add_arguments",
    "has_module",
    "kernel_threads",
    "make_data",
    "measure",
    "peer_installed",
    "peer_versions",
    "reference",
    "run",
    "tolerance",
]
