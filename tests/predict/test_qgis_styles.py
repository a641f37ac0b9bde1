"""A map shows its classes in QGIS wherever it is copied: QGIS 3 itself (headless, python3-qgis) opens
a class GeoTIFF copied without its ``.aux.xml`` and the GeoPackage of its polygons with aerialseg's
styles (``NAME.qml``, the GeoPackage's ``layer_styles``): every class's value, colour and name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from aerialseg.core.io import read_rgb

from conftest import CLASSES, FIXTURES

QGIS_PYTHON = "/usr/bin/python3"  # Debian's, where python3-qgis installs QGIS's bindings (make gis-tools)
READER = Path(__file__).with_name("qgis_reads.py")


def _qgis_shows(folder: Path) -> dict:
    shown = subprocess.run([QGIS_PYTHON, str(READER), str(folder)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, f"headless QGIS failed (make gis-tools installs it): {shown.stderr[-800:]}"
    return json.loads(shown.stdout.strip().splitlines()[-1])


def test_qgis_shows_the_classes_of_a_copied_map_and_of_its_polygons(tmp_path, tiny_checkpoint):
    model = tmp_path / "model" / "epoch_001.keras"
    model.parent.mkdir()
    tiny_checkpoint(model)  # its card names the default classes
    image = tmp_path / "crop.png"
    shutil.copy(FIXTURES / "top_potsdam_2_10_crop512_RGB.png", image)
    assert read_rgb(image).shape == (512, 512, 3)
    out = tmp_path / "out" / "map.tif"
    # as a user runs it: its own process, which loads GDAL's SQLite before TensorFlow's (an R*Tree index)
    subprocess.run([sys.executable, "-m", "aerialseg.cli", "predict", str(model), str(image), "-o", str(out),
                    "--vector", "--tta", "none", "--window", "64"], check=True, capture_output=True, timeout=300)
    copied = tmp_path / "copied"  # what a user sends on: no .aux.xml with the category names
    copied.mkdir()
    for name in ("map.tif", "map.qml", "map.gpkg"):
        shutil.copy(out.parent / name, copied / name)
    shown = _qgis_shows(copied)
    expected = [[i, name, "#{:02x}{:02x}{:02x}".format(*colour)]
                for i, (name, colour) in enumerate(zip(CLASSES.names, CLASSES.colours, strict=True))]
    assert shown["raster_valid"] and shown["raster_renderer"] == "paletted"
    assert shown["raster_classes"] == expected
    assert shown["vector_valid"] and shown["vector_renderer"] == "categorizedSymbol"
    assert shown["vector_attribute"] == "class"
    assert shown["vector_classes"] == [[str(i), name, colour] for i, name, colour in expected]
    (copied / "map.qml").unlink()  # without the style, QGIS would show numbers: the style is what names them
    assert [c[1] for c in _qgis_shows(copied)["raster_classes"]][:len(CLASSES)] == [str(i) for i in range(len(CLASSES))]
