"""dvc.yaml lists exactly the aerialseg modules each stage runs: the import graph is the rerun graph.

A module a stage runs but does not list leaves stale outputs after an edit; a module it
lists but does not run reruns (and may retrain) for nothing. The walk here reads the
sources with ``ast`` on its own, independently of ``aerialseg.core.fingerprint``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PHASES_WITH_MODEL_CODE = ("train", "predict", "evaluate")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return names


def _files_run_by(script: Path) -> set[Path]:
    """The aerialseg source files a stage script imports, directly or through each other."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        for name in _imports(pending.pop()):
            if name.split(".")[0] != "aerialseg" or not _module_file(name):
                continue
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
            for found in [_module_file(name)] + [_module_file(p) for p in parents]:  # a.b runs a/__init__.py
                if found and found not in seen:
                    seen.add(found)
                    pending.append(found)
    return seen


def _script(stage: str) -> Path:
    return ROOT / STAGES[stage]["cmd"].split()[1]


def _declared_sources(stage: str) -> set[Path]:
    return {ROOT / d for d in STAGES[stage]["deps"] if d.endswith(".py")}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_exactly_the_modules_it_runs(stage):
    script = _script(stage)
    declared = _declared_sources(stage)
    assert script in declared, f"{stage}: its script {script.name} is not a dependency"
    run = _files_run_by(script) | {script}
    expected = sorted(str(f.relative_to(ROOT)) for f in run)
    assert declared == run, f"{stage}: dvc.yaml should list exactly these sources: {expected}"


def test_only_prediction_depends_on_blending():
    blending = PACKAGE / "aerialseg" / "predict" / "blending.py"
    users = {stage for stage in STAGES if blending in _files_run_by(_script(stage))}
    assert users == {"predict_smooth", "predict_int8"}


@pytest.mark.parametrize("stage", ["download", "resize", "encode_masks", "tile"])
def test_data_stages_run_no_model_training_or_inference_code(stage):
    package = PACKAGE / "aerialseg"
    phases = {f.relative_to(package).parts[0] for f in _files_run_by(_script(stage))}
    model_phases = phases & set(PHASES_WITH_MODEL_CODE)
    assert not model_phases, f"{stage} runs code of {sorted(model_phases)}"


@pytest.mark.parametrize("stage", ["evaluate", "report", "download", "resize", "encode_masks", "tile"])
def test_stages_without_a_model_import_no_tensorflow(stage):
    # static: no module the stage runs names TensorFlow or Keras
    for path in _files_run_by(_script(stage)) | {_script(stage)}:
        frameworks = {n.split(".")[0] for n in _imports(path)} & {"tensorflow", "keras"}
        assert not frameworks, f"{stage}: {path.name} imports {frameworks}"
    # dynamic: importing the stage script loads neither (nor does any library it uses)
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='stage_probe'); "
             "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe, str(_script(stage))], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
