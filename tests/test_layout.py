"""The shape of the source tree: no import cycle in the package, no oversized module, and no
reference to files outside the repository.

These read the source files of the checkout (not the installed package).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "fastbce"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 120

# Where the repository must not send a reader to a contract it does not contain.
NO_OUTSIDE_REFERENCES = [
    ROOT / "python",
    ROOT / "cpp",
    ROOT / "docs",
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "mkdocs.yml",
]
OUTSIDE_REFERENCE = re.compile(r"shared/SPEC|\.\./shared")


def test_no_import_cycle():
    """tools/check_imports.py: every import counts, function-level ones too."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_imports.py"), "--edges"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no import cycle" in proc.stdout


def test_check_imports_finds_a_cycle(tmp_path):
    """The checker itself: a cycle through a function-level import is reported."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_imports.py"), str(pkg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "import cycle: pkg.a -> pkg.b -> pkg.a" in proc.stdout


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_module_and_function_size(path):
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} is {length} lines"


def test_no_reference_outside_the_repository():
    found = []
    for top in NO_OUTSIDE_REFERENCES:
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if not path.is_file() or path.suffix in (".so", ".pyc"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if OUTSIDE_REFERENCE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    print(
        "\n".join(found)
        or "no reference to shared/ in " + ", ".join(map(str, NO_OUTSIDE_REFERENCES))
    )
    assert not found, "say docs/reference.md instead:\n" + "\n".join(found)


# The C++ harnesses in tools/ are built by hand (their first lines give the command), so nothing
# else would notice a header change that breaks them; a syntax-only compile with the flags of
# those commands (no link, no AVX-512 CPU needed) does.
TOOL_HARNESSES = {
    "time_kernel.cpp": ["-I", "cpp/include"],
    "trace_pool.cpp": ["-I", "cpp/include", "-I", "cpp/src"],
    "report_floors.cpp": ["-march=x86-64-v4", "-DFASTBCE_TIER=tier_v4", "-I", "cpp/include"],
}


@pytest.mark.parametrize("name", sorted(TOOL_HARNESSES))
def test_tool_harness_compiles(name):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the harnesses are built with it by hand")
    cmd = [compiler, "-std=c++20", "-fsyntax-only", "-Wall", *TOOL_HARNESSES[name], f"tools/{name}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_every_tool_harness_is_compiled():
    assert sorted(p.name for p in (ROOT / "tools").glob("*.cpp")) == sorted(TOOL_HARNESSES)
