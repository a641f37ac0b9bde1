"""Remote inputs and areas of interest: a COG over HTTP range reads from a loopback server that
honours Range, a STAC Item made here, --bounds and --aoi."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import fiona
import numpy as np
import pytest
import rasterio
import rasterio.features
from rasterio.warp import transform_geom

from aerialseg.cli import main
from aerialseg.core.io import read_rgb, write_json
from aerialseg.core.names import MODEL_CARD

from conftest import FIXTURES

ORIGIN = (366_000.0, 5_808_000.0)
GSD = 0.4
OPTIONS = ["--window", "64", "--tta", "none", "--backend", "keras"]


class RangeServer(ThreadingHTTPServer):
    """Serves one folder on loopback, with single byte ranges (206), and counts the bytes it sends."""

    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        self.folder, self.sent, self.lock = folder, 0, threading.Lock()
        super().__init__(("127.0.0.1", 0), _RangeHandler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _RangeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _target(self) -> Path | None:
        path = self.server.folder / self.path.lstrip("/").split("?")[0]
        return path if path.is_file() else None

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def do_GET(self) -> None:
        self._respond(head=False)

    def _respond(self, head: bool) -> None:
        target = self._target()
        if target is None:
            self.send_error(404)
            return
        data = target.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = (0, len(data) - 1) if match is None else (
            int(match[1]), min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1))
        body = data[start:end + 1]
        self.send_response(206 if match else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not head:
            self.wfile.write(body)
            with self.server.lock:
                self.server.sent += len(body)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, tiny_checkpoint):
    """A 2048 x 2048 COG at 40 cm (blocks of 128) and a model that learned 40 cm, beside its card."""
    folder = tmp_path_factory.mktemp("remote")
    tiny_checkpoint(folder / "epoch_001.keras", depth=2, base_filters=4, seed=3)
    write_json(folder / MODEL_CARD, {"schema_version": 1, "ground_sample_distance_m": GSD})
    rgb = np.tile(read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png"), (4, 4, 1))
    profile = {"driver": "COG", "width": 2048, "height": 2048, "count": 3, "dtype": "uint8", "crs": "EPSG:25833",
               "transform": rasterio.Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1]), "compress": "deflate",
               "blocksize": 128}
    with rasterio.open(folder / "scene.tif", "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    server = RangeServer(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, server
    server.shutdown()


def _predict(model: Path, source: str | Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["predict", str(model), str(source), "-o", str(out), *OPTIONS, *extra]) == 0
    with rasterio.open(out) as src:
        return src.read(1), src.transform


def test_a_remote_cog_predicts_as_the_local_file_and_an_area_reads_a_sliver_of_it(scene, tmp_path):
    folder, server = scene
    model = folder / "epoch_001.keras"
    local, local_transform = _predict(model, folder / "scene.tif", tmp_path / "local.tif")
    remote, remote_transform = _predict(model, server.url("scene.tif"), tmp_path / "remote.tif")
    assert np.array_equal(local, remote) and local_transform == remote_transform

    size = (folder / "scene.tif").stat().st_size
    side = 2048 * GSD * 0.1  # 10 % of each side: 1 % of the area
    bounds = [ORIGIN[0] + 300, ORIGIN[1] - 300 - side, ORIGIN[0] + 300 + side, ORIGIN[1] - 300]
    server.sent = 0
    part, part_transform = _predict(model, server.url("scene.tif"), tmp_path / "part.tif",
                                    "--bounds", *map(str, bounds))
    assert server.sent <= 0.05 * size, f"{server.sent} of {size} bytes"
    step = 32  # window 64, subdivisions 2: the area's edges move out to the blending's step
    assert 205 <= part.shape[0] <= 205 + 2 * step and bounds[0] - step * GSD <= part_transform.c <= bounds[0]


def test_a_stac_item_predicts_its_visual_asset(scene, tmp_path):
    folder, server = scene
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "scene-2024", "geometry": None, "links": [],
            "properties": {"datetime": "2024-05-01T00:00:00Z"},
            "assets": {"thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
                       "visual": {"href": server.url("scene.tif"), "type": "image/tiff; application=geotiff; "
                                  "profile=cloud-optimized", "roles": ["visual"]}}}
    (tmp_path / "item.json").write_text(json.dumps(item))
    model = folder / "epoch_001.keras"
    bounds = ["--bounds", str(ORIGIN[0]), str(ORIGIN[1] - 60), str(ORIGIN[0] + 60), str(ORIGIN[1])]
    from_item, _ = _predict(model, tmp_path / "item.json", tmp_path / "item_map.tif", *bounds)
    direct, _ = _predict(model, folder / "scene.tif", tmp_path / "direct.tif", *bounds)
    assert np.array_equal(from_item, direct)


def test_an_aoi_in_another_crs_is_nodata_outside_and_the_full_map_inside(scene, tmp_path):
    folder, _ = scene
    model = folder / "epoch_001.keras"
    full, full_transform = _predict(model, folder / "scene.tif", tmp_path / "full.tif")
    x0, y0 = ORIGIN[0] + 200, ORIGIN[1] - 200  # a triangle, 100 to 400 px from the corner
    triangle = {"type": "Polygon", "coordinates": [[(x0, y0), (x0 + 120, y0), (x0, y0 - 120), (x0, y0)]]}
    aoi = tmp_path / "aoi.gpkg"
    with fiona.open(aoi, "w", driver="GPKG", crs="EPSG:4326", schema={"geometry": "Polygon", "properties": {}}) as f:
        f.write({"geometry": transform_geom("EPSG:25833", "EPSG:4326", triangle), "properties": {}})
    area, transform = _predict(model, folder / "scene.tif", tmp_path / "aoi_map.tif", "--aoi", str(aoi))
    inside = rasterio.features.geometry_mask([triangle], out_shape=area.shape, transform=transform, invert=True)
    assert (area[~inside] == 255).all() and (area[inside] != 255).mean() > 0.99
    col, row = (~full_transform) * (transform.c, transform.f)
    same_place = full[round(row):round(row) + area.shape[0], round(col):round(col) + area.shape[1]]
    # a window (64 px) or more inside the polygon and the area's raster, the blend sees the windows the full map saw
    padded = np.pad(inside.astype(np.uint8), 1)  # outside the raster counts as outside
    eroded = cv2.erode(padded, np.ones((129, 129), np.uint8))[1:-1, 1:-1].astype(bool)
    assert eroded.sum() > 100
    assert np.array_equal(area[eroded], same_place[eroded])


def test_bad_areas_are_one_line(scene, tmp_path, capsys):
    folder, _ = scene
    model = folder / "epoch_001.keras"
    far = ["--bounds", "0", "0", "10", "10"]  # the image's failure (exit 1), as in a batch
    assert main(["predict", str(model), str(folder / "scene.tif"), "-o", str(tmp_path / "x.tif"), *far]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"aerialseg predict: error: --bounds: the area does not overlap {folder / 'scene.tif'}")
    assert main(["predict", str(model), str(folder / "scene.tif"), "-o", str(tmp_path / "x.tif"),
                 "--bounds", "5", "0", "1", "10"]) == 2
    assert main(["predict", str(model), str(folder / "scene.tif"), "-o", str(tmp_path / "x.tif"),
                 "--aoi", str(tmp_path / "missing.gpkg")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("missing.gpkg: file not found")


def test_a_batch_goes_on_past_an_image_the_area_misses(scene, tmp_path, capsys):
    """Three images, the middle one 1 km away from the area: the other two are written, it is listed
    as failed, exit 1."""
    folder, _ = scene
    images = tmp_path / "images"
    images.mkdir()
    rgb = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")[:256, :256]
    for name, east in (("a.tif", 0.0), ("b_far.tif", 1000.0), ("c.tif", 0.0)):
        profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 3, "dtype": "uint8", "crs": "EPSG:25833",
                   "transform": rasterio.Affine(GSD, 0, ORIGIN[0] + east, 0, -GSD, ORIGIN[1])}
        with rasterio.open(images / name, "w", **profile) as dst:
            dst.write(rgb.transpose(2, 0, 1))
    area = [str(v) for v in (ORIGIN[0] + 10, ORIGIN[1] - 60, ORIGIN[0] + 60, ORIGIN[1] - 10)]
    out = tmp_path / "out"
    assert main(["predict", str(folder / "epoch_001.keras"), str(images), "-o", f"{out}/", *OPTIONS,
                 "--bounds", *area]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert f"aerialseg predict: error: --bounds: the area does not overlap {images / 'b_far.tif'}" in err
    assert err[-1] == "aerialseg predict: 2 of 3 written; 1 failed"
    assert sorted(p.name for p in out.glob("*.tif")) == ["a.tif", "c.tif"]
