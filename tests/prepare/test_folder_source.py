"""data.source folder: a user's GeoTIFFs and label rasters, paired by name, through every stage.

The scenes are built in the test: GeoTIFFs of two sizes in EPSG:25833 at 5 cm, one with a nodata
collar; a class-index label on its image's grid, a LoveDA-style index PNG without georeference,
and a georeferenced label at twice its image's resolution. Masks are compared with an independent
reading of the same files (rasterio, a nearest-neighbour block reading, the table's values)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from aerialseg.core.config.data_params import FolderParams, SplitFractions, VectorParams
from aerialseg.core.errors import DataError
from aerialseg.core.io import read_index_mask, read_rgb
from aerialseg.prepare.sources.folder_scenes import find_scenes
from tiny_project import copy_project, run_stages

from conftest import CLASSES, FIXTURES

ORIGIN = (366000.0, 5808000.0)
CRS = "EPSG:25833"
OTHER_CRS = "EPSG:32633"  # WGS 84 / UTM 33N: a scene delivered in another CRS than data.crs
IGNORE = 255
NO_DRAWS = SplitFractions(val=0.0, test=0.0)
VECTOR = VectorParams(layer=None, class_field="class", burn_order=(), buffer_m=(), all_touched=False, background=None,
                      aoi=None)


def _labels(shape: tuple[int, int], seed: int, block: int = 64) -> np.ndarray:
    """Class indices in blocks of ``block`` px (so that the 8x down-sizing to 0.4 m keeps them whole)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), (-(-shape[0] // block), -(-shape[1] // block)), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, block, 0), block, 1)[: shape[0], : shape[1]]


def _image(shape: tuple[int, int]) -> np.ndarray:
    crop = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")
    reps = (-(-shape[0] // 512), -(-shape[1] // 512), 1)
    return np.tile(crop, reps)[: shape[0], : shape[1]]


def _write(path: Path, bands: np.ndarray, *, gsd: float | None = 0.05, nodata: int | None = None,
           crs: str = CRS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff" if path.suffix == ".tif" else "PNG", "width": bands.shape[2],
               "height": bands.shape[1], "count": bands.shape[0], "dtype": bands.dtype.name}
    if gsd is not None:
        profile.update(crs=crs, transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]), compress="deflate")
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


@pytest.fixture()
def own(tmp_path, monkeypatch):
    """A tiny project whose params take three own scenes from external/own."""
    project = copy_project(tmp_path / "project")
    root = project / "external" / "own"
    shapes = {"north": (512, 512), "south-2024": (512, 640), "Val.3": (576, 512)}
    truth = {}
    for seed, (scene, shape) in enumerate(shapes.items()):
        image, labels = _image(shape), _labels(shape, seed)
        if scene == "north":  # a nodata collar on the left: its labels must become ignore
            image[:, :128] = 0
            _write(root / "images" / f"{scene}.tif", image.transpose(2, 0, 1), nodata=0)
            _write(root / "labels" / f"{scene}.tif", labels[None])
            labels = labels.copy()
            labels[:, :128] = IGNORE
        elif scene == "south-2024":  # LoveDA style: an index PNG without georeference, the image's size;
            _write(root / "images" / f"{scene}.tif", image.transpose(2, 0, 1), crs=OTHER_CRS)  # a CRS of its own
            _write(root / "labels" / f"{scene}.png", labels[None], gsd=None)
        else:  # a label at 2.5 cm, twice the image's resolution: brought onto the image's grid
            _write(root / "images" / f"{scene}.tif", image.transpose(2, 0, 1))
            fine = np.repeat(np.repeat(labels, 2, 0), 2, 1)
            _write(root / "labels" / f"{scene}.tif", fine[None], gsd=0.025)
        truth[scene] = labels
    (root / "labels" / "south-2024.tif").symlink_to(root / "labels" / "south-2024.png")  # the pattern's name
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "folder"
    params["data"]["folder"].update(train=["north"], val=["Val.3"], test=["south-2024"])
    params["classes"]["ignore"]["values"] = [IGNORE]
    params["report"]["gallery_scene"] = "south-2024"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(project)
    return project, truth


def _expected_mask(labels: np.ndarray) -> np.ndarray:
    """What encode_masks must give for 5 cm class indices at 0.4 m: each 8 x 8 block's value (the
    blocks are whole by construction, so any nearest reading agrees), 255 for ignore."""
    return labels[4::8, 4::8]


def test_own_geotiffs_and_labels_become_masks_equal_to_an_independent_reading(own, capsys):
    project, truth = own
    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    sources = json.loads((project / "data" / "raw" / "sources.json").read_text())
    assert sources["Val.3_label.tif"].endswith("labels/Val.3.tif")
    with rasterio.open(project / "data" / "resized" / "south-2024_image.tif") as resized:  # its own CRS, kept
        assert resized.crs.to_string() == OTHER_CRS and resized.transform.a == pytest.approx(0.4)
    for scene, labels in truth.items():
        mask = read_index_mask(project / "data" / "masks" / f"{scene}_full.png")
        expected = _expected_mask(labels)
        assert mask.shape == expected.shape, scene
        np.testing.assert_array_equal(mask, expected, err_msg=scene)
    assert (read_index_mask(project / "data" / "masks" / "north_full.png")[:, :16] == IGNORE).all()  # the collar
    report = json.loads((project / "metrics" / "data_report.json").read_text())
    assert sorted(report["tiles"]) == sorted(truth)
    audit = report["scenes"]  # download's audit of each scene, in the data report
    assert audit["north"]["nodata_share"] == pytest.approx(128 / 512) and audit["north"]["label_coverage"] == 1.0
    assert audit["Val.3"]["label_coverage"] == 1.0 and audit["Val.3"]["crs"] == CRS
    assert audit["south-2024"]["crs"] == OTHER_CRS and audit["south-2024"]["size"] == [640, 512]
    assert audit["south-2024"]["pixel_size"] == [0.05, 0.05]
    label_file = project / "external" / "own" / "labels" / "south-2024.tif"  # the pattern's name: a link to the PNG
    assert audit["south-2024"]["files"]["label"] == {"path": "external/own/labels/south-2024.tif",
                                                     "bytes": label_file.stat().st_size,
                                                     "sha256": hashlib.sha256(label_file.read_bytes()).hexdigest()}


def test_colour_labels_give_the_masks_of_the_index_labels(own, capsys):
    """The same labels drawn in the class table's colours (three bands; the collar in the ignore colour,
    as a colour label marks it) give the masks the index labels give."""
    project, truth = own
    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    index_masks = {p.name: read_index_mask(p) for p in sorted((project / "data" / "masks").iterdir())}
    palette = np.array([*CLASSES.colours, *[(0, 0, 0)] * (256 - len(CLASSES))], np.uint8)  # 255: ignore's black
    labels = project / "external" / "own" / "labels"
    for scene in truth:
        path = labels / f"{scene}.tif"
        with rasterio.open(path) as src:
            values, profile = src.read(1), src.profile
        if scene == "south-2024":  # the index PNG: a colour PNG of the same size, no georeference
            (labels / f"{scene}.tif").unlink()
            png = labels / f"{scene}.png"
            cv2.imwrite(str(png), palette[values][..., ::-1])
            (labels / f"{scene}.tif").symlink_to(png)
            continue
        profile.update(count=3, photometric="RGB")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(palette[values].transpose(2, 0, 1))
    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    colour_masks = {p.name: read_index_mask(p) for p in sorted((project / "data" / "masks").iterdir())}
    assert colour_masks.keys() == index_masks.keys()
    for name, mask in index_masks.items():
        np.testing.assert_array_equal(colour_masks[name], mask, err_msg=name)


def test_an_own_folder_trains_and_predicts_in_the_table_s_colours(own, capsys):
    project, _ = own
    run_stages(lambda: capsys.readouterr().out)
    with rasterio.open(project / "data" / "predictions" / "epoch_002" / "south-2024_smooth.tif") as prediction:
        table = prediction.colormap(1)
        assert [table[i][:3] for i in range(len(CLASSES))] == list(CLASSES.colours)
        assert prediction.crs.to_string() == OTHER_CRS  # the scene's own CRS, not data.crs
    scores = json.loads((project / "metrics" / "eval.json").read_text())["smooth"]["full"]
    assert sorted(scores["iou"]) == sorted(CLASSES.names)


def _folder(root: Path, images: list[str], labels: list[str]) -> FolderParams:
    for name in images:
        _write(root / "images" / name, _image((64, 64)).transpose(2, 0, 1))
    for name in labels:
        _write(root / "labels" / name, _labels((64, 64), 0)[None])
    return FolderParams(
        bands=("red", "green", "blue"), path=str(root),
        images="images/**/*.tif", labels="labels/{stem}.tif", manifest=None,
        min_label_coverage=0.5, train=(), val=(), test=(), fractions=NO_DRAWS, vector=VECTOR)


def test_pairing_mistakes_are_listed_in_one_line(tmp_path):
    params = _folder(tmp_path / "a", ["a.tif", "b.tif", "c.tif"], ["a.tif", "z.tif"])
    with pytest.raises(DataError) as err:
        find_scenes(params)
    assert str(err.value) == (f"{tmp_path / 'a'}: 2 image(s) without a label (images/b.tif, images/c.tif); "
                              "1 label(s) without an image (labels/z.tif) (data.folder.labels 'labels/{stem}.tif')")
    params = _folder(tmp_path / "b", ["x.tif", "sub/X.tif"], ["x.tif"])
    with pytest.raises(DataError, match=r"its file stem 'x' is also .*sub/X\.tif's; scene ids .* must be unique"):
        find_scenes(params)
    empty = FolderParams(
        bands=("red", "green", "blue"), path=str(tmp_path),
        images="nothing/*.tif", labels="labels/{stem}.tif", manifest=None,
        min_label_coverage=0.5, train=(), val=(), test=(), fractions=NO_DRAWS, vector=VECTOR)
    with pytest.raises(DataError, match=r"no file matches data.folder.images 'nothing/\*.tif'"):
        find_scenes(empty)
    spaced = _folder(tmp_path / "d", ["ortho 01.tif"], ["ortho 01.tif"])
    with pytest.raises(DataError, match=r"ortho 01.tif: 'ortho 01' is not a scene id \(letters, digits, _ . - .*\); "
                                        r"rename the file \(and its label\)$"):
        find_scenes(spaced)
    good = _folder(tmp_path / "c", ["b.tif", "a.tif"], ["a.tif", "b.tif"])
    assert [(s.scene, s.label.name) for s in find_scenes(good)] == [("a", "a.tif"), ("b", "b.tif")]


def test_a_split_scene_without_an_image_and_a_label_of_another_size_are_one_line(own, capsys):
    project, _ = own
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["folder"]["test"] = ["south-2024", "east"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    assert "no image for scene(s) east of the split" in capsys.readouterr().err
    params["data"]["folder"]["test"] = ["south-2024"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    label = project / "external" / "own" / "labels" / "south-2024.png"
    cv2.imwrite(str(label), np.zeros((100, 100), np.uint8))
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    assert "100x100 px without a georeference, but its image south-2024.tif is 640x512 px" in capsys.readouterr().err
    assert not (project / "data" / "raw").exists()  # nothing half-written


def test_a_label_that_misses_its_image_stops_download_in_one_line(own, capsys):
    """A label georeferenced 1 km away (a wrong offset or CRS) covers nothing of its image."""
    project, _ = own
    label = project / "external" / "own" / "labels" / "Val.3.tif"
    with rasterio.open(label) as src:
        data = src.read()
    with rasterio.open(label, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=1, dtype="uint8",
                       crs=CRS, transform=Affine(0.025, 0, ORIGIN[0] + 1000, 0, -0.025, ORIGIN[1])) as dst:
        dst.write(data)
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("download: error: external/own/labels/Val.3.tif: its labels cover 0.0% of scene Val.3's "
                          "footprint")
    assert "under data.folder.min_label_coverage 50%" in err and not (project / "data" / "raw").exists()


def _edit_params(project: Path, edit) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _unlisted(params: dict, **fractions: float) -> None:
    params["data"]["folder"].update(train=[], val=[], test=[], fractions={"val": 0.0, "test": 0.0, **fractions})
    params["report"]["gallery_scene"] = None


def test_a_csv_manifest_pairs_and_splits_and_fractions_draw_the_rest(own, capsys):
    """A manifest names each image's label (the PNG directly, no pattern) and the split of two scenes;
    the third, in no split, is drawn into val (the only split nothing assigns); every stage after
    download takes the scenes of split.json."""
    project, truth = own
    root = project / "external" / "own"
    (root / "labels" / "south-2024.tif").unlink()
    (root / "scenes.csv").write_text("image,label,split\n"
                                     "images/north.tif,labels/north.tif,train\n"
                                     "images/Val.3.tif,labels/Val.3.tif,\n"
                                     "images/south-2024.tif,labels/south-2024.png,Test\n")

    def edit(params: dict) -> None:
        _unlisted(params, val=0.3, test=0.3)
        params["data"]["folder"]["manifest"] = "scenes.csv"
    _edit_params(project, edit)
    summaries = run_stages(lambda: capsys.readouterr().out, until="tile")
    assert summaries["download"].endswith("(train 1, val 1, test 1)")
    expected = {"train": ["north"], "val": ["Val.3"], "test": ["south-2024"]}
    for folder in ("raw", "resized"):
        assert json.loads((project / "data" / folder / "split.json").read_text()) == expected
    index = __import__("pandas").read_csv(project / "data" / "tiles" / "index.csv")
    assert {split: sorted(set(frame["scene"])) for split, frame in index.groupby("split")} == expected
    np.testing.assert_array_equal(read_index_mask(project / "data" / "masks" / "south-2024_full.png"),
                                  _expected_mask(truth["south-2024"]))


def test_seeded_fractions_split_a_folder_nobody_listed_and_an_empty_split_is_one_line(own, capsys):
    project, _ = own
    _edit_params(project, lambda params: _unlisted(params, val=0.3, test=0.3))
    run_stages(lambda: capsys.readouterr().out, until="download")
    split = json.loads((project / "data" / "raw" / "split.json").read_text())
    assert sorted(sum(split.values(), [])) == ["Val.3", "north", "south-2024"]
    assert [len(split[name]) for name in ("train", "val", "test")] == [1, 1, 1]
    _edit_params(project, lambda params: _unlisted(params))  # no lists, no fractions: nothing to validate on
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("download: error: data.folder.val: no scenes among the folder's 3 scene(s) (none listed, and "
                   "data.folder.fractions draws none)")
    assert json.loads((project / "data" / "raw" / "split.json").read_text()) == split  # the last good one kept


def test_a_scene_the_manifest_and_the_params_split_differently_is_one_line(own, capsys):
    project, _ = own
    (project / "external" / "own" / "scenes.csv").write_text(
        "image,label,split\nimages/north.tif,labels/north.tif,test\nimages/Val.3.tif,labels/Val.3.tif,val\n"
        "images/south-2024.tif,labels/south-2024.png,\n")
    _edit_params(project, lambda params: params["data"]["folder"].update(manifest="scenes.csv"))  # north: train
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="download")
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "download: error: data.folder.train: scene north is also in test by the manifest scenes.csv; a scene must "
        "belong to one split only")


@pytest.mark.parametrize(("text", "message"), [
    ("image,labels\na.tif,b.tif\n", r"scenes.csv: columns 'image', 'labels'; a manifest's header is image,label "
                                    r"and optionally split"),
    ('image,label\n"images/\na.tif",labels/a.tif\n', r"scenes.csv, line 3: a cell holds a line break or a control "
                                                     r"character \('images/\\na.tif', 'labels/a.tif'\)"),
    ("image,label\n", r"scenes.csv: lists no scenes"),
    ("image,label,split\nimages/a.tif,labels/a.tif,training\n",
     r"scenes.csv, line 2: split 'training' is not train, val or test \(or empty: drawn by data.folder.fractions\)"),
    ("image,label\nimages/a.tif,labels/a.tif,test\n",
     r"scenes.csv, line 2: expected an image and a label path, got 'images/a.tif', 'labels/a.tif', 'test'"),
    ("image,label\nimages/a.tif\n", r"scenes.csv, line 2: expected an image and a label path, got 'images/a.tif', ''"),
    ("image,label\n../a.tif,labels/a.tif\n", r"scenes.csv, line 2: image '../a.tif' must be a path under"),
    ("image,label\nimages/a.tif,labels/a.tif\nimages/b.tif,labels/b.tif\nimages/c.tif,labels/z.tif\n",
     r"scenes.csv: 3 listed file\(s\) not found under .* \(images/b.tif, labels/b.tif, labels/z.tif\)"),
    ("image,label\nimages/a.tif,labels/a.tif\nimages/sub/A.tif,labels/a.tif\n",
     r"sub/A.tif: its file stem 'A' is also .*images/a.tif's; scene ids .* must be unique"),
    (b"image,label\nimages/\xe9.tif,labels/a.tif\n", r"scenes.csv: not a UTF-8 CSV file"),
])
def test_a_manifest_s_mistakes_are_one_line(tmp_path, text, message):
    params = _folder(tmp_path, ["a.tif", "c.tif", "sub/A.tif"], ["a.tif"])
    if isinstance(text, bytes):
        (tmp_path / "scenes.csv").write_bytes(text)
    else:
        (tmp_path / "scenes.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        find_scenes(dataclasses.replace(params, manifest="scenes.csv"))


def test_a_split_that_scores_a_class_no_training_scene_shows_stops_encode_masks(own, capsys):
    """The training scene's cars painted over as impervious: the val and test scenes still have cars."""
    project, _ = own
    label = project / "external" / "own" / "labels" / "north.tif"
    car = CLASSES.names.index("car")
    with rasterio.open(label, "r+") as dst:
        values = dst.read(1)
        dst.write(np.where(values == car, 0, values).astype(np.uint8), 1)
    with pytest.raises(SystemExit):
        run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("encode_masks: error: the split scores classes no training scene shows (car: ")
    assert "px in val scene Val.3, test scene south-2024)" in err
    assert not (project / "data" / "masks").exists()


def test_self_contained_geotiffs_are_copied_as_they_came_and_others_decoded(own, capsys):
    """Val.3 as a DEFLATE RGBA GeoTIFF whose alpha hides its top 64 rows: its bytes are copied into
    data/raw (resize reads bands 1-3 through GDAL); north with its collar in an external .msk
    mask, which a copy of the .tif alone would lose: its pixels are decoded into a plain TIFF. The
    masks are the independent reading's either way, ignore under the alpha and the mask."""
    project, truth = own
    images = project / "external" / "own" / "images"
    with rasterio.open(images / "Val.3.tif") as src:
        profile, rgb = src.profile, src.read()
    alpha = np.full(rgb.shape[1:], 255, np.uint8)
    alpha[:64] = 0
    profile.update(count=4, compress="deflate", tiled=True, blockxsize=256, blockysize=256, photometric="RGB",
                   alpha="YES")
    with rasterio.open(images / "Val.3.tif", "w", **profile) as dst:
        dst.write(np.concatenate([rgb, alpha[None]]))
    truth["Val.3"] = truth["Val.3"].copy()
    truth["Val.3"][:64] = IGNORE
    with rasterio.open(images / "north.tif") as src:
        profile, rgb = src.profile, src.read()
    profile.pop("nodata")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(images / "north.tif", "w", **profile) as dst:
        dst.write(rgb)
        dst.write_mask(np.where(np.arange(rgb.shape[2]) < 128, 0, 255).astype(np.uint8)[None].repeat(rgb.shape[1], 0))
    assert (images / "north.tif.msk").is_file()

    run_stages(lambda: capsys.readouterr().out, until="encode_masks")
    raw = project / "data" / "raw"
    assert (raw / "Val.3_image.tif").read_bytes() == (images / "Val.3.tif").read_bytes()
    with rasterio.open(raw / "north_image.tif") as copied:
        assert copied.count == 3 and copied.compression is None  # decoded, not copied without its mask
    for scene, labels in truth.items():
        np.testing.assert_array_equal(read_index_mask(project / "data" / "masks" / f"{scene}_full.png"),
                                      _expected_mask(labels), err_msg=scene)
    with rasterio.open(project / "data" / "resized" / "Val.3_image.tif") as resized:
        assert resized.count == 3
