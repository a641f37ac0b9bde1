import pytest

from aerialseg.core.config.params import load_params, parse_params
from aerialseg.core.errors import ParamsError

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
    (lambda p: p["resize"].__setitem__("gsd", 0), "resize.gsd"),
    (lambda p: p["resize"].__setitem__("gsd", "40cm"), "resize.gsd"),
    (lambda p: p["data"]["synthetic"]["test"].append("2_10"), "data.synthetic.test"),
    (lambda p: p["data"]["synthetic"].__setitem__("val", ["x/y"]), "data.synthetic.val"),
    (lambda p: p["report"].__setitem__("gallery_scene", "2_10"), "report.gallery_scene"),
    (lambda p: p["model"].__setitem__("batch_norm", "yes"), "model.batch_norm"),
    (lambda p: p["train"].__setitem__("strategy", "horovod"), "train.strategy"),
    (lambda p: p["train"].__setitem__("class_weights", "inverse"), "train.class_weights"),
    (lambda p: p["train"].__setitem__("class_weights", {"car": 2.0}), "train.class_weights"),
    (lambda p: p["train"].__setitem__("class_weights", [1, 1, 1, 1, 1, 1]), "train.class_weights"),
    (lambda p: p["train"]["jitter"].__setitem__("contrast", 1.5), "train.jitter.contrast"),
    (lambda p: p["train"]["jitter"].__setitem__("hue", 0.7), "train.jitter.hue"),
    (lambda p: p["train"]["jitter"].__setitem__("gamma", 0.1), "train.jitter.gamma"),
    (lambda p: p["train"]["jitter"].__setitem__("brightness", -0.1), "train.jitter.brightness"),
    (lambda p: p["data"]["potsdam"].__setitem__("url", "ftp://x/2_Ortho_RGB.zip"), "data.potsdam.url"),
    (lambda p: p["data"]["potsdam"].__setitem__("url", "https://x/2_Ortho_RGB.zip"), "data.potsdam.sha256"),
    (lambda p: p["data"]["potsdam"].update(url="https://x/a.zip", sha256="abc"), "data.potsdam.sha256"),
    (lambda p: p["encode"].__setitem__("tolerance", 200), "encode.tolerance"),
    (lambda p: p["encode"].__setitem__("max_offpalette", 5), "encode.max_offpalette"),
    (lambda p: p.__setitem__("jobs", 0), "jobs"),
    (lambda p: p.__setitem__("seed", 2**32), "seed"),
    (lambda p: p["tile"].__setitem__("shard_size", 10**9), "tile.shard_size"),
    (lambda p: p["predict"].__setitem__("batch_size", 0), "predict.batch_size"),
    (lambda p: p["model"].__setitem__("encoder", "vgg16"), "model.encoder"),
    (lambda p: p["model"].__setitem__("encoder_weights", "imagenet"), "model.encoder_weights"),
    (lambda p: p["model"].update(encoder="resnet50", encoder_weights="/tmp/r50.h5"), "model.encoder_weights"),
    (lambda p: p["model"].update(encoder="resnet50", encoder_weights="weights/../r50.h5"), "model.encoder_weights"),
    (lambda p: p["model"].update(encoder="resnet50", encoder_weights="downloads/r50.h5"), "model.encoder_weights"),
    (lambda p: p["model"].update(encoder="resnet50", encoder_weights=None), "model.encoder_weights"),
    (lambda p: p["train"].__setitem__("freeze_encoder_epochs", 5), "train.freeze_encoder_epochs"),
    (lambda p: p["train"].__setitem__("encoder_lr_factor", 0), "train.encoder_lr_factor"),
    (lambda p: p["train"].__setitem__("encoder_lr_factor", 2), "train.encoder_lr_factor"),
    (lambda p: (p["model"].update(encoder="resnet50"), p["tile"].update(patch_size=144, stride=72)), "tile.patch_size"),
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


@pytest.mark.parametrize("scene", ["9_9", "area1", "ortho-2024_N", "Vaihingen.area10", "a"])
def test_any_file_safe_scene_id_is_a_scene(raw_params, scene):
    raw_params["data"]["synthetic"]["test"] = [scene]
    raw_params["report"]["gallery_scene"] = scene
    assert parse_params(raw_params).data.split.test == (scene,)


