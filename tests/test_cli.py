"""``aerialseg predict`` on a small saved U-Net."""

from __future__ import annotations

import numpy as np
import pytest

from aerialseg.cli import main
from aerialseg.core.geo.worldfile import WorldFile, read_world_file, write_world_file
from aerialseg.core.io import read_rgb, write_rgb
from aerialseg.core.palette import index_to_rgb
from aerialseg.predict.blending import predict_smooth

from conftest import CLASSES, strict_index


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    path = tmp_path_factory.mktemp("model") / "epoch_001.keras"
    tiny_checkpoint(path, depth=2, base_filters=2)
    return path


@pytest.mark.parametrize("compress", [True, False])  # uncompressed TIFFs are memory-mapped
def test_predict_writes_class_map_and_world_file(checkpoint, tmp_path, real_crop_paths, capsys, compress):
    image = read_rgb(real_crop_paths[0])[:100, :130]
    src = tmp_path / "crop.tif"
    write_rgb(src, image, compress=compress)
    write_world_file(tmp_path / "crop.tfw", WorldFile(0.05, 0, 0, -0.05, 10.0, 20.0))
    out = tmp_path / "pred.png"
    probs = tmp_path / "probs.npy"
    assert main(["predict", str(checkpoint), str(src), "-o", str(out), "--window", "32",
                 "--probabilities", str(probs)]) == 0
    import keras
    model = keras.saving.load_model(checkpoint, compile=False)
    expected = predict_smooth(image, model, window=32, num_classes=6, subdivisions=2, tta="d4")
    written = strict_index(read_rgb(out))
    agree = (written == expected.argmax(-1)).mean()
    assert agree > 0.999  # float16 ties aside, the same blended prediction
    assert np.abs(np.load(probs).astype(np.float32) - expected).max() < 2e-3
    # a PNG's world file is .pgw, the name GDAL/QGIS look for
    assert read_world_file(tmp_path / "pred.pgw").origin_x == 10.0
    assert "wrote" in capsys.readouterr().out


