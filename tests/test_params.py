import pytest

from aerialseg.params import ParamsError, load_params, parse_params
from conftest import ROOT


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.tile.patch_size % 2**params.model.depth == 0
    assert params.checkpoint_epochs[-1] == params.epochs
    split = params.data.split
    assert not set(split.train) & set(split.test)


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["tile"].__setitem__("patch_size", 100), "tile.patch_size"),
    (lambda p: p.__setitem__("checkpoint_every", p["epochs"] + 1), "checkpoint_every"),
    (lambda p: p["data"].__setitem__("source", "sentinel"), "data.source"),
    (lambda p: p["predict"].__setitem__("window", 96), "predict.window"),
    (lambda p: p["predict"].__setitem__("tta", "rot"), "predict.tta"),
    (lambda p: p.__setitem__("epochs", "many"), "epochs"),
    (lambda p: p["train"].__setitem__("learning_rate", 0), "train.learning_rate"),
    (lambda p: p["model"].pop("depth"), "model.depth"),
    (lambda p: p["resize"].__setitem__("scale", 2.0), "resize.scale"),
    (lambda p: p["data"]["synthetic"]["test"].append("2_10"), "data.synthetic.test"),
    (lambda p: p["data"]["synthetic"].__setitem__("val", ["x"]), "data.synthetic.val"),
    (lambda p: p["report"].__setitem__("gallery_scene", "2_10"), "report.gallery_scene"),
    (lambda p: p["model"].__setitem__("batch_norm", "yes"), "model.batch_norm"),
])
def test_bad_params_name_the_key(raw_params, edit, key):
    edit(raw_params)
    with pytest.raises(ParamsError) as err:
        parse_params(raw_params)
    assert str(err.value).startswith(key + ":")
    assert "\n" not in str(err.value)


def test_checkpoint_epochs_include_the_last_epoch(raw_params):
    raw_params.update(epochs=12, checkpoint_every=5)
    assert parse_params(raw_params).checkpoint_epochs == [5, 10, 12]


def test_excluded_tiles_leave_every_split(raw_params):
    raw_params["data"]["exclude"] = ["2_10"]
    assert "2_10" not in parse_params(raw_params).data.split.all_scenes


def test_missing_file_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_unquoted_tile_id_is_explained(raw_params):
    raw_params["data"]["synthetic"]["test"] = [213]
    with pytest.raises(ParamsError, match=r'data.synthetic.test: 213 is not a quoted tile id; write "2_10"'):
        parse_params(raw_params)
