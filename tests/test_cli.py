"""``aerialseg predict`` on a small saved U-Net."""

from __future__ import annotations

import numpy as np
import pytest

from aerialseg.blending import predict_smooth
from aerialseg.cli import main
from aerialseg.io import WorldFile, read_rgb, read_world_file, write_rgb, write_world_file
from aerialseg.model import build_unet
from aerialseg.palette import index_to_rgb

from conftest import strict_index


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "epoch_001.keras"
    build_unet(depth=2, base_filters=2).save(path)
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
    assert main(["predict", str(checkpoint), str(real_crop_paths[0]), "-o", str(out), "--window", "30"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "aerialseg predict: error: --window: 30 is not divisible by 2**depth = 4 of the model"
    assert not out.exists()


def test_grey_image_is_refused(checkpoint, tmp_path, capsys):
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((40, 40), np.uint8))
    assert main(["predict", str(checkpoint), str(grey), "-o", str(tmp_path / "p.png"), "--window", "32"]) == 1
    assert "needs 3-channel RGB" in capsys.readouterr().err


def test_model_with_other_classes_is_refused(tmp_path, real_crop_paths, capsys):
    path = tmp_path / "m.keras"
    build_unet(num_classes=4, depth=1, base_filters=2).save(path)
    assert main(["predict", str(path), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert "predicts 4 classes, the ISPRS palette has 6" in capsys.readouterr().err


def test_missing_model_is_reported(tmp_path, real_crop_paths, capsys):
    assert main(["predict", str(tmp_path / "none.keras"), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_rgba_is_converted_and_said(checkpoint, tmp_path, capsys):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 255
    path = tmp_path / "rgba.npy"
    np.save(path, rgba)
    assert main(["predict", str(checkpoint), str(path), "-o", str(tmp_path / "p.png"), "--window", "32"]) == 0
    assert "dropped the alpha channel" in capsys.readouterr().err
    assert index_to_rgb(strict_index(read_rgb(tmp_path / "p.png"))).shape == (40, 40, 3)
