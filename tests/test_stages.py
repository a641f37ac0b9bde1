"""Every stage script, in dvc.yaml's order, run in this process on the tiny configuration: each
prints its summary line and writes what dvc.yaml declares for it.

This is the fast check that the stage scripts work together; what DVC adds (reruns, caches,
kills, locks) is tests/test_pipeline.py's, behind the ``slow`` marker.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tiny_project import copy_project, run_stages

from conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def declared_outputs(stage: dict) -> list[str]:
    """The paths a dvc.yaml stage declares as outs, metrics and plots."""
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


# the tiny configuration's Potsdam-like tile ids, and scene ids as other releases and users name them
SCENE_IDS = {
    "tile ids": None,
    "other ids": {"train": ["area1", "ortho-2024_N"], "val": ["Val.3"], "test": ["ortho-2024_S"]},
}


@pytest.mark.parametrize("scenes", SCENE_IDS)
def test_every_stage_script_runs_in_order_and_writes_its_declared_outputs(tmp_path, monkeypatch, capsys, scenes):
    project = copy_project(tmp_path)
    if SCENE_IDS[scenes]:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["data"]["synthetic"].update(SCENE_IDS[scenes])
        params["report"]["gallery_scene"] = SCENE_IDS[scenes]["test"][0]
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(project)
    for name in STAGES:
        run_stages(lambda: capsys.readouterr().out, until=name, start=name)
        for path in declared_outputs(STAGES[name]):
            output = project / path
            assert output.exists(), f"{name} did not write {path}"
            assert output.stat().st_size > 0 and (not output.is_dir() or any(output.iterdir())), f"{name}: {path} empty"
    assert sorted(p.name for p in (project / "data" / "predictions").iterdir()) == ["epoch_001", "epoch_002"]
    split = yaml.safe_load((project / "params.yaml").read_text())["data"]["synthetic"]
    test_scene = split["test"][0]
    assert (project / "data" / "predictions" / "epoch_002" / f"{test_scene}_smooth.tif").is_file()
    evaluation = json.loads((project / "metrics" / "data_report.json").read_text())
    assert sorted(evaluation["tiles"]) == sorted(split["train"] + split["val"] + split["test"])
