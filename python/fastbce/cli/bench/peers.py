"""The libraries ``fastbce bench`` compares with: how to tell they are installed, their
versions and how to install them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


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
