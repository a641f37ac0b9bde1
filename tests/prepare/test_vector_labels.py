"""Vector labels: polygons, lines and points in any CRS, burnt exactly on each scene's grid.

The scenes and layers are built in the test: RGB GeoTIFFs in EPSG:25832 and EPSG:25833 of different
sizes, labelled by a GeoPackage of polygons in EPSG:4326. The reference is independent of the code
under test: GDAL/OGR reprojects (``rasterio.warp.transform_geom``, where the code uses pyproj over
shapely) and ``rasterio.features.rasterize`` burns, feature by feature in the class table's order."""

from __future__ import annotations

import json
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.warp import transform_geom

from aerialseg.cli import main as aerialseg
from aerialseg.core.config.data_params import VectorParams
from aerialseg.core.errors import DataError
from aerialseg.core.io import read_index_mask, read_rgb
from aerialseg.prepare.sources import vector_labels
from aerialseg.prepare.sources.vector_labels import Grid, rasterise, read_layer
from tiny_project import copy_project, run_stages

from conftest import CLASSES, FIXTURES

IGNORE = 255
GSD = 0.4  # the scenes' own pixel size, resize.gsd's too: the masks are the burn itself
# scene: (CRS, (height, width), (longitude, latitude) of its top-left corner); in the split's order
SCENES = {"west": ("EPSG:25832", (192, 256), (11.9975, 52.4010)),
          "east": ("EPSG:25833", (256, 192), (12.0035, 52.4010)),
          "south": ("EPSG:25833", (160, 176), (12.0010, 52.3995))}
RULES = VectorParams(layer=None, class_field="class", burn_order=(), buffer_m=(), all_touched=False, background=None,
                     aoi=None)


def _origin(crs: str, lonlat: tuple[float, float]) -> tuple[float, float]:
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*lonlat)
    return round(x, 1), round(y, 1)


def _grid(scene: str) -> tuple[Affine, tuple[int, int], str]:
    crs, shape, lonlat = SCENES[scene]
    x, y = _origin(crs, lonlat)
    return Affine(GSD, 0, x, 0, -GSD, y), shape, crs


def _ring(points: np.ndarray, scene: str) -> list[tuple[float, float]]:
    """Pixel (column, row) corners of a scene as a closed ring of longitudes and latitudes."""
    transform, _, crs = _grid(scene)
    xs, ys = transform * (points[:, 0], points[:, 1])
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return [*zip(lon.tolist(), lat.tolist(), strict=True), (float(lon[0]), float(lat[0]))]


def _polygons(rng: np.random.Generator) -> list[dict]:
    """Per scene: a large impervious quadrilateral, then two random (valid) triangles or quadrilaterals
    of every class, overlapping, all in longitude/latitude."""
    features = []
    for scene in SCENES:
        _, (height, width), _ = _grid(scene)
        big = np.array([[-3, -2], [width * 0.9, 4.0], [width * 0.95, height * 0.85], [5.0, height * 0.9]])
        features.append(("impervious", _ring(big, scene)))
        for name in CLASSES.names:
            for _ in range(2):
                centre = rng.uniform([0, 0], [width, height])
                corners = rng.integers(3, 5)
                angles = (np.arange(corners) + rng.uniform(0, 0.4, corners)) * 2 * np.pi / corners  # gaps < pi
                radius = rng.uniform(8, 30, corners)[:, None]
                features.append((name, _ring(centre + np.column_stack([np.cos(angles), np.sin(angles)]) * radius,
                                             scene)))
    rng.shuffle(features)  # file order is not class order
    return [{"class": name, "geometry": {"type": "Polygon", "coordinates": [points]}} for name, points in features]


def _write_layer(path: Path, features: list[dict], crs: str = "EPSG:4326", driver: str = "GPKG",
                 geometry: str = "Polygon", field: str = "class", kind: str = "str") -> None:
    schema = {"geometry": geometry, "properties": {field: kind}}
    with fiona.open(path, "w", driver=driver, crs=crs, schema=schema) as dst:
        for feature in features:
            dst.write({"geometry": feature["geometry"], "properties": {field: feature["class"]}})


