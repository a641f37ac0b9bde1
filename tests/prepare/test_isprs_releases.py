"""The whole ISPRS 2D benchmark: Vaihingen, and Potsdam's IRRG, RGBIR and normalised-DSM archives.

Miniature archives are built here in the official layouts (member names and folders as torchgeo's
and mmsegmentation's readers expect them, docs/isprs.md): Vaihingen's three zips (false-colour
``top/``, float ``dsm/``, the participants' labels under the image's name in the image zip, an
eroded label of area 9, which has no image) and Potsdam's ``3_Ortho_IRRG.zip``,
``4_Ortho_RGBIR.zip`` and ``1_DSM_normalisation.zip`` (zero-padded names, 8-bit JPEGs)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from aerialseg.core.errors import DataError
from aerialseg.core.palette import index_to_rgb
from aerialseg.prepare.sources.release import Release, collect_release
from aerialseg.prepare.sources.vaihingen import check_area_ids
from tiny_project import copy_project, run_stages_in

from conftest import CLASSES

SIZE = 256
VAIHINGEN = {"train": ["area1", "area3"], "val": ["area5"], "test": ["area2"]}
POTSDAM = {"train": ["2_10", "7_8"], "val": ["2_11"], "test": ["2_13"]}


def _index(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 6, (SIZE // 32, SIZE // 32)), 32, 0), 32, 1).astype(np.uint8)


def _looks(index: np.ndarray, seed: int, bands: int) -> np.ndarray:
    """Bands whose values follow the classes (so one epoch learns something), with noise."""
    rng = np.random.default_rng(50 + seed)
    levels = rng.uniform(30, 220, (len(CLASSES), bands))
    return np.clip(levels[index] + rng.normal(0, 12, index.shape + (bands,)), 0, 255).astype(np.uint8)


def _tif(array: np.ndarray, alpha: bool = False) -> bytes:
    """A TIFF as the release has them: colour (an RGBIR file's fourth band an extra sample, tagged alpha
    when ``alpha``, which GDAL then reads as the mask unless told), or one band."""
    out = io.BytesIO()
    if array.ndim == 3:
        extra = {"extrasamples": [2 if alpha else 0] * (array.shape[2] - 3)} if array.shape[2] > 3 else {}
        tifffile.imwrite(out, array, photometric="rgb", planarconfig="contig", **extra)
    else:
        tifffile.imwrite(out, array, photometric="minisblack")
    return out.getvalue()


def _labels(index: np.ndarray) -> tuple[bytes, bytes]:
    """The colour label and its eroded version (black boundary rows, as the release erodes them)."""
    full = index_to_rgb(index, CLASSES.colours)
    eroded = full.copy()
    eroded[::32] = 0
    return _tif(full), _tif(eroded)


def vaihingen_release(folder: Path, areas: list[str], *, orphan: bool = True) -> Path:
    """The release's three zips for ``areas`` (and, in the eroded zip, a label of area 9)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "ISPRS_semantic_labeling_Vaihingen.zip", "w") as images, \
            zipfile.ZipFile(folder / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip", "w") as full, \
            zipfile.ZipFile(folder / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
                            "w") as eroded:
        for seed, area in enumerate(areas):
            index = _index(seed)
            images.writestr(f"top/top_mosaic_09cm_{area}.tif", _tif(_looks(index, seed, 3)))
            heights = (index * 3.0 + np.random.default_rng(seed).normal(260, 0.5, index.shape)).astype(np.float32)
            images.writestr(f"dsm/dsm_09cm_matching_{area}.tif", _tif(heights))
            label, boundary = _labels(index)
            images.writestr(f"gts_for_participants/top_mosaic_09cm_{area}.tif", label)
            full.writestr(f"top_mosaic_09cm_{area}.tif", label)
            eroded.writestr(f"top_mosaic_09cm_{area}_noBoundary.tif", boundary)
        if orphan:
            eroded.writestr("top_mosaic_09cm_area9_noBoundary.tif", _labels(_index(9))[1])
    return folder