@pytest.mark.parametrize("scene", ["", "a/b", "../x", ".hidden", "-rf", "north 1", "end.", "x" * 101, "ümlaut"])
def test_a_scene_id_that_cannot_name_a_file_is_refused_in_one_line(raw_params, scene):
    raw_params["data"]["synthetic"]["test"] = [scene]
    with pytest.raises(ParamsError) as raised:
        parse_params(raw_params)
    message = str(raised.value)
    assert message.startswith(f"data.synthetic.test: {scene!r}"[:70]) and "\n" not in message
    assert " is not a scene id (letters, digits, _ . - " in message


def test_scene_ids_that_differ_only_in_case_are_one_scene(raw_params):
    raw_params["data"]["synthetic"].update(train=["Area1", "area2"], val=["AREA2x"], test=["area1"])
    with pytest.raises(ParamsError, match=r"^data.synthetic.test: scene area1 is Area1 in data.synthetic.train; "
                                          r"a scene must belong to one split only$"):
        parse_params(raw_params)
    raw_params["data"]["synthetic"].update(train=["area1", "Area1"], test=["x"])
    with pytest.raises(ParamsError, match=r"^data.synthetic.train: lists a scene twice"):
        parse_params(raw_params)


def test_unquoted_tile_id_is_explained(raw_params):
    raw_params["data"]["synthetic"]["test"] = [213]
    with pytest.raises(ParamsError, match=r'data.synthetic.test: 213 is not a quoted scene id; write "2_10"'):
        parse_params(raw_params)


def test_class_weights_by_name_come_in_the_class_table_order(raw_params):
    from aerialseg.train.compiling import loss_class_weights

    names = raw_params["classes"]["table"]
    raw_params["train"]["class_weights"] = {name: float(i + 1) for i, name in enumerate(reversed(list(names)))}
    params = parse_params(raw_params)
    assert loss_class_weights(params.train, None, params.classes.names) == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    raw_params["train"]["class_weights"] = {name: 0.0 for name in names}
    with pytest.raises(ParamsError, match="train.class_weights: at least one weight must be > 0"):
        parse_params(raw_params)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["table"].__setitem__("2nd", {"colour": [0, 0, 1]}), "classes.table.2nd: a class name is letters"),
    (lambda c: c["table"]["car"].__setitem__("colour", [255, 255]),
     "classes.table.car.colour: expected [red, green, blue]"),
    (lambda c: c["table"]["car"].__setitem__("label_colours", [[255, 0, 0]]),
     "classes.table.clutter.label_colours: colour (255, 0, 0) is also in classes.table.car.label_colours"),
    (lambda c: c["ignore"].__setitem__("values", [3]),
     "classes.ignore.values: value 3 is also in classes.table.tree.values"),
    (lambda c: c["table"]["car"].__setitem__("hue", 3), "classes.table.car.hue: unknown key"),
    (lambda c: c.__setitem__("table", {"only": {"colour": [1, 1, 1]}}), "classes.table: give 2 to 250 classes, got 1"),
    (lambda c: [v.__setitem__("headline", False) for v in c["table"].values()],
     "classes.table: every class has headline"),
])
def test_a_bad_class_table_is_one_line_naming_the_key(raw_params, edit, message):
    edit(raw_params["classes"])
    with pytest.raises(ParamsError) as raised:
        parse_params(raw_params)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_the_default_table_is_the_isprs_six_with_clutter_out_of_the_headline(raw_params):
    classes = parse_params(raw_params).classes
    assert classes.names == ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
    assert classes.headline_classes == (0, 1, 2, 3, 4) and classes.ignore_colours == ((0, 0, 0),)
    assert classes.values == tuple((i,) for i in range(6))
    assert classes.label_colours == tuple((c,) for c in classes.colours)


def test_download_urls_pair_with_checksums(raw_params):
    raw_params["data"]["potsdam"].update(url=["https://x/2_Ortho_RGB.zip", "https://x/5_Labels_all.zip"],
                                         sha256=["A" * 64, "b" * 64])
    assert parse_params(raw_params).data.potsdam.downloads == (
        ("https://x/2_Ortho_RGB.zip", "a" * 64), ("https://x/5_Labels_all.zip", "b" * 64))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.__setitem__("epoch", 3), "epoch: unknown key; did you mean epochs?"),
    (lambda p: p["train"].__setitem__("learning_rat", 0.1),
     "train.learning_rat: unknown key; did you mean learning_rate?"),
    (lambda p: p["data"]["potsdam"].__setitem__("paths", "x"), "data.potsdam.paths: unknown key; did you mean path?"),
    (lambda p: p["model"].__setitem__("dropout", 0.1), "model.dropout: unknown key; expected one of"),
    (lambda p: p["train"]["jitter"].__setitem__("gamma", 0.1), "train.jitter.gamma: unknown key; expected one of"),
])
def test_unknown_keys_are_refused_with_the_closest_name(raw_params, edit, message):
    edit(raw_params)
    with pytest.raises(ParamsError) as err:
        parse_params(raw_params)
    assert str(err.value).startswith(message)


