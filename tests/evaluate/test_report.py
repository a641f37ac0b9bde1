"""Every image the report writes is opened and checked; the table has one row per checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aerialseg.core.errors import DataError
from aerialseg.core.io import read_rgb
from aerialseg.evaluate import report

from conftest import CLASSES


def _scores(miou):
    block = {"miou_6": miou, "mf1_6": miou + 0.05}
    return {"plain": {"noboundary": block}, "smooth": {"noboundary": {"miou_6": miou + 0.01, "mf1_6": miou + 0.06}}}


def _checkpoints(epochs):
    return {f"{e:03d}": {"train": {"loss": 1.0 / e, "accuracy": 0.5, "jaccard": 0.4},
                         "val": {"loss": 1.1 / e, "accuracy": 0.45, "jaccard": 0.35},
                         "test": _scores(0.5 + e / 1000)} for e in epochs}


def test_table_has_one_row_per_checkpoint_in_epoch_order():
    text = report.epoch_table(_checkpoints([100, 25, 50, 75]), 6)
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == [25, 50, 75, 100]
    assert "| 25 | 0.0400 | 0.5000 | 0.4000 | 0.0440 | 0.4500 | 0.3500 | 0.5250 | 0.5350 | 0.5750 | 0.5850 |" in text


def _picture(path):
    image = read_rgb(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 50
    assert image.std() > 5  # not a blank canvas
    return image


def test_gallery_rows_match_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    truth = rng.integers(0, 6, (64, 64), dtype=np.uint8)
    heights = {}
    for n in (1, 3):
        rows = [(10 * (i + 1), truth, truth) for i in range(n)]
        report.gallery(image, truth, rows, tmp_path / f"g{n}.png", CLASSES, thumb=128)
        heights[n] = _picture(tmp_path / f"g{n}.png").shape[0]
    # each extra checkpoint adds one row of thumbnails
    assert heights[3] - heights[1] == pytest.approx(2 * 128, rel=0.15)


def test_progress_animation_has_a_frame_per_checkpoint_with_the_epoch(tmp_path):
    import imageio.v3 as iio

    image = np.full((64, 80, 3), 128, np.uint8)
    masks = [(e, np.full((64, 80), e % 6, np.uint8)) for e in (10, 20, 30)]
    frames = report.progress_frames(image, masks, CLASSES)
    report.write_animation(frames, tmp_path / "p.gif")
    stack = iio.imread(tmp_path / "p.gif", index=None)
    assert stack.shape[0] == 3 and stack.shape[1:3] == (64, 160)
    # the printed epoch changes pixels in the top-left corner of every frame
    assert all((f[:25, :60] != image[0, 0]).any() for f in frames)


def test_curves_legend_and_confusion_are_written(tmp_path):
    history = pd.DataFrame({"epoch": range(5), "loss": np.linspace(1, 0.2, 5), "val_loss": np.linspace(1.1, 0.3, 5),
                            "mean_iou": np.linspace(0.1, 0.8, 5), "val_mean_iou": np.linspace(0.1, 0.7, 5),
                            "jaccard": np.linspace(0.2, 0.8, 5), "val_jaccard": np.linspace(0.2, 0.7, 5)})
    paths = report.training_curves(history, tmp_path)
    assert [p.name for p in paths] == ["loss.png", "iou.png"]
    for p in paths:
        _picture(p)
    report.legend(tmp_path / "legend.png", CLASSES)
    legend = _picture(tmp_path / "legend.png")
    # the six official colours appear in the legend
    for colour in ((0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)):
        assert (legend == colour).all(-1).any()
    truth = np.random.default_rng(1).integers(0, 6, (64, 64), dtype=np.uint8)
    report.before_after(np.zeros((64, 64, 3), np.uint8), truth, truth, 50, tmp_path / "ba.png", CLASSES, thumb=128)
    assert _picture(tmp_path / "ba.png").shape[1] > 2 * _picture(tmp_path / "ba.png").shape[0]
    cm = np.diag([10, 20, 30, 40, 5, 1]) + 1
    report.confusion_figure(cm, tmp_path / "cm.png", "test", CLASSES)
    _picture(tmp_path / "cm.png")
    assert len(CLASSES) == 6


def test_the_gallery_shows_the_declared_bands_stretched_by_the_input_s_normalisation():
    from aerialseg.core.input_spec import RGB_UINT8, InputSpec, Normalisation
    from aerialseg.evaluate.report import display_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(display_rgb(rgb, RGB_UINT8), rgb)  # 8-bit RGB: as it is
    spec = InputSpec(bands=("nir", "red", "green", "blue"), dtype="uint16",
                     normalisation=Normalisation(method="percentiles", low=(100.0, 0.0, 0.0, 0.0),
                                                 high=(1100.0, 1000.0, 2000.0, 4000.0)))
    image = np.stack([np.full((2, 2), v, np.uint16) for v in (600, 500, 2500, 1000)], -1)
    np.testing.assert_array_equal(display_rgb(image, spec)[0, 0], [127, 255, 63])  # red, green, blue; clipped
    np.testing.assert_array_equal(display_rgb(image, spec, ("nir", "red", "green"))[0, 0], [127, 127, 255])
    np.testing.assert_array_equal(display_rgb(image, spec, ("nir",))[0, 0], [127, 127, 127])  # one band: grey
    with pytest.raises(DataError, match=r"^report.display_bands: swir: name 1 to 3 of the input's bands "
                                        r"\(nir, red, green, blue\)$"):
        display_rgb(image, spec, ("swir",))
