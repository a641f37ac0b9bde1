"""Property: whatever a manifest or a vector label file holds, reading it gives the scenes or features it
lists, or one DataError naming it; never another exception (a user's file is never a traceback)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import fiona
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerialseg.core.config.data_params import FolderParams, SplitFractions, VectorParams
from aerialseg.core.errors import DataError
from aerialseg.prepare.sources.folder_scenes import find_scenes
from aerialseg.prepare.sources.vector_labels import read_layer

from conftest import CLASSES

RULES = VectorParams(layer=None, class_field="class", burn_order=(), buffer_m=(), all_touched=False, background=None,
                     aoi=None)
CELLS = st.sampled_from(["image", "label", "split", "images/a.tif", "labels/a.tif", "train", "Test", "", " ",
                         "../x.tif", "/abs.tif", '"', "a,b", "é", "\t", "labels/a.gpkg"])


def _params(root: Path) -> FolderParams:
    return FolderParams(
        bands=("red", "green", "blue"), path=str(root),
        images="images/*.tif", labels="labels/{stem}.tif", manifest="scenes.csv",
        min_label_coverage=0.5, train=(), val=(), test=(), vector=RULES,
        fractions=SplitFractions(val=0.0, test=0.0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELLS, max_size=4), max_size=5), raw=st.binary(max_size=40), use_raw=st.booleans())
def test_any_manifest_lists_scenes_or_is_one_data_error(tmp_path, rows, raw, use_raw):
    for name in ("images/a.tif", "labels/a.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    manifest = tmp_path / "scenes.csv"
    manifest.write_bytes(raw if use_raw else "\n".join(",".join(r) for r in rows).encode())
    try:
        scenes = find_scenes(_params(tmp_path))
    except DataError as err:
        assert "\n" not in str(err) and "scenes.csv" in str(err)
        return
    assert all(s.image.is_file() and s.label.is_file() for s in scenes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flips=st.lists(st.integers(0, 4000), max_size=8))
def test_a_damaged_vector_file_reads_or_is_one_data_error(tmp_path, cut, flips):
    good = tmp_path / "good.gpkg"
    if not good.exists():
        polygon = {"type": "Polygon", "coordinates": [[(12.0, 52.4), (12.001, 52.4), (12.001, 52.401), (12.0, 52.4)]]}
        with fiona.open(good, "w", driver="GPKG", crs="EPSG:4326",
                        schema={"geometry": "Polygon", "properties": {"class": "str"}}) as dst:
            dst.writerecords([{"geometry": polygon, "properties": {"class": c}} for c in CLASSES.names])
    data = bytearray(good.read_bytes())
    for at in flips:
        data[at % len(data)] ^= 0xFF
    damaged = tmp_path / "damaged.gpkg"
    damaged.write_bytes(bytes(data[: max(cut, 1) if cut < len(data) else len(data)]))
    try:
        layer = read_layer(damaged, dataclasses.replace(RULES), CLASSES)
    except DataError as err:
        assert "\n" not in str(err) and "damaged.gpkg" in str(err)
        return
    assert len(layer.geometries) == len(layer.classes)