def potsdam_release(folder: Path, tiles: list[str]) -> Path:
    """The IRRG, RGBIR and normalised-DSM zips and the two label zips for ``tiles``."""
    folder.mkdir(parents=True, exist_ok=True)
    world = "0.05\n0\n0\n-0.05\n366000.025\n5808000.975\n"
    with zipfile.ZipFile(folder / "3_Ortho_IRRG.zip", "w") as irrg, \
            zipfile.ZipFile(folder / "4_Ortho_RGBIR.zip", "w") as rgbir, \
            zipfile.ZipFile(folder / "1_DSM_normalisation.zip", "w") as ndsm, \
            zipfile.ZipFile(folder / "5_Labels_all.zip", "w") as full, \
            zipfile.ZipFile(folder / "5_Labels_all_noBoundary.zip", "w") as eroded:
        for seed, tile in enumerate(tiles):
            index = _index(seed)
            r, g, b, n = np.moveaxis(_looks(index, seed, 4), 2, 0)
            irrg.writestr(f"3_Ortho_IRRG/top_potsdam_{tile}_IRRG.tif", _tif(np.dstack([n, r, g])))
            irrg.writestr(f"3_Ortho_IRRG/top_potsdam_{tile}_IRRG.tfw", world)
            four = _tif(np.dstack([r, g, b, n]), alpha=seed == 1)  # 7_8's NIR tagged alpha
            rgbir.writestr(f"4_Ortho_RGBIR/top_potsdam_{tile}_RGBIR.tif", four)
            rgbir.writestr(f"4_Ortho_RGBIR/top_potsdam_{tile}_RGBIR.tfw", world)
            row, col = tile.split("_")
            height = (index * 20).astype(np.uint8)
            ndsm.writestr(f"1_DSM_normalisation/dsm_potsdam_{int(row):02d}_{int(col):02d}_normalized_lastools.jpg",
                          cv2.imencode(".jpg", height, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes())
            label, boundary = _labels(index)
            full.writestr(f"top_potsdam_{tile}_label.tif", label)
            eroded.writestr(f"top_potsdam_{tile}_label_noBoundary.tif", boundary)
    return folder


def _project(root: Path, source: str, options: dict, split: dict, gsd: float) -> Path:
    project = copy_project(root)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params.update(epochs=1)
    params["data"]["source"] = source
    params["data"][source].update(path="release", **options, **split)
    params["resize"]["gsd"] = gsd  # half the release's resolution: 128 px scenes, four 64 px tiles each
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def _tiles_by_split(project: Path) -> dict[str, set[str]]:
    index = pd.read_csv(project / "data" / "tiles" / "index.csv", dtype={"scene": str})
    return {split: set(rows["scene"]) for split, rows in index.groupby("split")}


def test_vaihingen_from_its_three_zips_to_a_one_epoch_model(tmp_path):
    project = _project(tmp_path / "v", "vaihingen", {"dsm": True}, VAIHINGEN, gsd=0.18)
    vaihingen_release(project / "release", sum(VAIHINGEN.values(), []))
    summaries, errors = run_stages_in(project)
    raw = project / "data" / "raw"
    assert sorted(p.name for p in raw.glob("*_image.tif")) == ["area1_image.tif", "area2_image.tif",
                                                             "area3_image.tif", "area5_image.tif"]
    assert json.loads((raw / "split.json").read_text()) == VAIHINGEN
    inputs = json.loads((raw / "input.json").read_text())
    assert inputs["bands"] == ["nir", "red", "green", "dsm"] and inputs["dtype"] == "float32"
    assert inputs["normalisation"]["method"] == "percentiles"
    stacked = tifffile.imread(raw / "area1_image.tif")
    with zipfile.ZipFile(project / "release" / "ISPRS_semantic_labeling_Vaihingen.zip") as images:
        top = tifffile.imread(io.BytesIO(images.read("top/top_mosaic_09cm_area1.tif")))
        dsm = tifffile.imread(io.BytesIO(images.read("dsm/dsm_09cm_matching_area1.tif")))
    np.testing.assert_array_equal(stacked[..., :3], top)  # the false colour, band for band
    np.testing.assert_array_equal(stacked[..., 3], dsm)
    sources = json.loads((raw / "sources.json").read_text())
    assert sources["area1_label.tif"].endswith("ground_truth_COMPLETE.zip: member top_mosaic_09cm_area1.tif")
    assert "top_mosaic_09cm_area9_noBoundary.tif: a label of area9, which has no image in the release: skipped" \
        in errors
    tiles = _tiles_by_split(project)
    assert tiles["test"] == {"area2"} and "area2" not in tiles["train"] | tiles["val"]  # a test area never trained
    assert tiles["train"] == {"area1", "area3"}
    card = json.loads((project / "data" / "models" / "model_card.json").read_text())
    assert card["input"] == inputs and card["ground_sample_distance_m"] == 0.18
    assert "smooth" in json.loads((project / "metrics" / "eval.json").read_text())
    assert summaries["download"].startswith("download: 4 vaihingen scenes of 4 band(s) (nir, red, green, dsm)")


def test_potsdam_rgbir_with_its_normalised_dsm_to_a_one_epoch_model(tmp_path):
    project = _project(tmp_path / "p", "potsdam", {"bands": "RGBIR", "ndsm": True}, POTSDAM, gsd=0.1)
    potsdam_release(project / "release", sum(POTSDAM.values(), []))
    run_stages_in(project)
    raw = project / "data" / "raw"
    inputs = json.loads((raw / "input.json").read_text())
    assert inputs["bands"] == ["red", "green", "blue", "nir", "ndsm"] and inputs["dtype"] == "uint8"
    assert inputs["normalisation"]["method"] == "fixed"  # 8-bit bands, all of them: as they are
    stacked = tifffile.imread(raw / "7_8_image.tif")
    with zipfile.ZipFile(project / "release" / "1_DSM_normalisation.zip") as ndsm:
        jpeg = ndsm.read("1_DSM_normalisation/dsm_potsdam_07_08_normalized_lastools.jpg")  # zero-padded
    np.testing.assert_array_equal(stacked[..., 4], cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED))
    assert (raw / "7_8_image.tfw").is_file()  # the orthophoto's world file: 5 cm
    tiles = _tiles_by_split(project)
    assert tiles["test"] == {"2_13"} and "2_13" not in tiles["train"] | tiles["val"]
    shard = np.load(project / "data" / "tiles" / "train" / "images_000.npy", mmap_mode="r")
    assert shard.shape[1:] == (64, 64, 5)
    assert (project / "data" / "export" / "model.onnx").is_file()