def test_window_not_divisible_by_model_depth_is_a_clear_error(checkpoint, tmp_path, real_crop_paths, capsys):
    out = tmp_path / "pred.png"
    assert main(["predict", str(checkpoint), str(real_crop_paths[0]), "-o", str(out), "--window", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "aerialseg predict: error: --window: 30 is not divisible by 2**depth = 4 of the model"
    assert not out.exists()


def test_grey_image_is_refused(checkpoint, tmp_path, capsys):
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((40, 40), np.uint8))
    assert main(["predict", str(checkpoint), str(grey), "-o", str(tmp_path / "p.png"), "--window", "32"]) == 1
    assert "has 1 channel(s) (shape (40, 40)), the model reads 3 (red, green, blue)" in capsys.readouterr().err


def test_a_model_whose_card_names_other_classes_is_refused(tmp_path, real_crop_paths, capsys, tiny_checkpoint):
    path = tmp_path / "m.keras"
    tiny_checkpoint(path, num_classes=4, depth=1, base_filters=2)  # beside a card of the six default classes
    assert main(["predict", str(path), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert capsys.readouterr().err.strip().endswith(f"{path}: the model predicts 4 classes, its card names 6")


def test_a_model_without_a_card_predicts_numbered_classes_and_says_so(tmp_path, capsys, tiny_checkpoint):
    from aerialseg.core.classes import numbered_classes

    path = tmp_path / "m.keras"
    tiny_checkpoint(path, num_classes=4, depth=1, base_filters=2, card=False)
    image = tmp_path / "i.npy"
    np.save(image, np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert main(["predict", str(path), str(image), "-o", str(tmp_path / "p.png"), "--window", "32"]) == 0
    assert "no model card names its 4 classes: called class_0 .. class_3" in capsys.readouterr().err
    colours = {tuple(c) for c in read_rgb(tmp_path / "p.png").reshape(-1, 3)}
    assert colours <= set(numbered_classes(4).colours) and len(set(numbered_classes(4).colours)) == 4


def test_missing_model_is_reported(tmp_path, real_crop_paths, capsys):
    assert main(["predict", str(tmp_path / "none.keras"), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_rgba_is_converted_and_said(checkpoint, tmp_path, capsys):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 255
    path = tmp_path / "rgba.npy"
    np.save(path, rgba)
    assert main(["predict", str(checkpoint), str(path), "-o", str(tmp_path / "p.png"), "--window", "32"]) == 0
    assert "channel(s) 4 not read (the model reads 3" in capsys.readouterr().err
    assert index_to_rgb(strict_index(read_rgb(tmp_path / "p.png")), CLASSES.colours).shape == (40, 40, 3)


@pytest.mark.parametrize("output, message", [
    ("pred.jpg", "-o: {dir}/pred.jpg: write class maps losslessly as .png or .tif or .tiff, not .jpg"),
    ("pred", "-o: {dir}/pred: write class maps losslessly as .png or .tif or .tiff, not a name without extension"),
    ("crop.png", "-o: {dir}/crop.png is the input image; choose another output"),
])
def test_outputs_that_would_lose_data_are_refused_before_any_work(checkpoint, tmp_path, real_crop_paths, capsys,
                                                                  output, message):
    image = tmp_path / "crop.png"
    image.write_bytes(real_crop_paths[0].read_bytes())
    before = image.read_bytes()
    assert main(["predict", str(checkpoint), str(image), "-o", str(tmp_path / output), "--window", "32"]) == 2
    assert capsys.readouterr().err.strip() == "aerialseg predict: error: " + message.format(dir=tmp_path)
    assert image.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.png"]


def test_probabilities_must_not_overwrite_the_model(checkpoint, tmp_path, real_crop_paths, capsys):
    code = main(["predict", str(checkpoint), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png"),
                 "--probabilities", str(checkpoint)])
    assert code == 2
    assert "--probabilities" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--window", "0"), ("--batch-size", "-1"), ("--subdivisions", "0"),
                                           ("--window", "abc"), ("--tta", "rot90")])
def test_out_of_range_options_exit_2_with_one_line(checkpoint, tmp_path, real_crop_paths, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(checkpoint), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png"), option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"aerialseg predict: error: argument {option}")
    assert not (tmp_path / "p.png").exists()


def _predict_with_file_size_limit(limit: int, *args: str):
    """Run ``aerialseg predict`` in a process that cannot write files beyond ``limit`` bytes (a full disk)."""
    import subprocess
    import sys

    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from aerialseg.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "predict", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("limit, culprit", [(20_000, "probs.npy"), (40, "p.png")])
def test_a_full_disk_is_one_line_and_leaves_nothing(checkpoint, tmp_path, real_crop_paths, limit, culprit):
    image = tmp_path / "crop.npy"
    np.save(image, read_rgb(real_crop_paths[0])[:64, :64])
    out = tmp_path / "out"
    out.mkdir()
    extra = ["--probabilities", str(out / "probs.npy")] if culprit == "probs.npy" else []
    result = _predict_with_file_size_limit(limit, str(checkpoint), str(image), "-o", str(out / "p.png"),
                                           "--window", "32", *extra)
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"aerialseg predict: error: {out / culprit}: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_the_command_says_one_line_even_after_loading_tensorflow(checkpoint, tmp_path, real_crop_paths):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "OPENCV_LOG"))}
    result = subprocess.run([sys.executable, "-m", "aerialseg.cli", "predict", str(checkpoint), str(real_crop_paths[0]),
                             "-o", str(tmp_path / "p.png"), "--window", "30"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "aerialseg predict: error: --window: 30 is not divisible by 2**depth = 4 of the model"]


def test_the_model_card_sets_window_subdivisions_and_tta_unless_an_option_does(tmp_path, real_crop_paths, capsys,
                                                                               tiny_checkpoint):
    from aerialseg.core.geo.geoio import read_class_map
    from aerialseg.core.io import write_json
    from aerialseg.core.names import MODEL_CARD

    carded, bare = tmp_path / "carded", tmp_path / "bare"
    for folder in (carded, bare):
        folder.mkdir()
        tiny_checkpoint(folder / "epoch_001.keras", depth=2, base_filters=2, seed=1)
    write_json(carded / MODEL_CARD, {"schema_version": 1, "window": 32, "subdivisions": 4, "tta": "flips"})
    image = tmp_path / "crop.npy"
    np.save(image, read_rgb(real_crop_paths[0])[:80, :72])

    def run(folder, name, *options):
        capsys.readouterr()
        assert main(["predict", str(folder / "epoch_001.keras"), str(image), "-o", str(tmp_path / name),
                     "--backend", "keras", *options]) == 0
        return read_class_map(tmp_path / name), capsys.readouterr().err

    from_card, said = run(carded, "card.tif")
    assert "window 32 (model card), subdivisions 4 (model card), tta flips (model card)" in said
    assert said.count("a schema 1 model card from an earlier aerialseg") == 1  # read as it is, said once
    explicit, _ = run(bare, "explicit.tif", "--window", "32", "--subdivisions", "4", "--tta", "flips")
    assert np.array_equal(from_card, explicit)
    default, said = run(bare, "default.tif")
    assert "window 128 (default), subdivisions 2 (default), tta d4 (default)" in said
    assert not np.array_equal(default, from_card)
    overridden, said = run(carded, "override.tif", "--window", "64")
    assert "window 64 (--window), subdivisions 4 (model card), tta flips (model card)" in said
    assert np.array_equal(overridden, run(bare, "same.tif", "--window", "64", "--subdivisions", "4", "--tta",
                                          "flips")[0])


MISSING = object()  # the key deleted from the card


@pytest.mark.parametrize("key, value, said", [
    ("window", "64", "window: expected an integer, got '64'"),
    ("window", 0, "window: must be >= 8, got 0"),
    ("tta", "d8", "tta: unknown value 'd8'; expected one of d4, flips, none"),
    ("ground_sample_distance_m", "5cm", "ground_sample_distance_m: expected a number, got '5cm'"),
    ("classes", [{"name": f"c{i}", "colour": [9, 9, 9]} for i in range(5)] + [{"name": "c5", "colour": [256, 0, 0]}],
     "classes[5].colour: expected [red, green, blue] of integers 0..255, got [256, 0, 0]"),
    ("classes", [{"name": "same", "colour": [9, 9, 9]}] * 6, "classes[1].name: expected a name no other class has"),
    ("window", MISSING, "window: missing"),
    ("input", MISSING, "input: missing"),
    ("input", {"bands": ["red", "green", "blue"], "dtype": "uint8"}, "input.normalisation: missing"),
    ("windw", 64, "windw: unknown key; did you mean window?"),
    ("schema_version", 3, "model card schema_version 3 is not one this aerialseg reads (0 .. 2)"),
])
def test_a_model_card_with_a_wrong_value_is_one_line_naming_the_file(tmp_path, real_crop_paths, capsys,
                                                                      tiny_checkpoint, key, value, said):
    """Cards are edited by hand and copied between machines: a wrong value or a missing key is the user's,
    said in one line naming the card file and the key."""
    from aerialseg.core.io import read_json, write_json

    model = tmp_path / "m.keras"
    tiny_checkpoint(model)
    card = read_json(tmp_path / "model_card.json")
    card.pop(key, None)
    write_json(tmp_path / "model_card.json", card if value is MISSING else {**card, key: value})
    assert main(["predict", str(model), str(real_crop_paths[0]), "-o", str(tmp_path / "p.tif")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"aerialseg predict: error: {tmp_path / 'model_card.json'}: ") and said in err[-1]
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "p.tif").exists()


def test_a_window_from_the_card_that_does_not_fit_is_named_as_the_card_s(tmp_path, real_crop_paths, capsys,
                                                                         tiny_checkpoint):
    """The user gave no --window: the message names the card's window, not an option."""
    from aerialseg.core.io import read_json, write_json

    model = tmp_path / "m.keras"
    tiny_checkpoint(model, depth=3)
    write_json(tmp_path / "model_card.json", {**read_json(tmp_path / "model_card.json"), "window": 20})
    assert main(["predict", str(model), str(real_crop_paths[0]), "-o", str(tmp_path / "p.tif")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "aerialseg predict: error: window (model card): 20 is not divisible by 2**depth = 8 of the model")
    assert main(["predict", str(model), str(real_crop_paths[0]), "-o", str(tmp_path / "p.tif"), "--window", "12"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("aerialseg predict: error: --window: 12 ")


def test_an_input_the_model_cannot_take_is_refused_before_any_model_loads(tmp_path, real_crop_paths, capsys,
                                                                          monkeypatch, tiny_checkpoint):
    """A 16-bit image is one line at once, not after a checkpoint has loaded and converted (which takes
    half a minute for a pretrained encoder); in a batch it is a failure and the other images are done."""
    import rasterio

    import aerialseg.predict.backends as backends

    model = tmp_path / "m.keras"
    tiny_checkpoint(model)
    folder = tmp_path / "in"
    folder.mkdir()
    wide = folder / "b_rgbn16.tif"
    with rasterio.open(wide, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint16",
                       transform=rasterio.transform.from_origin(0, 64, 1, 1)) as dst:
        dst.write(np.full((4, 64, 64), 900, np.uint16))
    loaded = []
    real_loader = backends.load_any_model

    def loader(path):
        loaded.append(path)
        return real_loader(path)

    monkeypatch.setattr(backends, "load_any_model", loader)
    assert main(["predict", str(model), str(wide), "-o", str(tmp_path / "wide.tif")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"aerialseg predict: error: {wide}: bands of uint16, the model was trained on uint8 bands (red, green, blue); "
        "give it uint8 bands of the same scaling (gdal_translate -ot)"]
    assert loaded == [] and not (tmp_path / "wide.tif").exists()
    assert main(["predict", str(model), str(folder), "-o", str(tmp_path / "out")]) == 1  # nothing it can take
    assert loaded == [] and "0 of 1 written; 1 failed" in capsys.readouterr().err
    write_rgb(folder / "a.png", read_rgb(real_crop_paths[0])[:64, :64])
    assert main(["predict", str(model), str(folder), "-o", str(tmp_path / "out"), "--tta", "none",
                 "--backend", "keras"]) == 1
    err = capsys.readouterr().err
    assert loaded == [model] and (tmp_path / "out" / "a.tif").is_file() and "1 of 2 written; 1 failed" in err
    assert f"{wide}: bands of uint16, the model was trained on uint8" in err
