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


def test_the_tile_manifest_carries_the_classes_into_the_card_and_train_refuses_another_table(tmp_path, monkeypatch,
                                                                                             capsys):
    """params -> tile manifest -> model card; tiles labelled with another table than the params' are refused
    before any training, in one line naming the manifest."""
    project = copy_project(tmp_path)
    monkeypatch.chdir(project)
    run_stages(lambda: capsys.readouterr().out, until="tile")
    params = yaml.safe_load((project / "params.yaml").read_text())
    manifest_file = project / "data" / "tiles" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    facts = manifest["data"]
    assert [c["name"] for c in facts["classes"]] == list(params["classes"]["table"])
    assert facts["ground_sample_distance_m"] == params["resize"]["gsd"]
    assert facts["input"]["bands"] == ["red", "green", "blue"]
    names = ", ".join(params["classes"]["table"])
    facts["classes"][-1]["name"] = "other"
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as stopped:
        run_stages(lambda: capsys.readouterr().out, start="train", until="train")
    assert stopped.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "train: error: data/tiles/manifest.json: the tiles are labelled with classes "
        f"{names.rsplit(', ', 1)[0]}, other, but params.yaml's table has {names}; run the tile stage again")
    assert not (project / "data" / "models").exists()
    facts["classes"][-1]["name"] = list(params["classes"]["table"])[-1]
    facts["ground_sample_distance_m"] = 0.8  # what the tiles were, whatever params say now
    manifest_file.write_text(json.dumps(manifest))
    run_stages(lambda: capsys.readouterr().out, start="train", until="train")
    card = json.loads((project / "data" / "models" / "model_card.json").read_text())
    assert card["ground_sample_distance_m"] == 0.8 and card["classes"] == facts["classes"]