def test_potsdam_irrg_is_near_infrared_red_green(tmp_path):
    project = _project(tmp_path / "i", "potsdam", {"bands": "IRRG"}, POTSDAM, gsd=0.1)
    potsdam_release(project / "release", sum(POTSDAM.values(), []))
    run_stages_in(project, until="tile")
    inputs = json.loads((project / "data" / "raw" / "input.json").read_text())
    assert inputs["bands"] == ["nir", "red", "green"] and inputs["dtype"] == "uint8"
    sources = json.loads((project / "data" / "raw" / "sources.json").read_text())
    assert sources["2_10_image.tif"].endswith("3_Ortho_IRRG.zip: member 3_Ortho_IRRG/top_potsdam_2_10_IRRG.tif")
    assert _tiles_by_split(project)["train"] == {"2_10", "7_8"}


def _collect(folder: Path, release: Release, scenes: list[str]) -> list[str]:
    return collect_release(folder, folder.parent / "raw", scenes, release)


@pytest.mark.parametrize(("missing", "expected"), [
    ("ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip",
     r"Vaihingen scene area1 has an image but no label top_mosaic_09cm_area1.tif \(expected as "
     r"ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip: top_mosaic_09cm_area1.tif, or extracted; "
     r"is ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip there\?\)$"),
    ("ISPRS_semantic_labeling_Vaihingen.zip",
     r"Vaihingen scene area1 has no image top_mosaic_09cm_area1.tif \(expected as "
     r"ISPRS_semantic_labeling_Vaihingen.zip: top/top_mosaic_09cm_area1.tif, or extracted; "
     r"is ISPRS_semantic_labeling_Vaihingen.zip there\?\)$"),
])
def test_a_missing_or_misnamed_archive_is_one_line_naming_what_was_expected_and_where(tmp_path, missing, expected):
    from aerialseg.core.config.data_params import VaihingenParams
    from aerialseg.prepare.sources.vaihingen import vaihingen_release as release_of

    folder = vaihingen_release(tmp_path / "release", ["area1"], orphan=False)
    (folder / missing).rename(folder / missing.replace(".zip", "_v2.zip"))  # misnamed: not the official name
    release = release_of(VaihingenParams(path=str(folder), url=(), sha256=(), train=(), val=(), test=(), dsm=False))
    with pytest.raises(DataError, match=expected) as err:
        _collect(folder, release, ["area1"])
    assert str(err.value).startswith(f"{folder}: ") and "\n" not in str(err.value)
    assert not (tmp_path / "raw").exists()
    with pytest.raises(DataError, match=r"^data.vaihingen: 'area9' is not a Vaihingen area \(area1 .. area38 less "
                                        r"area9, area18, area19, area25, area36, which were never published\)$"):
        check_area_ids(["area1", "area9"])


