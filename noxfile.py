"""Developer tasks: ``nox -s tests``, ``nox -s lint``, ``nox -s docs``, ``nox -s bench``.

Each session makes its own virtualenv and installs what it needs from PyPI. Arguments after
``--`` go to the tool the session runs (``nox -s tests -- -x tests/test_api.py``).
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.3.2"
nox.options.sessions = ["lint", "tests", "docs"]
nox.options.default_venv_backend = "virtualenv"

EXTRAS = nox.project.load_toml("pyproject.toml")["project"]["optional-dependencies"]


@nox.session
def tests(session: nox.Session) -> None:
    """Build fastbce and run the test suite. The comparisons with TensorFlow, JAX and PyTorch
    are skipped here; the README's test command (``.[test,peers]``) runs them too."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy on the package, as CI runs them."""
    session.install("ruff", "mypy", "numpy")
    session.run("ruff", "check", "python/fastbce")
    session.run("ruff", "format", "--check", "python/fastbce")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (``-- serve`` to preview it)."""
    session.install(*EXTRAS["docs"])
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        site = f"{session.create_tmp()}/site"  # outside the repository: no site/ to commit
        session.run("mkdocs", "build", "--strict", "--site-dir", site)


@nox.session
def bench(session: nox.Session) -> None:
    """``fastbce bench`` against the peers (TensorFlow, JAX/optax, PyTorch); ``--quick`` unless
    other options are given (``nox -s bench -- --sizes 1e7,1e8 --variants logits,focal``)."""
    session.install(".[peers,plot]")
    session.run("fastbce", "bench", *(session.posargs or ["--quick"]))