def _expected(features: list[dict], scene: str, order: tuple[str, ...] = CLASSES.names,
              all_touched: bool = False) -> np.ndarray:
    transform, shape, crs = _grid(scene)
    ranked = sorted(features, key=lambda f: order.index(f["class"]))  # stable: file order within a class
    shapes = [(transform_geom("EPSG:4326", crs, f["geometry"]), CLASSES.names.index(f["class"])) for f in ranked]
    return rasterize(shapes, out_shape=shape, transform=transform, fill=IGNORE, dtype=np.uint8,
                     all_touched=all_touched)


@pytest.fixture()
def vectors(tmp_path, monkeypatch):
    """A tiny project whose three scenes are labelled by one GeoPackage of polygons in EPSG:4326."""
    project = copy_project(tmp_path / "project")
    root = project / "external" / "own"
    crop = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")
    for scene in SCENES:
        transform, (height, width), crs = _grid(scene)
        (root / "images").mkdir(parents=True, exist_ok=True)
        with rasterio.open(root / "images" / f"{scene}.tif", "w", driver="GTiff", width=width, height=height, count=3,
                           dtype="uint8", crs=crs, transform=transform) as dst:
            dst.write(crop[:height, :width].transpose(2, 0, 1))
    features = _polygons(np.random.default_rng(3))
    _write_layer(root / "labels.gpkg", features)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "folder"
    params["data"]["folder"].update(labels="labels.gpkg", train=["west"], val=["east"], test=["south"],
                                    min_label_coverage=0.3)
    params["classes"]["ignore"]["values"] = [IGNORE]
    params["resize"]["gsd"] = GSD
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(project)
    return project, features


def test_polygons_in_wgs84_burn_on_each_scene_s_grid_as_an_independent_rasterisation(vectors, capsys):
    project, features = vectors
    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    for scene in SCENES:
        expected = _expected(features, scene)
        with rasterio.open(project / "data" / "raw" / f"{scene}_label.tif") as burnt:
            np.testing.assert_array_equal(burnt.read(1), expected, err_msg=scene)
        np.testing.assert_array_equal(read_index_mask(project / "data" / "masks" / f"{scene}_full.png"), expected,
                                      err_msg=scene)  # at the scenes' own GSD, the masks are the burn
        assert 0.3 < (expected != IGNORE).mean() < 1  # a fair test: labels and ignore both present
    report = json.loads((project / "metrics" / "data_report.json").read_text())["scenes"]
    assert report["west"]["crs"] == "EPSG:25832" and report["east"]["crs"] == "EPSG:25833"
    assert report["west"]["vector"]["features"] > 0 and report["west"]["vector"]["repaired"] == 0


def test_a_vector_folder_trains_predicts_a_geotiff_and_polygons(vectors, capsys, tmp_path):
    project, _ = vectors
    run_stages(lambda: capsys.readouterr().out)
    with rasterio.open(project / "data" / "predictions" / "epoch_002" / "south_smooth.tif") as prediction:
        assert prediction.crs.to_string() == "EPSG:25833" and prediction.shape == SCENES["south"][1]
    out = tmp_path / "south_classes.tif"
    assert aerialseg(["predict", str(project / "data" / "models" / "epoch_002.keras"),
                      str(project / "external" / "own" / "images" / "south.tif"), "-o", str(out), "--vector",
                      "--tta", "none"]) == 0
    with fiona.open(tmp_path / "south_classes.gpkg") as layer:
        assert layer.crs.to_string() == "EPSG:25833"
        assert {feature.properties["name"] for feature in layer} <= set(CLASSES.names)
        assert len(layer) > 0


def _square_grid(gsd: float, size_m: float = 60.0) -> Grid:
    x, y = _origin("EPSG:25833", (12.0, 52.4))
    side = int(round(size_m / gsd))
    return Grid(Affine(gsd, 0, x, 0, -gsd, y), side, side, rasterio.crs.CRS.from_epsg(25833))


