"""dvc.yaml must list every aerialseg module a stage runs, or an edit leaves stale outputs."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src"


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_aerialseg_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return {n for n in names if n.split(".")[0] == "aerialseg" and _module_file(n)}


def _files_run_by(script: Path) -> set[Path]:
    """The aerialseg source files a stage script imports, directly or through each other."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        for name in _imported_aerialseg_modules(pending.pop()):
            file = _module_file(name)
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
            for found in [file] + [_module_file(p) for p in parents]:  # importing a.b runs a/__init__.py too
                if found and found not in seen:
                    seen.add(found)
                    pending.append(found)
    return seen


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_every_module_it_runs(stage):
    spec = STAGES[stage]
    script = ROOT / spec["cmd"].split()[1]
    declared = [ROOT / d for d in spec["deps"]]
    assert script in declared, f"{stage}: its script {script.name} is not a dependency"
    missing = sorted(str(f.relative_to(ROOT)) for f in _files_run_by(script)
                     if f.name != "__init__.py" and not any(f == d or d in f.parents for d in declared))
    assert not missing, f"{stage}: dvc.yaml misses {missing}"
