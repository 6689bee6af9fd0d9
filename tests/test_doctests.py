"""The examples in the public docstrings run and print what they show, on every SIMD tier.

Each public function and class has a numpydoc "Examples" section, which the API reference shows;
this runs them with doctest against the installed package, so an example cannot go stale. The
modules are found from the public names (``fastbce.__all__``) and the public adapter modules,
so a name that moves between private modules stays covered.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import types

import pytest

import fastbce

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Public modules of their own, and the optional library each needs.
ADAPTERS = {"fastbce.dask": "dask", "fastbce.xgboost": "xgboost", "fastbce.lightgbm": "lightgbm"}


def _public_objects() -> dict[str, object]:
    return {
        f"fastbce.{name}": getattr(fastbce, name)
        for name in fastbce.__all__
        if inspect.isfunction(getattr(fastbce, name)) or inspect.isclass(getattr(fastbce, name))
    }


def _adapters() -> list[str]:
    return [name for name in ADAPTERS if importlib.util.find_spec(name) is not None]


def _import_adapter(name: str) -> types.ModuleType:
    pytest.importorskip(ADAPTERS[name], reason=f"{name} needs the optional {ADAPTERS[name]}")
    return importlib.import_module(name)


def _modules() -> list[str]:
    names = {obj.__module__ for obj in _public_objects().values()}
    return sorted(names) + _adapters()


def test_public_names_are_found():
    assert "fastbce.binary_crossentropy" in _public_objects()
    assert "fastbce.LossAccumulator" in _public_objects()
    assert "fastbce.dask" in _adapters()


@pytest.mark.parametrize("name", sorted(_public_objects()))
def test_public_name_has_an_example(name):
    doc = inspect.getdoc(_public_objects()[name]) or ""
    assert "Examples\n--------" in doc and ">>> " in doc, f"{name} has no numpydoc example"


@pytest.mark.parametrize("module", _adapters())
def test_adapter_functions_have_examples(module):
    mod = _import_adapter(module)
    missing = [
        name
        for name in getattr(mod, "__all__", [])
        if ">>> " not in (inspect.getdoc(getattr(mod, name)) or "")
    ]
    assert not missing, f"{module}: no example in {', '.join(missing)}"


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples(module, simd_target):
    mod = _import_adapter(module) if module in ADAPTERS else importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report: list[str] = []
    for test in finder.find(mod, module):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    assert results.attempted > 0, f"{module} has no docstring example"