def test_extracted_vaihingen_folders_tell_the_image_from_its_same_named_label(tmp_path):
    from aerialseg.core.config.data_params import VaihingenParams
    from aerialseg.prepare.sources.vaihingen import vaihingen_release as release_of

    folder = vaihingen_release(tmp_path / "release", ["area1"], orphan=False)
    for archive in folder.glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder / archive.stem)
        archive.unlink()
    release = release_of(VaihingenParams(path=str(folder), url=(), sha256=(), train=(), val=(), test=(), dsm=False))
    _collect(folder, release, ["area1"])
    raw = tmp_path / "raw"
    assert tifffile.imread(raw / "area1_image.tif").shape == (SIZE, SIZE, 3)
    image = tifffile.imread(folder / "ISPRS_semantic_labeling_Vaihingen" / "top" / "top_mosaic_09cm_area1.tif")
    np.testing.assert_array_equal(tifffile.imread(raw / "area1_image.tif"), image)  # the image, not its label
    assert not np.array_equal(tifffile.imread(raw / "area1_label.tif"), image)


def test_an_rgbir_file_whose_nir_is_tagged_alpha_keeps_its_nir(tmp_path):
    """A TIFF writer may tag a fourth sample alpha; the release says it is near-infrared: it is kept as a band."""
    from aerialseg.core.config.data_params import PotsdamParams
    from aerialseg.core.geo.geoio import read_bands
    from aerialseg.prepare.sources.potsdam import potsdam_release as release_of

    folder = potsdam_release(tmp_path / "release", ["2_10", "7_8"])  # 7_8's NIR is tagged alpha
    release = release_of(PotsdamParams(path=str(folder), url=(), sha256=(), train=(), val=(), test=(),
                                       bands="RGBIR", ndsm=False))
    _collect(folder, release, ["2_10", "7_8"])
    with zipfile.ZipFile(folder / "4_Ortho_RGBIR.zip") as rgbir:
        original = tifffile.imread(io.BytesIO(rgbir.read("4_Ortho_RGBIR/top_potsdam_7_8_RGBIR.tif")))
    for tile in ("2_10", "7_8"):
        image = read_bands(tmp_path / "raw" / f"{tile}_image.tif")  # as resize reads it: data bands only
        assert image.shape[2] == 4, tile
    np.testing.assert_array_equal(read_bands(tmp_path / "raw" / "7_8_image.tif"), original)


def test_a_release_image_with_a_georeference_of_its_own_keeps_it(tmp_path):
    """No world file in the release: a tile's own GeoTIFF georeference becomes its world file and CRS."""
    import rasterio
    from affine import Affine

    from aerialseg.core.config.data_params import VaihingenParams
    from aerialseg.core.geo.worldfile import read_world_file
    from aerialseg.core.names import SceneFiles
    from aerialseg.prepare.sources.vaihingen import vaihingen_release as release_of

    folder = vaihingen_release(tmp_path / "release", ["area3"], orphan=False)
    geotiff = tmp_path / "area1.tif"
    with rasterio.open(geotiff, "w", driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="uint8",
                       crs="EPSG:31467", transform=Affine(0.09, 0, 3496000.0, 0, -0.09, 5420000.0)) as dst:
        dst.write(np.moveaxis(_looks(_index(0), 0, 3), 2, 0))
    label, eroded = _labels(_index(0))
    for archive, name, data in (("ISPRS_semantic_labeling_Vaihingen.zip", "top/top_mosaic_09cm_area1.tif",
                                 geotiff.read_bytes()),
                                ("ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip",
                                 "top_mosaic_09cm_area1.tif", label),
                                ("ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
                                 "top_mosaic_09cm_area1_noBoundary.tif", eroded)):
        with zipfile.ZipFile(folder / archive, "a") as zf:
            zf.writestr(name, data)
    release = release_of(VaihingenParams(path=str(folder), url=(), sha256=(), train=(), val=(), test=(), dsm=False))
    _collect(folder, release, ["area1", "area3"])
    placed = SceneFiles(tmp_path / "raw", "area1")
    world = read_world_file(placed.world)
    assert (world.pixel_x, world.pixel_y) == (0.09, -0.09) and world.origin_x == pytest.approx(3496000.045)
    assert "31467" in placed.srs.read_text()
    assert not SceneFiles(tmp_path / "raw", "area3").world.exists()  # no georeference: the declared 9 cm
