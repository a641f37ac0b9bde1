"""A class table other than ISPRS's, end to end: a miniature Potsdam-layout release whose labels use
seven colours (impervious split into road and pavement) runs every stage, and its names and colours
reach the metrics, the prediction GeoTIFFs, the model card, the ONNX metadata and ``aerialseg predict``'s
outputs, read as GDAL and fiona read them. The same labels as index rasters (1..7, 0 ignore) give the
same masks; an undeclared colour or value stops encode_masks in one line."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import fiona
import numpy as np
import pytest
import rasterio
import tifffile
import yaml

from aerialseg.cli import main
from aerialseg.core.io import read_index_mask, write_rgb
from tiny_project import copy_project, run_stages, run_stages_in

NAMES = ("road", "pavement", "building", "low_vegetation", "tree", "car", "clutter")
COLOURS = ((128, 128, 128), (255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
TABLE = {name: {"colour": list(colour), "values": [i + 1]}
         for i, (name, colour) in enumerate(zip(NAMES, COLOURS, strict=True))}
TABLE["clutter"]["headline"] = False
IGNORE = {"values": [0], "colours": [[0, 0, 0]]}
SIZE = 128  # px at 5 cm: 64 px at the tiny configuration's 0.1 m
SCENES = {"train": ["2_10", "2_11"], "val": ["2_12"], "test": ["2_13"]}


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose colour follows its classes (0..6, every one present), and the class index."""
    rng = np.random.default_rng(seed)
    index = np.repeat(np.repeat(rng.permutation(np.arange(16) % 7).reshape(4, 4), SIZE // 4, 0), SIZE // 4, 1)
    shades = np.array([(90, 90, 90), (200, 200, 190), (170, 60, 50), (120, 200, 90), (30, 110, 30), (40, 40, 220),
                       (150, 120, 60)])
    image = np.clip(shades[index] + rng.integers(-15, 16, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return image, index.astype(np.uint8)


def _tif(path: Path, array: np.ndarray) -> bytes:
    if array.ndim == 3:
        write_rgb(path, array)
    else:
        tifffile.imwrite(path, array)  # a single-band index raster
    return path.read_bytes()


def make_release(folder: Path, kind: str, extra: tuple[int, ...] | None = None) -> Path:
    """The three official zips for the scenes, labels as colour rasters in the table's colours or as
    index rasters (``kind``); ``extra`` (a colour or a value) paints a 20 x 20 patch of 2_10's labels."""
    folder.mkdir(parents=True)
    scratch = folder / "scratch.tif"
    with zipfile.ZipFile(folder / "2_Ortho_RGB.zip", "w") as rgb, \
            zipfile.ZipFile(folder / "5_Labels_all.zip", "w") as full, \
            zipfile.ZipFile(folder / "5_Labels_all_noBoundary.zip", "w") as noboundary:
        for seed, tile in enumerate(s for split in SCENES.values() for s in split):
            image, index = _scene(seed)
            eroded = index.copy()
            eroded[:: SIZE // 4] = 255  # boundary rows
            labels = []
            for mask in (index, eroded):
                if kind == "colour":
                    label = np.array([*COLOURS, *[(0, 0, 0)] * 249], np.uint8)[mask]
                else:
                    label = np.where(mask == 255, 0, mask + 1).astype(np.uint8)
                if extra is not None and tile == "2_10":
                    label[:20, :20] = extra
                labels.append(label)
            rgb.writestr(f"2_Ortho_RGB/top_potsdam_{tile}_RGB.tif", _tif(scratch, image))
            rgb.writestr(f"2_Ortho_RGB/top_potsdam_{tile}_RGB.tfw", "0.05\n0\n0\n-0.05\n366000.025\n5808000.975\n")
            full.writestr(f"top_potsdam_{tile}_label.tif", _tif(scratch, labels[0]))
            noboundary.writestr(f"top_potsdam_{tile}_label_noBoundary.tif", _tif(scratch, labels[1]))
    scratch.unlink()
    return folder


def _project(root: Path, kind: str, extra: tuple[int, ...] | None = None) -> Path:
    project = copy_project(root)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["classes"] = {"table": TABLE, "ignore": IGNORE}
    params["data"]["source"] = "potsdam"
    params["data"]["potsdam"].update(path="release", **SCENES)
    params["resize"]["gsd"] = 0.1
    params["tile"].update(patch_size=32, stride=32)
    params["predict"]["window"] = 32
    params["report"]["gallery_scene"] = SCENES["test"][0]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_release(project / "release", kind, extra)
    return project


@pytest.fixture(scope="module")
def seven(tmp_path_factory):
    """The colour-label project, run from download to report (in this process)."""
    project = _project(tmp_path_factory.mktemp("seven"), "colour")
    run_stages_in(project)
    return project


def test_metric_keys_are_the_seven_names_and_the_headline_six(seven):
    evaluation = json.loads((seven / "metrics/eval.json").read_text())
    block = evaluation["smooth"]["noboundary"]
    assert sorted(block["iou"]) == sorted(NAMES)  # the files' keys are sorted
    assert {"miou_7", "miou_6", "mf1_7", "mf1_6"} <= set(block) and "miou_5" not in block
    report = json.loads((seven / "metrics/data_report.json").read_text())
    assert sorted(report["tiles"]["2_10"]["full"]["class_share"]) == sorted(NAMES)
    assert (seven / "metrics/epoch_table.md").read_text().count("mean over all 7 classes") == 1


def test_the_card_the_onnx_metadata_and_the_pipeline_geotiffs_carry_the_table(seven):
    from aerialseg.predict.onnx_model import OnnxSegmenter

    card = json.loads((seven / "data/models/model_card.json").read_text())
    assert card["classes"] == [{"name": n, "colour": list(c)} for n, c in zip(NAMES, COLOURS, strict=True)]
    exported = OnnxSegmenter(seven / "data/export/model.onnx")
    assert exported.card is not None and exported.card.classes is not None
    assert exported.card.classes.names == NAMES and exported.card.classes.colours == COLOURS
    assert exported.num_classes == 7
    with rasterio.open(seven / "data/predictions/epoch_002/2_13_smooth.tif") as prediction:
        table = prediction.colormap(1)
        assert [table[i][:3] for i in range(7)] == list(COLOURS)
        assert prediction.read(1).max() < 7


def test_aerialseg_predict_writes_seven_named_probability_bands_and_a_geopackage_of_the_names(seven, tmp_path,
                                                                                                 capsys):
    checkpoint = seven / "data/models/epoch_002.keras"
    image = seven / "data/resized/2_13_image.tif"
    out = tmp_path / "map.tif"
    assert main(["predict", str(checkpoint), str(image), "-o", str(out), "--probabilities", "--vector",
                 "--crs", "EPSG:25833", "--tta", "none"]) == 0
    assert "no model card" not in capsys.readouterr().err
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, text=True,
                                     check=True).stdout)
    band = info["bands"][0]
    assert band["categories"] == list(NAMES)
    assert [entry[:3] for entry in band["colorTable"]["entries"][:7]] == [list(c) for c in COLOURS]
    with rasterio.open(tmp_path / "map_probabilities.tif") as probabilities:
        assert probabilities.count == 7 and probabilities.descriptions == NAMES
    with fiona.open(tmp_path / "map.gpkg") as layer:
        written = {feature.properties["name"] for feature in layer}
    assert written and written <= set(NAMES)
    # a map copied without its .aux.xml still shows the classes in QGIS: NAME.qml beside the GeoTIFF, and
    # the GeoPackage's default style, read with the query QGIS's OGR provider runs
    palette = ElementTree.parse(tmp_path / "map.qml").getroot().find("pipe/rasterrenderer")
    assert palette is not None and palette.get("type") == "paletted" and palette.get("band") == "1"
    assert [(int(e.get("value")), e.get("color"), e.get("label")) for e in palette.iter("paletteEntry")] == [
        (i, "#{:02x}{:02x}{:02x}".format(*colour), name)
        for i, (name, colour) in enumerate(zip(NAMES, COLOURS, strict=True))]
    query = ("SELECT styleQML FROM layer_styles WHERE f_table_name = 'classes' AND f_geometry_column = 'geom' "
             "AND useAsDefault = 1 ORDER BY update_time DESC")
    found = json.loads(subprocess.run(["ogr2ogr", "-f", "GeoJSON", "/vsistdout/", str(tmp_path / "map.gpkg"),
                                       "-sql", query], capture_output=True, text=True, check=True).stdout)
    style = ElementTree.fromstring(found["features"][0]["properties"]["styleQML"].split("\n", 1)[1])
    renderer = style.find("renderer-v2")
    assert renderer is not None and (renderer.get("type"), renderer.get("attr")) == ("categorizedSymbol", "class")
    assert [(c.get("value"), c.get("label")) for c in renderer.iter("category")] == [
        (str(i), name) for i, name in enumerate(NAMES)]
    fills = [next(s.iter("prop")).get("v") for s in renderer.iter("symbol")]
    assert fills == ["{},{},{},255".format(*colour) for colour in COLOURS]


def test_index_labels_give_the_masks_of_the_colour_labels(seven, tmp_path, monkeypatch, capsys):
    project = _project(tmp_path / "index", "index")
    monkeypatch.chdir(project)
    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    masks = sorted(p.name for p in (seven / "data/masks").iterdir())
    assert masks == sorted(p.name for p in (project / "data/masks").iterdir()) and len(masks) == 8
    for name in masks:
        np.testing.assert_array_equal(read_index_mask(project / "data/masks" / name),
                                      read_index_mask(seven / "data/masks" / name))


# the 20 x 20 px patch at 5 cm is 10 x 10 px in the resized label that encode_masks reads
@pytest.mark.parametrize("kind, extra, said", [
    ("colour", (50, 100, 150), "rgb(50, 100, 150) x100"),
    ("index", 9, "value 9 x100"),
])
def test_an_undeclared_label_colour_or_value_stops_encoding_in_one_line(tmp_path, monkeypatch, capsys, kind, extra,
                                                                         said):
    project = _project(tmp_path / kind, kind, extra)
    monkeypatch.chdir(project)
    run_stages(lambda: capsys.readouterr().out, until="resize")
    with pytest.raises(SystemExit) as stopped:
        run_stages(lambda: capsys.readouterr().out, start="encode_masks", until="encode_masks")
    assert stopped.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("encode_masks: error: release/5_Labels_all.zip: member top_potsdam_2_10_label.tif "
                           "(as data/resized/2_10_label.tif): scene 2_10: ")
    assert said in line
    assert not (project / "data/masks").exists() and not (project / "metrics/data_report.json").exists()
