"""A copy of the repository with tiny params: what the in-process stage test and the DVC pipeline
tests run on, so that both exercise the same configuration."""

from __future__ import annotations

import contextlib
import io
import runpy
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from conftest import ROOT

TINY = {
    "epochs": 2,
    "batch_size": 4,
    "checkpoint_every": 1,
    "data": {"synthetic": {"scene_size": 512, "train": ["2_10", "2_11"], "val": ["5_12"], "test": ["2_13"]}},
    "tile": {"patch_size": 64, "stride": 64},
    "model": {"depth": 3, "base_filters": 4, "max_filters": 16},
    "predict": {"window": 64, "batch_size": 8},
    "evaluate": {"baseline_pixels": 5000},
}

COPIED = ("stages", "src", "weights", "external", "dvc.yaml", "params.yaml", ".dvcignore")


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s leaves written into it (in place)."""
    for key, value in override.items():
        if isinstance(value, dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def copy_project(root: Path) -> Path:
    """Copy the repository's pipeline files into ``root`` and shrink its params to ``TINY``."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            shutil.copy(source, root / name)
    params = merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def run_stages(read_output: Callable[[], str], until: str | None = None, start: str | None = None) -> dict[str, str]:
    """Run the stage scripts of dvc.yaml in order in this process, from the current folder (a project),
    as DVC runs them, from ``start`` to ``until``; ``read_output`` returns what was printed since it was
    last called. Returns each stage's summary line."""
    summaries: dict[str, str] = {}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = list(stages)
    for name in names[names.index(start) if start else 0:]:
        command = stages[name]["cmd"].split()
        assert command[:2] == ["python", f"stages/{name}.py"], name
        runpy.run_path(str(ROOT / command[1]), run_name="__main__")
        lines = read_output().strip().splitlines()
        assert lines and lines[-1].startswith(f"{name}: "), (name, lines[-3:])
        summaries[name] = lines[-1]
        if name == until:
            break
    return summaries


def run_stages_in(project: Path, until: str | None = None) -> tuple[dict[str, str], str]:
    """``run_stages`` in ``project`` (the current folder meanwhile), its standard output captured: each
    stage's summary, and what the stages wrote on standard error (warnings, notes)."""
    printed, errors = io.StringIO(), io.StringIO()

    def read_output() -> str:
        text = printed.getvalue()
        printed.seek(0)
        printed.truncate()
        return text

    with contextlib.chdir(project), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        summaries = run_stages(read_output, until=until)
    return summaries, errors.getvalue()