def test_a_line_buffered_by_3_m_is_a_6_m_road_at_any_ground_sample_distance(tmp_path):
    x, y = _origin("EPSG:25833", (12.0, 52.4))
    to_lonlat = Transformer.from_crs("EPSG:25833", "EPSG:4326", always_xy=True)
    ends = [to_lonlat.transform(x - 10, y - 30.1), to_lonlat.transform(x + 70, y - 30.1)]  # west-east, 30 m down
    path = tmp_path / "roads.geojson"
    _write_layer(path, [{"class": "impervious", "geometry": {"type": "LineString", "coordinates": ends}}],
                 driver="GeoJSON", geometry="LineString")
    rules = VectorParams(**{**RULES.__dict__, "buffer_m": (("impervious", 3.0),), "background": "low_vegetation"})
    widths = {}
    for gsd in (0.1, 0.25, 0.6):
        grid = _square_grid(gsd)
        label, counts = rasterise(read_layer(path, rules, CLASSES), grid, rules, CLASSES, IGNORE)
        assert counts["features"] == 1 and set(np.unique(label)) == {0, 2}  # the road on low vegetation
        widths[gsd] = float(np.median((label == 0).sum(axis=0)) * gsd)
    for gsd, width in widths.items():
        assert abs(width - 6.0) <= gsd, widths  # within a pixel of 6 m at every GSD
    touched = VectorParams(**{**rules.__dict__, "all_touched": True})
    grid = _square_grid(0.6)
    label, _ = rasterise(read_layer(path, touched, CLASSES), grid, touched, CLASSES, IGNORE)
    width = float(np.median((label == 0).sum(axis=0)) * 0.6)
    assert widths[0.6] < width <= 6.0 + 2 * 0.6  # every pixel the road touches: up to a pixel more each side


def test_overlapping_polygons_burn_by_the_declared_order_and_background_stays_inside_the_aoi(tmp_path):
    grid = _square_grid(0.5, 40.0)
    x, y = grid.transform.c, grid.transform.f
    to_lonlat = Transformer.from_crs("EPSG:25833", "EPSG:4326", always_xy=True)

    def box(x0: float, y0: float, x1: float, y1: float) -> dict:
        corners = [(x + x0, y - y0), (x + x1, y - y0), (x + x1, y - y1), (x + x0, y - y1), (x + x0, y - y0)]
        return {"type": "Polygon", "coordinates": [[to_lonlat.transform(*c) for c in corners]]}

    path = tmp_path / "overlap.gpkg"
    _write_layer(path, [{"class": "tree", "geometry": box(5, 5, 25, 25)},
                        {"class": "building", "geometry": box(15, 15, 35, 35)}])
    _write_layer(tmp_path / "aoi.gpkg", [{"class": "x", "geometry": box(0, 0, 40, 20)}])
    centre = (int(20 / 0.5), int(20 / 0.5))  # (row, col) in both boxes
    label, _ = rasterise(read_layer(path, RULES, CLASSES), grid, RULES, CLASSES, IGNORE)
    assert label[centre] == CLASSES.names.index("tree")  # the table's order: tree (3) over building (1)
    reordered = VectorParams(**{**RULES.__dict__, "burn_order": ("tree", "impervious", "low_vegetation", "car",
                                                                 "clutter", "building")})
    label, _ = rasterise(read_layer(path, reordered, CLASSES), grid, reordered, CLASSES, IGNORE)
    assert label[centre] == CLASSES.names.index("building")
    aoi_rules = VectorParams(**{**RULES.__dict__, "background": "clutter", "aoi": "aoi.gpkg"})
    label, _ = rasterise(read_layer(path, aoi_rules, CLASSES), grid, aoi_rules, CLASSES, IGNORE,
                         vector_labels.read_area(tmp_path / "aoi.gpkg"))
    assert label[2, 76] == CLASSES.names.index("clutter")  # no feature, inside the area: background
    assert label[76, 2] == IGNORE  # no feature, outside the area: ignore
    assert label[60, 60] == CLASSES.names.index("building")  # a feature counts wherever it is


