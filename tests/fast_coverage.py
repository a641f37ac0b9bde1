"""The fast loop's rule: every module under ``src/aerialseg`` and ``stages/`` has a fast test.

"Has a fast test" means: while ``pytest -m "not slow"`` ran under coverage, at least one
statement inside one of the module's functions ran (importing a module runs its top level,
which proves nothing). A module without functions counts once it was imported. ``make
test-fast`` runs this after the suite; it prints each module that fails the rule and exits 1.

    python tests/fast_coverage.py [COVERAGE_DATA_FILE]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checked_modules(root: Path = ROOT) -> list[Path]:
    """Every source file the rule covers: the package's modules (not its docstring-only
    ``__init__.py`` files) and the stage scripts."""
    package = sorted(p for p in (root / "src" / "aerialseg").rglob("*.py") if not _docstring_only(p))
    return package + sorted((root / "stages").glob("*.py"))


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def function_lines(source: str) -> set[int]:
    """Line numbers of the statements inside the functions (methods too) of ``source``,
    docstrings left out."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            for statement in body:
                lines |= {n.lineno for n in ast.walk(statement) if isinstance(n, ast.stmt)}
    return lines


def untested(sources: Mapping[str, str], executed: Mapping[str, set[int]]) -> list[str]:
    """The names in ``sources`` (name -> source text) that fail the rule, given the lines
    coverage saw executed (name -> line numbers; a name missing there never ran)."""
    failing = []
    for name, source in sources.items():
        ran = executed.get(name, set())
        inside = function_lines(source)
        if not (ran & inside if inside else ran):
            failing.append(name)
    return failing


def main(argv: list[str]) -> int:
    import coverage

    data = coverage.CoverageData(basename=argv[0] if argv else str(ROOT / ".coverage"))
    data.read()
    measured = {str(Path(f).resolve()): set(data.lines(f) or ()) for f in data.measured_files()}
    modules = checked_modules()
    sources = {str(path.resolve()): path.read_text() for path in modules}
    failing = untested(sources, measured)
    for name in failing:
        print(f"make test-fast: {Path(name).relative_to(ROOT)}: no fast test runs any of its functions "
              "(add one, or move the test that does out from behind the slow marker)")
    print(f"fast coverage rule: {len(modules) - len(failing)} of {len(modules)} modules have a fast test")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
