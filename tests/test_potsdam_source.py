import numpy as np
import pytest

from aerialseg.datasets.layout import SceneFiles
from aerialseg.datasets.potsdam import collect_tiles
from aerialseg.io import DataError, read_rgb, write_rgb


def _release(root, tile_ids, skip_label=None):
    """A miniature extracted release in the official folder structure."""
    for tile_id in tile_ids:
        image = np.full((8, 8, 3), 100, np.uint8)
        write_rgb(root / "2_Ortho_RGB" / f"top_potsdam_{tile_id}_RGB.tif", image)
        (root / "2_Ortho_RGB" / f"top_potsdam_{tile_id}_RGB.tfw").write_text("0.05\n0\n0\n-0.05\n1\n2\n")
        if tile_id != skip_label:
            write_rgb(root / "5_Labels_all" / f"top_potsdam_{tile_id}_label.tif", np.full((8, 8, 3), 255, np.uint8))
        write_rgb(root / "5_Labels_all_noBoundary" / f"top_potsdam_{tile_id}_label_noBoundary.tif",
                  np.zeros((8, 8, 3), np.uint8))


def test_collects_official_files_from_the_release_folders(tmp_path):
    _release(tmp_path / "release", ["2_10", "2_11"])
    out = tmp_path / "raw"
    out.mkdir()
    assert collect_tiles(tmp_path / "release", out, ["2_10", "2_11"]) == ["2_10", "2_11"]
    files = SceneFiles(out, "2_11")
    assert all(p.is_file() for p in files.required() + [files.world])
    assert read_rgb(files.image).shape == (8, 8, 3)


def test_image_without_label_names_the_tile(tmp_path):
    _release(tmp_path / "release", ["2_10", "3_12"], skip_label="3_12")
    out = tmp_path / "raw"
    out.mkdir()
    with pytest.raises(DataError, match="tile 3_12 has no top_potsdam_3_12_label.tif"):
        collect_tiles(tmp_path / "release", out, ["2_10", "3_12"])


def test_missing_release_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="data.potsdam.path is not a folder"):
        collect_tiles(tmp_path / "nowhere", tmp_path, ["2_10"])