def test_a_layer_s_mistakes_are_one_line_each(tmp_path):
    polygon = {"type": "Polygon", "coordinates": [[(12.0, 52.4), (12.001, 52.4), (12.001, 52.401), (12.0, 52.4)]]}
    line = {"type": "LineString", "coordinates": [(12.0, 52.4), (12.001, 52.4)]}
    shapefile = tmp_path / "noprj" / "labels.shp"
    shapefile.parent.mkdir()
    _write_layer(shapefile, [{"class": "tree", "geometry": polygon}], driver="ESRI Shapefile")
    shapefile.with_suffix(".prj").unlink()
    with pytest.raises(DataError, match=r"labels.shp: has no CRS \(no .prj beside it\); add one"):
        read_layer(shapefile, RULES, CLASSES)
    unknown = tmp_path / "unknown.gpkg"
    _write_layer(unknown, [{"class": c, "geometry": polygon} for c in ["tree", "Building", "Building", None, "tree"]])
    with pytest.raises(DataError) as err:
        read_layer(unknown, RULES, CLASSES)
    assert str(err.value) == (f"{unknown}: class values 'Building' (2 features), NULL (1 feature) are not classes "
                              "of classes.table (impervious, building, low_vegetation, tree, car, clutter) nor their "
                              "values; declare them (classes.table.<class>.values) or fix the layer")
    numbers = tmp_path / "numbers.gpkg"
    _write_layer(numbers, [{"class": v, "geometry": polygon} for v in (3, 9, None, None)], kind="int")
    with pytest.raises(DataError, match=r"values NULL \(2 features\), 9 \(1 feature\) are not classes"):  # 3: tree
        read_layer(numbers, RULES, CLASSES)
    roads = tmp_path / "roads.geojson"
    _write_layer(roads, [{"class": "impervious", "geometry": line}] * 3, driver="GeoJSON", geometry="LineString")
    with pytest.raises(DataError, match=r"roads.geojson: 3 line or point features of impervious need a width: give "
                                        r"data.folder.vector.buffer_m.impervious \(metres each side\)"):
        read_layer(roads, RULES, CLASSES)
    empty = tmp_path / "empty.gpkg"
    _write_layer(empty, [])
    with pytest.raises(DataError, match=r"empty.gpkg: layer empty has no features"):
        read_layer(empty, RULES, CLASSES)
    other_field = tmp_path / "landuse.gpkg"
    _write_layer(other_field, [{"class": "tree", "geometry": polygon}], field="landuse")
    with pytest.raises(DataError, match=r"landuse.gpkg: no attribute 'class' \(data.folder.vector.class_field\); its "
                                        r"attributes: landuse"):
        read_layer(other_field, RULES, CLASSES)


def test_an_invalid_polygon_is_repaired_and_counted(tmp_path):
    grid = _square_grid(0.5, 20.0)
    to_lonlat = Transformer.from_crs("EPSG:25833", "EPSG:4326", always_xy=True)
    x, y = grid.transform.c, grid.transform.f
    bowtie = [(x + 2, y - 2), (x + 18, y - 18), (x + 18, y - 2), (x + 2, y - 18), (x + 2, y - 2)]  # self-crossing
    path = tmp_path / "bowtie.gpkg"
    _write_layer(path, [{"class": "car", "geometry": {"type": "Polygon",
                                                      "coordinates": [[to_lonlat.transform(*c) for c in bowtie]]}}])
    layer = read_layer(path, RULES, CLASSES)
    label, counts = rasterise(layer, grid, RULES, CLASSES, IGNORE)
    assert counts["repaired"] == 1 and layer.geometries[0].is_valid
    car = label == CLASSES.names.index("car")
    # two triangles meeting at the centre, left and right: across the middle row car all the way, down the
    # middle column car at the waist only (the hull, or a bowtie burnt as one ring, would fill it)
    assert car[20, 6:34].all() and car[6:34, 20].sum() <= 2 and car[6:34, 8].sum() > 10


def test_labels_that_miss_every_scene_show_both_bounds_in_one_crs(vectors, capsys):
    """The layer's longitudes and latitudes swapped: it lies in the Arabian Sea, far from Berlin."""
    project, features = vectors
    swapped = [{**f, "geometry": {"type": "Polygon", "coordinates": [[(lat, lon) for lon, lat in
                                                                       f["geometry"]["coordinates"][0]]]}}
               for f in features]
    (project / "external" / "own" / "labels.gpkg").unlink()
    _write_layer(project / "external" / "own" / "labels.gpkg", swapped)
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("download: error: external/own/labels.gpkg: its features cover 0.0% of scene ")
    assert "both in EPSG:2583" in err and "is labels.gpkg's CRS (EPSG:4326) right, or are its axes swapped?" in err
    assert not (project / "data" / "raw").exists()
