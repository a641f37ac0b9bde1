"""Digests of code by what it does: docstrings and comments do not count, statements do.

Caches that reuse work (training states, predictions) key on the code that produced it,
so that a real change to an algorithm is never hidden behind a stale result, while an
edited comment or docstring does not throw away hundreds of trained epochs.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "aerialseg"
# Modules that only carry values, name files or move bytes: their code does not change what
# training or prediction computes (the values themselves are part of a run's settings), so
# editing them keeps saved training states and predictions valid.
VALUE_ONLY_MODULES = ("aerialseg", "aerialseg.core", "aerialseg.core.config", "aerialseg.core.geo",
                      "aerialseg.core.errors", "aerialseg.core.fingerprint",
                      "aerialseg.core.framework", "aerialseg.core.atomic", "aerialseg.core.io",
                      "aerialseg.core.geo.worldfile", "aerialseg.core.names", "aerialseg.core.config.params",
                      "aerialseg.core.config.data_params",
                      "aerialseg.core.config.declarations", "aerialseg.core.protocols")


class _DropDocstrings(ast.NodeTransformer):
    """Remove every statement that is a bare string literal (docstrings, attribute notes)."""

    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node


def normalized_source(source: str) -> str:
    """The abstract syntax of ``source`` without docstrings, comments, layout or line numbers."""
    tree = _DropDocstrings().visit(ast.parse(source))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def module_file(name: str) -> Path:
    """The source file of an importable module (a package's ``__init__.py``)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no source file for module {name}")
    return Path(spec.origin)


def _imported(name: str) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(module_file(name).read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.split(".")[0] == PACKAGE and _is_module(candidate):
                found.add(candidate)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ``pkg.function`` looks like a submodule of a module
        return False


def module_closure(roots: Iterable[str], exclude: Iterable[str] = VALUE_ONLY_MODULES) -> list[str]:
    """The package's modules that ``roots`` run, transitively, without following ``exclude``."""
    excluded = set(exclude)
    seen: set[str] = set()
    pending = [r for r in roots if r not in excluded]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(m for m in _imported(name) if m not in seen and m not in excluded)
    return sorted(seen)


def code_digest(roots: Iterable[str], exclude: Iterable[str] = VALUE_ONLY_MODULES) -> str:
    """A digest of what the modules ``roots`` run (see ``module_closure``), docstrings and comments aside."""
    digest = hashlib.sha256()
    for name in module_closure(roots, exclude):
        digest.update(name.encode() + b"\0" + normalized_source(module_file(name).read_text()).encode() + b"\0")
    return digest.hexdigest()[:16]
