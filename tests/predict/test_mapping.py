"""``aerialseg predict`` on real-world rasters: GeoTIFFs with a CRS, compression, alpha and nodata,
other resolutions, and batches (local, sharded, on a loopback Dask cluster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from aerialseg.cli import main
from aerialseg.core.geo.geoio import NODATA
from aerialseg.core.io import read_rgb, write_json
from aerialseg.core.names import MODEL_CARD
from aerialseg.predict.blending import predict_smooth

from conftest import CLASSES

CRS_UTM33 = CRS.from_epsg(25833)
ORIGIN = (366000.0, 5808000.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    path = tmp_path_factory.mktemp("model") / "epoch_001.keras"
    tiny_checkpoint(path, depth=2, base_filters=4, seed=3)
    return path


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def crop():
    return read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")


def write_geotiff(path: Path, rgb: np.ndarray, *, gsd: float = 0.05, alpha: np.ndarray | None = None,
                  nodata: int | None = None, crs=CRS_UTM33) -> Path:
    """An LZW-compressed, tiled GeoTIFF with a CRS, as orthophoto deliveries come."""
    bands = [rgb[..., i] for i in range(3)] + ([alpha] if alpha is not None else [])
    profile = {"driver": "GTiff", "width": rgb.shape[1], "height": rgb.shape[0], "count": len(bands),
               "dtype": "uint8", "crs": crs, "transform": Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]),
               "compress": "lzw", "tiled": True, "blockxsize": 128, "blockysize": 128}
    if alpha is not None:
        profile["photometric"] = "RGB"
        profile["alpha"] = "YES"
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
    return path


def _keras(path):
    import keras

    return keras.saving.load_model(path, compile=False)


def test_class_geotiff_keeps_crs_transform_and_marks_transparent_pixels_nodata(checkpoint, crop, tmp_path):
    alpha = np.full(crop.shape[:2], 255, np.uint8)
    alpha[:, :100] = 0  # a collar outside the image footprint
    src = write_geotiff(tmp_path / "ortho.tif", crop, alpha=alpha)
    out = tmp_path / "map.tif"
    assert main(["predict", str(checkpoint), str(src), "-o", str(out), "--window", "64", "--tta", "none",
                 "--backend", "keras"]) == 0
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs == CRS_UTM33
        assert b.transform == a.transform
        assert (b.count, b.dtypes[0], b.nodata) == (1, "uint8", 255)
        assert b.profile["tiled"] and b.compression.name == "deflate"
        table = b.colormap(1)
        assert [table[i][:3] for i in range(6)] == [tuple(c) for c in CLASSES.colours]
        written = b.read(1)
    expected = predict_smooth(crop, _keras(checkpoint), window=64, num_classes=6, tta="none").argmax(-1)
    assert (written[:, :100] == 255).all()
    np.testing.assert_array_equal(written[:, 100:], expected[:, 100:])


def test_nodata_pixels_are_nodata_in_every_output(checkpoint, crop, tmp_path):
    image = crop[:256, :256].copy()
    image[:50] = 0  # black band declared as nodata
    src = write_geotiff(tmp_path / "ortho.tif", image, nodata=0)
    out = tmp_path / "map.tif"
    assert main(["predict", str(checkpoint), str(src), "-o", str(out), "--window", "64", "--tta", "none",
                 "--probabilities", "--vector"]) == 0
    outside = (image == 0).all(-1)
    with rasterio.open(out) as classes, rasterio.open(tmp_path / "map_probabilities.tif") as probs:
        class_map = classes.read(1)
        assert (class_map[outside] == 255).all() and (class_map[~outside] < 6).all()
        assert probs.count == 6 and probs.crs == CRS_UTM33 and probs.nodata == 255
        assert probs.scales == (1 / 254,) * 6
        p = probs.read()
        assert (p[:, outside] == 255).all()
    # the quantised probabilities are the float ones to half a step
    assert main(["predict", str(checkpoint), str(src), "-o", str(tmp_path / "again.tif"), "--window", "64",
                 "--tta", "none", "--probabilities", str(tmp_path / "p.npy")]) == 0
    exact = np.load(tmp_path / "p.npy").astype(np.float64).transpose(2, 0, 1)
    assert np.abs(p[:, ~outside] / 254 - exact[:, ~outside]).max() <= 0.5 / 254 + 1e-3  # float16 storage
    import fiona

    with fiona.open(tmp_path / "map.gpkg") as layer:
        assert CRS.from_wkt(layer.crs_wkt) == CRS_UTM33
        area = {}
        for feature in layer:
            ring, *holes = feature.geometry["coordinates"]
            surface = _shoelace(ring) - sum(_shoelace(h) for h in holes)
            area[feature.properties["class"]] = area.get(feature.properties["class"], 0) + surface
    pixel = 0.05 * 0.05
    for value in range(6):  # polygons cover exactly the pixels of each class, and no nodata pixel
        assert area.get(value, 0) == pytest.approx(np.count_nonzero(class_map == value) * pixel, rel=1e-9, abs=1e-9)


def _shoelace(ring) -> float:
    x, y = (np.asarray(ring, np.float64) - ORIGIN).T  # near the origin, products keep their precision
    return abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2


def test_cog_is_cloud_optimized_with_overviews(checkpoint, crop, tmp_path):
    big = np.tile(crop, (3, 3, 1))[:1200, :1300]
    src = write_geotiff(tmp_path / "ortho.tif", big)
    out = tmp_path / "map.tif"
    assert main(["predict", str(checkpoint), str(src), "-o", str(out), "--window", "128", "--tta", "none",
                 "--cog", "--batch-size", "32"]) == 0
    with rasterio.open(out) as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert cog.overviews(1)
        assert cog.crs == CRS_UTM33 and cog.nodata == 255 and cog.colormap(1)[0][:3] == tuple(CLASSES.colours[0])
        assert set(np.unique(cog.read(1, out_shape=(1, 100, 100)))) <= set(range(6))  # overviews: classes, not means


def test_a_5cm_image_into_a_40cm_model_maps_as_the_40cm_image(checkpoint, crop, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = model_dir / "epoch_001.keras"
    model.write_bytes(checkpoint.read_bytes())
    write_json(model_dir / MODEL_CARD, {"ground_sample_distance_m": 0.4})
    fine = write_geotiff(tmp_path / "fine.tif", crop, gsd=0.05)
    with rasterio.open(fine) as src:  # the same place at 40 cm, as a coarser delivery would be
        coarse_rgb = src.read(out_shape=(3, 64, 64), resampling=Resampling.lanczos).transpose(1, 2, 0)
    coarse = write_geotiff(tmp_path / "coarse.tif", coarse_rgb, gsd=0.4)
    args = ["--window", "32", "--tta", "none", "--backend", "keras"]
    assert main(["predict", str(model), str(coarse), "-o", str(tmp_path / "coarse_map.tif"), *args]) == 0
    assert main(["predict", str(model), str(fine), "-o", str(tmp_path / "fine_map.tif"), *args,
                 "--probabilities"]) == 0
    assert main(["predict", str(model), str(fine), "-o", str(tmp_path / "fine_model_grid.tif"), *args,
                 "--output-grid", "model"]) == 0
    with rasterio.open(tmp_path / "coarse_map.tif") as c, rasterio.open(tmp_path / "fine_map.tif") as f, \
            rasterio.open(tmp_path / "fine_model_grid.tif") as g:
        coarse_map, fine_map, model_grid = c.read(1), f.read(1), g.read(1)
        assert f.transform == Affine(0.05, 0, ORIGIN[0], 0, -0.05, ORIGIN[1]) and f.shape == (512, 512)
        assert g.transform == c.transform and g.shape == (64, 64)
    with rasterio.open(tmp_path / "fine_map_probabilities.tif") as p:  # brought back to the input's grid too
        assert p.shape == (512, 512) and p.transform == f.transform and p.count == 6
        assert (np.abs(p.read().astype(int).sum(0) - 254) <= 6).all()
    np.testing.assert_array_equal(model_grid, coarse_map)
    np.testing.assert_array_equal(fine_map[4::8, 4::8], coarse_map)  # each 40 cm pixel covers 8 x 8 of 5 cm
    # without resampling, the model sees 5 cm pixels it never learned: a different map
    assert main(["predict", str(model), str(fine), "-o", str(tmp_path / "native.tif"), *args,
                 "--model-gsd", "0.05"]) == 0
    with rasterio.open(tmp_path / "native.tif") as n:
        assert (n.read(1)[4::8, 4::8] != coarse_map).mean() > 0.05


def test_an_image_without_georeference_says_what_was_assumed(checkpoint, crop, tmp_path, capsys):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = model_dir / "epoch_001.keras"
    model.write_bytes(checkpoint.read_bytes())
    write_json(model_dir / MODEL_CARD, {"ground_sample_distance_m": 0.4})
    src = tmp_path / "plain.png"
    src.write_bytes((FIXTURES / "top_potsdam_2_10_crop512_RGB.png").read_bytes())
    assert main(["predict", str(model), str(src), "-o", str(tmp_path / "a.tif"), "--window", "32",
                 "--tta", "none"]) == 0
    assert "assuming the model's 0.4 m/px (give --gsd if it differs)" in capsys.readouterr().err
    assert main(["predict", str(model), str(src), "-o", str(tmp_path / "b.tif"), "--window", "32",
                 "--tta", "none", "--gsd", "0.05", "--crs", "EPSG:25833"]) == 0
    assert "resampled from ground pixels of 0.05 m to the model's 0.4 m/px" in capsys.readouterr().err
    with rasterio.open(tmp_path / "b.tif") as out:
        assert out.shape == (512, 512) and out.crs == CRS_UTM33


@pytest.mark.parametrize("extra, message", [
    (["--cog", "-o", "{dir}/map.png"], "--cog: {dir}/map.png: a Cloud-Optimized GeoTIFF needs a .tif name"),
    (["--probabilities", "{dir}/p.jpg", "-o", "{dir}/map.tif"],
     "--probabilities: {dir}/p.jpg: must be a .tif (GeoTIFF) or .npy file"),
    (["--vector", "{dir}/v.shp", "-o", "{dir}/map.tif"], "--vector: {dir}/v.shp: must be a .gpkg (GeoPackage) file"),
    (["--crs", "EPSG:99999999", "-o", "{dir}/map.tif"],
     "--crs: 'EPSG:99999999' is not a coordinate reference system PROJ knows (e.g. EPSG:25833)"),
])
def test_bad_gis_options_are_refused_before_any_work(checkpoint, crop, tmp_path, capsys, extra, message):
    src = write_geotiff(tmp_path / "ortho.tif", crop[:64, :64])
    argv = ["predict", str(checkpoint), str(src), *[e.format(dir=tmp_path) for e in extra]]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "aerialseg predict: error: " + message.format(dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ortho.tif"]


def test_a_truncated_compressed_geotiff_is_one_line(checkpoint, crop, tmp_path, capsys):
    src = write_geotiff(tmp_path / "ortho.tif", crop)
    data = src.read_bytes()
    src.write_bytes(data[:len(data) // 2])
    assert main(["predict", str(checkpoint), str(src), "-o", str(tmp_path / "map.tif"), "--window", "64"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"aerialseg predict: error: {src}: ")
    assert "See previous exception" not in err[-1] and "failed" in err[-1].split(f"{src}: ", 1)[1]
    assert not (tmp_path / "map.tif").exists()


def _batch_inputs(crop, folder: Path) -> list[Path]:
    folder.mkdir()
    return [write_geotiff(folder / f"tile_{i}.tif", np.roll(crop[:128, :192], 40 * i, axis=1)) for i in range(4)]


def _maps(folder: Path) -> dict[str, np.ndarray]:
    result = {}
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as src:
            assert src.crs == CRS_UTM33
            result[path.name] = src.read(1)
    return result


def test_a_batch_skips_finished_outputs_and_shards_split_it(checkpoint, crop, tmp_path, capsys):
    _batch_inputs(crop, tmp_path / "in")
    args = ["--window", "64", "--tta", "none"]
    assert main(["predict", str(checkpoint), str(tmp_path / "in"), "-o", str(tmp_path / "all"), *args]) == 0
    everything = _maps(tmp_path / "all")
    assert sorted(everything) == [f"tile_{i}.tif" for i in range(4)]
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "all").iterdir()}
    assert main(["predict", str(checkpoint), str(tmp_path / "in" / "*.tif"), "-o", str(tmp_path / "all"), *args]) == 0
    assert "4 of 4 images already have their outputs" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "all").iterdir()} == before
    for index in range(2):
        assert main(["predict", str(checkpoint), str(tmp_path / "in"), "-o", str(tmp_path / "sharded"), *args,
                     "--shard", f"{index}/2"]) == 0
        assert len(_maps(tmp_path / "sharded")) == 2 * (index + 1)
    shards = _maps(tmp_path / "sharded")
    assert sorted(shards) == sorted(everything)
    for name in everything:
        np.testing.assert_array_equal(shards[name], everything[name])


def test_dask_writes_what_the_local_path_writes(checkpoint, crop, tmp_path):
    from distributed import LocalCluster

    from aerialseg.predict.export import export_model

    onnx = tmp_path / "model.onnx"
    export_model(checkpoint, onnx, "onnx", gsd_m=0.05, window=64, subdivisions=2, tta="none")
    _batch_inputs(crop, tmp_path / "in")
    args = ["--window", "64", "--tta", "none", "--probabilities"]
    assert main(["predict", str(onnx), str(tmp_path / "in"), "-o", str(tmp_path / "local"), *args]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert main(["predict", str(onnx), str(tmp_path / "in"), "-o", str(tmp_path / "dask"), *args,
                     "--dask", cluster.scheduler_address]) == 0
    local, remote = sorted((tmp_path / "local").iterdir()), sorted((tmp_path / "dask").iterdir())
    assert [p.name for p in local] == [p.name for p in remote] and len(local) == 16  # 4 x (map, names, style, probs)
    for a, b in zip(local, remote, strict=True):
        if a.suffix in (".xml", ".qml"):
            assert a.read_text() == b.read_text()
            continue
        with rasterio.open(a) as x, rasterio.open(b) as y:
            assert x.profile == y.profile
            np.testing.assert_array_equal(x.read(), y.read())


def _carded_model(checkpoint: Path, folder: Path, gsd: float) -> Path:
    folder.mkdir()
    model = folder / "epoch_001.keras"
    model.write_bytes(checkpoint.read_bytes())
    write_json(folder / MODEL_CARD, {"ground_sample_distance_m": gsd})
    return model


def _write_with_transform(path: Path, rgb: np.ndarray, transform: Affine, crs) -> Path:
    profile = {"driver": "GTiff", "width": rgb.shape[1], "height": rgb.shape[0], "count": 3, "dtype": "uint8",
               "crs": crs, "transform": transform, "tiled": True, "blockxsize": 128, "blockysize": 128}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    return path


def _class_map(model: Path, image: Path, out: Path) -> np.ndarray:
    assert main(["predict", str(model), str(image), "-o", str(out), "--window", "32", "--tta", "none",
                 "--backend", "keras"]) == 0
    with rasterio.open(out) as src:
        return src.read(1)


@pytest.mark.parametrize("grid", ["rotated 30 degrees", "sheared 20 degrees"])
def test_rotated_and_sheared_5cm_inputs_map_as_the_north_up_one(checkpoint, crop, tmp_path, grid):
    model = _carded_model(checkpoint, tmp_path / "model", 0.4)
    turn = Affine.rotation(30) if grid.startswith("rotated") else Affine.shear(20, 0)
    north_up = _write_with_transform(tmp_path / "north_up.tif", crop, Affine.translation(*ORIGIN)
                                     * Affine.scale(0.05, -0.05), CRS_UTM33)
    other = _write_with_transform(tmp_path / "other.tif", crop, Affine.translation(*ORIGIN) * turn
                                  * Affine.scale(0.05, -0.05), CRS_UTM33)
    reference = _class_map(model, north_up, tmp_path / "north_up_map.tif")
    # the same pixels on a turned grid: the same 5 cm, resampled by the same factor to 40 cm
    np.testing.assert_array_equal(_class_map(model, other, tmp_path / "other_map.tif"), reference)


def test_an_epsg4326_input_at_20cm_maps_as_its_utm_twin(checkpoint, crop, tmp_path):
    import pyproj

    model = _carded_model(checkpoint, tmp_path / "model", 0.4)
    utm = write_geotiff(tmp_path / "utm.tif", crop, gsd=0.2)
    lon, lat = pyproj.Transformer.from_crs(25833, 4326, always_xy=True).transform(*ORIGIN)
    geod = pyproj.Geod(ellps="WGS84")
    east, _, _ = geod.fwd(lon, lat, 90, 0.2)
    _, north, _ = geod.fwd(lon, lat, 0, 0.2)
    geographic = _write_with_transform(tmp_path / "wgs84.tif", crop, Affine(east - lon, 0, lon, 0, -(north - lat), lat),
                                       CRS.from_epsg(4326))
    twin, ours = _class_map(model, utm, tmp_path / "utm_map.tif"), _class_map(model, geographic, tmp_path / "g.tif")
    assert ours.shape == twin.shape and (ours != twin).mean() <= 0.01


def test_a_crs_without_a_unit_of_length_needs_gsd(checkpoint, crop, tmp_path, capsys):
    model = _carded_model(checkpoint, tmp_path / "model", 0.4)
    unitless = 'LOCAL_CS["pixels",LOCAL_DATUM["site",0],UNIT["unknown",0],AXIS["x",EAST],AXIS["y",NORTH]]'
    image = _write_with_transform(tmp_path / "local.tif", crop[:64, :64], Affine(0.05, 0, 10, 0, -0.05, 10), None)
    options = ["--window", "32", "--crs", unitless]  # GeoTIFF cannot store such a CRS: it is given
    assert main(["predict", str(model), str(image), "-o", str(tmp_path / "m.tif"), *options]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"aerialseg predict: error: {image}: its CRS (")
    assert main(["predict", str(model), str(image), "-o", str(tmp_path / "m.tif"), *options,
                 "--gsd", "0.05", "--backend", "keras"]) == 0


def test_a_nir_band_tagged_as_alpha_is_said_and_can_be_data(checkpoint, crop, tmp_path, capsys):
    nir = np.zeros(crop.shape[:2], np.uint8)
    nir[:, 200:] = 180  # dark water reads 0 in near infrared: not outside the footprint
    image = write_geotiff(tmp_path / "rgbn.tif", crop, alpha=nir)
    options = ["--window", "32", "--tta", "none", "--backend", "keras"]
    assert main(["predict", str(checkpoint), str(image), "-o", str(tmp_path / "auto.tif"), *options]) == 0
    assert "band 4 is taken as alpha" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(image), "-o", str(tmp_path / "data.tif"), *options,
                 "--alpha-band", "none"]) == 0
    with rasterio.open(tmp_path / "auto.tif") as auto, rasterio.open(tmp_path / "data.tif") as data:
        assert (auto.read(1)[:, :200] == NODATA).all() and (data.read(1) != NODATA).all()
        assert np.array_equal(auto.read(1)[:, 200:], data.read(1)[:, 200:])
    assert main(["predict", str(checkpoint), str(image), "-o", str(tmp_path / "bad.tif"), *options,
                 "--bands", "1,2,5"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"aerialseg predict: error: {image}: has 4 bands, no band 5 (--bands / --alpha-band)")
