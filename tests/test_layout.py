"""The package's shape: size bounds that keep one job per module, and code that stands alone.

Bounds (docs/architecture.md): a module at most 500 lines (``pitch.py``, with its numba kernels,
700); a function at most 100 lines (a numba kernel 200); a class at most 250 lines. Benchmarks and
studies use the package's public names only. No file refers to a design note outside the
repository or to the project's issue tracker by number: facts are stated in ``docs/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "raympa"
MODULE_LINES = {"pitch.py": 700}
DEFAULT_MODULE_LINES = 500
FUNCTION_LINES = 100
KERNEL_LINES = 200  # numba-compiled functions
CLASS_LINES = 250


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_kernel(node: ast.AST) -> bool:
    for dec in getattr(node, "decorator_list", []):
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if "jit" in name or "vectorize" in name:
            return True
    return False


def _span(node: ast.AST) -> int:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return node.end_lineno - start + 1


def test_modules_are_within_their_line_bound():
    over = []
    for path in _modules():
        n = len(path.read_text().splitlines())
        bound = MODULE_LINES.get(path.name, DEFAULT_MODULE_LINES)
        if n > bound:
            over.append(f"{path.relative_to(ROOT)}: {n} lines (bound {bound})")
    assert not over, "modules over their size bound:\n" + "\n".join(over)


def test_functions_and_classes_are_within_their_line_bounds():
    over = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bound = KERNEL_LINES if _is_kernel(node) else FUNCTION_LINES
            elif isinstance(node, ast.ClassDef):
                bound = CLASS_LINES
            else:
                continue
            if _span(node) > bound:
                over.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {_span(node)} lines (bound {bound})")
    assert not over, "functions or classes over their size bound:\n" + "\n".join(over)


def test_bound_checker_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES + 1))
    tree = ast.parse(f"def long():\n{body}\n")
    assert _span(tree.body[0]) > FUNCTION_LINES
    kernel = ast.parse(f"@nb.njit(cache=True)\ndef k():\n{body}\n").body[0]
    assert _is_kernel(kernel) and not _is_kernel(tree.body[0])


def _text_files() -> list[Path]:
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"),
             *(ROOT / "studies").rglob("*.py"), *(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]
    return [f for f in files if f.is_file() and f.resolve() != Path(__file__).resolve()]


# a design note outside the repository, or an issue number ("issue 4", "(#12)")
OUTSIDE_REFERENCE = re.compile(r"DESIGN\.md|\bissues? \d+\b|\(#\d+\)", re.IGNORECASE)


def test_no_file_refers_to_notes_outside_the_repository_or_to_issue_numbers():
    hits = []
    for path in _text_files():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "references to outside notes or issue numbers:\n" + "\n".join(hits)


@pytest.mark.parametrize("folder", ["benchmarks", "studies"])
def test_scripts_use_public_names_only(folder):
    private = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("raympa"):
                private += [f"{path.name}: from {node.module} import {a.name}"
                            for a in node.names if a.name.startswith("_")]
                if any(part.startswith("_") for part in (node.module or "").split(".")):
                    private.append(f"{path.name}: from {node.module}")
    assert not private, "private raympa names used by scripts:\n" + "\n".join(private)
