"""The fast loop's coverage rule (tests/fast_coverage.py) on hand-made cases."""

from __future__ import annotations

from fast_coverage import ROOT, checked_modules, function_lines, untested

SOURCE = '''"""A module."""
import os

LIMIT = 3


def first(x):
    """Docstring."""
    if x:
        return 1
    return 2


class Thing:
    def method(self):
        return os.sep
'''


def test_function_lines_are_the_bodies_without_docstrings():
    assert function_lines(SOURCE) == {9, 10, 11, 16}


def test_a_module_only_imported_fails_and_one_whose_function_ran_passes():
    sources = {"imported": SOURCE, "called": SOURCE, "method": SOURCE, "never": SOURCE}
    executed = {"imported": {1, 2, 4, 7, 14, 15}, "called": {1, 2, 4, 7, 9, 11}, "method": {16}}
    assert untested(sources, executed) == ["imported", "never"]


def test_a_module_without_functions_passes_once_imported():
    sources = {"constants": "A = 1\nB = 2\n", "unused": "A = 1\n"}
    assert untested(sources, {"constants": {1, 2}}) == ["unused"]


def test_the_rule_covers_every_package_module_and_every_stage():
    names = {p.relative_to(ROOT).as_posix() for p in checked_modules()}
    assert "src/aerialseg/cli.py" in names and "src/aerialseg/predict/blending.py" in names
    assert {f"stages/{p.name}" for p in (ROOT / "stages").glob("*.py")} <= names
    assert "src/aerialseg/core/__init__.py" not in names  # a docstring only
