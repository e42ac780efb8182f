"""The package's three layers, as its folders show them, checked on every import.

The core a student reads beside the notebooks sits at the top of ``fibrpc_helpers`` (client,
worker, wire, errors, fib, request_queue, urls, pipeline); ``lab/`` holds the notebook and
machine plumbing, ``bench/`` the benchmark. The core imports neither of the others, so it can
be read (and copied) on its own; the lab never imports the benchmark. The command line
(``__main__``) stands apart: it drives all three.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "fibrpc_helpers"
CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ("__main__.py",))
LAB = sorted((PACKAGE / "lab").glob("*.py"))
CORE_LINES_AT_MOST = 1300
"""What the notebooks need, with docstrings that say why, and nothing more."""
PACKAGE_LINES_AT_MOST = 6000
"""The whole package but ``exercises/`` (the student edition, counted apart): one a reader can
take in. Lines as ``wc -l`` counts them, docstrings and blank lines included."""


def lines_of(paths: list[Path]) -> int:
    return sum(len(path.read_text().splitlines()) for path in paths)


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """Every module ``path`` (under ``root``) imports, as an absolute dotted name."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def offending(path: Path, forbidden: tuple[str, ...], root: Path = PACKAGE.parent) -> list[str]:
    return sorted(m for m in imported_modules(path, root)
                  if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_neither_the_lab_nor_the_benchmark(path):
    assert offending(path, ("fibrpc_helpers.lab", "fibrpc_helpers.bench",
                            "fibrpc_helpers.exercises")) == []


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.name)
def test_the_lab_never_imports_the_benchmark(path):
    assert offending(path, ("fibrpc_helpers.bench",)) == []


def test_the_layer_check_sees_a_forbidden_import(tmp_path):
    """The check itself: a relative import of the lab from a core module is caught."""
    fake = tmp_path / "fibrpc_helpers" / "client.py"
    fake.parent.mkdir()
    fake.write_text("from .lab import notebook\nfrom .bench.grid import Bench\nimport json\n")
    assert offending(fake, ("fibrpc_helpers.lab", "fibrpc_helpers.bench"), tmp_path) == [
        "fibrpc_helpers.bench.grid", "fibrpc_helpers.bench.grid.Bench",
        "fibrpc_helpers.lab", "fibrpc_helpers.lab.notebook"]


def test_the_core_stays_small():
    lines = lines_of(CORE)
    assert lines <= CORE_LINES_AT_MOST, f"the core is {lines} lines (at most {CORE_LINES_AT_MOST})"


def test_the_package_stays_small():
    paths = [p for p in PACKAGE.rglob("*.py") if "exercises" not in p.relative_to(PACKAGE).parts]
    assert PACKAGE / "lab" / "cluster.py" in paths and PACKAGE / "__main__.py" in paths
    lines = lines_of(paths)
    assert lines <= PACKAGE_LINES_AT_MOST, (
        f"the package without exercises/ is {lines} lines (at most {PACKAGE_LINES_AT_MOST})")
