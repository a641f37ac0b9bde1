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


def _isprs_mentions(path) -> list[str]:
    """Where a module names one of the default table's classes (in a string, not a docstring, or as a
    constant) or spells one of its colours (white and black aside: they are also text colours)."""
    import yaml

    table = yaml.safe_load((ROOT / "params.yaml").read_text())["classes"]["table"]
    names = set(table)
    colours = {tuple(entry["colour"]) for entry in table.values()} - {(0, 0, 0), (255, 255, 255)}
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        words: set[str] = set()
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words = set(re.findall(r"[A-Za-z]+(?:_[A-Za-z]+)*", node.value))
        elif isinstance(node, ast.Name) and node.id.isupper():  # a constant such as CLUTTER = 5
            words = {node.id.lower()}
        if words & names:
            found.append(f"line {node.lineno}: {sorted(words & names)}")
        if (isinstance(node, ast.Tuple | ast.List) and len(node.elts) == 3
                and all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts)
                and tuple(e.value for e in node.elts) in colours):  # type: ignore[union-attr]
            found.append(f"line {node.lineno}: colour {tuple(e.value for e in node.elts)}")  # type: ignore[union-attr]
    return sorted(found, key=lambda f: int(f.split(":")[0].split()[1]))


# the synthetic source draws the six ISPRS roles (and refuses any other table)
DRAWING = {PACKAGE / "prepare" / "sources" / "synthetic.py", PACKAGE / "prepare" / "sources" / "synthetic_drawing.py"}


@pytest.mark.parametrize("path", sorted(set(PACKAGE.rglob("*.py")) | set((ROOT / "stages").glob("*.py"))),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_but_the_synthetic_drawing_names_an_isprs_class_or_colour(path):
    """The classes are data (params.yaml's table, the model card): code that names one would break for
    every other table."""
    found = _isprs_mentions(path)
    if path in DRAWING:
        return
    assert not found, f"{path.relative_to(ROOT)} names the default classes: {found}"


def test_the_class_check_finds_a_class_name_and_a_colour(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Names clutter in a docstring only."""\nX = ("car", 1)\nCOLOUR = (0, 0, 255)\n'
                      'CLUTTER = 5\ntree = ast.parse("")\n')
    assert _isprs_mentions(module) == ["line 2: ['car']", "line 3: colour (0, 0, 255)", "line 4: ['clutter']"]
    assert _isprs_mentions(PACKAGE / "prepare" / "sources" / "synthetic.py")  # the drawing does name them
