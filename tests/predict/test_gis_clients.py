"""The outputs as GIS programs read them: GDAL's own command-line tools (Debian's gdal-bin),
not aerialseg's reader."""

import json
import sqlite3
import subprocess
import sys

import numpy as np
import rasterio

from aerialseg.cli import main
from aerialseg.core.io import read_rgb

from conftest import CLASSES, FIXTURES


def _orthophoto(path, rgb):
    profile = {"driver": "GTiff", "width": rgb.shape[1], "height": rgb.shape[0], "count": 3, "dtype": "uint8",
               "crs": "EPSG:25833", "transform": rasterio.Affine(0.4, 0, 366_000, 0, -0.4, 5_808_000)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    return path


def test_gdalinfo_lists_the_class_names_and_the_geopackage_has_a_spatial_index(tmp_path, tiny_checkpoint, capsys):
    from aerialseg.core.model_card import card_beside
    from aerialseg.predict.export import export_model

    checkpoint = tmp_path / "m.keras"
    tiny_checkpoint(checkpoint, depth=2, base_filters=4, seed=3)
    model = tmp_path / "m.onnx"
    export_model(checkpoint, model, "onnx", gsd_m=None, window=32, subdivisions=2, tta="none",
                 card=card_beside(checkpoint))
    image = _orthophoto(tmp_path / "ortho.tif", read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")[:96, :96])
    for extra in ([], ["--cog"]):
        out = tmp_path / f"map{len(extra)}.tif"
        # a process of its own, as a user runs it: an exported model, so TensorFlow is never loaded
        subprocess.run([sys.executable, "-m", "aerialseg.cli", "predict", str(model), str(image), "-o", str(out),
                        "--vector", *extra], check=True, capture_output=True, timeout=300)
        info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, text=True,
                                         check=True).stdout)
        band = info["bands"][0]
        assert band["categories"] == list(CLASSES.names)
        assert band["colorInterpretation"] == "Palette" and band["noDataValue"] == 255
        text = subprocess.run(["gdalinfo", str(out)], capture_output=True, text=True, check=True).stdout
        assert "Categories:" in text and "      5: clutter" in text
        with sqlite3.connect(out.with_suffix(".gpkg")) as db:
            extensions = {row[0] for row in db.execute("SELECT extension_name FROM gpkg_extensions")}
        assert "gpkg_rtree_index" in extensions
        listed = subprocess.run(["ogrinfo", "-so", "-al", str(out.with_suffix(".gpkg"))], capture_output=True,
                                text=True, check=True).stdout
        assert "Layer name: classes" in listed and "Geometry: Polygon" in listed
        with rasterio.open(out) as src:
            assert np.isin(src.read(1), [*range(len(CLASSES.names)), 255]).all()
    # with TensorFlow loaded (this process), whether GDAL's SQLite can index depends on which loaded first:
    # the GeoPackage is indexed, or the command says it is not
    assert main(["predict", str(checkpoint), str(image), "-o", str(tmp_path / "tf.tif"), "--window", "32",
                 "--tta", "none", "--backend", "keras", "--vector"]) == 0
    with sqlite3.connect(tmp_path / "tf.gpkg") as db:  # a GeoPackage without any extension has no such table
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexed = "gpkg_extensions" in tables and "gpkg_rtree_index" in {
            row[0] for row in db.execute("SELECT extension_name FROM gpkg_extensions")}
    assert indexed != ("written without a spatial index" in capsys.readouterr().err)