def test_an_unquoted_gallery_scene_gets_the_quoting_hint(raw_params):
    raw_params["report"]["gallery_scene"] = 213  # what YAML makes of -S report.gallery_scene=2_13
    with pytest.raises(ParamsError, match=r'report.gallery_scene: 213 is not a quoted scene id; write "2_10"'):
        parse_params(raw_params)


def test_sections_mirror_the_yaml(raw_params):
    params = parse_params(raw_params)
    assert params.resize.gsd == raw_params["resize"]["gsd"]
    assert params.data.synthetic.scene_size == raw_params["data"]["synthetic"]["scene_size"]
    assert params.evaluate.baseline_pixels == raw_params["evaluate"]["baseline_pixels"]
    assert params.report.gallery_scene == raw_params["report"]["gallery_scene"]
    assert params.train.jitter.hue == raw_params["train"]["jitter"]["hue"]


def test_tta_choices_are_the_blending_ones():
    from aerialseg.core.config.params import TTA_MODES
    from aerialseg.predict.blending import transforms

    assert [len(transforms(mode)) for mode in TTA_MODES] == [8, 4, 1]
    with pytest.raises(ValueError):
        transforms("rot")


def test_an_encoder_takes_weights_under_the_tracked_folder_and_inputs_divisible_by_32(raw_params):
    raw_params["model"].update(encoder="convnext_tiny", encoder_weights="weights/convnext_tiny_notop.h5", depth=7)
    raw_params["train"].update(freeze_encoder_epochs=3, encoder_lr_factor=0.1)
    params = parse_params(raw_params)  # depth 7 would need 128-divisible inputs; an encoder needs 32
    assert params.model.encoder_weights == "weights/convnext_tiny_notop.h5"
    assert params.train.freeze_encoder_epochs == 3
    raw_params["predict"]["window"] = 112
    with pytest.raises(ParamsError, match="^predict.window: 112 is not divisible by the output stride of encoder"):
        parse_params(raw_params)


def test_the_replaced_resize_scale_names_resize_gsd(raw_params):
    raw_params["resize"] = {"scale": 0.125}
    with pytest.raises(ParamsError) as raised:
        parse_params(raw_params)
    assert str(raised.value).startswith("resize.scale: replaced by resize.gsd, the ground sample distance")
    assert "\n" not in str(raised.value)


def test_no_gallery_scene_means_the_first_test_scene_and_a_folder_split_is_left_to_download(raw_params):
    raw_params["report"]["gallery_scene"] = None
    assert parse_params(raw_params).report.gallery_scene is None  # report takes split.json's first test scene
    raw_params["data"]["source"] = "folder"  # lists empty: download draws the split from the folder's scenes
    raw_params["report"]["gallery_scene"] = "ortho_05"
    assert parse_params(raw_params).data.split.all_scenes == ()
    raw_params["data"]["folder"]["fractions"] = {"val": 0.5, "test": 0.5}
    with pytest.raises(ParamsError, match=r"^data.folder.fractions.test: val 0.5 \+ test 0.5 leave no scene to train"):
        parse_params(raw_params)


def test_vector_label_settings_name_classes_of_the_table(raw_params):
    vector = raw_params["data"]["folder"]["vector"]
    vector["buffer_m"] = {"road": 3.0}
    with pytest.raises(ParamsError, match=r"^data.folder.vector.buffer_m: 'road' is not a class of classes.table"):
        parse_params(raw_params)
    vector["buffer_m"] = {"impervious": 3.0}
    vector["burn_order"] = ["tree", "building"]
    with pytest.raises(ParamsError, match=r"^data.folder.vector.burn_order: lists tree, building; list every class"):
        parse_params(raw_params)
    vector["burn_order"] = None
    vector["aoi"] = "area.gpkg"
    with pytest.raises(ParamsError, match=r"^data.folder.vector.aoi: limits where background counts, but "
                                          r"data.folder.vector.background is null"):
        parse_params(raw_params)
    vector["background"] = "low_vegetation"
    assert parse_params(raw_params).data.folder.vector.buffer_m == (("impervious", 3.0),)
