"""The architecture page and the package agree, and the package keeps the shape it promises.

``docs/architecture.md`` shows the package as a tree; a module that exists but is not in
the tree (or is in the tree but does not exist) fails here, so the page cannot drift.
"""

import ast
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "src" / "aerialseg"
PAGE = ROOT / "docs" / "architecture.md"
PHASES = ("core", "prepare", "train", "predict", "evaluate")
MAX_LINES = 400


def documented_files() -> set[str]:
    """Paths (relative to src/aerialseg) of the files the page's tree names."""
    text = PAGE.read_text()
    tree = re.search(r"```text\nsrc/aerialseg/\n(.*?)```", text, re.S)
    assert tree, f"{PAGE.name}: no ```text block starting with src/aerialseg/"
    found, stack = set(), []
    for line in tree.group(1).splitlines():
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )(\S+)", line)
        assert match, f"{PAGE.name}: cannot read tree line {line!r}"
        depth = len(match.group(1)) // 4
        name = match.group(2)
        stack[depth:] = [name.rstrip("/")]
        if not name.endswith("/"):
            found.add("/".join(stack))
    return found


def package_modules() -> set[str]:
    """Every source file of the package, except the phases' docstring-only ``__init__.py``."""
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    return {f for f in files if not (f.endswith("/__init__.py"))}


def test_the_architecture_page_names_every_module_and_no_other():
    documented, actual = documented_files(), package_modules()
    assert not actual - documented, f"modules missing from {PAGE.name}'s tree: {sorted(actual - documented)}"
    assert not documented - actual, f"{PAGE.name}'s tree names modules that do not exist: {sorted(documented - actual)}"


def test_the_phases_are_visible_at_the_top():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(PHASES)


@pytest.mark.parametrize("init", sorted(p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE),
                         ids=lambda p: p.parent.relative_to(PACKAGE).as_posix())
def test_subpackage_inits_hold_a_docstring_only(init):
    body = ast.parse(init.read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), (
        f"{init.relative_to(ROOT)}: a re-export here would make every importing stage depend on more files")


def test_no_module_is_over_the_size_limit():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert not {f: n for f, n in sizes.items() if n > MAX_LINES}, f"modules over {MAX_LINES} lines"
